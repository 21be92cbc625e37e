"""``vexpress demo``: a whole generation on a built-in tiny random model, no download needed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.markup import escape
from rich.console import Console

console = Console(stderr=True)

DEFAULT_OUTPUT = Path("vexpress-demo.mp4")
EPILOG = """\
[bold]Example[/]

  A 2-second video of noise from a random model, as vexpress-demo.mp4 (then
  vexpress-demo-2.mp4, -3, ...):

    [cyan]vexpress demo[/]

Then get the real weights with `vexpress models download` and use `vexpress generate`.
"""


def _multiple_of_8(size: int) -> int:
    """The video's sides are multiples of 8 (the VAE's scale): said here, in the words of --size."""
    if size % 8:
        lower = size - size % 8
        raise typer.BadParameter(f"{size} is not a multiple of 8; use {lower} or {lower + 8}.")
    return size


def demo_command(
    ctx: typer.Context,
    output: Path = typer.Option(None, "--output", "-o", show_default=False,
                                help="Where to write the video. Default: vexpress-demo.mp4, or the next free "
                                "vexpress-demo-N.mp4 when it exists."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.1, max=600, help="Length of the synthetic speech."),
    size: int = typer.Option(128, "--size", min=64, max=1024, callback=_multiple_of_8,
                             help="Width and height of the video (multiple of 8)."),
    steps: int = typer.Option(2, "--num-inference-steps", min=1, max=100, help="Denoising steps."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Where to keep the tiny model (default: user cache)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Generate a short video with a tiny random-weight model and synthetic inputs."""
    from vexpress_cli.cli.generate import run_generate
    from vexpress_cli.tiny.inputs import write_demo_inputs
    from vexpress_cli.tiny.model import ensure_tiny_model

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


def next_free_name(path: Path) -> Path:
    """``path`` itself, else ``stem-2``, ``stem-3``, ... : the demo can run again and again."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=EPILOG)(demo_command)
