"""The reference face backend: insightface's SCRFD detector ``det_10g.onnx`` of buffalo_l.

The original V-Express runs ``FaceAnalysis`` (all five buffalo_l models) but
keeps only ``face.kps[:3]``, and those keypoints come from the detector alone:
the landmark, gender/age and recognition models never touch them. So only the
detector is loaded, through insightface's own ``model_zoo.get_model`` and
``SCRFD.detect``, with the settings ``FaceAnalysis.prepare(det_size=(height,
width))`` gives it in the original: ``input_size=(height, width)`` and
``det_thresh=0.5``. (SCRFD reads input_size as width, height, so the original
swaps them for non-square sizes; we keep that, to produce the same points.)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vexpress_cli.errors import ModelFolderError, parameter
from vexpress_cli.face.base import Face, check_rgb_image
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR

DETECTION_THRESHOLD = 0.5
# det_10g.onnx relative to an insightface model root (the folder holding models/).
DETECTOR_IN_ROOT = Path(*INSIGHTFACE_DETECTOR.parts[1:])
INSIGHTFACE_ROOT_IN_MODEL_DIR = Path(INSIGHTFACE_DETECTOR.parts[0])
DEFAULT_INSIGHTFACE_ROOT = Path("model_ckpts") / INSIGHTFACE_ROOT_IN_MODEL_DIR


def default_model_root() -> Path:
    """``$VEXPRESS_MODEL_DIR/insightface_models`` if that variable is set, else ``./model_ckpts/insightface_models``."""
    model_dir = os.environ.get("VEXPRESS_MODEL_DIR")
    if model_dir:
        return Path(model_dir).expanduser() / INSIGHTFACE_ROOT_IN_MODEL_DIR
    return DEFAULT_INSIGHTFACE_ROOT


def find_detector(model_root: Path | str | None = None) -> Path | None:
    """``det_10g.onnx`` under ``model_root``, or None.

    Accepts the insightface root (holding ``models/buffalo_l/``), the V-Express
    model folder (holding ``insightface_models/``), the ``buffalo_l`` folder
    itself, or the .onnx file.
    """
    root = Path(model_root).expanduser() if model_root is not None else default_model_root()
    if root.is_file() and root.suffix == ".onnx":
        return root
    for candidate in (
        root / DETECTOR_IN_ROOT,
        root / INSIGHTFACE_DETECTOR,
        root / DETECTOR_IN_ROOT.name,
        root / "buffalo_l" / DETECTOR_IN_ROOT.name,
    ):
        if candidate.is_file():
            return candidate
    return None


class MissingDetectorError(ModelFolderError):
    """det_10g.onnx is not under ``root``, where it was looked for."""

    root: Path


def missing_detector_error(model_root: Path | str | None, root_parameter: str | None = "model_root"
                           ) -> MissingDetectorError:
    """The error for a missing detector; ``root_parameter`` is the argument that gives another root, None for
    ``generate``, which looks only in its model folder's ``insightface_models/``."""
    root = Path(model_root).expanduser() if model_root is not None else default_model_root()
    model_folder = (root / "v-express").is_dir() or (root / INSIGHTFACE_ROOT_IN_MODEL_DIR).is_dir()
    looked_in = root / INSIGHTFACE_ROOT_IN_MODEL_DIR if model_folder else root
    expected = root / (INSIGHTFACE_DETECTOR if model_folder else DETECTOR_IN_ROOT)
    other_root = f", or pass {parameter(root_parameter)}" if root_parameter else ""
    error = MissingDetectorError(
        f"The insightface face detector was not found under {looked_in}.",
        why=f"The insightface face backend needs the SCRFD detector of buffalo_l, expected at {expected}.",
        fix="`vexpress models download` fetches it with the model (17 MB); or get buffalo_l.zip from "
        f"https://github.com/deepinsight/insightface/releases and put its det_10g.onnx at "
        f"{expected}{other_root}; or use {parameter('face_backend', 'dlib')}, which needs no download.",
    )
    error.root = root
    return error


def available_providers() -> list[str]:
    """CUDA when onnxruntime has it, else CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in available] or available


class InsightFaceBackend:
    """SCRFD ``det_10g`` run exactly as the original's FaceAnalysis runs it."""

    name = "insightface"

    def __init__(
        self,
        detector_path: Path | str,
        input_size: tuple[int, int] = (512, 512),
        det_thresh: float = DETECTION_THRESHOLD,
        providers: list[str] | None = None,
    ):
        detector_path = Path(detector_path)
        if not detector_path.is_file():
            raise ModelFolderError(
                f"The face detector {detector_path} does not exist.",
                why="The insightface face backend needs the SCRFD detector det_10g.onnx of buffalo_l.",
                fix=f"Check the path, or use {parameter('face_backend', 'dlib')}, which needs no download.",
            )
        self.detector_path = detector_path
        self.detector = _load_scrfd(detector_path, providers or available_providers())
        self.detector.prepare(0, input_size=tuple(input_size), det_thresh=det_thresh)
        self.description = f"insightface SCRFD {detector_path.name}"

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        image_bgr = np.ascontiguousarray(check_rgb_image(image_rgb)[:, :, ::-1])
        boxes, keypoints = self.detector.detect(image_bgr, max_num=0, metric="default")
        if keypoints is None:
            raise ModelFolderError(
                f"The face detector {self.detector_path} gives no keypoints.",
                why="It is a SCRFD model without the keypoint head; V-Express needs the eye and nose points.",
                fix=f"Use det_10g.onnx of buffalo_l, or {parameter('face_backend', 'dlib')}.",
            )
        return [Face(bbox=box[:4], score=box[4], kps=points) for box, points in zip(boxes, keypoints)]


def _load_scrfd(path: Path, providers: list[str]):
    from insightface.model_zoo import get_model
    from insightface.model_zoo.scrfd import SCRFD

    try:
        model = get_model(str(path), providers=providers)
    except Exception as error:  # onnx/onnxruntime raise many types for a broken file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFolderError(
            f"The face detector {path} could not be loaded.",
            why=f"onnxruntime failed to read it: {reason}.",
            fix=f"The file may be truncated; download buffalo_l again, or use {parameter('face_backend', 'dlib')}.",
        ) from None
    if not isinstance(model, SCRFD):
        raise ModelFolderError(
            f"{path} is not a face detector.",
            why=f"insightface loads it as {type(model).__name__ if model is not None else 'an unknown model'}, "
            "not as the SCRFD detector.",
            fix=f"Point {parameter('model_root')} at the folder holding models/buffalo_l/det_10g.onnx, or use "
            f"{parameter('face_backend', 'dlib')}.",
        )
    return model
