"""The report on a reference photo: size, mode, EXIF orientation, the face ``generate`` would find, and the
box ``--crop auto`` would cut around it (the photo is read upright, as generate reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vexpress_cli.jobs.inspect.report import MODEL_SIZE, Report, check_input_path, rounded


@dataclass
class FaceReport(Report):
    backend: str
    backend_reason: str
    detect_width: int  # the image is resized to this size first, as generate does
    detect_height: int
    faces: int
    found: bool
    kps: list[list[float]] | None = None  # left eye, right eye, nose in detect-size pixels
    bbox: list[float] | None = None  # x1, y1, x2, y2 of the largest face
    score: float | None = None


@dataclass
class ImageReport(Report):
    path: str
    format: str | None
    width: int
    height: int
    mode: str
    square: bool
    smaller_than_512: bool
    exif_orientation: int | None
    face: FaceReport
    crop: list[int] | None = None  # x, y, w, h that --crop auto would cut, in the upright photo's pixels
    would_crop: str | None = None  # the same in words, or why auto-crop would fail
    kind: str = "image"
    warnings: list[str] = field(default_factory=list)


def inspect_image(
    path: str | Path,
    backend: str = "auto",
    width: int = MODEL_SIZE,
    height: int = MODEL_SIZE,
    model_root: str | Path | None = None,
) -> ImageReport:
    """Size and mode of a reference photo, and the face ``generate`` would find in it.

    Detection runs like :func:`vexpress_cli.face.detect_reference_kps` (resize
    to ``width`` x ``height``, largest face), but no face is reported, not raised.
    """
    from vexpress_cli.face import largest_face, load_backend, resize_like_original

    path = check_input_path(path)
    fmt, size, mode, orientation, rgb = _read_image(path)
    detector = load_backend(backend, model_root, width, height)
    faces = detector.detect(resize_like_original(rgb, width, height))
    face = FaceReport(detector.name, getattr(detector, "reason", ""), width, height, len(faces), bool(faces))
    if faces:
        best = largest_face(faces)
        face.kps = [[rounded(x, 2), rounded(y, 2)] for x, y in best.kps3.tolist()]
        face.bbox = [rounded(value, 1) for value in best.bbox.tolist()]
        face.score = rounded(best.score, 4)
    report = ImageReport(
        path=str(path.resolve()), format=fmt, width=size[0], height=size[1], mode=mode, square=size[0] == size[1],
        smaller_than_512=min(size) < MODEL_SIZE, exif_orientation=orientation, face=face,
    )
    report.crop, report.would_crop = _auto_crop(rgb, backend, width, height, model_root)
    report.warnings.extend(_image_warnings(report))
    return report


def _read_image(path: Path) -> tuple[str | None, tuple[int, int], str, int | None, np.ndarray]:
    from vexpress_cli.media.images import as_rgb, opened_image, upright

    with opened_image(path) as image:
        orientation = image.getexif().get(0x0112)  # EXIF Orientation
        rgb = np.asarray(as_rgb(upright(image)))
        return image.format, (rgb.shape[1], rgb.shape[0]), image.mode, orientation, rgb


def _auto_crop(rgb: np.ndarray, backend: str, width: int, height: int,
               model_root: str | Path | None) -> tuple[list[int] | None, str]:
    """The box ``generate --crop auto`` would cut at ``width`` x ``height``, and the same in words."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.jobs.reference_photo import find_crop
    from vexpress_cli.settings.schema import GenerationSettings

    settings = GenerationSettings(width=width, height=height, face_backend=backend)
    try:
        box, _, found = find_crop(rgb, settings, Path(model_root) if model_root else None, "the photo")
    except InputError:
        return None, "no face: --crop auto would fail; pass --crop X,Y,W,H or --crop none"
    framed = " (already framed like V-Express's portraits: the whole photo)" if box.as_list() == [
        0, 0, rgb.shape[1], rgb.shape[0]] else ""
    faces = f"the largest of {found} faces" if found > 1 else "the face"
    return box.as_list(), f"would crop {box} around {faces}{framed}"


def _image_warnings(report: ImageReport) -> list[str]:
    warnings = []
    face = report.face
    if not face.found:
        warnings.append(f"No face found by {face.backend} at {face.detect_width}x{face.detect_height}: generate "
                        "needs a clearly visible, roughly frontal face (or keypoints passed by hand).")
    elif face.faces > 1:
        warnings.append(f"{face.faces} faces found; generate uses the largest.")
    aspect_out = face.detect_width / face.detect_height
    if abs(report.width / report.height - aspect_out) > 0.01:
        warnings.append(f"The image is {report.width}x{report.height}; generate --crop none would stretch it to "
                        f"{face.detect_width}x{face.detect_height} (aspect not kept); --crop auto cuts around "
                        "the face.")
    if report.smaller_than_512:
        warnings.append(f"The image is smaller than {MODEL_SIZE} px on a side; it will be upscaled and look soft.")
    if report.exif_orientation not in (None, 1):
        warnings.append(f"The photo has EXIF orientation {report.exif_orientation}: it is stored turned, and "
                        "vexpress turns it upright (the size and face above are upright). Other tools may not.")
    return warnings
