"""The tables of benchmarks/README.md from the files ``gpu_speed.sh`` (or ``speed_benchmark.py --out``) wrote.

    python benchmarks/gpu_speed_table.py benchmarks/results

Reads every ``*.json`` of the folder that holds speed runs (``runs``) and the FLOP count (``flops``),
and ``device.txt`` when there is one; prints markdown: one row per run, then the host<->device traffic
of the profiled steps. A file a time limit cut short shows the runs it finished.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("window-step s", "first step s", "output frames/s at 25 steps", "31 s of speech at 25 steps, s",
           "TFLOP/s", "share of peak", "peak allocated GiB", "peak reserved GiB", "vs before")
TOP_OPS = 6
OP_NAME_CHARS = 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    print(tables(parser.parse_args().folder))


def tables(folder: Path) -> str:
    results = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    runs = {name: result for name, result in results.items() if result.get("runs")}
    lines = [*device_lines(folder, results), "", "| file | run | dtype | " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * (len(COLUMNS) + 3)]
    for name, result in runs.items():
        speedups = result.get("speedup_vs_before", {})
        for run_name, run in result["runs"].items():
            lines.append(f"| {name} | {run_name} | {result['dtype']} | " + " | ".join(run_cells(run, speedups.get(run_name)))
                         + " |")
    traffic = [(name, run_name, run["profile"]) for name, result in runs.items()
               for run_name, run in result["runs"].items() if "profile" in run]
    if traffic:
        lines += ["", "| file | run | V-Kps guider runs in the step | host<->device traffic in the step (op: calls) |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {run_name} | {profile.get('kps_guider_runs')} | "
                  + ", ".join(f"{op}: {count}" for op, count in profile["host_device_traffic_counts"].items()) + " |"
                  for name, run_name, profile in traffic]
        lines += ["", "| file | run | busiest ops of the profiled step (ms, calls) |", "|---|---|---|"]
        lines += [f"| {name} | {run_name} | " + "; ".join(f"{short(op)} {ms} ({calls})"
                                                       for op, ms, calls in profile["top_ops_ms"][:TOP_OPS]) + " |"
                  for name, run_name, profile in traffic]
    return "\n".join(lines)


def short(op: str) -> str:
    """A kernel's name cut to its first words: CUDA template names run to hundreds of characters."""
    return op if len(op) <= OP_NAME_CHARS else op[:OP_NAME_CHARS] + "..."


def device_lines(folder: Path, results: dict) -> list[str]:
    lines = []
    device_file = folder / "device.txt"
    if device_file.is_file():
        lines += [f"    {line}" for line in device_file.read_text().splitlines() if line.strip()]
    counted = {}
    for result in results.values():
        counted.setdefault((result["model"], result["size"]), result)
    for (model, size), result in counted.items():
        flops = result["flops"]
        lines.append(f"FLOPs, {model} model at {size}x{size}: {flops['unet_window_step_flop'] / 1e12:.4g} TFLOP per "
                     f"guided window-step ({flops['window_frames']} frames), {flops['unet_frame_step_tflop']} TFLOP "
                     f"per frame-step")
    for name, result in results.items():
        if result.get("runs"):
            settings = [f"{key} {result[key]}" for key in ("compile_mode", "inductor_recipe", "cuda_alloc_conf",
                                                           "cuda_context_gb") if result.get(key)]
            lines.append(f"{name}: {result['device']}, torch {result['torch']}, share of a peak of "
                         f"{result.get('peak_tflops')} TFLOP/s" + "".join(f", {item}" for item in settings))
    return lines


def run_cells(run: dict, speedup: float | None) -> list[str]:
    share = run.get("share_of_peak")
    return [str(run["window_step_s"]), str(run["first_step_s"]), str(run["output_fps_at_25_steps"]),
            str(run.get("denoise_31s_speech_at_25_steps_s", "")), str(run["achieved_tflops"]),
            f"{share:.1%}" if share is not None else "n/a", str(run["peak_memory_gb"]),
            str(run.get("peak_reserved_gb") or "n/a"), f"{speedup}x" if speedup else ""]


if __name__ == "__main__":
    main()
