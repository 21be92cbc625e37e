"""``vexpress extract``: the keypoint track (and optionally the audio) of a driving video."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from vexpress_cli.errors import InputError
from vexpress_cli.face import BACKEND_NAMES

EPILOG = """\
[bold]Examples[/]

  Keypoints of a talking-head clip, next to it as talk_kps.pth:

    [cyan]vexpress extract talk.mp4[/]

  Keypoints with metadata (fps, frame size, backend) and the speech as MP3:

    [cyan]vexpress extract talk.mp4 --kps-out talk.safetensors --audio-out talk.mp3[/]

  Offline, without the insightface model, and stop at any frame without exactly one face:

    [cyan]vexpress extract talk.mp4 --backend dlib --strict[/]

  The original script's flags work too:

    [cyan]vexpress extract --video_path talk.mp4 --kps_sequence_save_path kps.pth --audio_save_path aud.mp3[/]

Frames are resized to WIDTH x HEIGHT (aspect not kept, like V-Express) and the
points are pixels of that size; use the size you will generate at. Backends:
[bold]insightface[/] (SCRFD det_10g.onnx of buffalo_l, the detector V-Express used) or
[bold]dlib[/] (no download; 2-4 px from insightface's points). [bold]auto[/] takes insightface
when MODEL_ROOT/models/buffalo_l/det_10g.onnx exists. Frames without a face are
interpolated from their neighbours and listed; with several faces the one
nearest the previous frame's face is followed (the largest at the start).
"""


BackendName = Enum("BackendName", {name: name for name in BACKEND_NAMES}, type=str)


class FramesPerSecondColumn(ProgressColumn):
    """Processing speed in frames per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} frames/s" if speed else "  ?   frames/s", style="progress.data.speed")


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
    width: int = typer.Option(512, "--width", min=1, help="Frame width the points refer to."),
    height: int = typer.Option(512, "--height", min=1, help="Frame height the points refer to."),
    backend: BackendName = typer.Option("auto", "--backend", help="Face detector.", case_sensitive=False),
    model_root: Path | None = typer.Option(
        None, "--model-root", help="insightface model root holding models/buffalo_l/det_10g.onnx. "
        "Default: $VEXPRESS_MODEL_DIR/insightface_models, else ./model_ckpts/insightface_models.", show_default=False,
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on any frame without exactly one face (like the original)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist."),
    video_path_flag: Path | None = typer.Option(None, "--video_path", hidden=True),
    kps_flag: Path | None = typer.Option(None, "--kps_sequence_save_path", hidden=True),
    audio_flag: Path | None = typer.Option(None, "--audio_save_path", hidden=True),
    insightface_flag: Path | None = typer.Option(None, "--insightface_model_path", hidden=True),
    # Accepted for the original's command lines; onnxruntime uses CUDA whenever it has it.
    _device: str | None = typer.Option(None, "--device", hidden=True),
    _gpu_id: int | None = typer.Option(None, "--gpu_id", hidden=True),
) -> None:
    """Extract the face keypoints (left eye, right eye, nose) of every frame of a video, and optionally its audio."""
    video = _one_of(video, video_path_flag, "VIDEO", "--video_path")
    if video is None:
        raise InputError(
            "No video given.",
            why="vexpress extract needs the driving video to read.",
            fix="Run `vexpress extract VIDEO` (see `vexpress extract --help`).",
        )
    kps_out = _one_of(kps_out, kps_flag, "--kps-out", "--kps_sequence_save_path") or default_kps_path(video)
    audio_out = _one_of(audio_out, audio_flag, "--audio-out", "--audio_save_path")
    model_root = _one_of(model_root, insightface_flag, "--model-root", "--insightface_model_path")
    video_probe = _check_inputs(video, kps_out, audio_out, overwrite)

    from vexpress_cli.face import load_backend
    from vexpress_cli.kps.from_video import extract_kps_sequence
    from vexpress_cli.kps.io import KpsTrack

    console = Console(stderr=True)
    detector = load_backend(backend.value, model_root, width, height)
    console.print(
        f"Face backend: [bold]{detector.name}[/] ({detector.description}; {detector.reason})", highlight=False
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FramesPerSecondColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("Finding faces", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        points, report = extract_kps_sequence(video_probe, detector, width, height, strict=strict, progress=advance)
        progress.update(task, total=report.frames, completed=report.frames)

    fps = float(report.fps) if report.fps else None
    track = KpsTrack(points, fps=fps, width=width, height=height, backend=report.backend)
    _save_outputs(video_probe, track, kps_out, audio_out, overwrite)
    Console().print(summary_table(report, kps_out, audio_out))


def _save_outputs(video_probe, track, kps_out: Path, audio_out: Path | None, overwrite: bool) -> None:
    """Write both outputs or neither: the audio goes to a hidden name until the keypoints are saved."""
    from vexpress_cli.kps.io import save_kps

    if audio_out is None:
        save_kps(kps_out, track)
        return
    from vexpress_cli.media.audio import extract_audio_track

    pending_audio = audio_out.with_name(f".{audio_out.stem}.pending{audio_out.suffix}")
    try:
        extract_audio_track(video_probe, pending_audio, overwrite=True)
        save_kps(kps_out, track)
        os.replace(pending_audio, audio_out)
    finally:
        pending_audio.unlink(missing_ok=True)


def default_kps_path(video: Path) -> Path:
    return video.with_name(f"{video.stem}_kps.pth")


def summary_table(report, kps_out: Path, audio_out: Path | None) -> Table:
    table = Table(title=f"Extracted {report.video.name}", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    fps = f"{float(report.fps):.3f}".rstrip("0").rstrip(".") if report.fps else "unknown"
    table.add_row("frames", f"{report.frames} at {fps} fps, points in {report.width}x{report.height} pixels")
    table.add_row("missing faces", _frame_list(report.missing_frames, "interpolated"))
    table.add_row("several faces", _frame_list(report.multi_face_frames, "followed one face"))
    table.add_row("backend", report.backend)
    milliseconds = 1000 * report.seconds / max(report.frames, 1)
    speed = f"{report.frames_per_second:.1f} frames/s, {milliseconds:.0f} ms/frame"
    table.add_row("time", f"{report.seconds:.1f} s ({speed})")
    table.add_row("keypoints", str(kps_out))
    table.add_row("audio", str(audio_out) if audio_out else "not extracted (add --audio-out PATH)")
    return table


def _frame_list(frames: list[int], action: str, shown: int = 8) -> str:
    if not frames:
        return "none"
    listed = ", ".join(str(index) for index in frames[:shown]) + (", ..." if len(frames) > shown else "")
    return f"{len(frames)} ({action}): frames {listed}"


def _one_of(value, alias_value, name: str, alias: str):
    if value is not None and alias_value is not None and value != alias_value:
        raise InputError(
            f"Both {name} and {alias} were given, with different values.",
            why=f"{alias} is the original V-Express spelling of {name}.",
            fix="Pass only one of them.",
        )
    return value if value is not None else alias_value


def _check_inputs(video: Path, kps_out: Path, audio_out: Path | None, overwrite: bool):
    """Fail before the slow part: a bad video, or outputs that exist or cannot be written.

    Returns the video's probe, for the later steps to reuse.
    """
    from vexpress_cli.file_types import KPS_SUFFIXES as SUPPORTED_SUFFIXES
    from vexpress_cli.media.ffmpeg import probe
    from vexpress_cli.outputs import prepare_output_path

    if not video.is_file():
        raise InputError(
            f"The video {video} does not exist." if not video.exists() else f"{video} is not a file.",
            why="vexpress extract reads the driving video from this path.",
            fix="Check the spelling of the path.",
        )
    if kps_out.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"Cannot write keypoints to {kps_out}: unknown file type '{kps_out.suffix or '(none)'}'.",
            why="The suffix picks the format.",
            fix="Name it *.pth (readable by the original V-Express) or *.safetensors (keeps fps and frame size).",
        )
    if audio_out is not None:
        _check_audio_suffix(kps_out, audio_out)
    for output in (kps_out, audio_out):
        if output is not None:
            prepare_output_path(output, overwrite)
    video_probe = probe(video, "video")
    if audio_out is not None and video_probe.audio is None:
        raise InputError(
            f"{video} has no audio track, so --audio-out cannot be written.",
            why="ffmpeg found no audio stream in the video.",
            fix="Drop --audio-out, or use a video with sound.",
        )
    return video_probe


def _check_audio_suffix(kps_out: Path, audio_out: Path) -> None:
    from vexpress_cli.file_types import AUDIO_OUTPUT_CODECS

    if audio_out.resolve() == kps_out.resolve():
        raise InputError(
            "--kps-out and --audio-out name the same file.",
            fix="Give the audio its own path, e.g. talk.mp3.",
        )
    if audio_out.suffix.lower() not in AUDIO_OUTPUT_CODECS:
        raise InputError(
            f"Cannot write audio to {audio_out}: unknown file type '{audio_out.suffix or '(none)'}'.",
            why="The audio format is chosen from the file suffix.",
            fix=f"Use one of: {', '.join(AUDIO_OUTPUT_CODECS)}.",
        )


def register(app: typer.Typer) -> None:
    app.command("extract", epilog=EPILOG, rich_help_panel="Keypoints")(extract_command)
