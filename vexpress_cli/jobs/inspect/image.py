"""The report on a reference photo: size, mode, EXIF orientation, the box ``generate`` would cut (``crop``:
auto around the face, none, or a box) and the face generate would find in what it cuts (the photo is
read upright and framed as generate reads and frames it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vexpress_cli.errors import parameter
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR
from vexpress_cli.input_files import optional_folder
from vexpress_cli.jobs.inspect.report import MODEL_SIZE, Report, check_input_path, rounded
from vexpress_cli.jobs.reference_photo import MIN_ADVISED_SIZE


@dataclass
class FaceReport(Report):
    backend: str
    backend_reason: str
    detect_width: int  # generate's reference image: the crop (or the stretched photo) resized to this size
    detect_height: int
    faces: int
    found: bool
    detected_in: str = ""  # what the faces were looked for in, in words: the crop, or the whole photo
    kps: list[list[float]] | None = None  # left eye, right eye, nose in detect-size pixels
    bbox: list[float] | None = None  # x1, y1, x2, y2 of the face generate uses
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
    colour_profile: str | None = None  # the embedded ICC profile's name; one that is not sRGB is converted to sRGB
    crop: list[int] | None = None  # x, y, w, h that generate would cut, in the upright photo's pixels
    would_crop: str | None = None  # the same in words, or why auto-crop would fail
    kind: str = "image"
    warnings: list[str] = field(default_factory=list)


def inspect_image(
    path: str | Path,
    backend: str = "auto",
    width: int = MODEL_SIZE,
    height: int = MODEL_SIZE,
    model_root: str | Path | None = None,
    crop: str = "auto",
    face_index: int = 0,
) -> ImageReport:
    """Size and mode of a reference photo, and the face ``generate`` would find in it.

    The photo is framed like ``generate`` frames it (``crop``: auto cuts around the face, none
    stretches the whole photo, X,Y,W,H cuts that box) at ``width`` x ``height``, and the face is
    looked for there, as generate looks for it. No face is reported, not raised.
    """
    from vexpress_cli.media.colour_profiles import colour_note
    from vexpress_cli.media.images import read_photo
    from vexpress_cli.settings.model_lookup import face_model_root

    path = check_input_path(path)
    photo = read_photo(path)
    rgb, profile = np.asarray(photo.image), photo.colour_profile
    settings = _settings(backend, width, height, crop, face_index)
    root = face_model_root(optional_folder(model_root, "model_root", INSIGHTFACE_DETECTOR.suffix), settings.face_backend)
    size = photo.image.size
    report = ImageReport(
        path=str(path.resolve()), format=photo.stored_format, width=size[0], height=size[1], mode=photo.stored_mode,
        square=size[0] == size[1], smaller_than_512=min(size) < MIN_ADVISED_SIZE,
        exif_orientation=photo.exif_orientation,
        face=None, colour_profile=profile.name if profile else None,
    )
    reference = _generation_reference(path, photo, settings, root)
    if reference is None:  # --crop auto finds no face in the photo: generate would stop there
        report.face = _no_face_for_auto_crop(settings, root)
        report.would_crop = (f"no face: {parameter('crop', 'auto')} would fail; pass {parameter('crop', 'X,Y,W,H')} "
                             f"or {parameter('crop', 'none')}")
    else:
        report.crop, report.would_crop = reference.crop_list, _framing_words(reference, rgb, settings)
        report.face = _face_report(reference, rgb, settings, root)
        report.warnings.extend(reference.warnings)
    report.warnings.extend(_image_warnings(report, settings.crop, framed=reference is not None))
    if photo.animation_note:
        report.warnings.append(photo.animation_note)
    if profile and profile.reason:
        report.warnings.append(colour_note(profile, path, "photo"))
    return report


def _settings(backend: str, width: int, height: int, crop: str, face_index: int):
    from vexpress_cli.settings.schema import GenerationSettings, checked_setting

    for name, value in (("face_backend", backend), ("crop", crop), ("face_index", face_index)):
        checked_setting(name, value)
    return GenerationSettings(width=width, height=height, face_backend=backend, crop=crop, face_index=face_index)


def _generation_reference(path: Path, photo, settings, model_root: Path | None):
    """generate's reference image (read, upright and cut as ``settings`` say), or None when auto-crop finds no face.

    Any other problem (a box outside the photo, a face index past the faces found) is refused as generate refuses
    it."""
    from vexpress_cli.jobs.reference_photo import NoFaceFound, read_reference_photo

    try:
        return read_reference_photo(path, settings, face_model_root=model_root, read=photo)
    except NoFaceFound:
        return None


def _framing_words(reference, rgb: np.ndarray, settings) -> str:
    size = f"{settings.width}x{settings.height}"
    if reference.crop is None:
        return f"none: the whole photo, stretched to {size}"
    if settings.crop != "auto":
        return f"would crop {reference.crop} (the box given) to {size}"
    framed = " (already framed like V-Express's portraits: the whole photo)" if reference.crop_list == [
        0, 0, rgb.shape[1], rgb.shape[0]] else ""
    found = reference.faces_found
    faces = f"face {settings.face_index} (0 is the largest) of {found} faces" if found > 1 else "the face"
    return f"would crop {reference.crop} around {faces}{framed}"


def _face_report(reference, rgb: np.ndarray, settings, model_root: Path | None) -> FaceReport:
    """The faces in generate's reference image, and the one generate uses (auto-crop's, else the largest)."""
    from vexpress_cli.face import largest_face, load_backend, resize_like_original
    from vexpress_cli.jobs.reference_photo import same_face

    detector = load_backend(settings.face_backend, model_root, settings.width, settings.height)
    # generate looks for the face in the crop, or (crop none) in the photo resized like the original does
    image = (resize_like_original(rgb, settings.width, settings.height) if reference.crop is None
             else np.asarray(reference.image))
    faces = detector.detect(image)
    size = f"{settings.width}x{settings.height}"
    where = f"the whole photo stretched to {size}" if reference.crop is None else f"the crop {reference.crop} at {size}"
    face = FaceReport(detector.name, getattr(detector, "reason", ""), settings.width, settings.height, len(faces),
                      bool(faces), detected_in=where)
    best = same_face(faces, reference.face_kps) if reference.face_kps is not None else None
    best = best or (largest_face(faces) if faces else None)
    if best is not None:
        face.kps = [[rounded(x, 2), rounded(y, 2)] for x, y in best.kps3.tolist()]
        face.bbox = [rounded(value, 1) for value in best.bbox.tolist()]
        face.score = rounded(best.score, 4)
    elif reference.face_kps is not None:  # generate then uses auto-crop's points, found in the whole photo
        face.found = True
        face.kps = [[rounded(x, 2), rounded(y, 2)] for x, y in reference.face_kps.tolist()]
    return face


def _no_face_for_auto_crop(settings, model_root: Path | None) -> FaceReport:
    from vexpress_cli.face import load_backend

    detector = load_backend(settings.face_backend, model_root, settings.width, settings.height)
    return FaceReport(detector.name, getattr(detector, "reason", ""), settings.width, settings.height, 0, False,
                      detected_in=f"the whole photo ({parameter('crop', 'auto')} looks for the face there first)")


def _image_warnings(report: ImageReport, crop: str, framed: bool) -> list[str]:
    """inspect's own warnings; once the photo is framed, generate's (stretched, small, tight) come with it."""
    warnings = []
    face = report.face
    if not face.found:
        warnings.append(f"No face found by {face.backend} in {face.detected_in}: generate needs a clearly visible, "
                        "roughly frontal face (or keypoints passed by hand).")
    elif face.faces > 1:
        warnings.append(f"{face.faces} faces found in {face.detected_in}; generate uses "
                        + ("the one auto-crop framed." if crop == "auto" else "the largest."))
    stretched = abs(report.width / report.height - face.detect_width / face.detect_height) > 0.01
    if stretched and not framed:
        warnings.append(f"The image is {report.width}x{report.height}; {parameter('crop', 'none')} would stretch it "
                        f"to {face.detect_width}x{face.detect_height} (aspect not kept); {parameter('crop', 'auto')} "
                        "cuts around the face.")
    if report.smaller_than_512 and not framed:  # framed, generate's own warnings say it
        warnings.append(f"The image is {report.width}x{report.height}: its short side is under {MIN_ADVISED_SIZE}px; "
                        "expect a blurry face.")
    if report.exif_orientation not in (None, 1):
        warnings.append(f"The photo has EXIF orientation {report.exif_orientation}: it is stored turned, and "
                        "vexpress turns it upright (the size and face above are upright). Other tools may not.")
    return warnings
