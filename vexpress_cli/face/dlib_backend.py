"""Offline face backend: dlib's HOG face detector and 68-point shape predictor.

Needs no download: the predictor ships in the ``face_recognition_models``
package. The three V-Kps points are derived from the 68 landmarks (iBUG 300-W
numbering, 0-based):

* image-left eye: centroid of its four eyelid points 37, 38, 40, 41
* image-right eye: centroid of 43, 44, 46, 47
* nose: the nose tip, point 30

These were chosen by measurement against the kps files that ship with
V-Express (made with insightface's SCRFD): on the AOC and tys samples at
512x512 they are 1.6-3.7 px off per point, mean over frames. Eye centroids over
all six contour points were 0.3-0.5 px worse (the corners pull the centre
down), and every other nose choice (mean of 30-35, 33, ...) was 3-20 px worse.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from vexpress_cli.errors import VExpressError, parameter
from vexpress_cli.face.base import Face, check_rgb_image

LEFT_EYE_LIDS = [37, 38, 40, 41]
RIGHT_EYE_LIDS = [43, 44, 46, 47]
NOSE_TIP = 30
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def predictor_path() -> Path:
    """Where face_recognition_models keeps the 68-point predictor.

    Located without importing the package: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "models" / PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    raise VExpressError(
        "The dlib face backend cannot find its 68-point landmark model.",
        why=f"{PREDICTOR_FILE} ships in the face_recognition_models package, which is "
        + ("not installed." if spec is None else "installed without that file."),
        fix=f"Install it with `pip install face_recognition_models`, or use {parameter('face_backend', 'insightface')}.",
    )


def keypoints_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Left eye, right eye, nose (float32 ``[3, 2]``) from 68 dlib landmarks ``[68, 2]``."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    return np.stack(
        [
            landmarks[LEFT_EYE_LIDS].mean(axis=0),
            landmarks[RIGHT_EYE_LIDS].mean(axis=0),
            landmarks[NOSE_TIP],
        ]
    ).astype(np.float32)


@functools.cache
def _dlib_models():
    """The detector and the predictor, loaded once per process (the predictor file is 100 MB)."""
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


class DlibBackend:
    """HOG detector + 68 landmarks; about 15-20 ms per 512x512 frame on one CPU core.

    When nothing is found at the image's own scale, the detector runs once more
    on a 2x upsampled image (``upsample_retries``), which finds faces down to
    about 40 px wide at roughly four times the cost.
    """

    name = "dlib"

    def __init__(self, upsample_retries: int = 1):
        self.description = "dlib HOG detector + 68 landmarks"
        self.upsample_retries = upsample_retries
        self._detector, self._predictor = _dlib_models()

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        image = check_rgb_image(image_rgb)
        for upsample in range(self.upsample_retries + 1):
            rectangles, scores, _ = self._detector.run(image, upsample, 0.0)
            if len(rectangles):
                break
        return [self._face(image, rectangle, score) for rectangle, score in zip(rectangles, scores)]

    def _face(self, image: np.ndarray, rectangle, score: float) -> Face:
        shape = self._predictor(image, rectangle)
        landmarks = np.array([[point.x, point.y] for point in shape.parts()], dtype=np.float32)
        bbox = [rectangle.left(), rectangle.top(), rectangle.right(), rectangle.bottom()]
        return Face(bbox=bbox, score=score, kps=keypoints_from_landmarks(landmarks))
