"""What loading the model once saves: N short jobs through one ``vexpress batch`` against N ``vexpress generate``.

    python benchmarks/batch_benchmark.py --jobs 10 --seconds 0.5 --size 64 --steps 1

Both sides run the real commands in fresh processes on the tiny random model (synthetic portrait and
voice, fix_face with given keypoints, one seed per job), one after the other on an otherwise idle
machine. Prints JSON: the wall time of the batch, the summed wall time of the N generate processes,
their ratio, and the batch's own per-job time from its summary. ``--workers N`` runs the batch with N
worker processes.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5, help="Speech per job.")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    from vexpress_cli.tiny.inputs import write_demo_inputs
    from vexpress_cli.tiny.model import ensure_tiny_model

    model = ensure_tiny_model()
    with tempfile.TemporaryDirectory(prefix="vexpress-batch-bench-") as folder:
        folder = Path(folder)
        inputs = write_demo_inputs(folder / "inputs", args.seconds)
        common = ["--model-dir", str(model), "--width", str(args.size), "--height", str(args.size),
                  "--num-inference-steps", str(args.steps), "--device", args.device]
        job = {"reference_image": str(inputs.reference_image), "audio": str(inputs.audio),
               "reference_kps": inputs.reference_kps_text(args.size)}
        manifest = folder / "jobs.jsonl"
        manifest.write_text("".join(json.dumps({**job, "output": f"batch/{number:02d}.mp4", "seed": number}) + "\n"
                                    for number in range(1, args.jobs + 1)))

        started = time.perf_counter()
        summary = json.loads(_run(["batch", str(manifest), *common, "--workers", str(args.workers), "--json"]))
        batch_s = time.perf_counter() - started
        if summary["counts"]["done"] != args.jobs:
            raise SystemExit(f"the batch did not do every job: {summary}")

        generate_s = []
        for number in range(1, args.jobs + 1):
            started = time.perf_counter()
            _run(["generate", "-i", job["reference_image"], "-a", job["audio"], "--reference-kps",
                  job["reference_kps"], "-o", str(folder / f"generate-{number:02d}.mp4"), "--seed", str(number),
                  *common, "--json"])
            generate_s.append(time.perf_counter() - started)

    print(json.dumps({
        "jobs": args.jobs, "audio_seconds": args.seconds, "size": args.size, "steps": args.steps,
        "device": args.device, "batch_workers": args.workers, "cpus": os.cpu_count(),
        "batch_wall_s": round(batch_s, 1),
        "batch_job_s_mean": round(sum(job["seconds"] for job in summary["jobs"]) / args.jobs, 2),
        "generate_processes_wall_s": round(sum(generate_s), 1),
        "generate_process_s_mean": round(sum(generate_s) / args.jobs, 2),
        "speedup_generate_over_batch": round(sum(generate_s) / batch_s, 2),
    }, indent=2))


def _run(arguments: list[str]) -> str:
    """One ``vexpress`` command in a fresh process (as a user would start it); its stdout."""
    completed = subprocess.run([sys.executable, "-m", "vexpress_cli", *arguments], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"vexpress {arguments[0]} failed:\n{completed.stderr}")
    return completed.stdout


if __name__ == "__main__":
    main()
