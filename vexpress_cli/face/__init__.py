"""Face detection with keypoints: the V-Kps points (left eye, right eye, nose) of a face.

Two backends implement :class:`FaceBackend`:

``insightface``
    The reference: SCRFD ``det_10g.onnx`` of buffalo_l, the detector whose
    keypoints the original V-Express uses. Needs the model file.
``dlib``
    Offline: dlib's HOG detector and 68-point landmarks, about 2-4 px from the
    reference points at 512x512.

``auto`` picks insightface when its detector file is present, else dlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.face.base import Face, FaceBackend, largest_face
from vexpress_cli.face.insightface_backend import default_model_root, find_detector, missing_detector_error

__all__ = [
    "BACKEND_NAMES",
    "Face",
    "FaceBackend",
    "choose_backend",
    "default_model_root",
    "detect_reference_kps",
    "find_detector",
    "largest_face",
    "load_backend",
    "load_image_rgb",
    "resize_like_original",
]

BACKEND_NAMES = ("auto", "insightface", "dlib")


def choose_backend(name: str = "auto", model_root: Path | str | None = None) -> tuple[str, str]:
    """Resolve ``name`` to ``("insightface" | "dlib", reason)`` without loading anything."""
    chosen, reason, _ = _resolve_backend(name, model_root)
    return chosen, reason


def _resolve_backend(name: str, model_root: Path | str | None) -> tuple[str, str, Path | None]:
    """(backend, reason, the insightface detector file or None): the detector is looked up once."""
    if name not in BACKEND_NAMES:
        raise InputError(
            f"Unknown face backend '{name}'.",
            why=f"The backends are {', '.join(BACKEND_NAMES)}.",
            fix=f"Pass {parameter('face_backend', 'auto')}, insightface or dlib.",
        )
    if name == "dlib":
        return name, f"chosen with {parameter('face_backend')}", None
    detector = find_detector(model_root)
    if name == "insightface":
        return name, f"chosen with {parameter('face_backend')}", detector
    if detector is not None:
        return "insightface", f"auto: found {detector}", detector
    root = Path(model_root) if model_root is not None else default_model_root()
    return "dlib", f"auto: no det_10g.onnx under {root}", None


def load_backend(
    name: str = "auto",
    model_root: Path | str | None = None,
    width: int = 512,
    height: int = 512,
    providers: list[str] | None = None,
) -> FaceBackend:
    """A ready face backend for ``width`` x ``height`` images.

    ``backend.name`` says which one ``auto`` chose, ``backend.reason`` why.
    Raises ModelFolderError when insightface is asked for and its detector is missing.
    """
    chosen, reason, detector = _resolve_backend(name, model_root)
    if chosen == "insightface":
        from vexpress_cli.face.insightface_backend import InsightFaceBackend

        if detector is None:
            raise missing_detector_error(model_root)
        # The original's FaceAnalysis.prepare(det_size=(height, width)).
        backend = InsightFaceBackend(detector, input_size=(height, width), providers=providers)
    else:
        from vexpress_cli.face.dlib_backend import DlibBackend

        backend = DlibBackend()
    backend.reason = reason
    return backend


def load_image_rgb(image: str | Path | np.ndarray) -> np.ndarray:
    """An RGB uint8 ``H x W x 3`` array from a path or an array (RGB, RGBA or grey)."""
    if isinstance(image, np.ndarray):
        array = image
    else:
        from vexpress_cli.media.images import open_rgb_image

        array = np.asarray(open_rgb_image(image))
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise InputError(
            f"The image array has shape {array.shape} and type {array.dtype}.",
            why="A face image must be uint8 H x W x 3 (RGB).",
            fix="Convert it, e.g. numpy.asarray(PIL.Image.open(path).convert('RGB')).",
        )
    return np.ascontiguousarray(array[:, :, :3])


def resize_like_original(image_rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize`` to ``width`` x ``height`` (bilinear, aspect not kept), as V-Express does."""
    import cv2

    if image_rgb.shape[1] == width and image_rgb.shape[0] == height:
        return image_rgb
    return cv2.resize(image_rgb, (width, height))


def detect_reference_kps(
    image: str | Path | np.ndarray,
    width: int,
    height: int,
    backend: str | FaceBackend = "auto",
    model_root: Path | None = None,
    label: str | None = None,
) -> np.ndarray:
    """The V-Kps points (float32 ``[3, 2]``) of the face in a reference photo.

    The image (a path, or an RGB uint8 array) is resized to ``width`` x
    ``height`` first, like the original, and the points are in that resized
    image's pixels. With several faces the largest is used. No face raises
    InputError, naming the image by ``label`` (default: its path).
    """
    rgb = resize_like_original(load_image_rgb(image), width, height)
    detector = backend if not isinstance(backend, str) else load_backend(backend, model_root, width, height)
    faces = detector.detect(rgb)
    if not faces:
        label = label or (str(image) if not isinstance(image, np.ndarray) else "the reference image")
        raise InputError(
            f"No face was found in {label}.",
            why=f"The {detector.name} face detector found no face after resizing it to {width}x{height}.",
            fix="Use a photo with one clearly visible, roughly frontal face (at least ~80 px wide), "
            "or pass the reference keypoints yourself.",
        )
    return largest_face(faces).kps3.astype(np.float32)
