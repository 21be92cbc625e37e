"""The extract job: the keypoint track (left eye, right eye, nose per frame) of a driving video,
and optionally its audio track, written together or not at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vexpress_cli.errors import InputError, checked_switch, messages, parameter, python_name, spell_parameters
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR
from vexpress_cli.input_files import as_path, optional_folder, optional_path, require_regular_file
from vexpress_cli.kps.limits import checked_frame_side
from vexpress_cli.progress import ProgressCallback, checked_callback
from vexpress_cli.settings.schema import checked_setting
from vexpress_cli.settings.user_config import your_defaults
from vexpress_cli.wording import frame_numbers

PathLike = str | Path


@dataclass
class ExtractResult:
    """What the extract job found and wrote."""

    kps_out: Path
    audio_out: Path | None
    report: Any  # vexpress_cli.kps.from_video.ExtractReport
    backend_description: str
    backend_reason: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what may make the track wrong

    def __post_init__(self) -> None:
        self.notes, self.warnings = messages(self.notes), messages(self.warnings)

    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict[str, Any]:
        """Plain JSON types; settings named in the notes read as ``spell`` says (Python names, or flags)."""
        report = self.report
        return {
            "video": str(report.video), "kps_out": str(self.kps_out),
            "audio_out": str(self.audio_out) if self.audio_out else None,
            "frames": report.frames, "fps": float(report.fps) if report.fps else None,
            "width": report.width, "height": report.height, "backend": report.backend,
            "backend_reason": spell_parameters(self.backend_reason, spell),
            "missing_frames": report.missing_frames, "multi_face_frames": report.multi_face_frames,
            "other_face_frames": report.other_face_frames,
            "seconds": round(report.seconds, 3),
            "crop": report.crop.as_list() if report.crop else None,
            "video_size": list(report.video_size) if report.video_size else None,
            "warnings": [spell_parameters(warning, spell) for warning in self.warnings],
            "notes": [spell_parameters(note, spell) for note in self.notes],
        }


VIDEO_KIND = "a driving video (mp4, mov, mkv, webm, ...)"


def default_kps_path(video: Path) -> Path:
    return video.with_name(f"{video.stem}_kps.pth")


def extract(video: PathLike, kps_out: PathLike | None = None, audio_out: PathLike | None = None, *,
            width: int | None = None, height: int | None = None,
            face_backend: str | None = None, model_root: PathLike | None = None,
            strict: bool = False, overwrite: bool = False, progress: ProgressCallback | None = None,
            crop: Any = "none") -> ExtractResult:
    """Extract the V-Kps track of ``video`` into ``kps_out`` (default: ``STEM_kps.pth`` beside it).

    ``kps_out`` is ``.pth`` (a tensor the original V-Express reads) or ``.safetensors`` (with fps,
    frame size and backend); ``audio_out`` also writes the video's audio track. Points are pixels
    of the video resized to ``width`` x ``height``. ``face_backend``: ``insightface`` (SCRFD, as the
    original), ``dlib`` (no download) or ``auto``. Frames without a face are interpolated and
    listed in the report; ``strict`` fails on any frame without exactly one face instead.
    ``crop``: ``none`` (each whole frame resized, like the original), ``auto`` (the face tracked
    through the video and one steady face-centred box cut from every frame, at the reference
    photo's framing) or ``X,Y,W,H`` / a CropBox in the video's pixels; the points are then in the
    crop's frame, and a ``.safetensors`` file records the box. ``width``, ``height`` and ``face_backend`` left
    as ``None`` take your config's ``[generate]`` value, else the default (512, 512, ``auto``).
    """
    from vexpress_cli.face import load_backend
    from vexpress_cli.face.framing import (FRAMED_SHARE, PADDING_WARNING_SHARE, frame_padding, parse_crop,
                                           whole_image)
    from vexpress_cli.kps.from_video import extract_kps_sequence
    from vexpress_cli.kps.io import KpsTrack
    from vexpress_cli.settings.model_lookup import face_model_root

    video, audio_out = as_path(video, "video"), optional_path(audio_out, "audio_out")
    model_root = optional_folder(model_root, "model_root", INSIGHTFACE_DETECTOR.suffix)
    require_regular_file(video, "video", VIDEO_KIND)  # before a kps name is made from its name ('.' has none)
    kps_out = optional_path(kps_out, "kps_out") or default_kps_path(video)
    face_backend, width, height = your_defaults(face_backend=face_backend, width=width, height=height).values()
    face_backend = checked_setting("face_backend", face_backend)
    width, height = checked_frame_side("width", width), checked_frame_side("height", height)
    strict, overwrite = checked_switch("strict", strict), checked_switch("overwrite", overwrite)
    progress = checked_callback(progress)
    crop = parse_crop(crop)
    video_probe = _check_inputs(video, kps_out, audio_out, overwrite)
    detector = load_backend(face_backend, face_model_root(model_root, face_backend), width, height)
    points, report = extract_kps_sequence(video_probe, detector, width, height, strict=strict, progress=progress,
                                          crop=crop)
    report = replace(report, video=video)  # as given, like the outputs (the probe's path is resolved)
    fps = float(report.fps) if report.fps else None
    box = tuple(report.crop.as_list()) if report.crop else None
    track = KpsTrack(points, fps=fps, width=width, height=height, backend=report.backend, crop=box,
                     source_size=report.video_size if box else None)
    _save_outputs(video_probe, track, kps_out, audio_out, overwrite)
    notes = _unrecorded(kps_out, report)
    if crop == "auto" and report.crop == whole_image(*report.video_size):
        low, high = FRAMED_SHARE
        notes.append(f"The video is already framed like V-Express's portraits (the face's crop would span "
                     f"{low:.0%}-{high:.0%} of it), so {parameter('crop', 'auto')} kept the whole frame, as it "
                     "does for such a photo.")
    video_width, video_height = report.video_size
    if report.crop is None and abs(video_width / video_height - width / height) > 0.01:
        notes.append(f"The video is {video_width}x{video_height}: each frame was stretched to {width}x{height} (the "
                     f"aspect is not kept, as in the original), so the face is too. {parameter('crop', 'auto')} "
                     "cuts a steady box around the face instead.")
    padding = frame_padding(report.crop, *report.video_size) if report.crop else 0.0
    if padding > PADDING_WARNING_SHARE:
        notes.append(f"{padding:.0%} of the crop {report.crop} lies outside the video and is filled by repeating its "
                     "edge pixels, which the face detector sees too.")
    if report.variable_rate:
        notes.append(f"The video's frame rate varies (as a phone's may): its frames were taken at its average "
                     f"{float(report.fps):g} fps by their timestamps, so the track keeps time with its sound.")
    if report.ends_early:
        notes.append(f"{report.ends_early} The track has {report.frames} frames. If the video plays longer in a "
                     "player, re-encode it (ffmpeg -i VIDEO -c:v libx264 fixed.mp4) and extract again.")
    return ExtractResult(kps_out, audio_out, report, detector.description, detector.reason, notes,
                         _missing_faces_warnings(report))


# Above this share of frames without a face, the interpolated track is more guess than motion.
MISSING_FACES_WARNING_SHARE = 0.25


def _missing_faces_warnings(report) -> list[str]:
    warnings = []
    if others := report.other_face_frames:
        warnings.append(f"In {len(others)} of {report.frames} frames ({frame_numbers(others)}) only another "
                        "person's face was found, one seen beside the followed face: those frames count as missing, "
                        "so the track does not jump to the other person. To follow one person for sure, crop the "
                        f"video to them ({parameter('crop', 'X,Y,W,H')}).")
    missing = len(report.missing_frames)
    if missing > MISSING_FACES_WARNING_SHARE * report.frames:
        warnings.append(f"No face was found in {missing} of {report.frames} frames ({missing / report.frames:.0%}): "
                        "their keypoints are filled in from the frames around them (interpolated between two, held "
                        "before the first or after the last), so much of the motion is guessed. Check that the face "
                        "is upright, large and lit enough (or try another "
                        f"{parameter('face_backend')}); {parameter('strict')} fails on such a video instead.")
    return warnings


def _save_outputs(video_probe, track, kps_out: Path, audio_out: Path | None, overwrite: bool) -> None:
    """Write both outputs or neither."""
    from vexpress_cli.kps.io import kps_write_error, write_kps
    from vexpress_cli.media.audio import write_audio_track
    from vexpress_cli.outputs import atomic_outputs

    try:
        with atomic_outputs([kps_out, audio_out], overwrite=overwrite) as (kps_temp, audio_temp):
            try:
                write_kps(kps_temp, track)
            except OSError as error:  # disk full, the file size limit, ...
                raise kps_write_error(kps_out, error) from None
            if audio_temp is not None:
                write_audio_track(video_probe, audio_temp)  # its own errors are InputErrors already
    except OSError as error:  # moving the finished files into place
        named = " and ".join(str(path) for path in (kps_out, audio_out) if path is not None)
        raise InputError(f"Cannot put {named} in place.", f"{error.strerror or error}.",
                         "Choose an output folder you can write to, with free space.") from None


def _unrecorded(kps_out: Path, report) -> list[str]:
    """A note on what a ``.pth`` file cannot keep, when it matters: the crop, a frame rate other than the one
    a reader may fall back on."""
    from vexpress_cli.face.framing import whole_image
    from vexpress_cli.kps.io import ASSUMED_FPS

    if kps_out.suffix.lower() == ".safetensors":
        return []
    cropped = report.crop and report.crop != whole_image(*report.video_size)
    lost = [f"the crop {report.crop}"] if cropped else []
    if report.fps and abs(float(report.fps) - ASSUMED_FPS) > 1e-3:
        lost.append(f"the frame rate ({float(report.fps):g} fps; generate then takes the rate of its speech's "
                    f"video, or guesses one from the speech's length, else {ASSUMED_FPS:g} fps)")
    if not lost:
        return []
    return [f"A {kps_out.suffix} file holds only the points (in the 512x512 frame), not {' or '.join(lost)}; "
            "write .safetensors to keep them."]


def _still_image(video: Path, fmt: str | None) -> InputError:
    what = f"a photo ({fmt})" if fmt else "a photo"
    return InputError(f"{video} is a still image, not a video.",
                      why=f"It is {what}, and a driving track is the face's motion over time; a photo holds one pose "
                      "(an animated GIF is read as a video).",
                      fix="Pass a video of someone talking. For a still head, generate without a kps file "
                      "(its strategy is then fix_face).")


def _check_inputs(video: Path, kps_out: Path, audio_out: Path | None, overwrite: bool):
    """Fail before the slow part: a bad video, or outputs that exist or cannot be written.

    Returns the video's probe, for the later steps to reuse.
    """
    from vexpress_cli.media.ffmpeg import probe
    from vexpress_cli.media.images import still_photo_format
    from vexpress_cli.outputs import check_output

    require_regular_file(video, "video", VIDEO_KIND)
    if audio_out is not None:
        check_output(audio_out, overwrite, "audio", folder_made_later=True)
        if audio_out.resolve() == kps_out.resolve():
            raise InputError(f"{parameter('kps_out')} and {parameter('audio_out')} name the same file.",
                             fix="Give the audio its own path, e.g. talk.mp3.")
    check_output(kps_out, overwrite, "kps", folder_made_later=True)
    # A photo is told by its first bytes, as generate and inspect tell it: ffmpeg reads an AVIF as a one-frame
    # movie and cannot read a HEIC at all.
    if fmt := still_photo_format(video):
        raise _still_image(video, fmt)
    video_probe = probe(video, "video")
    still = video_probe.demuxer == "image2" or video_probe.demuxer.endswith("_pipe")  # ffmpeg's image readers
    if still and video_probe.video is not None and video_probe.video.width is not None:
        raise _still_image(video, None)
    if audio_out is not None and video_probe.audio is None:
        raise InputError(
            f"{video} has no audio track, so the audio cannot be written to {audio_out}.",
            why="ffmpeg found no audio stream in the video.",
            fix=f"Leave out {parameter('audio_out')}, or use a video with sound.",
        )
    return video_probe
