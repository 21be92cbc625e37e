#!/usr/bin/env bash
# Issue 12's GPU measurements in one go (about 8-10 minutes on an H100/H200 with a cold compile cache).
# Run from the repository root with a CUDA build of torch and this package importable:
#     bash benchmarks/gpu_speed.sh            # results in $OUT (default benchmarks/results/)
# Then copy the numbers into benchmarks/README.md ("Speed on a GPU").
set -euo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
COMMON=(--model full --device cuda --size 512 --frames 300 --steps 3)   # 300 frames = 15 windows of 24/4

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
python -c "import torch; print(torch.__version__, torch.version.cuda)" > "$OUT/torch.txt"
# 1. FLOPs of the full-size networks (counted on the meta device: no compute).
python benchmarks/speed_benchmark.py --model full --device meta --dtype fp16 --count-only > "$OUT/flops.json"
# 2. Before/after of the step loop, window batching, and a profile of one steady step (fp16).
python benchmarks/speed_benchmark.py "${COMMON[@]}" --steps 4 --dtype fp16 --baseline --window-batch 1 2 4 --profile \
    > "$OUT/fp16_batch.json"
# 3. Compiled, alone and with window batching (each batch size compiles once; the cache is then warm).
python benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --window-batch 1 2 --compile > "$OUT/fp16_compile.json"
# 4. The same again in a fresh process: the persistent compile cache at work (compare first_step_s).
python benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --window-batch 1 --compile > "$OUT/fp16_compile_warm.json"
# 5. Peak memory with save_gpu_memory (the original: 7956 MiB), and bf16.
python benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --window-batch 1 --save-gpu-memory --steps 2 \
    > "$OUT/fp16_save_memory.json"
python benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype bf16 --window-batch 1 > "$OUT/bf16.json"
echo "done: $OUT"
