"""The four retarget strategies of the original V-Express, as plain functions.

``driving`` is always already fitted to ``num_frames`` frames by the caller
(see vexpress_cli.kps.retargeting.retarget_track).
"""

from __future__ import annotations

import numpy as np

from vexpress_cli.errors import InputError
from vexpress_cli.kps.geometry import NOSE, closest_pose_frame, eye_distance, nose_to_eye_line_distance

# Below this many pixels a face measurement is treated as zero (no usable scale).
DEGENERATE_SIZE = 1e-3


def fix_face(reference: np.ndarray, driving: np.ndarray | None, num_frames: int) -> np.ndarray:
    """The reference keypoints in every frame: the head stays still, only the mouth moves."""
    return np.repeat(np.asarray(reference, dtype=np.float32)[None], num_frames, axis=0)


def no_retarget(reference: np.ndarray, driving: np.ndarray, num_frames: int) -> np.ndarray:
    """The driving track as is: right when it was extracted from a video of the same person and framing."""
    return np.asarray(driving, dtype=np.float32).copy()


def offset_retarget(reference: np.ndarray, driving: np.ndarray, num_frames: int) -> np.ndarray:
    """The reference face, moved by half of the driving nose's movement since the first frame, mirrored.

    The face keeps the reference's shape and size; only its position moves with
    the driving head, with the movement scaled to the reference face's size,
    halved to keep it calm, and in the opposite direction: the original
    subtracts the nose's movement, and this keeps the original's videos.
    """
    scaled = _scaled_to_reference(reference, driving)
    nose_movement = scaled[:, NOSE, :] - scaled[0, NOSE, :]
    moved = np.asarray(reference, dtype=np.float64)[None] - nose_movement[:, None, :] / 2.0
    return moved.astype(np.float32)


def naive_retarget(reference: np.ndarray, driving: np.ndarray, num_frames: int) -> np.ndarray:
    """The driving track scaled to the reference face's size, moved so its first nose is on the reference nose."""
    scaled = _scaled_to_reference(reference, driving)
    shift = scaled[0, NOSE, :] - np.asarray(reference, dtype=np.float64)[NOSE]
    return (scaled - shift).astype(np.float32)


def face_scale(reference: np.ndarray, driving: np.ndarray) -> tuple[float, float]:
    """Horizontal and vertical factors that make the driving face as big as the reference face.

    Width is the eye distance, height the nose's distance from the eye line.
    Both are measured on the driving frame whose head pose (left/right
    eye-nose distance ratio) is closest to the reference's, so a turned head
    does not distort the measure. (The original V-Express code meant to do the
    same, but a slip in its search loop usually picks a later, less similar
    frame; see docs/plugins.md.)
    """
    frame = closest_pose_frame(reference, driving)
    widths = float(eye_distance(reference)), float(eye_distance(driving[frame]))
    heights = float(nose_to_eye_line_distance(reference)), float(nose_to_eye_line_distance(driving[frame]))
    for label, (reference_size, driving_size) in (("eye distance", widths), ("nose-to-eye-line distance", heights)):
        if reference_size < DEGENERATE_SIZE or driving_size < DEGENERATE_SIZE:
            which = "reference" if reference_size < DEGENERATE_SIZE else f"driving frame {frame}"
            raise InputError(
                f"Cannot scale the driving face to the reference face: the {label} of the {which} is zero.",
                why="The eyes and nose of that face coincide or are in a line, so its size cannot be measured.",
                fix="Check the keypoints (eyes, nose order and values), or use --strategy no_retarget or fix_face.",
            )
    return widths[0] / widths[1], heights[0] / heights[1]


def _scaled_to_reference(reference: np.ndarray, driving: np.ndarray) -> np.ndarray:
    scale_x, scale_y = face_scale(reference, driving)
    return np.asarray(driving, dtype=np.float64) * np.array([scale_x, scale_y])
