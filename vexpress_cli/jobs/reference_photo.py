"""The reference photo of a generation: read upright, cut around the face (``crop``), kept for paste-back.

``crop`` is ``auto`` (the face, the largest or ``face_index``, is found in the whole photo and a box
of the generation size's aspect is cut around it, framed like the released samples: see
:mod:`vexpress_cli.face.framing` and docs/cropping.md), ``none`` (the whole photo, stretched: what
V-Express does) or ``X,Y,W,H`` in the photo's pixels. With ``paste_back`` the upright photo is kept
and every generated frame is blended back into it (:mod:`vexpress_cli.media.paste_back`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.face.framing import (PADDING_WARNING_SHARE, CropBox, cut_crop, frame_padding, framed_crop_box,
                                       parse_crop, whole_image)
from vexpress_cli.kps.retargeting import EXAMPLE_KPS
from vexpress_cli.media.images import Photo, read_photo
from vexpress_cli.settings.schema import GenerationSettings
from vexpress_cli.wording import plural

MIN_ADVISED_SIZE = 512
# Faces are looked for in a copy of the photo at most this long: a face that fills a tenth of a
# 4000 px photo is still 128 px there, and dlib's HOG detector takes ~1 s at this size instead of ~10.
DETECT_LONG_SIDE = 1280
# SCRFD's usual input size for a whole photo (the original uses the generation size on a portrait).
DETECT_INPUT_SIZE = 640
# More repeated edge pixels than this share of the crop is worth a warning.
MIN_PASTE_SIZE = 64
# Past this long side a pasted-back video is slow to encode and to play; --max-size is suggested.
LARGE_VIDEO_SIDE = 3840


@dataclass
class ReferencePhoto:
    """The generation-size reference and where it came from in the photo."""

    image: PIL.Image.Image  # width x height of the generation
    crop: CropBox | None  # None: the whole photo, stretched
    photo_size: tuple[int, int]  # the upright photo's width and height
    photo: np.ndarray | None = None  # the upright photo, kept for paste-back only
    face_kps: np.ndarray | None = None  # the chosen face's eyes and nose in generation pixels, if it was found
    faces_found: int = 0  # faces auto-crop found in the whole photo (0 for none or a box given by hand)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def crop_list(self) -> list[int] | None:
        return self.crop.as_list() if self.crop is not None else None

    def paste_back(self, max_size: int = 0):
        """The per-frame blender into the whole photo (a PasteBack), or None without paste-back."""
        if self.photo is None:
            return None
        from vexpress_cli.media.paste_back import PasteBack

        box = self.crop.as_list() if self.crop is not None else [0, 0, *self.photo_size]
        return PasteBack(self.photo, box, max_size)

    def paste_back_size(self, max_size: int = 0) -> tuple[int, int] | None:
        """The pasted-back video's width and height (None without paste-back), without making it."""
        from vexpress_cli.media.paste_back import even_output_size

        return None if self.photo is None else even_output_size(*self.photo_size, max_size)


def read_reference_photo(path: Path, settings: GenerationSettings, *, reference_kps_given: bool = False,
                         face_model_root: Path | None = None, read: Photo | None = None) -> ReferencePhoto:
    """Read, turn upright and cut the reference photo as ``settings`` say; detects the face for ``auto``.
    ``read`` is the photo at ``path`` already read (:func:`~vexpress_cli.media.images.read_photo`), to read it once."""
    width, height = settings.width, settings.height
    read = read or read_photo(path, "reference image")
    image, photo, notes = read.image, np.asarray(read.image), read.notes
    mode = settings.crop
    if mode == "auto" and reference_kps_given:
        mode = "none"
        if abs(image.width / image.height - width / height) > 0.01:  # otherwise framing hardly matters
            notes.append(f"{parameter('crop', 'auto')} is not used with {parameter('reference_kps')}: those points are "
                         "in the whole photo resized to the output size, so the whole photo is used.")
    result = ReferencePhoto(image, None, image.size, warnings=read.warnings, notes=notes)
    if mode == "none":
        result.image = _whole_photo(image, width, height, result.warnings, reference_kps_given)
    else:
        face = None
        if mode == "auto":
            box, face, found = find_crop(photo, settings, face_model_root, str(path))
            result.faces_found = found
            if found > 1:
                result.notes.append(f"{found} faces found; cropped around face {settings.face_index} "
                                    f"(0 is the largest; {parameter('face_index')} picks another).")
        else:
            box = parse_crop_box(mode, *image.size)
        result.crop = box
        result.image = PIL.Image.fromarray(cut_crop(photo, box, width, height))
        if box != whole_image(*image.size):
            result.notes.append(f"Cropped {box} of the {image.width}x{image.height} photo to {width}x{height}.")
        _crop_warnings(box, image.size, (width, height), result.warnings)
        if face is not None:
            result.face_kps = _in_crop(face.kps3, box, width, height)
    if settings.max_size and not settings.paste_back:
        result.warnings.append(f"{parameter('max_size')} only scales a pasted-back video; without "
                               f"{parameter('paste_back')} it has no effect.")
    if settings.paste_back:
        _check_max_size(settings.max_size)
        result.photo = photo
        _note_paste_back_size(image.size, result.paste_back_size(settings.max_size), settings.max_size, result.notes)
        if not settings.max_size and max(image.size) > LARGE_VIDEO_SIDE:
            result.warnings.append(f"The pasted-back video will be {image.width}x{image.height}, slow to encode and "
                                   f"to play; {parameter('max_size', '1920')} makes it 1920 pixels on the long side.")
    return result


