"""Extract a V-Kps track (left eye, right eye, nose per frame) from a video.

Like the original ``scripts/extract_kps_sequence_and_audio.py``, every frame
is resized with ``cv2.resize`` to ``width`` x ``height`` before detection and
the points are in that frame size. With ``crop`` (``"auto"`` or a
:class:`~vexpress_cli.face.framing.CropBox`) every frame is first cut to one
steady box around the face (:mod:`vexpress_cli.kps.driving_crop`), so the
points are in the face-centred frame a cropped reference photo uses. Unlike it, a frame without exactly one face
does not abort the run: with several faces one face is followed through the
video, and frames without a face are interpolated from their neighbours and
listed in the report (``strict=True`` restores the all-or-nothing behaviour).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.face import FaceBackend, load_backend
from vexpress_cli.face.framing import CropBox
from vexpress_cli.face.tracking import FaceFollower, fill_missing_frames
from vexpress_cli.kps.limits import check_video_fps
from vexpress_cli.media.ffmpeg import Probe
from vexpress_cli.progress import ProgressCallback



@dataclass
class ExtractReport:
    """What happened while extracting: counts, the frames that needed help, speed."""

    video: Path
    frames: int
    fps: Fraction | None
    width: int
    height: int
    backend: str
    missing_frames: list[int] = field(default_factory=list)
    multi_face_frames: list[int] = field(default_factory=list)
    # Frames where only a face seen beside the followed one was found (counted in missing_frames too).
    other_face_frames: list[int] = field(default_factory=list)
    seconds: float = 0.0
    crop: CropBox | None = None  # the box cut from every frame, in the video's pixels
    video_size: tuple[int, int] | None = None  # the video's own width and height
    ends_early: str | None = None  # VideoInfo.ends_early: the file may be cut short
    variable_rate: bool = False  # the frames were taken at the average rate by their timestamps

    @property
    def missing_count(self) -> int:
        return len(self.missing_frames)

    @property
    def multi_face_count(self) -> int:
        return len(self.multi_face_frames)

    @property
    def frames_per_second(self) -> float:
        """Processing speed (not the video's frame rate)."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def extract_kps_sequence(
    video_path: str | Path | Probe,
    backend: str | FaceBackend = "auto",
    width: int = 512,
    height: int = 512,
    strict: bool = False,
    progress: ProgressCallback | None = None,
    model_root: Path | str | None = None,
    crop: str | CropBox | None = None,
) -> tuple[np.ndarray, ExtractReport]:
    """Keypoints of the video's face in every frame: float32 ``[F, 3, 2]`` and a report.

    ``video_path`` may also be the video's :func:`~vexpress_cli.media.ffmpeg.probe`
    result, so a caller that probed it already does not run ffmpeg again.
    ``backend`` is a backend name (``auto``, ``insightface``, ``dlib``; see
    :func:`vexpress_cli.face.load_backend`) or a ready backend. ``progress`` is
    called after each frame as ``progress("faces", frames done, total frames or None)``
    (and ``"tracking"`` for the first pass of ``crop="auto"``). ``crop``: None (the
    whole frame), ``"auto"`` or a CropBox; the report says which box was cut.
    Raises InputError when no frame has a face, or, with ``strict``, at the
    first frame without exactly one face.
    """
    from vexpress_cli.face.framing import parse_crop
    from vexpress_cli.kps.driving_crop import check_crop_in_video, cropped_frames, track_crop_box
    from vexpress_cli.media.video_reader import iter_video_frames, video_info

    info = video_info(video_path if isinstance(video_path, Probe) else Path(video_path))
    video_path = info.path
    check_video_fps(info.fps, video_path)
    detector = load_backend(backend, model_root, width, height) if isinstance(backend, str) else backend
    total = info.frame_count or None
    started = time.perf_counter()
    crop = asked = parse_crop(crop)
    if crop == "auto":
        crop = track_crop_box(info, detector, width / height, progress)  # around the face: it shows the video
    elif crop is not None:
        check_crop_in_video(crop, info.width, info.height, video_path)

    # iter_video_frames resizes with cv2.resize (bilinear), as the original did.
    frames = iter_video_frames(info, size=(width, height)) if crop is None else cropped_frames(info, crop, width, height)
    points, missing, multi, others_only = _detect_each_frame(frames, detector, strict, video_path, progress,
                                                             total)
    if not points:
        raise InputError(
            f"No frames could be read from {video_path}.",
            why="The video stream is empty.",
            fix="Check that the file plays in a video player, or re-encode it with ffmpeg.",
        )
    if len(missing) == len(points):
        raise InputError(
            f"No face was found in any of the {len(points)} frames of {video_path}.",
            why=f"The {detector.name} face detector found nothing after resizing frames to {width}x{height}.",
            fix=_no_face_fix(asked, detector.name, model_root),
        )
    report = ExtractReport(
        video=video_path,
        frames=len(points),
        fps=info.fps,
        width=width,
        height=height,
        backend=detector.name,
        missing_frames=missing,
        multi_face_frames=multi,
        other_face_frames=others_only,
        seconds=time.perf_counter() - started,
        crop=crop,
        video_size=(info.width, info.height),
        ends_early=info.ends_early,
        variable_rate=info.variable_rate,
    )
    return fill_missing_frames(points), report


def _detect_each_frame(frames, detector, strict: bool, video_path: Path, progress: ProgressCallback | None,
                       total: int | None) -> tuple[list[np.ndarray | None], list[int], list[int], list[int]]:
    """The face's points in each frame (None where there is none), following one face from frame to frame; the
    frames without it, those with several faces, and those where only another person's face was found."""
    points: list[np.ndarray | None] = []
    missing: list[int] = []
    multi: list[int] = []
    others_only: list[int] = []
    follower = FaceFollower()
    for index, frame in enumerate(frames):
        faces = detector.detect(frame)
        if len(faces) != 1 and strict:
            raise _strict_error(video_path, index, len(faces))
        if len(faces) > 1:
            multi.append(index)
        followed = follower.pick(faces) if faces else None
        if faces and followed is None:
            others_only.append(index)
        if followed is not None:
            points.append(followed.kps3)
        else:
            missing.append(index)
            points.append(None)
        if progress is not None:
            progress("faces", index + 1, total)
    return points, missing, multi, others_only


def _strict_error(video_path: Path, index: int, face_count: int) -> InputError:
    found = "no face" if face_count == 0 else f"{face_count} faces"
    return InputError(
        f"Frame {index} of {video_path} has {found}.",
        why="With --strict every frame must show exactly one face.",
        fix="Drop --strict to follow one face and interpolate frames without a face, or trim the video.",
    )


def _no_face_fix(asked, backend: str, model_root) -> str:
    """What to try when no frame has a face: the framing first, then the video, then the other detector (insightface
    only when its det_10g.onnx is there: offered without it, it failed with 'not found')."""
    from vexpress_cli.face import find_detector

    if asked is None:
        framing = f"For a wide shot, use {parameter('crop', 'auto')}: it finds the face in the whole frame first. "
    elif asked == "auto":
        framing = ""
    else:
        framing = (f"Check that the box {parameter('crop', ','.join(map(str, asked.as_list())))} holds the face, "
                   f"or use {parameter('crop', 'auto')}. ")
    detector = (f", or try {parameter('face_backend', 'insightface')}"
                if backend == "dlib" and find_detector(model_root) is not None else "")
    return f"{framing}Use a video with a clearly visible, roughly frontal face{detector}."
