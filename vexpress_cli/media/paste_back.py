"""Paste-back: every generated frame scaled to its crop box and blended into the whole photo.

:class:`PasteBack` is built once per job (the photo scaled to the output size, the box in output
pixels, a feathered mask) and then called on one frame at a time, so a video costs one output frame
of memory however long it is. Pixels outside the box are the photo's own; inside it, the generated
frame takes over over a soft edge of :data:`FEATHER_SHARE` of the box's shorter side, so no seam or
box shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

# The soft edge's width, as a share of the box's shorter side, on each side of the box.
FEATHER_SHARE = 0.1


def even_output_size(width: int, height: int, max_size: int = 0) -> tuple[int, int]:
    """The photo's size, scaled so its longest side is at most ``max_size`` (0: no limit), in even numbers.

    Unscaled, an odd side loses its last row or column (no resampling of the photo for one pixel);
    scaled, the longest side is the largest even number up to ``max_size`` (never over it: rounding an odd
    cap to the nearest even number went past it), the other side the nearest even number keeping the shape.
    """
    if not max_size or max(width, height) <= max_size:
        return max(2, width - width % 2), max(2, height - height % 2)
    longest = max(2, max_size - max_size % 2)
    scale = longest / max(width, height)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def feather_mask(width: int, height: int, feather: float) -> np.ndarray:
    """A ``height x width`` float32 mask: 1 inside, easing to 0 at the edges over ``feather`` pixels."""

    def ramp(length: int) -> np.ndarray:
        distance = np.minimum(np.arange(length) + 0.5, length - 0.5 - np.arange(length))
        linear = np.clip(distance / max(feather, 1e-6), 0.0, 1.0)
        return linear * linear * (3 - 2 * linear)  # smoothstep: no visible kink where the edge starts

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


class PasteBack:
    """Blend frames into ``photo_rgb`` at ``box`` = (x, y, w, h) in the photo's pixels.

    The output is the photo's size rounded to even numbers (``max_size`` caps its longest side,
    scaling the whole frame); ``width``/``height`` say what it is. A box reaching outside the photo
    is clipped to it.
    """

    def __init__(self, photo_rgb: np.ndarray, box: tuple[int, int, int, int] | list[int], max_size: int = 0):
        photo = np.asarray(photo_rgb)
        photo_height, photo_width = photo.shape[:2]
        self.width, self.height = even_output_size(photo_width, photo_height, max_size)
        unscaled = self.width in (photo_width, photo_width - 1) and self.height in (photo_height, photo_height - 1)
        self.canvas = np.ascontiguousarray(
            photo[:self.height, :self.width] if unscaled
            else cv2.resize(photo, (self.width, self.height), interpolation=cv2.INTER_AREA))
        scale_x, scale_y = (1.0, 1.0) if unscaled else (self.width / photo_width, self.height / photo_height)
        x, y, w, h = box
        left, top = round(x * scale_x), round(y * scale_y)
        self.box_size = (max(1, round((x + w) * scale_x) - left), max(1, round((y + h) * scale_y) - top))
        mask = feather_mask(*self.box_size, FEATHER_SHARE * min(self.box_size))
        # The part of the box inside the output frame: where to write, and which part of the box it is.
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + self.box_size[0], self.width), min(top + self.box_size[1], self.height)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"the box {list(box)} lies outside the {photo_width}x{photo_height} photo")
        self._target = (slice(y0, y1), slice(x0, x1))
        self._source = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        # cv2.blendLinear takes one weight per pixel for each image (2.5x faster than numpy on uint16).
        self._weights = np.ascontiguousarray(mask[self._source])
        self._inverse = np.ascontiguousarray(1.0 - self._weights)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One output frame: ``frame`` (H x W x 3 uint8, the generated crop) blended into the photo."""
        shrinking = frame.shape[1] * frame.shape[0] > self.box_size[0] * self.box_size[1]
        face = cv2.resize(frame, self.box_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        output = self.canvas.copy()
        background = output[self._target]
        background[:] = cv2.blendLinear(face[self._source], background,
                                        self._weights, self._inverse)
        return output

    def frames(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """The output frames of a chunk of generated frames (N x H x W x 3), one at a time."""
        for frame in np.asarray(chunk):
            yield self(frame)