def _note_paste_back_size(photo: tuple[int, int], video: tuple[int, int], max_size: int, notes: list[str]) -> None:
    """Say when the pasted-back video is not the photo's size: scaled down, or an odd side cut to even."""
    if video == photo:
        return
    how = (f"scaled down to {parameter('max_size', max_size)}" if max(photo) > max_size > 0 else
           "less its odd last row or column (H.264 needs even sides)")
    notes.append(f"The pasted-back video is {video[0]}x{video[1]}: the {photo[0]}x{photo[1]} photo {how}.")


def _whole_photo(image: PIL.Image.Image, width: int, height: int, warnings: list[str],
                 reference_kps_given: bool = False) -> PIL.Image.Image:
    if abs(image.width / image.height - width / height) > 0.01:
        # --crop auto is not used with --reference-kps, so it is no fix there
        fix = (f"{parameter('crop', 'X,Y,W,H')} (a box of that shape; the points are then in it)" if reference_kps_given
               else parameter('crop', 'auto'))
        warnings.append(f"The reference image is {image.width}x{image.height}; it is stretched to "
                        f"{width}x{height}. Use {fix}, or crop it to that shape around the face.")
    if min(image.size) < MIN_ADVISED_SIZE:
        warnings.append(f"The reference image is {image.width}x{image.height}: its short side is under "
                        f"{MIN_ADVISED_SIZE}px; expect a blurry face.")
    return image.resize((width, height), PIL.Image.BICUBIC)


def _crop_warnings(box: CropBox, photo_size: tuple[int, int], size: tuple[int, int], warnings: list[str]) -> None:
    padding = frame_padding(box, *photo_size)
    if padding > PADDING_WARNING_SHARE:
        warnings.append(f"The photo is tight around the face: {padding:.0%} of the crop {box} lies outside it and is "
                        "filled by repeating its edge pixels. A photo with more room around the head looks better.")
    # Side by side with the output's own (up to 512): a 15873x496 box shrunk to 2048x64 is no enlargement.
    advised = tuple(min(MIN_ADVISED_SIZE, side) for side in size)
    if box.w < advised[0] or box.h < advised[1]:
        warnings.append(f"The crop is {box.w}x{box.h} pixels, smaller than {advised[0]}x{advised[1]}; the face "
                        "is enlarged and will look soft. A photo taken closer, or larger, looks sharper.")


def _other_detector(used: str, face_model_root: Path | None) -> str:
    """``"the other detector (--face-backend X) or "`` for the no-face advice, or ``""`` when it cannot run here.

    dlib needs no file; insightface needs det_10g.onnx where ``face_backend="insightface"`` would look for it.
    """
    if used == "insightface":
        return f"the other detector ({parameter('face_backend', 'dlib')}) or "
    from vexpress_cli.face import find_detector
    from vexpress_cli.settings.model_lookup import face_model_root as lookup

    root = face_model_root if face_model_root is not None else lookup(None, "insightface")
    return f"the other detector ({parameter('face_backend', 'insightface')}) or " if find_detector(root) else ""


class NoFaceFound(InputError):
    """Auto-crop found no face in the photo (``vexpress inspect`` reports it; generate stops)."""


