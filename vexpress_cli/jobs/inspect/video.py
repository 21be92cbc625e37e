"""The report on a (driving) video: codec, size, exact fps, frame count, duration and audio track."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vexpress_cli.jobs.inspect.report import Report


@dataclass
class VideoReport(Report):
    path: str
    container: str
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    rotation: int
    fps: Fraction  # exact; "30000/1001" in to_dict()
    fps_float: float
    avg_fps: Fraction  # frames / duration
    frames: int
    duration_s: float
    has_audio: bool
    audio_codec: str | None
    run_record: str | None = None  # the record beside a video vexpress made (talk.mp4.json), when it describes it
    kind: str = "video"
    warnings: list[str] = field(default_factory=list)


def inspect_video(path: str | Path) -> VideoReport:
    """Codec, size, exact fps, frame count, duration and audio track of a (driving) video."""
    from vexpress_cli.media.video_reader import video_info

    info = video_info(path)
    report = VideoReport(
        path=str(info.path), container=info.container, codec=info.codec, pix_fmt=info.pix_fmt,
        width=info.width, height=info.height, rotation=info.rotation, fps=info.fps,
        fps_float=round(float(info.fps), 6), avg_fps=info.avg_fps, frames=info.frame_count,
        duration_s=round(info.duration, 6), has_audio=info.has_audio, audio_codec=info.audio_codec,
    )
    if info.variable_rate:
        report.warnings.append(f"The frame rate varies (frames at uneven intervals): `vexpress extract` takes the "
                               f"frames at the average {float(info.fps):.3f} fps by their timestamps.")
    elif info.fps and abs(float(info.avg_fps) / float(info.fps) - 1) > 0.01:
        report.warnings.append(f"Average rate {float(info.avg_fps):.3f} fps differs from the nominal "
                               f"{float(info.fps):.3f} fps: the last frame is held longer.")
    if info.ends_early:
        report.warnings.append(info.ends_early)
    report.run_record = describing_record(Path(path))
    if report.run_record is not None:  # an output, not a driving video: extract's advice does not apply
        return report
    if not info.has_audio:
        report.warnings.append("No audio track: `vexpress extract --audio-out` has no speech to save.")
    if info.width != info.height:
        report.warnings.append(f"{info.width}x{info.height} is not square; extract stretches frames to "
                               "WIDTH x HEIGHT (aspect not kept). `vexpress extract --crop auto` cuts a "
                               "steady square around the face instead.")
    return report


def describing_record(video: Path) -> str | None:
    """The run record beside ``video`` (or a frame folder), when it describes it as it is now."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.jobs.records import read_record, record_path

    record = record_path(video)
    if not record.is_file():
        return None
    try:
        return str(record) if read_record(record).describes_output(video) else None
    except InputError:
        return None
