"""Where to cut a face-centred portrait out of a larger picture, and cutting it.

V-Express was trained on square, face-centred portraits; the released samples' ``ref.jpg``
(tests/fixtures/samples) show the scale and height it expects. Measured with the dlib backend
(see docs/cropping.md):

=========  ==========================  ===============================
sample     face box width / frame      eye line height / frame
=========  ==========================  ===============================
AOC        0.504                       0.430
tys        0.420                       0.406
=========  ==========================  ===============================

so a crop box is ``face width / FACE_WIDTH_SHARE`` wide (on its shorter side) with the eye line
``EYE_HEIGHT_SHARE`` of that side below its top edge. Boxes are in the photo's pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vexpress_cli.errors import InputError, parameter, short_repr, shown_number
from vexpress_cli.input_files import whole_number

# The mean of the two samples above: what a generated face's size and height should be.
FACE_WIDTH_SHARE = 0.46
EYE_HEIGHT_SHARE = 0.42
# Eye distance / the crop's short side (samples: 0.182 and 0.193). Where the eyes are known, they set
# the scale: dlib's face boxes come in steps of 1.2x (its image pyramid), the eye distance is steady,
# so a photo and every frame of a driving video are framed alike.
EYE_DISTANCE_SHARE = 0.188
# Without eye points, the face box centre stands in for the eyes (samples: 0.518 and 0.524 of the frame).
FACE_CENTRE_HEIGHT_SHARE = 0.52
# The samples' face widths lie within 10 % of their mean, so a box at most 10 % larger than the photo is
# shrunk to fit it (the face comes out a little larger) rather than padded with repeated edge pixels.
SHRINK_TO_FIT = 0.9
# A picture of the output's shape whose crop box would span this share of it is already a framed portrait: it
# is used whole, as V-Express uses its samples. Their boxes span 0.91-1.0 of their photos and up to 1.20 of
# their driving videos (tys gt.mp4); a box larger still is a close-up, cut at the trained scale and padded.
FRAMED_SHARE = (0.85, 1.25)


@dataclass(frozen=True)
class CropBox:
    """A rectangle in a photo's pixels: left, top, width, height (it may reach outside the photo)."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"a crop box needs a positive size, got {self.w}x{self.h}")

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def inside(self, image_width: int, image_height: int) -> bool:
        """Whether the whole box lies within a ``image_width`` x ``image_height`` picture."""
        return self.x >= 0 and self.y >= 0 and self.x + self.w <= image_width and self.y + self.h <= image_height

    def overlaps(self, image_width: int, image_height: int) -> bool:
        return self.x < image_width and self.y < image_height and self.x + self.w > 0 and self.y + self.h > 0

    def __str__(self) -> str:
        return f"{self.w}x{self.h} at ({self.x}, {self.y})"


# No picture vexpress reads is a million pixels wide or high (a photo has at most 64 million pixels); a larger
# number in a box is a typo, refused as such before it is checked against the picture.
MAX_BOX_NUMBER = 1_000_000
_CROP_NUMBERS = re.compile(r"\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*,\s*([-+]?\d+)\s*")


def crop_box_problem(text: str, picture: str = "photo", corner_may_be_negative: bool = False) -> str | None:
    """Why ``text`` is no usable ``X,Y,W,H`` box, in words (the why of an error); None when it is one.

    In a photo the corner must be 0 or more (the box is checked against the photo's size when the
    photo is read); in a video (``extract --crop``) the box may reach past the edge.
    """
    numbers = _CROP_NUMBERS.fullmatch(str(text))
    if numbers is None:
        return (f"A box is X,Y,W,H: four whole numbers separated by commas, in the {picture}'s pixels: its top-left "
                "corner X,Y and its width and height W,H.")
    x, y, w, h = (whole_number(group) for group in numbers.groups())
    too_large = [f"{name} is {shown_number(number)}" for name, number in zip("XYWH", (x, y, w, h))
                 if abs(number) > MAX_BOX_NUMBER]
    if too_large:
        return (f"{' and '.join(too_large)}, but X,Y,W,H are pixels of the {picture}, at most {MAX_BOX_NUMBER} "
                "(no picture is larger).")
    wrong = []
    if min(x, y) < 0 and not corner_may_be_negative:
        wrong.append(f"X,Y is {x},{y}")
    if min(w, h) <= 0:
        wrong.append(f"W,H is {w},{h}")
    if not wrong:
        return None
    if corner_may_be_negative:
        rule = "W,H (the box's width and height) must be more than 0"
    else:
        rule = (f"X,Y (the box's top-left corner) must be 0 or more and W,H (its width and height) more than 0, in "
                f"the {picture}'s pixels, and the box must lie inside the {picture} (checked when it is read)")
    return f"{' and '.join(wrong)}, but {rule}."


def parse_crop(text: str | CropBox | None, picture: str = "video",
               corner_may_be_negative: bool = True) -> str | CropBox | None:
    """``auto``, ``none`` (None) or ``X,Y,W,H`` (a :class:`CropBox` in the picture's pixels; it may reach outside)."""
    if text is None or isinstance(text, CropBox):
        return text
    value = str(text).strip().lower()
    if value == "none":
        return None
    if value == "auto":
        return value
    problem = crop_box_problem(value, picture, corner_may_be_negative)
    if problem is not None:
        raise InputError(
            f"{parameter('crop')} is {short_repr(text)}, which is not auto, none or a usable X,Y,W,H box.",
            why=f"The crop is found around the face (auto), left out (none), or given as a box. {problem}",
            fix=f"Use {parameter('crop', 'auto')}, or a box such as 320,40,640,640.",
        )
    return CropBox(*(int(group) for group in _CROP_NUMBERS.fullmatch(value).groups()))  # short: checked above


