"""The report on a kps track: metadata, coordinate range, motion, jitter, and held, interpolated or jumping frames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.jobs.inspect.report import Report, check_fps, rounded
from vexpress_cli.wording import frames_that

DEFAULT_JUMP_PX = 30.0
# Two positions closer than this (in px) count as the same: float32 keeps
# ~3e-5 px at 512, and real face tracking never repeats a point this exactly.
HOLD_TOLERANCE_PX = 1e-3
POINT_NAMES = ("left eye", "right eye", "nose")


@dataclass
class PointMotion(Report):
    point: str
    step_mean_px: float  # mean frame-to-frame displacement
    step_max_px: float
    jitter_rms_px: float  # RMS of the second difference: frame-to-frame shake, not smooth motion


@dataclass
class Gap(Report):
    kind: str  # "held", "interpolated" or "jump"
    start: int  # first and last frame (0-based, inclusive) of the run
    end: int
    max_step_px: float


@dataclass
class KpsReport(Report):
    path: str
    format: str
    frames: int
    fps: float | None  # as recorded in the file
    width: int | None
    height: int | None
    backend: str | None
    duration_fps: float  # the recorded fps, else the one passed in
    fps_assumed: bool
    duration_s: float
    x_range: list[float]
    y_range: list[float]
    frames_outside: int  # frames with a point outside width x height (512x512 when the file records none)
    eye_distance_mean_px: float
    motion: list[PointMotion]
    jump_px: float
    held_frames: int
    interpolated_frames: int
    jump_frames: int
    gaps: list[Gap]
    crop: list[int] | None = None  # x, y, w, h of the video (extract --crop), None: whole frames
    source_size: list[int] | None = None  # the video's width and height, which the crop refers to
    kind: str = "kps"
    warnings: list[str] = field(default_factory=list)


def inspect_kps(path: str | Path, fps: float | None = None, jump_px: float = DEFAULT_JUMP_PX) -> KpsReport:
    """Metadata, coordinate range, motion, jitter and gaps of a kps track.

    Gaps (see docs/inspect.md): a *held* frame has every point within
    ``HOLD_TOLERANCE_PX`` of the previous frame; an *interpolated* frame lies
    on the straight line through its two neighbours (what ``vexpress extract``
    writes for frames without a face); a *jump* frame has a point more than
    ``jump_px`` from where it was in the previous frame.
    """
    from vexpress_cli.file_types import KPS_SAFETENSORS_SUFFIX
    from vexpress_cli.kps.io import ASSUMED_FPS, ASSUMED_SIZE, load_kps

    if not (math.isfinite(jump_px) and jump_px > 0):
        raise InputError(f"{parameter('jump_px')} is {jump_px}.", why="It must be a positive distance in pixels.",
                         fix=f"Pass e.g. {parameter('jump_px', '30')}.")
    if fps is not None:
        check_fps(fps)
    track = load_kps(path)
    points = track.points.astype(np.float64)
    duration_fps = track.fps or fps or ASSUMED_FPS  # what generate assumes when it has no speech to go by
    held, interpolated, jumps, steps = _frame_flags(points, jump_px)
    report = KpsReport(
        path=str(Path(track.source).resolve()),
        format="safetensors" if Path(path).suffix.lower() == KPS_SAFETENSORS_SUFFIX else "torch",
        frames=track.num_frames,
        fps=track.fps,
        width=track.width,
        height=track.height,
        backend=track.backend,
        duration_fps=duration_fps,
        fps_assumed=track.fps is None,
        duration_s=round(track.num_frames / duration_fps, 6),
        x_range=[rounded(points[..., 0].min(), 2), rounded(points[..., 0].max(), 2)],
        y_range=[rounded(points[..., 1].min(), 2), rounded(points[..., 1].max(), 2)],
        frames_outside=_frames_outside(points, track.width or ASSUMED_SIZE, track.height or ASSUMED_SIZE),
        eye_distance_mean_px=rounded(np.linalg.norm(points[:, 1] - points[:, 0], axis=1).mean(), 2),
        motion=_point_motion(points, steps),
        jump_px=float(jump_px),
        held_frames=int(held.sum()),
        interpolated_frames=int(interpolated.sum()),
        jump_frames=int(jumps.sum()),
        gaps=_runs(held, "held", steps) + _runs(interpolated, "interpolated", steps) + _runs(jumps, "jump", steps),
        crop=list(track.crop) if track.crop else None,
        source_size=list(track.source_size) if track.source_size else None,
    )
    report.gaps.sort(key=lambda gap: gap.start)
    report.warnings.extend(_kps_warnings(report))
    return report


def _frame_flags(points: np.ndarray, jump_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: held, interpolated and jump flags, and each point's step from the previous frame."""
    count = points.shape[0]
    steps = np.zeros((count, 3))
    steps[1:] = np.linalg.norm(np.diff(points, axis=0), axis=2)
    held = np.zeros(count, dtype=bool)
    held[1:] = np.abs(np.diff(points, axis=0)).max(axis=(1, 2)) <= HOLD_TOLERANCE_PX
    interpolated = np.zeros(count, dtype=bool)
    if count >= 3:
        bend = np.abs(points[2:] - 2 * points[1:-1] + points[:-2]).max(axis=(1, 2))
        interpolated[1:-1] = bend <= HOLD_TOLERANCE_PX
    interpolated &= ~held
    jumps = steps.max(axis=1) > jump_px
    return held, interpolated, jumps, steps


