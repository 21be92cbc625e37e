"""How close each sampler gets to DDIM with 25 steps, by step count, on the tiny model's frames.

    python benchmarks/scheduler_sweep.py --steps 4 6 8 10 12 15 20 25 --seeds 1 2 3

For every sampler of ``--scheduler`` (ddim, dpm++, euler, unipc) and step count, generates the same
video (the golden fixture's portrait, speech and keypoints; 12 frames at 64x64) and reports the mean
absolute difference of its frames (in [0, 1]) to the DDIM-25 frames of the same seed, averaged over
the seeds. Prints JSON and a Markdown table (docs/presets.md holds the measured one).

The tiny model has random weights: this measures how fast each sampler converges to DDIM-25's
numbers, the quality judgment needs the real weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "fixtures" / "golden" / "tiny"
sys.path.insert(0, str(REPO))

REFERENCE_STEPS = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 6, 8, 10, 12, 15, 20, 25])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--schedulers", nargs="+", default=["ddim", "dpm++", "euler", "unipc"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, inputs = load()
    reference = {seed: generate(pipeline, inputs, "ddim", REFERENCE_STEPS, seed) for seed in args.seeds}
    table = {}
    for name in args.schedulers:
        table[name] = {}
        for steps in args.steps:
            differences = [(generate(pipeline, inputs, name, steps, seed) - reference[seed]).abs().mean().item()
                           for seed in args.seeds]
            table[name][steps] = round(sum(differences) / len(differences), 5)
            print(f"{name} {steps}: {table[name][steps]}", file=sys.stderr)
    print(json.dumps({"reference": f"ddim {REFERENCE_STEPS}", "seeds": args.seeds, "mean_abs_difference": table},
                     indent=2))
    print(markdown(table, args.steps))


def load():
    import PIL.Image
    from safetensors.torch import load_file

    from vexpress_cli import VExpressPipeline

    golden = load_file(str(GOLDEN / "golden.safetensors"))
    params = json.loads((GOLDEN / "pipeline_params.json").read_text())
    pipeline = VExpressPipeline.from_pretrained(GOLDEN / "model")
    pipeline.set_progress_bar_config(disable=True)
    inputs = dict(reference_image=PIL.Image.open(GOLDEN / "ref.png").convert("RGB"),
                  audio_waveform=golden["audio_waveform"], kps_images=golden["kps_sequence"].numpy(),
                  **{key: value for key, value in params.items() if key != "num_inference_steps"})
    return pipeline, inputs


def generate(pipeline, inputs: dict, scheduler: str, steps: int, seed: int) -> torch.Tensor:
    pipeline.use_scheduler(scheduler)
    return pipeline(**inputs, num_inference_steps=steps, generator=torch.manual_seed(seed)).frames


def markdown(table: dict, steps: list[int]) -> str:
    rows = ["| steps | " + " | ".join(table) + " |", "|---|" + "---|" * len(table)]
    for count in steps:
        rows.append(f"| {count} | " + " | ".join(f"{table[name][count]:.5f}" for name in table) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
