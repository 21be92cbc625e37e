#!/usr/bin/env bash
# Issue 12's GPU measurements in one go, sized for one short device lease: about 8 minutes on an H100/H200
# with a cold compile cache, and never past BUDGET_S seconds (default 520): each step gets what is left,
# the steps run most important first, and each writes its own file as soon as it ends.
#     bash benchmarks/gpu_speed.sh                 # measure: before/after, batching, compile, bf16, memory
#     bash benchmarks/gpu_speed.sh tuning          # what might close the gap to 40 % of peak (README.md)
#     python benchmarks/gpu_speed_table.py "$OUT"  # the tables for benchmarks/README.md
# Results go to $OUT (default benchmarks/results/).
# Needs a CUDA build of torch, diffusers and transformers; this repository need not be installed
# (benchmarks/README.md, "On a lent device machine", runs it where only torch and transformers are).
set -uo pipefail  # no -e: a step that fails or runs out of time leaves the later ones their chance
PLAN=${1:-measure}
if [[ $PLAN != measure && $PLAN != tuning ]]; then
    echo "gpu_speed.sh: unknown plan '$PLAN'; use measure (the default) or tuning." >&2
    exit 2
fi
OUT=${OUT:-benchmarks/results}
BUDGET_S=${BUDGET_S:-520}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error \
    DIFFUSERS_VERBOSITY=error
LOG="$OUT/log.txt"
# 164 frames = 8 windows of 24 with overlap 4: window batches of 1, 2 and 4 divide them evenly.
COMMON=(--model full --device cuda --size 512 --frames 164)

step() {  # step NAME COMMAND...: COMMAND --out $OUT/NAME.json, within the time that is left
    local name=$1 left=$((BUDGET_S - SECONDS))
    shift
    if ((left < 40)); then
        echo "$name: skipped, ${left}s of the budget left" | tee -a "$LOG"
        return
    fi
    timeout --signal=INT --kill-after=10 "$left" "$@" --out "$OUT/$name.json" >/dev/null 2>>"$LOG"
    echo "$name: exit $? at ${SECONDS}s" | tee -a "$LOG"
}

measure() {
    # FLOPs of the full-size networks, counted on the meta device (no compute).
    step flops python3 benchmarks/speed_benchmark.py --model full --device meta --dtype fp16 --count-only
    # Eager fp16: the step loop before/after, window batches, save_gpu_memory, a profile of one steady step.
    step eager_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 4 --baseline \
        --window-batch 1 2 4 --save-gpu-memory --profile
    # Compiled, alone and with window batching: the first step holds the cold compile.
    step compile_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 3 \
        --window-batch 1 2 --compile
    # A fresh process again: the persistent compile cache at work (compare first_step_s with the cold run).
    step compile_warm_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 3 \
        --window-batch 1 --compile
    step eager_bf16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype bf16 --steps 3 --window-batch 1 2
}

tuning() {
    # Memory: save_gpu_memory with the allocator's expandable segments (less reserved beyond what is allocated).
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True step memory_fp16 python3 benchmarks/speed_benchmark.py \
        "${COMMON[@]}" --dtype fp16 --steps 3 --window-batch 1 --save-gpu-memory
    step channels_last_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 3 \
        --window-batch 1 --channels-last
    # Where a compiled step spends its time, then two ways to compile harder (each compiles cold).
    step compile_profile_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 4 \
        --window-batch 1 --compile --profile
    step compile_recipe_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 3 \
        --window-batch 1 --compile --inductor-recipe
    step compile_autotune_fp16 python3 benchmarks/speed_benchmark.py "${COMMON[@]}" --dtype fp16 --steps 3 \
        --window-batch 1 --compile --compile-mode max-autotune-no-cudagraphs
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 benchmarks/matmul_peak.py
} >"$OUT/device.txt" 2>>"$LOG"
"$PLAN"
echo "done in ${SECONDS}s: $OUT" | tee -a "$LOG"
