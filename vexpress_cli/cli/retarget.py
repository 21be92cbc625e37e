"""``vexpress retarget``: fit a driving keypoint track to a reference face and save it, with an optional preview."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from vexpress_cli.cli.messages import print_note, shown
from vexpress_cli.cli.options import (
    flag_of, json_option, quiet_option, setting_option, with_setting_aliases,
)
from vexpress_cli.cli.progress import stage_progress
from vexpress_cli.errors import InputError
from vexpress_cli.kps.io import kps_points_text
from vexpress_cli.wording import plural

EPILOG = """\
[bold]Examples[/]

  Move a new face like the person in a driving clip (its `vexpress extract`):

    [cyan]vexpress retarget --reference-image me.jpg --kps talk.safetensors \\
        --strategy offset_retarget --output me_kps.safetensors[/]

  Same, and check it by eye (left: retargeted over the photo, right: driving):

    [cyan]vexpress retarget --reference-image me.jpg --kps talk.safetensors \\
        --strategy naive_retarget --output me_kps.pth --preview check.mp4[/]

  A still head for 250 frames, points typed in (left eye; right eye; nose):

    [cyan]vexpress retarget --reference-kps "185.5,218.6;278.9,215.4;224.6,271.4" \\
        --strategy fix_face --num-frames 250 --output still.safetensors[/]

  Lengthen a short driving track to 400 frames by playing it back and forth:

    [cyan]vexpress retarget --reference-kps ref.safetensors --kps talk.pth \\
        --num-frames 400 --kps-fit pingpong --output long.safetensors[/]

Keypoints are pixels in the WIDTH x HEIGHT output frame; a driving track that
records another frame size is rescaled to it. Given both --reference-image and
--reference-kps, the points are used as typed and the photo only backs the
preview. A .pth output can also be read by the original V-Express
inference.py. The settings shared with generate (strategy, fit, size, backend,
crop, face index) default to your config's \\[generate] values when it sets them.
"""


def retarget_command(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the track: .safetensors (keeps fps and size) or .pth. Required.",
        show_default=False,
    ),
    reference_image: Path | None = typer.Option(
        None, "--reference-image", help="Photo of the face to animate; its keypoints are detected."
    ),
    reference_kps: str | None = typer.Option(
        None,
        "--reference-kps",
        help='Reference keypoints instead of detection: a kps file (its first frame) '
        'or "x,y;x,y;x,y" (left eye; right eye; nose).',
    ),
    kps: Path | None = typer.Option(
        None,
        "--kps",
        help="Driving kps track (.safetensors/.pth from `vexpress extract`, or an original V-Express kps.pth).",
    ),
    strategy: str | None = setting_option("retarget_strategy"),
    num_frames: int | None = typer.Option(
        None, "--num-frames", "-n", help="Frames to produce. Default: the driving track's duration at --fps "
        "(its length when the rates match)."
    ),
    kps_fit: str | None = setting_option("kps_fit"),
    width: int | None = setting_option("width", meaning="Output frame width in pixels (as generate's)."),
    height: int | None = setting_option("height", meaning="Output frame height in pixels (as generate's)."),
    fps: float | None = setting_option(
        "fps", meaning="Frame rate recorded in the output and used by --preview.",
        default_words="the driving track's; none recorded when it has none (the preview then plays at 25)"),
    preview: Path | None = typer.Option(
        None,
        "--preview",
        help="Also write a video (.mp4) of the retargeted keypoints over the photo, next to the driving ones.",
    ),
    face_backend: str | None = setting_option("face_backend", "--backend"),
    crop: str | None = setting_option("crop"),
    face_index: int | None = setting_option("face_index"),
    model_root: Path | None = typer.Option(
        None,
        "--model-root",
        help="insightface model folder (or the V-Express model folder holding insightface_models/).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Turn a driving keypoint track into keypoints for a reference face.

    Fits the driving track to the number of frames (--kps-fit), then applies a
    retarget strategy so the head motion suits the reference face, and writes
    the result for `vexpress generate --kps`.
    """
    if output is None:
        raise InputError("No output given.", why="vexpress retarget writes the fitted keypoint track to a file.",
                         fix="Pass --output PATH: .safetensors (keeps fps and frame size) or .pth (see `vexpress "
                         "retarget --help`).")
    from vexpress_cli.jobs.retarget import retarget

    console = Console(stderr=True)
    with stage_progress(console, enabled=not quiet and not as_json) as progress:
        result = retarget(reference_image, kps, strategy, output, preview=preview, reference_kps=reference_kps,
                          num_frames=num_frames, kps_fit=kps_fit, width=width, height=height, fps=fps,
                          face_backend=face_backend, model_root=model_root, overwrite=overwrite, progress=progress,
                          crop=crop, face_index=face_index)
    if as_json:
        print(json.dumps(result.to_dict(flag_of), allow_nan=False))
    if quiet or as_json:
        return
    for note in result.notes:
        print_note(console, note)
    if result.reference_detected:
        console.print(f"Reference keypoints: {kps_points_text(result.reference_kps, '.1f')}", highlight=False)
    if result.preview is not None:
        console.print(f"Preview: [bold]{shown(result.preview)}[/]", highlight=False)
    console.print(f"Wrote {plural(result.num_frames, 'frame')} ({shown(result.strategy)}, {shown(result.source)}) to "
                  f"[bold]{shown(result.output)}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("retarget", epilog=EPILOG, rich_help_panel="Keypoints")(with_setting_aliases(retarget_command))
