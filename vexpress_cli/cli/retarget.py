"""``vexpress retarget``: fit a driving keypoint track to a reference face and save it, with an optional preview."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from vexpress_cli.errors import InputError
from vexpress_cli.kps import (
    DEFAULT_FIT_MODE,
    FIT_MODES,
    KpsTrack,
    fit_track,
    iter_kps_images,
    load_kps,
    retarget_track,
    save_kps,
)
from vexpress_cli.file_types import PREVIEW_SUFFIXES, KPS_SUFFIXES as SUPPORTED_SUFFIXES
from vexpress_cli.kps.io import reference_kps_from_text
from vexpress_cli.kps.retargeting import missing_driving_kps_error, uses_reference_kps
from vexpress_cli.outputs import prepare_output_path
from vexpress_cli.plugins import get_retarget_strategy

DEFAULT_SIZE = 512
DEFAULT_PREVIEW_FPS = 25.0
# How bright the reference photo stays under the keypoints in a preview.
PREVIEW_DIMMING = 0.4

EPILOG = """\
[bold]Examples[/]

  Move a new face like the person in a driving clip (track from `vexpress extract`):

    [cyan]vexpress retarget --reference-image me.jpg --kps talk.safetensors \\
        --strategy offset_retarget --output me_kps.safetensors[/]

  Same, and check it by eye (left: retargeted over the photo, right: driving):

    [cyan]vexpress retarget --reference-image me.jpg --kps talk.safetensors \\
        --strategy naive_retarget --output me_kps.pth --preview check.mp4[/]

  A still head for 250 frames, reference points typed in (left eye; right eye; nose):

    [cyan]vexpress retarget --reference-kps "185.5,218.6;278.9,215.4;224.6,271.4" \\
        --strategy fix_face --num-frames 250 --output still.safetensors[/]

  Lengthen a short driving track to 400 frames by playing it back and forth:

    [cyan]vexpress retarget --reference-kps ref.safetensors --kps talk.pth \\
        --num-frames 400 --kps-fit pingpong --output long.safetensors[/]

Keypoints are pixels in the WIDTH x HEIGHT output frame; a driving track that
records another frame size is rescaled to it. Given both --reference-image and
--reference-kps, the points are used as typed and the photo only backs the
preview. A .pth output can also be read by the original V-Express inference.py.
"""


FitMode = Enum("FitMode", {mode: mode for mode in FIT_MODES}, type=str)


@dataclass
class Reference:
    kps: np.ndarray  # [3, 2] in output-frame pixels
    image: np.ndarray | None  # RGB, output-frame size, for the preview


def retarget_command(
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write the track: .safetensors (keeps fps and size) or .pth.",
        dir_okay=False,
    ),
    reference_image: Path | None = typer.Option(
        None, "--reference-image", help="Photo of the face to animate; its keypoints are detected.", dir_okay=False
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
        dir_okay=False,
    ),
    strategy: str = typer.Option(
        "no_retarget", "--strategy", "-s", help="Retarget strategy; see `vexpress strategies`."
    ),
    num_frames: int | None = typer.Option(
        None, "--num-frames", "-n", min=1, help="Frames to produce. Default: the driving track's length."
    ),
    kps_fit: FitMode = typer.Option(
        DEFAULT_FIT_MODE,
        "--kps-fit",
        help="How to fit a shorter driving track to --num-frames (a longer one is always cut).",
        case_sensitive=False,
    ),
    width: int = typer.Option(DEFAULT_SIZE, "--width", min=8, help="Output frame width in pixels."),
    height: int = typer.Option(DEFAULT_SIZE, "--height", min=8, help="Output frame height in pixels."),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=0.001,
        help="Frame rate recorded in the output and used by --preview. Default: the driving track's, else 25.",
    ),
    preview: Path | None = typer.Option(
        None,
        "--preview",
        help="Also write a video (.mp4) of the retargeted keypoints over the photo, next to the driving ones.",
        dir_okay=False,
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="Face detector for --reference-image: auto, insightface or dlib."
    ),
    model_root: Path | None = typer.Option(
        None,
        "--model-root",
        help="insightface model folder (or the V-Express model folder holding insightface_models/).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Turn a driving keypoint track into keypoints for a reference face.

    Fits the driving track to the number of frames (--kps-fit), then applies a
    retarget strategy so the head motion suits the reference face, and writes
    the result for `vexpress generate --kps`.
    """
    console = Console(stderr=True)
    kps_fit = kps_fit.value
    _check_outputs(output, preview, overwrite)
    chosen = get_retarget_strategy(strategy)
    if kps is None and getattr(chosen, "requires_driving_kps", True):
        raise missing_driving_kps_error(chosen.name)
    driving = _load_driving(kps, width, height, console) if kps is not None else None
    if num_frames is None:
        if driving is None:
            raise InputError(
                "How many frames? Without --kps there is no track length to copy.",
                why=f"The strategy '{strategy}' builds the track from the reference alone.",
                fix="Pass --num-frames N (e.g. the audio's duration times the fps).",
            )
        num_frames = driving.num_frames
    if reference_image is None and reference_kps is None and not uses_reference_kps(chosen) and driving is not None:
        # The strategy keeps the driving points as they are: no reference face is needed.
        reference = Reference(kps=driving.points[0], image=None)
    else:
        reference = _load_reference(reference_image, reference_kps, width, height, backend, model_root, console)

    points = retarget_track(reference.kps, None if driving is None else driving.points, num_frames, chosen, kps_fit)
    fps = fps or (driving.fps if driving is not None and driving.fps else None)
    result = KpsTrack(points, fps=fps, width=width, height=height, backend=driving.backend if driving else None)

    if preview is not None:
        driving_points = None if driving is None else fit_track(driving.points, num_frames, kps_fit)
        _write_preview(
            preview,
            result.points,
            driving_points,
            reference.image,
            fps or DEFAULT_PREVIEW_FPS,
            width,
            height,
            overwrite,
            console,
        )
    save_kps(output, result)
    source = f"{driving.num_frames}-frame driving track, fit {kps_fit}" if driving is not None else "reference only"
    console.print(f"Wrote {num_frames} frames ({chosen.name}, {source}) to [bold]{output}[/]", highlight=False)


