"""Draw V-Kps images: the conditioning pictures the V-Kps guider reads.

A V-Kps image is black except for three keypoints (left eye, right eye, nose)
and two "limbs" joining each eye to the nose. Each limb is a filled ellipse,
4 px thick, in the eye's colour at 60 % brightness; each keypoint is a filled
disc of radius 4 in full colour, drawn on top. Colours are RGB: left eye red,
right eye green, nose blue.

The released V-Express weights were trained on images drawn exactly this way,
so every rounding choice below matters: centres, half-lengths and the angle
(in whole degrees) are truncated with ``int()``, and the arithmetic runs in the
keypoints' own float precision (float32 for every track we load).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

# RGB colour per keypoint: left eye, right eye, nose.
KEYPOINT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
# Each limb joins an eye to the nose and takes the eye's colour.
LIMBS = ((0, 2), (1, 2))
LIMB_BRIGHTNESS = 0.6
LIMB_HALF_THICKNESS = 4
KEYPOINT_RADIUS = 4
# Coordinates are drawn as they are up to this many pixels from the origin. Beyond it (1e12, 3e38:
# keypoints from a broken track or strategy) cv2 cannot take them: a disc that far is off the canvas
# anyway and is skipped, and a limb is cut where it leaves this square. So far out, a limb is a
# one-pixel sliver near the canvas either way, so nothing visible changes.
DRAW_LIMIT = float(1 << 20)


def draw_kps_image(height: int, width: int, kps) -> np.ndarray:
    """Draw one V-Kps image for ``kps`` (3x2: left eye, right eye, nose; x, y in pixels).

    Returns a ``height x width x 3`` uint8 RGB array. Points may lie outside
    the canvas; whatever falls inside is drawn.
    """
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    _draw_on(canvas, _as_points(kps))
    return canvas


def iter_kps_images(height: int, width: int, track: Iterable) -> Iterator[np.ndarray]:
    """Yield one V-Kps image per frame of ``track`` ([F,3,2]), without holding them all.

    Each yielded array is a fresh ``height x width x 3`` uint8 RGB image, so
    callers may keep or modify it. A 512x512 frame takes well under a
    millisecond, so a whole video's guide images stream as fast as they are
    consumed.
    """
    blank = np.zeros((height, width, 3), dtype=np.uint8)
    for kps in track:
        canvas = blank.copy()
        _draw_on(canvas, _as_points(kps))
        yield canvas


def _as_points(kps) -> np.ndarray:
    points = np.asarray(kps)
    if points.shape != (3, 2):
        raise ValueError(f"V-Kps need 3 points (left eye, right eye, nose) of (x, y); got shape {points.shape}")
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float64)
    return points


def _draw_on(canvas: np.ndarray, points: np.ndarray) -> None:
    for start, end in LIMBS:
        limb = _within_draw_limit(points[start], points[end])
        if limb is not None:
            _draw_limb(canvas, *limb, KEYPOINT_COLOURS[start])
    for (x, y), colour in zip(points, KEYPOINT_COLOURS, strict=True):
        if abs(x) <= DRAW_LIMIT and abs(y) <= DRAW_LIMIT:
            cv2.circle(canvas, (int(x), int(y)), KEYPOINT_RADIUS, colour, -1)


def _within_draw_limit(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the segment inside the DRAW_LIMIT square (the points themselves when it is all
    inside, so ordinary tracks are drawn bit for bit as before), or None when none of it is."""
    if np.abs(np.stack([start, end])).max() <= DRAW_LIMIT:  # False for NaN too
        return start, end
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        return None
    origin, direction = start.astype(np.float64), end.astype(np.float64) - start.astype(np.float64)
    enter, leave = 0.0, 1.0  # Liang-Barsky: the fractions of the segment inside the square
    for axis in (0, 1):
        for step, room in ((-direction[axis], origin[axis] + DRAW_LIMIT), (direction[axis], DRAW_LIMIT - origin[axis])):
            if step == 0:
                if room < 0:
                    return None
            elif step < 0:
                enter = max(enter, room / step)
            else:
                leave = min(leave, room / step)
    if enter > leave:
        return None
    return (origin + enter * direction).astype(start.dtype), (origin + leave * direction).astype(start.dtype)


def _draw_limb(canvas: np.ndarray, start: np.ndarray, end: np.ndarray, colour: tuple[int, int, int]) -> None:
    # Stay in the points' dtype (numpy scalars) so truncation matches the
    # training-time drawing bit for bit.
    xs = np.array([start[0], end[0]])
    ys = np.array([start[1], end[1]])
    dx, dy = xs[0] - xs[1], ys[0] - ys[1]
    length = (dx**2 + dy**2) ** 0.5
    angle = int(math.degrees(math.atan2(dy, dx)))
    centre = (int(np.mean(xs)), int(np.mean(ys)))
    outline = cv2.ellipse2Poly(centre, (int(length / 2), LIMB_HALF_THICKNESS), angle, 0, 360, 1)
    dimmed = [int(float(channel) * LIMB_BRIGHTNESS) for channel in colour]
    cv2.fillConvexPoly(canvas, outline, dimmed)
