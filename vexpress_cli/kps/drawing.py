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
        _draw_limb(canvas, points[start], points[end], KEYPOINT_COLOURS[start])
    for (x, y), colour in zip(points, KEYPOINT_COLOURS, strict=True):
        cv2.circle(canvas, (int(x), int(y)), KEYPOINT_RADIUS, colour, -1)


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
