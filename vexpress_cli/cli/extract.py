"""``vexpress extract``: the keypoint track (and optionally the audio) of a driving video."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vexpress_cli.cli.messages import print_note, print_warning, shown
from vexpress_cli.cli.options import (
    flag_of, json_option, one_of, quiet_option, setting_option, with_setting_aliases,
)
from vexpress_cli.cli.progress import stage_progress
from vexpress_cli.errors import InputError
from vexpress_cli.kps.limits import MAX_FRAME_SIDE, MIN_FRAME_SIDE
from vexpress_cli.settings.schema import DEFAULTS
from vexpress_cli.wording import frame_numbers, plural

# A kps file's frame sides (not generate's width and height, which the model limits).
FRAME_SIDES = f"{MIN_FRAME_SIDE} to {MAX_FRAME_SIDE}"

EPILOG = """\
[bold]Examples[/]

  Keypoints of a talking-head clip, next to it as talk_kps.pth:

    [cyan]vexpress extract talk.mp4[/]

  Keypoints with metadata (fps, frame size, backend) and the speech as MP3:

    [cyan]vexpress extract talk.mp4 --kps-out talk.safetensors --audio-out talk.mp3[/]

  A wide shot: follow the face and cut one steady face-centred square from
  every frame, framed like an auto-cropped reference photo (.safetensors
  records the crop):

    [cyan]vexpress extract wide.mp4 --crop auto -o wide.safetensors[/]

  Offline (no insightface model); stop at a frame without exactly one face:

    [cyan]vexpress extract talk.mp4 --backend dlib --strict[/]

  The original script's flags work too:

    [cyan]vexpress extract --video_path talk.mp4 --kps_sequence_save_path kps.pth \\
        --audio_save_path aud.mp3[/]

