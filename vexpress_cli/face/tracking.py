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


class FaceFollower:
    """:func:`follow_face` from frame to frame, which also remembers the other faces seen beside the followed one: a
    frame where only one of those is found (the detector missed the followed face) gives no face, instead of the
    track jumping to the other person for the rest of the video."""

    def __init__(self) -> None:
        self.previous: Face | None = None
        self.others: list[np.ndarray] = []  # box centres of the faces last seen beside the followed one

    def pick(self, faces: list[Face]) -> Face | None:
        """The followed face among ``faces`` (not empty), or None when every one of them is another's."""
        chosen = follow_face(faces, self.previous)
        if self.previous is not None and self._is_another(chosen):
            return None
        if len(faces) > 1:
            self.others = [face.center for face in faces if face is not chosen]
        self.previous = chosen
        return chosen

    def _is_another(self, face: Face) -> bool:
        """Whether ``face`` is nearer one of the other faces seen before than the followed face's last place."""
        from_followed = float(np.linalg.norm(face.center - self.previous.center))
        return any(float(np.linalg.norm(face.center - other)) < from_followed for other in self.others)


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