def portrait_crop_box(face_box, image_width: int, image_height: int, aspect: float = 1.0,
                      eyes=None) -> CropBox:
    """The box of ``aspect`` (width / height) around a face, at the samples' face scale and eye height.

    ``face_box``: ``(x0, y0, x1, y1)`` of the detected face. ``eyes``: optionally its two eye
    points ``[[x, y], [x, y]]``, which place the eye line exactly; without them the face box
    centre is used. The box is shifted inside the photo where it fits; where the photo is
    smaller than the box, it stays centred on the face and reaches outside (``cut_crop`` pads).
    """
    x0, y0, x1, y1 = (float(value) for value in face_box)
    if not (x1 > x0 and y1 > y0 and aspect > 0):
        raise ValueError(f"a face box needs a positive size and the aspect must be positive: {face_box}, {aspect}")
    short_side = (x1 - x0) / FACE_WIDTH_SHARE
    width, height = (short_side * aspect, short_side) if aspect >= 1 else (short_side, short_side / aspect)
    fit = min(image_width / width, image_height / height)
    if SHRINK_TO_FIT <= fit < 1:
        width, height, short_side = width * fit, height * fit, short_side * fit
    width, height = max(1, round(width)), max(1, round(height))
    centre_x = (x0 + x1) / 2
    if eyes is not None:
        top = float(np.asarray(eyes, dtype=np.float64).reshape(-1, 2)[:2, 1].mean()) - EYE_HEIGHT_SHARE * short_side
    else:
        top = (y0 + y1) / 2 - FACE_CENTRE_HEIGHT_SHARE * short_side
    left = _clamped(centre_x - width / 2, width, image_width)
    top = _clamped(top, height, image_height)
    return CropBox(round(left), round(top), width, height)


def face_crop_box(face_box, eyes, image_width: int, image_height: int, aspect: float = 1.0) -> CropBox:
    """The crop around a detected face: scaled by its eye distance, placed by its eye line.

    ``eyes``: the two eye points ``[[x, y], [x, y]]``. Where they coincide (a failed landmark fit),
    the face box sets the scale instead.
    """
    eyes = np.asarray(eyes, dtype=np.float64).reshape(-1, 2)[:2]
    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    if not (np.isfinite(distance) and distance > 0):
        return portrait_crop_box(face_box, image_width, image_height, aspect)
    middle = eyes.mean(axis=0)
    # A face box of the width portrait_crop_box expects for a face with this eye distance.
    half_width = FACE_WIDTH_SHARE * distance / EYE_DISTANCE_SHARE / 2
    scaled_box = (middle[0] - half_width, middle[1] - half_width, middle[0] + half_width, middle[1] + half_width)
    return portrait_crop_box(scaled_box, image_width, image_height, aspect, eyes=eyes)


def framed_crop_box(face_box, eyes, image_width: int, image_height: int, aspect: float = 1.0) -> CropBox:
    """:func:`face_crop_box`, or the whole picture when it is already framed like V-Express's portraits (a photo
    and a driving video alike)."""
    box = face_crop_box(face_box, eyes, image_width, image_height, aspect)
    return whole_image(image_width, image_height) if already_framed(box, image_width, image_height, aspect) else box


def already_framed(box: CropBox, image_width: int, image_height: int, aspect: float = 1.0) -> bool:
    """Whether a picture is already a portrait framed for V-Express: its shape, and ``box`` spanning FRAMED_SHARE
    of it."""
    same_shape = abs(image_width / image_height - aspect) <= 0.01 * aspect
    low, high = FRAMED_SHARE
    return same_shape and low * image_width <= box.w <= high * image_width and \
        low * image_height <= box.h <= high * image_height


def whole_image(image_width: int, image_height: int) -> CropBox:
    return CropBox(0, 0, image_width, image_height)


def _clamped(start: float, size: int, limit: int) -> float:
    """``start`` moved so that ``[start, start + size]`` lies within ``[0, limit]``, when it can."""
    if size > limit:
        return start
    return min(max(start, 0.0), float(limit - size))


def cut_crop(image_rgb_uint8: np.ndarray, box: CropBox, out_w: int, out_h: int) -> np.ndarray:
    """The ``box`` of an ``H x W x 3`` uint8 image, resized to ``out_w`` x ``out_h``.

    Where the box reaches outside the image, the image's edge pixels are repeated. Shrinking
    uses area averaging (no aliasing), enlarging bicubic interpolation.
    """
    import cv2

    image = np.asarray(image_rgb_uint8)
    height, width = image.shape[:2]
    if not box.overlaps(width, height):
        raise ValueError(f"the crop box {box} lies outside the {width}x{height} image")
    left, top = max(box.x, 0), max(box.y, 0)
    right, bottom = min(box.x + box.w, width), min(box.y + box.h, height)
    piece = np.ascontiguousarray(image[top:bottom, left:right])
    margins = (top - box.y, box.y + box.h - bottom, left - box.x, box.x + box.w - right)
    if any(margins):
        piece = cv2.copyMakeBorder(piece, *margins, cv2.BORDER_REPLICATE)
    if (box.w, box.h) == (out_w, out_h):
        return piece
    shrinking = box.w * box.h > out_w * out_h
    return cv2.resize(piece, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


# Past this share of a crop box outside the image (filled by repeating its edge pixels), a warning says so.
PADDING_WARNING_SHARE = 0.15


def frame_padding(box: CropBox, image_width: int, image_height: int) -> float:
    """The share of the box's area that lies outside the image (filled by edge replication)."""
    inside_w = max(0, min(box.x + box.w, image_width) - max(box.x, 0))
    inside_h = max(0, min(box.y + box.h, image_height) - max(box.y, 0))
    return 1.0 - inside_w * inside_h / (box.w * box.h)
