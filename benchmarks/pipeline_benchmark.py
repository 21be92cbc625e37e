"""Time and peak memory of a whole generation on the tiny random model, by audio length.

    python benchmarks/pipeline_benchmark.py --seconds 5 30 --size 256 --steps 1

Each length runs in a fresh process so its peak RSS is its own. Stages: model loading,
denoising (reference, audio, V-Kps features and DDIM over all windows), and post-processing
(VAE decoding, 3x3x3 median filter, H.264 encoding and AAC muxing, streamed). With
``--baseline`` the post-processing is also timed the way the original does it (whole float
video in memory, frame-by-frame median, an mp4v file re-encoded by ffmpeg) on the same
decoded frames, for a same-machine comparison. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model-dir", type=Path, default=None, help="Default: the tiny model in the user cache.")
    parser.add_argument("--baseline", action="store_true", help="Also time the original-style post-processing.")
    parser.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_once(args, args.worker)))
        return
    runs = [run_in_fresh_process(args, seconds) for seconds in args.seconds]
    summary = {"runs": runs}
    if len(runs) >= 2:
        summary["peak_rss_ratio_longest_to_shortest"] = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)
    print(json.dumps(summary, indent=2))


def run_in_fresh_process(args, seconds: float) -> dict:
    command = [sys.executable, __file__, "--worker", str(seconds), "--size", str(args.size), "--steps",
               str(args.steps), "--fps", str(args.fps), "--device", args.device, "--dtype", args.dtype]
    if args.model_dir:
        command += ["--model-dir", str(args.model_dir)]
    if args.baseline:
        command.append("--baseline")
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_once(args, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="vexpress-bench-") as folder:  # the inputs and videos go with it
        return _run_in(Path(folder), args, seconds)


def _run_in(work: Path, args, seconds: float) -> dict:
    import torch

    from vexpress_cli import VExpressPipeline
    from vexpress_cli.tiny.inputs import write_demo_inputs
    from vexpress_cli.engine.devices import resolve_device, resolve_dtype
    from vexpress_cli.jobs.planning import frame_count
    from vexpress_cli.media.audio import load_audio
    from vexpress_cli.media.video_writer import VideoWriter
    from vexpress_cli.engine.pipeline_output import to_uint8
    from vexpress_cli.engine.median_filter import median_filter_stream
    from vexpress_cli.tiny.model import ensure_tiny_model

    timings: dict[str, float] = {}
    inputs = write_demo_inputs(work, seconds)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)

    started = time.perf_counter()
    pipeline = VExpressPipeline.from_pretrained(ensure_tiny_model(args.model_dir), device=device, dtype=dtype)
    timings["load_model_s"] = time.perf_counter() - started

    waveform = load_audio(inputs.audio)
    num_frames = frame_count(waveform.shape[0] / 16000, args.fps)
    kps = inputs.reference_kps * (args.size / 512)
    track = kps[None].repeat(num_frames, axis=0)
    import PIL.Image

    reference = PIL.Image.open(inputs.reference_image).convert("RGB").resize((args.size, args.size))

    started = time.perf_counter()
    latents = pipeline.denoise(reference, waveform, num_frames, args.size, args.size, kps_images=track,
                               num_inference_steps=args.steps, generator=torch.manual_seed(0))
    synchronize(device)
    timings["denoise_s"] = time.perf_counter() - started

    started = time.perf_counter()
    decoding = TimedIterator(pipeline.decode_latents(latents, 8))
    with VideoWriter(work / "out.mp4", args.fps, args.size, args.size, audio_path=inputs.audio) as writer:
        for chunk in median_filter_stream(to_uint8(chunk) for chunk in decoding):
            writer.write(chunk.permute(1, 2, 3, 0).cpu().numpy())
    timings["decode_s"] = decoding.seconds
    timings["filter_write_s"] = time.perf_counter() - started - decoding.seconds

    result = {
        "audio_seconds": seconds, "frames": num_frames, "size": args.size, "steps": args.steps,
        "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        **{key: round(value, 2) for key, value in timings.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if args.baseline:
        result.update(baseline_postprocess(pipeline, latents, inputs.audio, work, args.fps))
    return result


def baseline_postprocess(pipeline, latents, audio_path: Path, work: Path, fps: float) -> dict:
    """The original's post-processing, rewritten for comparison: all frames in memory as floats,
    a median per frame from unfolded neighbourhoods, mp4v through OpenCV, then an ffmpeg re-encode."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F
    from imageio_ffmpeg import get_ffmpeg_exe

    video = torch.cat([chunk.float().cpu() for chunk in pipeline.decode_latents(latents, 8)], dim=1)
    started = time.perf_counter()
    padded = F.pad(video, (1, 1, 1, 1, 1, 1), mode="reflect")
    channels, frames, height, width = video.shape
    filtered = []
    for index in range(frames):
        block = padded[:, index:index + 3].unfold(2, 3, 1).unfold(3, 3, 1)
        block = block.permute(0, 2, 3, 1, 4, 5).reshape(channels, height, width, -1)
        filtered.append(block.median(dim=-1).values)
    frames_u8 = (torch.stack(filtered, dim=1).permute(1, 2, 3, 0) * 255).numpy().astype(np.uint8)
    temp = work / "baseline-temp.mp4"
    writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames_u8:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    subprocess.run([get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(temp), "-i", str(audio_path),
                    "-map", "0:v", "-map", "1:a", "-c:v", "h264", "-shortest", str(work / "baseline.mp4")], check=True)
    return {"baseline_filter_write_s": round(time.perf_counter() - started, 2),
            "peak_rss_mb_with_baseline": round(peak_rss_mb(), 1)}


class TimedIterator:
    """Counts the time spent producing items, apart from the time spent consuming them."""

    def __init__(self, iterator):
        self.iterator = iterator
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        started = time.perf_counter()
        try:
            return next(self.iterator)
        finally:
            self.seconds += time.perf_counter() - started


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    main()
