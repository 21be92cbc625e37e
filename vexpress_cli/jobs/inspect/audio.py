"""The report on a speech file: format, exact length, level, and the video frames it makes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from vexpress_cli.jobs.inspect.report import DEFAULT_FPS, Report, check_fps, rounded


@dataclass
class AudioReport(Report):
    path: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    samples: int
    duration_s: float
    container_duration_s: float | None
    peak: float
    peak_dbfs: float | None  # None for digital silence
    silent: bool
    fps: float
    frames: int  # video frames generate makes for this audio at ``fps``
    kind: str = "audio"
    warnings: list[str] = field(default_factory=list)


def inspect_audio(path: str | Path, fps: float = DEFAULT_FPS) -> AudioReport:
    """Format, length, level of a speech file, and how many video frames it makes at ``fps``."""
    from vexpress_cli.jobs.planning import frame_count
    from vexpress_cli.media.audio import (STANDARD_SAMPLE_RATE, audio_info, low_rate_problem, resampled_length,
                                          truncation_warning, uncounted_wav_warning)
    from vexpress_cli.media.frames import as_fps_fraction

    check_fps(fps)
    info = audio_info(path)
    resampled = resampled_length(info)  # generate counts frames on the audio resampled to 16 kHz
    report = AudioReport(
        path=str(info.path),
        container=info.container,
        codec=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        samples=info.num_samples,
        duration_s=round(info.duration, 6),
        container_duration_s=info.container_duration,
        peak=round(info.peak, 6),
        peak_dbfs=rounded(info.peak_dbfs, 2) if info.peak > 0 else None,
        silent=info.is_silent,
        fps=float(fps),
        frames=frame_count(resampled / STANDARD_SAMPLE_RATE, as_fps_fraction(float(fps))),
    )
    truncated = truncation_warning(info.duration, info.container_duration)
    if truncated:
        report.warnings.append(truncated)
    if uncounted := uncounted_wav_warning(info.path):
        report.warnings.append(uncounted)
    if problem := low_rate_problem(info.path, info.sample_rate):
        report.warnings.append(f"{problem}: generate refuses it.")
    if info.peak > 1:  # float audio: kept as it is for generate, but a player clips it
        report.warnings.append(f"The audio peaks above full scale ({info.peak:.3g}, {info.peak_dbfs:+.1f} dBFS): "
                               "players may clip the video's sound where it is that loud (the lip sync is not "
                               "affected). To avoid that, lower its level: "
                               f"ffmpeg -i IN -af volume=-{math.ceil(info.peak_dbfs)}dB OUT.wav")
    if report.silent:
        report.warnings.append("The audio is silent (peak below -60 dBFS): the mouth will barely move.")
    if report.frames == 0:
        report.warnings.append(f"The audio is shorter than one frame at {fps:g} fps: nothing would be generated.")
    return report
