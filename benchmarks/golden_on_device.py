"""How far the engine on an accelerator is from the original's CPU fp32 numbers (tests/fixtures/golden/tiny).

    python benchmarks/golden_on_device.py --device cuda

Runs the whole golden call on the device in fp32 (TF32 off and on) and fp16/bf16, and prints the
max abs error of the latents after each step, the video and the median-filtered video, as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--golden", type=Path, default=REPO / "tests" / "fixtures" / "golden" / "tiny")
    args = parser.parse_args()
    results = {}
    for label, dtype, tf32 in (("fp32", torch.float32, False), ("fp32+tf32", torch.float32, True),
                               ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        results[label] = errors(args.golden, torch.device(args.device), dtype)
    print(json.dumps(results, indent=2))


def errors(golden_dir: Path, device: torch.device, dtype: torch.dtype) -> dict:
    import PIL.Image
    from safetensors.torch import load_file

    from vexpress_cli import VExpressPipeline
    from vexpress_cli.engine.median_filter import median_filter_stream

    golden = load_file(str(golden_dir / "golden.safetensors"))
    params = json.loads((golden_dir / "pipeline_params.json").read_text())
    pipeline = VExpressPipeline.from_pretrained(golden_dir / "model", device=device, dtype=dtype)
    reference = PIL.Image.open(golden_dir / "ref.png").convert("RGB")
    steps = []
    step = pipeline.scheduler.step

    def recording_step(*args, **kwargs):
        output = step(*args, **kwargs)
        steps.append(output.prev_sample.clone())
        return output

    pipeline.scheduler.step = recording_step
    video = pipeline(reference_image=reference, audio_waveform=golden["audio_waveform"],
                     kps_images=golden["kps_sequence"].numpy(), generator=torch.manual_seed(4), **params).frames
    filtered = torch.cat(list(median_filter_stream(video[0].split(4, dim=1))), dim=1)
    report = {f"latents_after_step_{i}": max_error(s, golden[f"latents_after_step_{i}"]) for i, s in enumerate(steps)}
    report["video"] = max_error(video, golden["video"])
    report["video_median"] = max_error(filtered, golden["video_median"])
    return report


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return round((actual.float().cpu() - expected.float()).abs().max().item(), 6)


if __name__ == "__main__":
    main()
