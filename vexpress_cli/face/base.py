"""What every face backend returns, and the small protocol a backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Face:
    """One detected face in image pixel coordinates.

    ``kps`` has 5 points (SCRFD: left eye, right eye, nose, left and right mouth
    corner) or 3 (dlib: left eye, right eye, nose). "Left" means image-left,
    as in V-Express. Only the first three are used for V-Kps.
    """

    bbox: np.ndarray  # [4] float32: x1, y1, x2, y2
    score: float
    kps: np.ndarray  # [5, 2] or [3, 2] float32

    def __post_init__(self) -> None:
        self.bbox = np.asarray(self.bbox, dtype=np.float32).reshape(4)
        self.kps = np.asarray(self.kps, dtype=np.float32).reshape(-1, 2)
        self.score = float(self.score)

    @property
    def kps3(self) -> np.ndarray:
        """Left eye, right eye, nose: the V-Kps points, float32 ``[3, 2]``."""
        return self.kps[:3]

    @property
    def area(self) -> float:
        width, height = self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]
        return float(max(width, 0.0) * max(height, 0.0))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2], dtype=np.float32)


@runtime_checkable
class FaceBackend(Protocol):
    """A face detector with keypoints.

    ``name`` is "insightface" or "dlib" (stored in kps files); ``description``
    says in a few words which model runs (for the CLI).
    """

    name: str
    description: str

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 ``H x W x 3`` image."""
        ...


def largest_face(faces: list[Face]) -> Face:
    """The face with the largest bounding box (the subject, in a portrait)."""
    return max(faces, key=lambda face: face.area)


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a contiguous uint8 ``H x W x 3`` array, or raise ValueError."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape H x W x 3, got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)
