"""``vexpress demo``: a whole generation on a built-in tiny random model, no download needed."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import typer
from rich.markup import escape
from rich.console import Console

from vexpress_cli.errors import InputError, shown_number
from vexpress_cli.outputs import next_free_name

console = Console(stderr=True)

DEFAULT_OUTPUT = Path("vexpress-demo.mp4")
EPILOG = """\
[bold]Example[/]

  A 2-second video of noise from a random model, as vexpress-demo.mp4 (then
  vexpress-demo-2.mp4, -3, ...):

    [cyan]vexpress demo[/]

Then get the real weights with `vexpress models download` and use `vexpress generate`.
"""


# The demo's limits: (low, high, help) of each number flag; its own, smaller than generate's.
LIMITS = {
    "--seconds": (0.1, 600, "The length of the synthetic speech, in seconds."),
    "--size": (64, 1024, "The width and height of the video, in pixels."),
    "--num-inference-steps": (1, 100, "The denoising steps."),
}


def check_demo_numbers(seconds: float, size: int, steps: int) -> None:
    """InputError, in the words of generate's setting checks, for a number out of the demo's range."""
    for flag, value in (("--seconds", seconds), ("--size", size), ("--num-inference-steps", steps)):
        low, high, why = LIMITS[flag]
        if not math.isfinite(value):
            raise InputError(f"{flag} is {value}, not a finite number.", why, f"Use a number from {low} to {high}.")
        if not low <= value <= high:
            raise InputError(f"{flag} is {shown_number(value)}; it must be from {low} to {high}.", why,
                             f"Use a value from {low} to {high}.")
    if size % 8:  # the video's sides are multiples of 8 (the VAE's scale): said here, in the words of --size
        lower = size - size % 8
        raise InputError(f"--size is {size}; it must be a multiple of 8.",
                         "The VAE downsamples images by 8 in each direction.", f"Use {lower} or {lower + 8}.")


def demo_command(
    ctx: typer.Context,
    output: Path = typer.Option(None, "--output", "-o", show_default=False,
                                help="Where to write the video. Default: vexpress-demo.mp4, or the next free "
                                "vexpress-demo-N.mp4 when it exists."),
    seconds: float = typer.Option(2.0, "--seconds", help="Length of the synthetic speech (0.1 to 600)."),
    size: int = typer.Option(128, "--size", help="Width and height of the video (multiple of 8, 64 to 1024)."),
    steps: int = typer.Option(2, "--num-inference-steps", help="Denoising steps (1 to 100)."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Where to keep the tiny model (default: user cache)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Generate a short video with a tiny random-weight model and synthetic inputs."""
    from vexpress_cli.cli.generate import run_generate
    from vexpress_cli.tiny.inputs import write_demo_inputs
    from vexpress_cli.tiny.model import ensure_tiny_model

    check_demo_numbers(seconds, size, steps)
    output = output or next_free_name(DEFAULT_OUTPUT)
    with console.status("Preparing the tiny model"):
        model = ensure_tiny_model(model_dir)
    with tempfile.TemporaryDirectory(prefix="vexpress-demo-") as folder:
        inputs = write_demo_inputs(Path(folder), seconds)
        run_generate(inputs.reference_image, inputs.audio, output,
                     {"width": size, "height": size, "num_inference_steps": steps},
                     reference_kps=inputs.reference_kps_text(size), model_dir=model, overwrite=overwrite,
                     given_by=_demo_defaults(ctx))
    console.print("The tiny model is random, so the video is noise: this proves the install works end to end.")
    console.print(f"To try your own photo and speech before the real weights, add [cyan]--model-dir {escape(str(model))}"
                  "[/] to `vexpress generate`; `vexpress models download` fetches the real ones.", highlight=False)


def _demo_defaults(ctx: typer.Context) -> dict[str, str]:
    """The settings the demo chose (no flag gave them), named so in the plan's line: "demo", not "flag"."""
    settings = {"size": ("width", "height"), "steps": ("num_inference_steps",)}
    return {name: "demo" for option, names in settings.items() for name in names
            if ctx.get_parameter_source(option).name == "DEFAULT"}  # typer's click or click's own enum


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=EPILOG)(demo_command)
