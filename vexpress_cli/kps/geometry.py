"""Face measurements on V-Kps keypoints (left eye, right eye, nose) used for retargeting.

All functions take points as ``[3, 2]`` (one frame) or ``[F, 3, 2]`` (a track)
arrays of (x, y) pixel coordinates and compute in float64.
"""

from __future__ import annotations

import numpy as np

LEFT_EYE, RIGHT_EYE, NOSE = 0, 1, 2


def eye_distance(points: np.ndarray) -> np.ndarray:
    """Distance between the two eyes (the face "width")."""
    points = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(points[..., LEFT_EYE, :] - points[..., RIGHT_EYE, :], axis=-1)


def nose_to_eye_line_distance(points: np.ndarray) -> np.ndarray:
    """Distance from the nose to the eye segment (the face "height").

    The nose is projected on the segment between the eyes; a projection past
    either eye is clamped to that eye, so a face turned far aside still gets a
    finite, sensible height.
    """
    points = np.asarray(points, dtype=np.float64)
    left, right, nose = points[..., LEFT_EYE, :], points[..., RIGHT_EYE, :], points[..., NOSE, :]
    eye_vector = right - left
    squared_length = np.sum(eye_vector**2, axis=-1)
    # Where the two eyes coincide every point of the "segment" is the left eye.
    safe_length = np.where(squared_length > 0, squared_length, 1.0)
    along = np.clip(np.sum((nose - left) * eye_vector, axis=-1) / safe_length, 0.0, 1.0)
    nearest = left + along[..., None] * eye_vector
    return np.linalg.norm(nose - nearest, axis=-1)


def eye_nose_ratio(points: np.ndarray) -> np.ndarray:
    """Left-eye-to-nose distance over right-eye-to-nose distance: about 1 for a frontal face.

    It measures head yaw, which is how retargeting finds the driving frame
    whose pose matches the reference photo best.
    """
    points = np.asarray(points, dtype=np.float64)
    nose = points[..., NOSE, :]
    left = np.linalg.norm(points[..., LEFT_EYE, :] - nose, axis=-1)
    right = np.linalg.norm(points[..., RIGHT_EYE, :] - nose, axis=-1)
    return left / (right + 1e-6)


def closest_pose_frame(reference: np.ndarray, track: np.ndarray) -> int:
    """Index of the frame of ``track`` whose eye-nose ratio is closest to the reference's.

    Ties go to the earliest frame.
    """
    deltas = np.abs(eye_nose_ratio(track) - eye_nose_ratio(reference))
    return int(np.argmin(deltas))
