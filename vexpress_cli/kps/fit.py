"""Fit a driving keypoint track to the number of frames of the video to make.

A driving track (from `vexpress extract`) rarely has exactly as many frames as
the audio needs. Every mode first cuts a longer track to its first
``num_frames`` frames, so the head moves at the speed it was filmed at; the
modes differ in how they lengthen a shorter one:

``pingpong`` (default)
    Play the track forward, then backward, then forward... Motion keeps its
    natural speed and there is never a jump, because each turn continues from
    the pose it reached. Best for long audio over a short driving clip.
``loop``
    Play the track again from its start. Natural speed, but the head jumps
    back to the first pose at each wrap unless the clip happens to loop.
``stretch``
    What the original V-Express ``inference.py`` does: resample the track
    linearly in time (``torch.nn.functional.interpolate``, ``mode="linear"``,
    ``align_corners=False``) to ``num_frames``. A track half as long plays at
    half speed, which looks like slow motion; kept for exact reproduction.

When the track has exactly ``num_frames`` frames every mode returns it as is.

Tracks are fitted by time, not by frame index: before fitting, :func:`resample_in_time` turns a
track filmed at one frame rate into the poses at the video's frame rate (a 25 fps track drives
a 30 fps video at its real speed). ``stretch`` skips that step, as the original did.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from vexpress_cli.errors import InputError
from vexpress_cli.wording import plural

FitMode = Literal["pingpong", "loop", "stretch"]
FIT_MODES: tuple[str, ...] = ("pingpong", "loop", "stretch")
DEFAULT_FIT_MODE: FitMode = "pingpong"


def fit_track(points: np.ndarray, num_frames: int, mode: str = DEFAULT_FIT_MODE) -> np.ndarray:
    """Return ``points`` ([F, 3, 2]) fitted to ``[num_frames, 3, 2]`` (float32) with ``mode``."""
    points = np.asarray(points, dtype=np.float32)
    if mode not in FIT_MODES:
        raise InputError(
            f"Unknown kps fit mode '{mode}'.",
            why=f"The modes are: {', '.join(FIT_MODES)}.",
            fix="Use pingpong (natural motion, the default), loop, or stretch (the original V-Express behaviour).",
        )
    if num_frames < 1:
        raise InputError(
            f"Cannot fit a kps track to {num_frames} frames.",
            why="A video needs at least one frame.",
            fix="Pass a positive number of frames.",
        )
    if points.ndim != 3 or points.shape[0] == 0:
        raise InputError(
            f"Cannot fit a kps track of shape {list(points.shape)}.",
            why="A track is a non-empty [frames, points, 2] array.",
            fix="Load the track with vexpress_cli.kps.load_kps, which checks it.",
        )
    points = points[:num_frames]
    if points.shape[0] == num_frames:
        return points.copy()
    if mode == "stretch":
        return _stretch(points, num_frames)
    return points[_frame_order(points.shape[0], num_frames, mode)]


def _frame_order(length: int, num_frames: int, mode: str) -> np.ndarray:
    """Source frame index for each output frame, for the loop and pingpong modes."""
    steps = np.arange(num_frames)
    if mode == "loop" or length == 1:
        return steps % length
    period = 2 * (length - 1)  # 0, 1, ..., L-1, L-2, ..., 1, then again from 0
    phase = steps % period
    return np.where(phase < length, phase, period - phase)


def _stretch(points: np.ndarray, num_frames: int) -> np.ndarray:
    # Use torch's own kernel rather than a re-derivation: the released model
    # saw tracks resampled by exactly this call, rounding included.
    import torch
    import torch.nn.functional as functional

    # [F, 3, 2] -> [3, 2, F]: batch of 3 points, 2 channels (x, y), F time steps.
    over_time = torch.from_numpy(np.ascontiguousarray(points)).permute(1, 2, 0)
    resampled = functional.interpolate(over_time, size=num_frames, mode="linear", align_corners=False)
    return resampled.permute(2, 0, 1).contiguous().numpy()


def resample_in_time(points: np.ndarray, from_fps: float, to_fps: float, max_frames: int | None = None) -> np.ndarray:
    """The track as seen at ``to_fps``: frame ``i`` holds the pose at time ``i / to_fps``.

    Poses between two filmed frames are interpolated linearly; the result lasts as long as the
    track (:func:`timed_length` frames), or its first ``max_frames`` frames.
    """
    points = np.asarray(points, dtype=np.float32)
    if from_fps == to_fps:
        return points[:max_frames]
    length = points.shape[0]
    count = min(timed_length(length, from_fps, to_fps), max_frames or math.inf)
    source = np.minimum(np.arange(count) * (from_fps / to_fps), length - 1)
    before = np.floor(source).astype(np.int64)
    after = np.minimum(before + 1, length - 1)
    weight = (source - before).astype(np.float32)[:, None, None]
    return points[before] * (1 - weight) + points[after] * weight


def timed_length(frames: int, from_fps: float, to_fps: float) -> int:
    """How many frames at ``to_fps`` last as long as ``frames`` at ``from_fps`` (at least one)."""
    return max(1, round(frames * to_fps / from_fps))


def fit_track_in_time(points: np.ndarray, track_fps: float, fps: float, num_frames: int,
                      mode: str = DEFAULT_FIT_MODE) -> tuple[np.ndarray, list[str]]:
    """Fit a track filmed at ``track_fps`` to ``num_frames`` frames at ``fps``, and say what was done."""
    notes, length = [], len(points)
    if mode != "stretch" and track_fps != fps:
        length = timed_length(len(points), track_fps, fps)
        notes.append(f"The {len(points)}-frame kps track at {track_fps:g} fps was resampled in time to "
                     f"{plural(length, 'frame')} at {fps:g} fps.")
        points = resample_in_time(points, track_fps, fps, max_frames=num_frames)  # what is cut, never made
    if length != num_frames:
        how = ("cut" if length > num_frames else "stretched" if mode == "stretch" else f"lengthened by {mode}")
        notes.append(f"The {length}-frame kps track was {how} to {num_frames} frames.")
    return fit_track(points, num_frames, mode), notes