def find_crop(photo: np.ndarray, settings: GenerationSettings, face_model_root: Path | None,
              label: str) -> tuple[CropBox, object, int]:
    """The auto-crop box of an upright RGB photo: (box, the face it frames, how many faces were found)."""
    from vexpress_cli.face import load_backend

    photo_height, photo_width = photo.shape[:2]
    scale = min(1.0, DETECT_LONG_SIDE / max(photo_width, photo_height))
    small = photo if scale == 1.0 else _resized(photo, scale)
    detector = load_backend(settings.face_backend, face_model_root, DETECT_INPUT_SIZE, DETECT_INPUT_SIZE)
    faces = sorted(detector.detect(small), key=lambda face: face.area, reverse=True)
    if not faces:
        raise NoFaceFound(
            f"No face was found in {label} ({photo_width}x{photo_height}).",
            why=f"{parameter('crop', 'auto')} cuts the frame around a face, and the {detector.name} face detector "
            "found none.",
            fix=f"Try {_other_detector(detector.name, face_model_root)}a photo with a clearer, roughly frontal face; "
            "or name the face yourself: "
            f"{parameter('crop', 'X,Y,W,H')} (the part to animate, in the photo's pixels) with "
            f"{parameter('reference_kps', EXAMPLE_KPS)} (its eyes and nose, in the video's pixels).")
    if settings.face_index >= len(faces):
        raise InputError(
            f"{parameter('face_index')} is {settings.face_index}, but {label} has {plural(len(faces), 'face')}.",
            why="Faces are numbered by size from 0, the largest.",
            fix=f"Use {parameter('face_index', '0')} to {len(faces) - 1}." if len(faces) > 1 else
            f"Use {parameter('face_index', '0')}, or leave it out.")
    face = faces[settings.face_index]
    face.bbox, face.kps = face.bbox / scale, face.kps / scale
    aspect = settings.width / settings.height
    return framed_crop_box(face.bbox, face.kps[:2], photo_width, photo_height, aspect), face, len(faces)


def _resized(photo: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA)


def parse_crop_box(text: str, photo_width: int, photo_height: int) -> CropBox:
    """``X,Y,W,H`` as a box that lies inside the photo, or the what/why/fix of why not."""
    box = parse_crop(text, "photo", corner_may_be_negative=False)
    if isinstance(box, CropBox) and box.inside(photo_width, photo_height):
        return box
    raise InputError(
        f"{parameter('crop', text)} does not lie inside the {photo_width}x{photo_height} photo.",
        why="The box is X,Y (its top-left corner), W,H (its size) in the upright photo's pixels, and must "
        "have a size and fit in the photo.",
        fix=f"Use a box within 0,0,{photo_width},{photo_height} (e.g. {parameter('crop', 'auto')} to find the "
        "face, and `vexpress inspect PHOTO` to see the box it would choose).")


def _in_crop(points: np.ndarray, box: CropBox, width: int, height: int) -> np.ndarray:
    """Photo pixels -> generation pixels of the crop."""
    scale = np.array([width / box.w, height / box.h], dtype=np.float32)
    return ((np.asarray(points, np.float32) - np.array([box.x, box.y], np.float32)) * scale).astype(np.float32)


def _check_max_size(max_size: int) -> None:
    if 0 < max_size < MIN_PASTE_SIZE:
        raise InputError(f"{parameter('max_size')} is {max_size}.",
                         why=f"The pasted-back video's longest side must be at least {MIN_PASTE_SIZE} pixels.",
                         fix=f"Use {parameter('max_size', '0')} (the photo's size) or a value from {MIN_PASTE_SIZE}.")


def reference_keypoints(reference: ReferencePhoto, path: Path, settings: GenerationSettings,
                        face_model_root: Path | None) -> np.ndarray:
    """The reference face's eyes and nose in generation pixels, detected like the original does.

    Detected in the generation-size reference (the whole photo resized, or the crop); in a crop,
    the face nearest the one auto-crop chose, and its points from the whole photo if the crop shows none.
    """
    from vexpress_cli.face import detect_reference_kps, load_backend

    if reference.crop is None:
        return detect_reference_kps(path, settings.width, settings.height, settings.face_backend, face_model_root)
    detector = load_backend(settings.face_backend, face_model_root, settings.width, settings.height)
    if reference.face_kps is None:  # a crop given by hand
        return detect_reference_kps(np.asarray(reference.image), settings.width, settings.height, detector,
                                    label=f"the crop {reference.crop} of {path}")
    same = same_face(detector.detect(np.asarray(reference.image)), reference.face_kps)
    # the same face, its points measured at the generation size; else auto-crop's points from the whole photo
    return same.kps3.astype(np.float32) if same is not None else reference.face_kps


def same_face(faces: list, chosen: np.ndarray):
    """The face among ``faces`` (found in the crop) whose eyes and nose lie where ``chosen``'s do, or None."""
    eye_distance = float(np.linalg.norm(chosen[0] - chosen[1]))
    for face in faces:
        if float(np.linalg.norm(face.kps3.mean(axis=0) - chosen.mean(axis=0))) < eye_distance:
            return face
    return None
