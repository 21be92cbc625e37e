"""The matrix-product rate this device reaches through torch: the practical ceiling for the share of peak.

    python benchmarks/matmul_peak.py            # fp16 and bf16, 8192^3, on cuda (cpu: 1024^3, fp32)

The datasheet peak of ``speed_benchmark.py``'s table is dense tensor-core math at the highest clock; a
large square product shows what this machine actually reaches (the H200 of benchmarks/README.md: 749 fp16
and 776 bf16 of 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from full_size_benchmark import synchronize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="Matrix side (8192 on cuda, 1024 on cpu).")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    size = args.size or (8192 if device.type == "cuda" else 1024)
    dtypes = (torch.float16, torch.bfloat16) if device.type == "cuda" else (torch.float32,)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "size": size}
    for dtype in dtypes:
        result[str(dtype).removeprefix("torch.")] = float(f"{product_tflops(size, dtype, device, args.repeats):.4g}")
    print(json.dumps(result))


def product_tflops(size: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """TFLOP/s of ``size^3`` products on random data: the mean of ``repeats`` after three warm-ups."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


if __name__ == "__main__":
    main()