def _check_outputs(output: Path, preview: Path | None, overwrite: bool) -> None:
    if output.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"Cannot write {output}: unknown kps file type '{output.suffix or '(none)'}'.",
            why="The suffix picks the format.",
            fix="Name it *.safetensors (keeps fps and frame size) or *.pth (readable by the original V-Express).",
        )
    if preview is not None and preview.suffix.lower() not in PREVIEW_SUFFIXES:
        raise InputError(
            f"Cannot write the preview {preview}: unknown video type '{preview.suffix or '(none)'}'.",
            why=f"Previews are {', '.join(PREVIEW_SUFFIXES)} videos.",
            fix="Name it e.g. preview.mp4.",
        )
    for path in (output, preview):
        if path is not None:
            prepare_output_path(path, overwrite)


def _load_driving(path: Path, width: int, height: int, console: Console) -> KpsTrack:
    track = load_kps(path)
    rescaled = track.rescaled_to(width, height)
    if rescaled is not track:
        console.print(
            f"Rescaling the driving track from {track.width}x{track.height} to {width}x{height}.", highlight=False
        )
    return rescaled


def _load_reference(image_path, kps_text, width, height, backend, model_root, console) -> Reference:
    if image_path is None and kps_text is None:
        raise InputError(
            "No reference face given.",
            why="Retargeting fits the motion to the face you will animate.",
            fix='Pass --reference-image PHOTO, or --reference-kps FILE or "x,y;x,y;x,y".',
        )
    from vexpress_cli.face import load_image_rgb, resize_like_original

    # Decoded once, at the output size: the preview's background and the detector's input.
    image = resize_like_original(load_image_rgb(image_path), width, height) if image_path is not None else None
    if kps_text is not None:
        points = reference_kps_from_text(kps_text, width, height)
    else:
        from vexpress_cli.face import detect_reference_kps

        points = detect_reference_kps(
            image, width, height, backend=backend, model_root=model_root, label=str(image_path)
        )
        console.print(f"Reference keypoints: {_format_points(points)}", highlight=False)
    return Reference(kps=np.asarray(points, dtype=np.float32), image=image)


def _write_preview(path, retargeted, driving, image, fps, width, height, overwrite, console) -> None:
    from rich.progress import track

    from vexpress_cli.media.video_writer import VideoWriter

    background = np.zeros((height, width, 3), np.uint8) if image is None else (image * PREVIEW_DIMMING).astype(np.uint8)
    panels = 1 if driving is None else 2
    left = iter_kps_images(height, width, retargeted)
    right = iter_kps_images(height, width, driving) if driving is not None else None
    with VideoWriter(path, fps, width * panels, height, overwrite=overwrite) as writer:
        for _ in track(range(len(retargeted)), description="Writing preview", console=console, transient=True):
            frame = _overlay(background, next(left))
            if right is not None:
                frame = np.concatenate([frame, next(right)], axis=1)
            writer.write(frame)
    console.print(f"Preview: [bold]{path}[/]", highlight=False)


def _overlay(background: np.ndarray, kps_image: np.ndarray) -> np.ndarray:
    drawn = kps_image.any(axis=2, keepdims=True)
    return np.where(drawn, kps_image, background)


def _format_points(points: np.ndarray) -> str:
    return ";".join(f"{x:.1f},{y:.1f}" for x, y in np.asarray(points))


def register(app: typer.Typer) -> None:
    app.command("retarget", epilog=EPILOG)(retarget_command)