Frames are resized to WIDTH x HEIGHT (aspect not kept, like V-Express) and the \
points are pixels of that size; use the size you will generate at. With \
[bold]--crop auto[/] the face is tracked first and one box (from the median eye \
position and eye distance over the video, so the head's motion is kept) is cut \
from every frame before detection; the points are then in that crop. Backends: \
[bold]insightface[/] (SCRFD det_10g.onnx of buffalo_l, the detector V-Express used) or \
[bold]dlib[/] (no download; 2-4 px from insightface's points). [bold]auto[/] takes insightface \
when MODEL_ROOT/models/buffalo_l/det_10g.onnx exists. Frames without a face are \
interpolated from their neighbours and listed; with several faces the one \
nearest the previous frame's face is followed (the largest at the start). \
WIDTH, HEIGHT and the backend default to your config's \\[generate] values when \
it sets them.
"""


def extract_command(
    video: Path | None = typer.Argument(None, help="The driving video (any format ffmpeg reads).", show_default=False),
    kps_out: Path | None = typer.Option(
        None, "--kps-out", "-o", help="Where to write the keypoints: .pth (tensor, readable by the original V-Express) "
        "or .safetensors (with fps and frame size). Default: VIDEO's folder, STEM_kps.pth.", show_default=False,
    ),
    audio_out: Path | None = typer.Option(
        None, "--audio-out", help="Also write the video's audio track here (.mp3, .wav, .m4a, ...). Default: no audio.",
        show_default=False,
    ),
    width: int | None = typer.Option(None, "--width", show_default=False, help="Frame width the points refer to "
                                     f"({FRAME_SIDES}). Default: {DEFAULTS['width']}."),
    height: int | None = typer.Option(None, "--height", show_default=False, help="Frame height the points refer to "
                                      f"({FRAME_SIDES}). Default: {DEFAULTS['height']}."),
    face_backend: str | None = setting_option("face_backend", "--backend"),
    model_root: Path | None = typer.Option(
        None, "--model-root", help="insightface model root holding models/buffalo_l/det_10g.onnx. "
        "Default: the model folder vexpress finds (vexpress models path).", show_default=False,
    ),
    crop: str = typer.Option(
        "none", "--crop", metavar="auto|none|X,Y,W,H", help="none: the whole frame; auto: one steady box of "
        "WIDTH x HEIGHT's shape around the face, tracked through the video; X,Y,W,H: that box of the video's pixels.",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on any frame without exactly one face (like the original)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
    video_path_flag: Path | None = typer.Option(None, "--video_path", hidden=True),
    kps_flag: Path | None = typer.Option(None, "--kps_sequence_save_path", hidden=True),
    audio_flag: Path | None = typer.Option(None, "--audio_save_path", hidden=True),
    insightface_flag: Path | None = typer.Option(None, "--insightface_model_path", hidden=True),
    # Accepted for the original's command lines; onnxruntime uses CUDA whenever it has it.
    _device: str | None = typer.Option(None, "--device", hidden=True),
    _gpu_id: int | None = typer.Option(None, "--gpu_id", hidden=True),
) -> None:
    """Extract the face keypoints (left eye, right eye, nose) of every frame of a video, and optionally its audio."""
    video = one_of(video, video_path_flag, "VIDEO", "--video_path")
    if video is None:
        raise InputError(
            "No video given.",
            why="vexpress extract needs the driving video to read.",
            fix="Run `vexpress extract VIDEO` (see `vexpress extract --help`).",
        )
    from vexpress_cli.cli.json_output import stdout_kept_for_json
    from vexpress_cli.jobs.extract import extract

    progress_shown = stage_progress(Console(stderr=True), enabled=not quiet and not as_json)
    with progress_shown as progress, stdout_kept_for_json(as_json):
        result = extract(video, one_of(kps_out, kps_flag, "--kps-out", "--kps_sequence_save_path"),
                         one_of(audio_out, audio_flag, "--audio-out", "--audio_save_path"), width=width,
                         height=height, face_backend=face_backend,
                         model_root=one_of(model_root, insightface_flag, "--model-root", "--insightface_model_path"),
                         strict=strict, overwrite=overwrite, progress=progress, crop=crop)
    if as_json:
        print(json.dumps(result.to_dict(flag_of), allow_nan=False))
    if quiet or as_json:
        return
    Console().print(summary_table(result))
    for warning in result.warnings:
        print_warning(Console(stderr=True), warning)
    for note in result.notes:
        print_note(Console(stderr=True), note)


def summary_table(result) -> Table:
    report, kps_out, audio_out = result.report, result.kps_out, result.audio_out
    table = Table(title=f"Extracted {shown(report.video.name)}", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    fps = f"{float(report.fps):.3f}".rstrip("0").rstrip(".") if report.fps else "unknown"
    table.add_row("frames", f"{plural(report.frames, 'frame')} at {fps} fps, points in {report.width}x{report.height} pixels")
    if report.crop is not None:
        width, height = report.video_size
        table.add_row("crop", f"{report.crop} of the {width}x{height} video, cut from every frame")
    else:
        table.add_row("crop", "none: each whole frame (--crop auto for a wide shot)")
    table.add_row("missing faces", _frame_list(report.missing_frames, "interpolated"))
    table.add_row("several faces", _frame_list(report.multi_face_frames, "followed one face"))
    table.add_row("backend", shown(f"{report.backend} ({result.backend_description}; {result.backend_reason})"))
    milliseconds = 1000 * report.seconds / max(report.frames, 1)
    speed = f"{report.frames_per_second:.1f} frames/s, {milliseconds:.0f} ms/frame"
    table.add_row("time", f"{report.seconds:.1f} s ({speed})")
    table.add_row("keypoints", shown(kps_out))
    table.add_row("audio", shown(audio_out) if audio_out else "not extracted (add --audio-out PATH)")
    return table


def _frame_list(frames: list[int], action: str) -> str:
    if not frames:
        return "none"
    return f"{plural(len(frames), 'frame')} ({action}): {frame_numbers(frames)}"


def register(app: typer.Typer) -> None:
    app.command("extract", epilog=EPILOG, rich_help_panel="Keypoints")(with_setting_aliases(extract_command))
