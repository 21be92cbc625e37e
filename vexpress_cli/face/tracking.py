"""Following one face through a video, and filling the frames where it was not found."""

from __future__ import annotations

import numpy as np

from vexpress_cli.face.base import Face, largest_face


def follow_face(faces: list[Face], previous: Face | None) -> Face:
    """The face to keep among ``faces`` (not empty).

    With no earlier face, the largest; otherwise the one whose box centre is
    nearest the last kept face's, so a second person walking in does not
    make the track jump.
    """
    if previous is None:
        return largest_face(faces)
    return min(faces, key=lambda face: float(np.linalg.norm(face.center - previous.center)))


# How many frames a face seen beside the followed one is remembered without being seen beside it again (about a
# second): long enough to bridge the followed face missed for a moment, short enough for a cut or a stray box.
OTHER_FACE_MEMORY = 25


class FaceFollower:
    """:func:`follow_face` from frame to frame, which also remembers the faces seen beside the followed one: a frame
    where only one of those is found (the detector missed the followed face) gives no face, instead of the track
    jumping to the other person."""

    def __init__(self) -> None:
        self.previous: Face | None = None
        self.others: list[Face] = []  # the faces last seen beside the followed one
        self.frames_since_others = 0

    def pick(self, faces: list[Face]) -> Face | None:
        """The followed face among ``faces`` (not empty), or None when the only candidate is another's."""
        chosen = follow_face(faces, self.previous)
        self.frames_since_others += 1
        if self.frames_since_others > OTHER_FACE_MEMORY:
            self.others = []
        if self.previous is not None and self._is_another(chosen):
            return None
        if len(faces) > 1:
            self.others, self.frames_since_others = [face for face in faces if face is not chosen], 0
        self.previous = chosen
        return chosen

    def _is_another(self, face: Face) -> bool:
        """Whether ``face`` is far from the followed face's last place (more than its width: no move between two
        frames) and where one of the other faces was (within that face's width)."""
        if _distance(face, self.previous) <= _width(self.previous):
            return False
        return any(_distance(face, other) <= _width(other) for other in self.others)


def _distance(face: Face, other: Face) -> float:
    return float(np.linalg.norm(face.center - other.center))


def _width(face: Face) -> float:
    return float(face.bbox[2] - face.bbox[0])


def fill_missing_frames(points: list[np.ndarray | None]) -> np.ndarray:
    """Stack per-frame ``[3, 2]`` points into float32 ``[F, 3, 2]``, filling ``None`` frames.

    A gap between two found frames is interpolated linearly, point by point;
    frames before the first or after the last found frame repeat the nearest
    one. At least one frame must have points.
    """
    found = [index for index, value in enumerate(points) if value is not None]
    if not found:
        raise ValueError("no frame has keypoints")
    known = np.stack([points[index] for index in found]).astype(np.float64).reshape(len(found), -1)
    frames = np.arange(len(points))
    # np.interp holds the end values beyond the first/last known frame.
    filled = np.stack([np.interp(frames, found, known[:, column]) for column in range(known.shape[1])], axis=1)
    return filled.reshape(len(points), 3, 2).astype(np.float32)