def _point_motion(points: np.ndarray, steps: np.ndarray) -> list[PointMotion]:
    moving = steps[1:]
    bend = points[2:] - 2 * points[1:-1] + points[:-2] if len(points) >= 3 else np.zeros((0, 3, 2))
    motion = []
    for index, name in enumerate(POINT_NAMES):
        jitter = math.sqrt(float((bend[:, index] ** 2).sum(axis=1).mean())) if len(bend) else 0.0
        motion.append(PointMotion(
            point=name,
            step_mean_px=rounded(moving[:, index].mean() if len(moving) else 0.0),
            step_max_px=rounded(moving[:, index].max() if len(moving) else 0.0),
            jitter_rms_px=rounded(jitter),
        ))
    return motion


def _runs(flags: np.ndarray, kind: str, steps: np.ndarray) -> list[Gap]:
    runs = []
    start = None
    for frame, flagged in enumerate([*flags.tolist(), False]):
        if flagged and start is None:
            start = frame
        elif not flagged and start is not None:
            runs.append(Gap(kind, start, frame - 1, rounded(steps[start:frame].max())))
            start = None
    return runs


def _frames_outside(points: np.ndarray, width: int, height: int) -> int:
    from vexpress_cli.kps.bounds import points_outside

    return int(points_outside(points, width, height).any(axis=1).sum())


def _kps_warnings(report: KpsReport) -> list[str]:
    from vexpress_cli.kps.io import ASSUMED_SIZE

    warnings = []
    if report.fps_assumed:
        guess = " (an original V-Express kps.pth?)" if report.format == "torch" else ""
        warnings.append(f"The file records no fps{guess}; the duration assumes "
                        f"{report.duration_fps:g} fps (set it with {parameter('fps')}).")
    size = f"{report.width}x{report.height}"
    if report.width is None:
        size = f"{ASSUMED_SIZE}x{ASSUMED_SIZE}"
        warnings.append(f"The file records no frame size; generate takes it as {size} (the original's extraction "
                        "size) and rescales the points to the output size.")
    if report.frames_outside:
        warnings.append(f"{frames_that(report.frames_outside, 'has', 'have')} points outside the {size} frame.")
    if report.jump_frames:
        warnings.append(f"{frames_that(report.jump_frames, 'jumps', 'jump')} by more than {report.jump_px:g} px: "
                        "probably a wrong face or a detection error there.")
    if report.held_frames and report.held_frames == report.frames - 1:
        warnings.append("Every frame is the same: the head will not move.")
    elif report.held_frames:
        warnings.append(f"{frames_that(report.held_frames, 'repeats', 'repeat')} the previous one (held; e.g. no "
                        "face at the start or end of the video).")
    if report.interpolated_frames:
        warnings.append(f"{frames_that(report.interpolated_frames, 'lies', 'lie')} on a straight line between their "
                        "neighbours (filled in where no face was found).")
    return warnings
