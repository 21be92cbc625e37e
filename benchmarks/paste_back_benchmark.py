"""Paste-back: its cost per frame at 1080p and 4K, and the peak memory of ``generate --paste-back`` by length.

    python benchmarks/paste_back_benchmark.py --frames 60 --seconds 5 30

1. Cost per frame (this process, CPU): a 512x512 generated frame scaled to the crop box and blended into
   a 1920x1080 / 3840x2160 photo (:class:`vexpress_cli.media.paste_back.PasteBack`), the box framing a
   face as auto-crop would (a quarter / the same share of the frame's height). The median over ``--frames``.
2. Peak memory: the real ``vexpress generate --paste-back`` in a child process per audio length, a
   1920x1080 photo with the demo portrait in it, on the tiny model (``--size`` generation size, 1 step),
   its peak RSS read from the kernel. The output video is 1920x1080 whatever ``--size`` is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from generate_memory import run_generate  # benchmarks/ is this script's folder, so it is on sys.path

SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160)}


def photo_of(width: int, height: int) -> np.ndarray:
    """A smooth synthetic photo (random content would only make the resize slower, not the blend)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    return np.stack([200 * x + 0 * y, 200 * y + 0 * x, 100 + 80 * np.sin(9 * x + 5 * y)], axis=2).astype(np.uint8)


def cost_per_frame(frames: int) -> dict[str, dict[str, float]]:
    from vexpress_cli.media.paste_back import PasteBack

    generated = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    results = {}
    for name, (width, height) in SIZES.items():
        side = height // 2  # a head and shoulders crop in a wide photo
        paste = PasteBack(photo_of(width, height), (width // 2, height // 4, side, side))
        paste(generated)  # warm-up
        times = []
        for _ in range(frames):
            started = time.perf_counter()
            paste(generated)
            times.append(time.perf_counter() - started)
        results[name] = {"photo": f"{width}x{height}", "box": f"{side}x{side}",
                         "ms_per_frame_median": round(1000 * statistics.median(times), 2),
                         "ms_per_frame_p90": round(1000 * sorted(times)[int(0.9 * len(times))], 2)}
    return results


def peak_memory(seconds_list: list[float], size: int) -> list[dict[str, float]]:
    import PIL.Image

    from vexpress_cli.tiny.inputs import PORTRAIT_SIZE, write_demo_inputs
    from vexpress_cli.tiny.model import ensure_tiny_model

    model = ensure_tiny_model()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vexpress-paste-bench-") as folder:
        for seconds in seconds_list:
            inputs = write_demo_inputs(Path(folder) / f"in-{seconds:g}", seconds)
            photo = photo_of(*SIZES["1080p"])
            left, top = 1100, 300
            photo[top:top + PORTRAIT_SIZE, left:left + PORTRAIT_SIZE] = np.asarray(
                PIL.Image.open(inputs.reference_image).convert("RGB"))
            wide = Path(folder) / f"wide-{seconds:g}.png"
            PIL.Image.fromarray(photo).save(wide)
            output = Path(folder) / f"out-{seconds:g}.mp4"
            run = run_generate(["-i", str(wide), "-a", str(inputs.audio), "-o", str(output), "--model-dir", str(model),
                                "--crop", f"{left},{top},512,512", "--reference-kps", inputs.reference_kps_text(size),
                                "--width", str(size), "--height", str(size), "--num-inference-steps", "1",
                                "--device", "cpu", "--paste-back"])
            runs.append({"audio_seconds": seconds, "frames": run["result"]["frames"],
                         "video_size": run["result"]["size"], "wall_s": run["wall_s"],
                         "peak_rss_mb": run["peak_rss_mb"]})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames timed per size")
    parser.add_argument("--seconds", type=float, nargs="*", default=[5.0, 30.0], help="audio lengths (none: skip)")
    parser.add_argument("--size", type=int, default=64, help="generation size of the memory runs")
    args = parser.parse_args()
    summary = {"cost_per_frame": cost_per_frame(args.frames)}
    if args.seconds:
        runs = peak_memory(args.seconds, args.size)
        summary["generate_paste_back_1080p"] = {"generation_size": args.size, "runs": runs}
        if len(runs) >= 2:
            summary["peak_rss_ratio_longest_to_shortest"] = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
