"""Whether keypoints lie inside the frame they will be drawn in.

A track extracted at 512 px and used at 64 px without a recorded frame size, or one with
negative coordinates, puts the face outside the picture: V-Express then animates nothing.
:func:`check_kps_in_frame` warns when some keypoints are outside and refuses a track with
none inside; ``vexpress inspect`` counts the frames with :func:`points_outside`.
"""

from __future__ import annotations

import numpy as np

from vexpress_cli.errors import InputError, parameter


def points_outside(points, width: int, height: int) -> np.ndarray:
    """Per frame and point (``[F, 3]``, or ``[3]`` for one frame): True where it lies outside
    ``0 <= x <= width``, ``0 <= y <= height``."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[..., 0], points[..., 1]
    return (x < 0) | (x > width) | (y < 0) | (y > height)


def check_kps_in_frame(points, width: int, height: int, origin: str = "the kps track", *, why: str | None = None,
                       fix: str | None = None) -> str | None:
    """A warning when some keypoints of ``points`` (``[F, 3, 2]`` or ``[3, 2]``, pixels) lie outside the
    ``width`` x ``height`` frame, None when all are inside; InputError when no keypoint of any frame is
    (``why`` and ``fix`` replace its reasons, which speak of a kps file)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3, 2)
    outside = points_outside(points, width, height)
    if not outside.any():
        return None
    x_range = f"x runs from {points[..., 0].min():.6g} to {points[..., 0].max():.6g}"
    y_range = f"y from {points[..., 1].min():.6g} to {points[..., 1].max():.6g}"
    if outside.all():
        raise InputError(
            f"No keypoint of {origin} lies inside the {width}x{height} frame: {x_range} and {y_range}.",
            why=why or "The face would be placed entirely outside the video. The points are not pixels of the "
            "frame they are read in (a file that records no frame size is read as 512x512, the original's "
            "extraction size), or they are negative.",
            fix=fix or "Re-extract the track with `vexpress extract`: its .safetensors file records the frame size, "
            "so its points are rescaled to any output size.",
        )
    frames = int(outside.any(axis=1).sum())
    return (f"{frames} of {len(points)} frames of {origin} have keypoints outside the {width}x{height} frame "
            f"({x_range}, {y_range}): the face is cut off or leaves the picture there.")


def outside_frame_reasons(typed_reference: bool, width: int, height: int) -> tuple[str, str]:
    """Why a retargeted track lies wholly outside the frame, and the fix (the ``why`` and ``fix`` of
    :func:`check_kps_in_frame`): the typed reference points or the driving track (points detected in the photo are
    inside it). Typed points are pixels of the output frame, not of the photo."""
    outside = "The face would be placed entirely outside the video."
    unsized = "records no frame size is read as 512x512."
    extract = "re-extract it with `vexpress extract` (its .safetensors file records the frame size)."
    if not typed_reference:
        return f"{outside} A driving kps file that {unsized}", f"For the driving track, {extract}"
    return (f"{outside} {parameter('reference_kps')} are pixels of the {width}x{height} output frame (the photo "
            f"resized to it, or the crop box's frame), not of the photo itself, and a driving "
            f"kps file that {unsized}", f"Give {parameter('reference_kps')} inside the frame, or a larger "
            f"{parameter('width')} and {parameter('height')}; for a driving track, {extract}")
