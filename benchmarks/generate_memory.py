"""Peak memory and time of ``vexpress generate`` by audio length, on the tiny random model.

    python benchmarks/generate_memory.py --seconds 5 30 --size 256 --steps 1

Runs the real command in a child process per length (synthetic portrait and voice, fix_face)
and reads the child's peak RSS from the kernel. Memory should not grow with the audio: the
engine computes V-Kps features per window and streams decoded frames into ffmpeg.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_generate(arguments: list[str]) -> dict:
    """``vexpress generate ARGUMENTS --json`` in a child process: its JSON result, wall time and peak RSS."""
    command = [sys.executable, "-m", "vexpress_cli", "generate", *arguments, "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    stdout = process.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"vexpress generate failed:\n{process.stderr.read()}")
    return {"result": json.loads(stdout.strip().splitlines()[-1]),
            "wall_s": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from vexpress_cli.tiny.inputs import write_demo_inputs
    from vexpress_cli.tiny.model import ensure_tiny_model

    model = ensure_tiny_model()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vexpress-bench-") as folder:
        for seconds in args.seconds:
            inputs = write_demo_inputs(Path(folder) / f"in-{seconds:g}", seconds)
            output = Path(folder) / f"out-{seconds:g}.mp4"
            run = run_generate(["-i", str(inputs.reference_image), "-a", str(inputs.audio), "-o", str(output),
                                "--model-dir", str(model), "--reference-kps", inputs.reference_kps_text(args.size),
                                "--width", str(args.size), "--height", str(args.size),
                                "--num-inference-steps", str(args.steps), "--device", args.device])
            runs.append({"audio_seconds": seconds, "frames": run["result"]["frames"], "wall_s": run["wall_s"],
                         "peak_rss_mb": run["peak_rss_mb"]})
    summary = {"size": args.size, "steps": args.steps, "device": args.device, "runs": runs}
    if len(runs) >= 2:
        summary["peak_rss_ratio_longest_to_shortest"] = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
