"""One steady, face-centred crop of a whole driving video (``vexpress extract --crop auto``).

The face is tracked through the video (every frame up to :data:`TRACK_SAMPLES` frames, evenly
spread beyond), and one box is placed around where it is on the whole: the median over time of
its eye midpoint and eye distance, put through :func:`vexpress_cli.face.framing.face_crop_box`,
the same geometry as the reference photo's crop. One box for the whole video, not one per frame:
the head's own motion stays in the track, only the camera's framing is taken out.

The crop's scale comes from the eye distance (``framing.EYE_DISTANCE_SHARE``), as the photo's does, and a
video already framed like V-Express's portraits is used whole, as such a photo is (``framing.framed_crop_box``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.face.base import Face, FaceBackend
from vexpress_cli.face.framing import CropBox, cut_crop, framed_crop_box
from vexpress_cli.face.tracking import follow_face
from vexpress_cli.media.images import MAX_IMAGE_PIXELS
from vexpress_cli.progress import ProgressCallback

# Frames looked at to place the box: all of a short video, evenly spread ones of a long one.
TRACK_SAMPLES = 150
# Tracking runs on frames scaled down to this long side (the box need not be pixel-exact; the
# keypoints are detected again in the crop).
TRACK_LONG_SIDE = 960
# A box given by hand may reach past the video's edge, but be at most this many times its width and height: every
# frame is padded to the whole box before it is resized, and such a box is already 15/16 padding. (An auto box is
# placed around the face, at its scale, and is not held to this.)
MAX_CROP_SCALE = 4


def check_crop_in_video(box: CropBox, video_width: int, video_height: int, video: object) -> CropBox:
    """A box given for the video: some of it shows the video, and it is not too large to pad each frame to."""
    if not box.overlaps(video_width, video_height):
        raise InputError(
            f"The crop box {box} lies outside the {video_width}x{video_height} video {video}.",
            why="The box is left, top, width, height in the video's pixels; none of it shows the video.",
            fix=f"Give a box within 0,0,{video_width},{video_height}, or use {parameter('crop', 'auto')}.",
        )
    largest = (MAX_CROP_SCALE * video_width, MAX_CROP_SCALE * video_height)
    if box.w > largest[0] or box.h > largest[1]:
        raise InputError(
            f"The crop box {box} is larger than {MAX_CROP_SCALE} times the {video_width}x{video_height} video "
            f"{video}.",
            why="Past the video's edge the box is filled by repeating the edge pixels, and each frame is padded to "
            "the whole box before it is resized: a box this large is almost all padding, and its frames would "
            "fill the memory.",
            fix=f"Give a box at most {largest[0]}x{largest[1]}, or use {parameter('crop', 'auto')}.",
        )
    if box.w * box.h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"The crop box {box} is {box.w * box.h / 1e6:.0f} megapixels, more than the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} a frame may be cut to.",
            why="Each frame is padded to the whole box before it is resized, and a photo may not be larger either: "
            "a box this large would fill the memory.",
            fix=f"Give a smaller box, or use {parameter('crop', 'auto')}.",
        )
    return box


def steady_crop_box(faces: list[Face], video_width: int, video_height: int, aspect: float) -> CropBox:
    """One box of ``aspect`` (width / height) around ``faces`` (the tracked face, one per frame looked at).

    The whole frame when the video is already framed like V-Express's portraits, as for a photo.
    """
    eyes = np.stack([face.kps[:2] for face in faces]).astype(np.float64)  # [N, 2 eyes, (x, y)]
    middle = np.median(eyes.mean(axis=1), axis=0)
    distance = float(np.median(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=-1)))
    median_box = np.median(np.stack([np.asarray(face.bbox, dtype=np.float64) for face in faces]), axis=0)
    both_eyes = [[middle[0] - distance / 2, middle[1]], [middle[0] + distance / 2, middle[1]]]
    return framed_crop_box(median_box, both_eyes, video_width, video_height, aspect)


def track_crop_box(info, detector: FaceBackend, aspect: float, progress: ProgressCallback | None = None) -> CropBox:
    """The steady crop of the video ``info`` (a VideoInfo): the face tracked, then one box around it.

    InputError when no face is found in any frame looked at.
    """
    from vexpress_cli.media.video_reader import iter_video_frames

    scale = min(1.0, TRACK_LONG_SIDE / max(info.width, info.height))
    size = (max(2, round(info.width * scale)), max(2, round(info.height * scale)))
    total = info.frame_count or None
    step = max(1, math.ceil(total / TRACK_SAMPLES)) if total else 1
    faces: list[Face] = []
    previous: Face | None = None
    for index, frame in enumerate(iter_video_frames(info, size=None if scale == 1 else size)):
        if index % step == 0:
            found = detector.detect(frame)
            if found:
                previous = follow_face(found, previous)
                faces.append(_scaled(previous, info.width / frame.shape[1], info.height / frame.shape[0]))
        if progress is not None:
            progress("tracking", index + 1, total)
    if not faces:
        raise InputError(
            f"No face was found in {info.path}, so no crop can be placed around it.",
            why=f"The {detector.name} face detector found no face in the frames it looked at.",
            fix=f"Give the crop yourself ({parameter('crop', 'X,Y,W,H')} in the video's pixels), or use "
            f"{parameter('crop', 'none')}.",
        )
    return steady_crop_box(faces, info.width, info.height, aspect)


def _scaled(face: Face, scale_x: float, scale_y: float) -> Face:
    factors = np.array([scale_x, scale_y], dtype=np.float32)
    return Face(face.bbox * np.tile(factors, 2), face.score, face.kps * factors)


def cropped_frames(info, box: CropBox, width: int, height: int) -> Iterator[np.ndarray]:
    """The video's frames cut to ``box`` and resized to ``width`` x ``height`` (edges repeated outside it)."""
    from vexpress_cli.media.video_reader import iter_video_frames

    for frame in iter_video_frames(info):
        yield cut_crop(frame, box, width, height)
