"""Speed and memory of the full-size V-Express networks, with random weights, on one device.

    python benchmarks/full_size_benchmark.py --device cuda --dtype fp16 --seconds 4 --steps 2

The networks have the released architecture (SD 1.5 UNet config, 2.2 B parameters) but random
weights, so this needs no download: the numbers are those of the real model. Reports, as JSON,
the model build time, the time of one UNet window (24 frames, CFG batch of 2) per denoising step,
the decode + median-filter throughput, and the peak accelerator memory with and without
``save_gpu_memory``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32"))
    parser.add_argument("--seconds", type=float, default=4.0, help="Audio length (30 fps).")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--unet-config", type=Path, default=REPO / "tests" / "fixtures" / "golden" / "sd15_unet_config.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]

    started = time.perf_counter()
    pipeline = build_random_full_size_pipeline(json.loads(args.unet_config.read_text()), device, dtype)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
              "dtype": args.dtype, "size": args.size, "steps": args.steps,
              "build_s": round(time.perf_counter() - started, 1),
              "parameters_M": round(sum(p.numel() for m in pipeline.networks().values() for p in m.parameters()) / 1e6)}
    for save_gpu_memory in (False, True):
        result[f"save_gpu_memory={save_gpu_memory}"] = run(pipeline, args, device, save_gpu_memory)
        pipeline.to(device)
    print(json.dumps(result, indent=2))


def build_random_full_size_pipeline(unet_config: dict, device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from vexpress_cli.engine.architecture import Architecture
    from vexpress_cli.engine.pipeline import VExpressPipeline
    from vexpress_cli.engine.scheduling import SCHEDULER_CONFIG

    architecture = Architecture.from_configs(unet_config)
    with torch.device(device):
        networks = {name: architecture.build(name) for name in
                    ("reference_net", "denoising_unet", "v_kps_guider", "audio_projection")}
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4)
        audio_encoder = Wav2Vec2Model(Wav2Vec2Config())
    pipeline = VExpressPipeline(vae=vae, audio_encoder=audio_encoder, feature_extractor=Wav2Vec2FeatureExtractor(),
                                scheduler=DDIMScheduler(**SCHEDULER_CONFIG), **networks)
    return pipeline.to(device, dtype)


def run(pipeline, args, device, save_gpu_memory: bool) -> dict:
    import numpy as np
    import PIL.Image

    from vexpress_cli.engine.context_windows import context_windows
    from vexpress_cli.engine.pipeline_output import to_uint8
    from vexpress_cli.engine.median_filter import median_filter_stream

    frames = int(round(args.seconds * 30))
    size = args.size
    reference = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    waveform = torch.randn(int(args.seconds * 16000)) * 0.1
    kps = np.array([[0.39, 0.43], [0.61, 0.43], [0.5, 0.57]], dtype=np.float32) * size
    track = kps[None].repeat(frames, axis=0)
    windows = len(context_windows(frames, 24, 4))

    reset_peak(device)
    window_times: list[float] = []
    last = [time.perf_counter()]

    def progress(stage, completed, total):
        if stage == "denoise":
            synchronize(device)
            now = time.perf_counter()
            window_times.append(now - last[0])
            last[0] = now
        elif stage == "audio" and completed == total:
            synchronize(device)
            last[0] = time.perf_counter()

    started = time.perf_counter()
    latents = pipeline.denoise(reference, waveform, frames, size, size, kps_images=track,
                               num_inference_steps=args.steps, generator=torch.manual_seed(0),
                               save_gpu_memory=save_gpu_memory, progress=progress)
    synchronize(device)
    denoise_s = time.perf_counter() - started
    denoise_peak = peak_gb(device)

    started = time.perf_counter()
    decoded = 0
    for chunk in median_filter_stream(to_uint8(c) for c in pipeline.decode_latents(latents, 8)):
        decoded += chunk.shape[1]
    synchronize(device)
    decode_s = time.perf_counter() - started
    steady = sorted(window_times[1:]) or window_times
    return {
        "frames": frames, "windows": windows,
        "denoise_s": round(denoise_s, 2),
        "median_window_s": round(steady[len(steady) // 2], 3),
        "decode_filter_fps": round(decoded / decode_s, 1),
        "peak_memory_denoise_gb": denoise_peak,
        "peak_memory_total_gb": peak_gb(device),
    }


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


if __name__ == "__main__":
    main()
