"""How close denoising runs to the device's limit: FLOPs counted once, seconds per window-step, share of peak.

    python benchmarks/speed_benchmark.py --model tiny --device cpu --size 256 --frames 60 --steps 3 --baseline --profile
    python benchmarks/speed_benchmark.py --model full --device cuda --dtype fp16 --frames 300 --steps 3 \\
        --baseline --window-batch 1 2 4 --compile --profile          # (benchmarks/gpu_speed.sh runs it all)
    python benchmarks/speed_benchmark.py --model full --device meta --count-only   # FLOPs only, no compute

FLOPs are counted with ``torch.utils.flop_counter`` on the real modules (one guided UNet call on one
window, and the V-Kps guider on one window), once. Each configuration then denoises the same job;
a *window-step* is one window's guided UNet call in one step (CFG batch 2 x ``context_frames``). The
first step (V-Kps features computed, compilation) is reported apart from the steady steps. Reported:
seconds per window-step, output frames per second of denoising at 25 steps, the denoising time of
issue 12's goal (31 s of speech at 25 steps), achieved TFLOP/s, its share of the device's peak (a
table of common GPUs, or ``--peak-tflops``), peak memory (allocated, and reserved by torch's allocator).

``--baseline`` also runs the step loop as it was before ``engine/window_denoiser.py`` (V-Kps images
drawn and encoded for every window at every step, latents, audio tokens and predictions copied
per window), on the same pipeline in the same run, so the saving is a ratio measured side by side.
``--profile`` records the last step of each loop with torch.profiler and summarises it: the
busiest ops, and the copies and syncs between host and device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from full_size_benchmark import build_random_full_size_pipeline, reset_peak, synchronize  # noqa: E402

# Dense fp16/bf16 tensor-core peak TFLOP/s (no sparsity) by a piece of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "B200": 2250.0, "GH200": 989.0, "A100": 312.0,
               "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "A6000": 155.0,
               "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0}
# Issue 12's goal: 31 s of speech (930 frames at 30 fps) denoised at 25 steps in at most 180 s.
GOAL_SPEECH_FRAMES = 930
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
# torch._inductor.config settings of diffusers' recipe for compiled UNets (its "fast diffusion" tutorial).
INDUCTOR_RECIPE = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False,
                   "coordinate_descent_check_all_directions": True}
# Ops whose counts show host<->device traffic and waits in a profile.
TRAFFIC = ("Memcpy HtoD", "Memcpy DtoH", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaDeviceSynchronize",
           "aten::_local_scalar_dense", "aten::_to_copy", "aten::copy_", "aten::index", "aten::index_put_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp16", "bf16", "fp32"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--steps", type=int, default=3, help="Denoising steps per run (the first is reported apart).")
    parser.add_argument("--context-frames", type=int, default=24)
    parser.add_argument("--context-overlap", type=int, default=4)
    parser.add_argument("--window-batch", type=int, nargs="+", default=[1])
    parser.add_argument("--compile", action="store_true", help="Also run each window batch compiled.")
    parser.add_argument("--compile-mode", default=None, choices=COMPILE_MODES,
                        help="torch.compile's mode for the compiled runs (default: torch's default).")
    parser.add_argument("--inductor-recipe", action="store_true", help="Compile with the inductor settings "
                        "diffusers suggests for UNets: " + ", ".join(f"{k}={v}" for k, v in INDUCTOR_RECIPE.items()))
    parser.add_argument("--channels-last", action="store_true", help="Also run each window batch eagerly with the "
                        "UNet's weights in channels-last memory format.")
    parser.add_argument("--baseline", action="store_true", help="Also run the step loop as it was before.")
    parser.add_argument("--save-gpu-memory", action="store_true", help="Also run once with save_gpu_memory.")
    parser.add_argument("--profile", action="store_true", help="Profile the last step (left out of the "
                        "steady time when there are 3 steps or more).")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--count-only", action="store_true", help="Count FLOPs only (works on --device meta).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the results here, again after each "
                        "run (so a run cut short by a time limit keeps the ones before it).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32,
             "auto": torch.float32 if device.type in ("cpu", "meta") else torch.float16}[args.dtype]
    if args.inductor_recipe:
        from torch._inductor import config

        for name, value in INDUCTOR_RECIPE.items():
            setattr(config, name, value)
    started = time.perf_counter()
    pipeline = build_pipeline(args.model, device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    result = {"model": args.model, "device": device_name(device), "dtype": str(dtype).removeprefix("torch."),
              "size": args.size, "frames": args.frames, "steps": args.steps, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "build_s": round(time.perf_counter() - started, 1),
              "compile_mode": args.compile_mode, "inductor_recipe": args.inductor_recipe,
              "cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    result["flops"] = count_flops(pipeline, args)
    if args.count_only:
        report(result, args.out)
        return
    peak = args.peak_tflops or peak_tflops(device, dtype)
    result["peak_tflops"] = peak
    result["cuda_context_gb"] = cuda_context_gb(device)
    result["runs"] = {}
    for name, options in planned_runs(args).items():
        result["runs"][name] = measure(pipeline, args, options, peak, result["flops"])
        print(f"{name}: {json.dumps(result['runs'][name])}", file=sys.stderr)
        if "before" in result["runs"]:
            before = result["runs"]["before"]["steady_step_s"]
            result["speedup_vs_before"] = {name: round(before / run["steady_step_s"], 3)
                                           for name, run in result["runs"].items() if name != "before"}
        report(result, args.out, final=False)
    report(result, args.out)


def report(result: dict, out: Path | None, final: bool = True) -> None:
    """Write ``result`` to ``out`` (whole or not at all); print it at the end."""
    from vexpress_cli.jobs.records import write_text_atomically

    text = json.dumps(result, indent=2)
    if out is not None:
        write_text_atomically(out, text + "\n")
    if final:
        print(text)


def build_pipeline(model: str, device: torch.device, dtype: torch.dtype):
    if model == "full":
        config = json.loads((REPO / "tests" / "fixtures" / "golden" / "sd15_unet_config.json").read_text())
        return build_random_full_size_pipeline(config, device, dtype)
    from vexpress_cli import VExpressPipeline

    return VExpressPipeline.from_pretrained(REPO / "tests" / "fixtures" / "golden" / "tiny" / "model",
                                            device=device, dtype=dtype)


def planned_runs(args) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    if args.baseline:
        runs["before"] = {"legacy": True, "window_batch": 1}
    for batch in args.window_batch:
        runs[f"window_batch={batch}"] = {"window_batch": batch}
    if args.channels_last:
        for batch in args.window_batch:
            runs[f"channels_last,window_batch={batch}"] = {"window_batch": batch, "channels_last": True}
    if args.compile:
        for batch in args.window_batch:
            runs[f"compile,window_batch={batch}"] = {"window_batch": batch, "compile": True}
    if args.save_gpu_memory:
        runs["save_gpu_memory"] = {"window_batch": 1, "save_gpu_memory": True}
    return runs


# -- FLOPs -------------------------------------------------------------------------------------------


def count_flops(pipeline, args) -> dict:
    """FLOPs of one guided UNet call on one window and of the guider on one window (real modules)."""
    from torch.utils.flop_counter import FlopCounterMode

    device, dtype = pipeline.device, pipeline.dtype
    frames, latent = min(args.context_frames, args.frames), args.size // 8
    generator = torch.Generator(device="cpu").manual_seed(0)
    latents = torch.randn(1, 4, frames, latent, latent, generator=generator).to(device, dtype)
    portrait = torch.randn(1, 4, latent, latent, generator=generator).to(device, dtype)
    reference = pipeline.reference_conditioning(portrait, True, 1.0, 1.0)
    queries = pipeline.audio_projection.config.num_queries
    dim = pipeline.denoising_unet.config.cross_attention_dim
    tokens = torch.randn(frames, queries, dim, generator=generator).to(device, dtype)
    images = torch.rand(1, 3, frames, args.size, args.size, generator=generator).to(device, dtype)
    pipeline.scheduler.set_timesteps(25, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as guider_counter:
        kps = pipeline.kps_features(images)
    with torch.no_grad(), FlopCounterMode(display=False) as unet_counter:
        pipeline.predict_window_noise(latents, pipeline.scheduler.timesteps[0], tokens, kps, reference, 3.5)
    unet, guider = unet_counter.get_total_flops(), guider_counter.get_total_flops()
    return {"window_frames": frames, "unet_window_step_flop": unet, "guider_window_flop": guider,
            "unet_frame_step_tflop": round(unet / frames / 1e12, 6), "guider_share": round(guider / unet, 5)}


def peak_tflops(device: torch.device, dtype: torch.dtype) -> float | None:
    if device.type != "cuda" or dtype == torch.float32:
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_TFLOPS[key]
    return None


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


# -- one run -----------------------------------------------------------------------------------------


def measure(pipeline, args, options: dict, peak: float | None, flops: dict) -> dict:
    import numpy as np
    import PIL.Image

    from vexpress_cli.engine.compile import set_unet_compiled
    from vexpress_cli.engine.context_windows import context_windows
    from vexpress_cli.engine.window_denoiser import WindowOptions

    size, frames, device = args.size, args.frames, pipeline.device
    windows = len(context_windows(frames, args.context_frames, args.context_overlap))
    reference = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    waveform = torch.randn(int(frames / 30 * 16000) + 400, generator=torch.Generator().manual_seed(0)) * 0.1
    kps = np.array([[0.39, 0.43], [0.61, 0.43], [0.5, 0.57]], dtype=np.float32) * size
    pipeline.window_options = WindowOptions(window_batch=options.get("window_batch", 1))
    set_unet_compiled(pipeline, options.get("compile", False), args.compile_mode)
    memory_format = torch.channels_last if options.get("channels_last") else torch.contiguous_format
    pipeline.denoising_unet.to(memory_format=memory_format)
    step_ends: list[float] = []
    clock = {"start": 0.0}

    def progress(stage, done, total):
        if stage == "audio" and done == total:
            synchronize(device)
            clock["start"] = time.perf_counter()
        elif stage == "denoise" and done % windows == 0:
            synchronize(device)
            step_ends.append(time.perf_counter())

    reset_peak(device)
    profile: dict = {}
    with legacy_loop(options.get("legacy", False)), profiled_step(args.profile, device, profile, args.steps):
        pipeline.denoise(reference, waveform, frames, size, size, kps_images=kps[None].repeat(frames, axis=0),
                         num_inference_steps=args.steps, context_frames=args.context_frames,
                         context_overlap=args.context_overlap, generator=torch.manual_seed(0),
                         save_gpu_memory=options.get("save_gpu_memory", False), progress=progress)
    set_unet_compiled(pipeline, False)
    pipeline.to(device)
    steps = np.diff([clock["start"], *step_ends])
    # The first step computes the V-Kps features (and compiles); the profiled last step is slowed by the profiler.
    steady_steps = steps[1:-1] if args.profile and len(steps) > 2 else steps[1:]
    steady = float(np.median(steady_steps)) if len(steady_steps) else float(steps[0])
    step_tflop = flops["unet_window_step_flop"] * windows / 1e12
    achieved = step_tflop / steady
    speech_windows = len(context_windows(GOAL_SPEECH_FRAMES, args.context_frames, args.context_overlap))
    return {
        "windows": windows, "first_step_s": round(float(steps[0]), 3), "steady_step_s": round(steady, 3),
        # Each steady step: how much they differ shows the noise (a busy machine); with one, there is no telling.
        "steady_steps_s": [round(float(step), 3) for step in steady_steps],
        "window_step_s": round(steady / windows, 4),
        "output_fps_at_25_steps": round(frames / (25 * steady), 2),
        "denoise_31s_speech_at_25_steps_s": round(speech_windows * 25 * steady / windows, 1),
        "achieved_tflops": round(achieved, 4),
        "share_of_peak": round(achieved / peak, 4) if peak else None,
        "peak_memory_gb": peak_memory_gb(device),
        "peak_reserved_gb": peak_reserved_gb(device),
        **({"profile": profile} if profile else {}),
    }


@contextlib.contextmanager
def legacy_loop(enabled: bool):
    """The step loop as it was before window_denoiser.py, in place of WindowDenoiser.accumulate."""
    from vexpress_cli.engine.window_denoiser import WindowDenoiser, last_occurrences

    def accumulate(self, latents, noise_sum, timestep, window_done=lambda done: None):
        pipeline, kps = self.pipeline, self.kps
        audio_tokens = self.audio_tokens.cpu()  # the old loop kept them on the host
        for number, window in enumerate(self.windows):
            features = pipeline.kps_features(pipeline.kps_image_tensor(kps.kps_source, window, kps.width, kps.height))
            noise = pipeline.predict_window_noise(latents.read(window), timestep, audio_tokens[window], features,
                                                  self.reference, self.guidance_scale)
            frames, positions = last_occurrences(window)
            noise_sum.add(frames, noise[:, :, positions].float().cpu())
            window_done(number + 1)

    original = WindowDenoiser.accumulate
    if enabled:
        WindowDenoiser.accumulate = accumulate
    try:
        yield
    finally:
        WindowDenoiser.accumulate = original


@contextlib.contextmanager
def profiled_step(enabled: bool, device: torch.device, summary: dict, last_step: int):
    """Profile the last call of WindowDenoiser.accumulate (a steady step when there are 2 or more) into ``summary``."""
    from torch.profiler import ProfilerActivity, profile

    from vexpress_cli.engine.window_denoiser import WindowDenoiser

    if not enabled:
        yield
        return
    inner = WindowDenoiser.accumulate
    calls = {"count": 0}

    def accumulate(self, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] != last_step:
            return inner(self, *args, **kwargs)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        guider_runs = []
        encode = self.pipeline.kps_features
        self.pipeline.kps_features = lambda images: guider_runs.append(1) or encode(images)
        try:
            with profile(activities=activities) as profiler:
                inner(self, *args, **kwargs)
                synchronize(device)
        finally:
            del self.pipeline.kps_features  # back to the class's method
        summary.update(summarise(profiler, device), kps_guider_runs=len(guider_runs))

    WindowDenoiser.accumulate = accumulate
    try:
        yield
    finally:
        WindowDenoiser.accumulate = inner


def summarise(profiler, device: torch.device) -> dict:
    events = profiler.key_averages()
    by_name = {event.key: event for event in events}
    traffic = {name: by_name[name].count for name in TRAFFIC if name in by_name}
    time_of = (lambda e: e.self_device_time_total) if device.type == "cuda" else (lambda e: e.self_cpu_time_total)
    top = sorted(events, key=time_of, reverse=True)[:10]
    return {"host_device_traffic_counts": traffic,
            "top_ops_ms": [[event.key, round(time_of(event) / 1000, 2), event.count] for event in top]}


def cuda_context_gb(device: torch.device) -> float | None:
    """Device memory in use beyond torch's allocator (CUDA context, libraries): add it to reserved for nvidia-smi."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    return round((total - free - torch.cuda.memory_reserved(device)) / 2**30, 3)


def peak_reserved_gb(device: torch.device) -> float | None:
    """What torch's allocator held at most (nvidia-smi shows this plus the CUDA context)."""
    return round(torch.cuda.max_memory_reserved(device) / 2**30, 3) if device.type == "cuda" else None


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # process peak RSS (kB)


if __name__ == "__main__":
    main()
