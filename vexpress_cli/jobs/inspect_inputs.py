"""What an input file holds, checked the way ``vexpress generate`` will use it.

One function per kind of input, each returning a dataclass with ``to_dict()``
(plain JSON types only), and :func:`inspect_input` that picks the kind:

=========  ==========================================  ================================
kind       suffixes                                    reads it with
=========  ==========================================  ================================
audio      .mp3 .wav .m4a .aac .flac .ogg .opus        ``media.audio_info`` (decodes it)
image      .jpg .jpeg .png .webp .bmp                  Pillow + a face backend
kps        .pth .pt .safetensors                       ``kps.load_kps`` (no unpickling)
preset     .toml (or a preset name)                    ``preset_loader.load_preset``
video      .mp4 .mov .mkv .avi .webm                   ``media.video_info``
=========  ==========================================  ================================

A media file with another suffix is recognised by its first bytes when they
are unambiguous (RIFF/WAVE, ID3, PNG, JPEG, an ISO-BMFF ``ftyp`` box, ...).
Model folders are reported by :mod:`vexpress_cli.jobs.inspect_model`.
Every failure is an :class:`~vexpress_cli.errors.InputError`. See docs/inspect.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vexpress_cli.errors import InputError
from vexpress_cli.file_types import INPUT_KIND_SUFFIXES, KPS_SAFETENSORS_SUFFIX

DEFAULT_FPS = 30.0
MODEL_SIZE = 512  # V-Express was trained on 512 x 512 frames
DEFAULT_JUMP_PX = 30.0
# Two positions closer than this (in px) count as the same: float32 keeps
# ~3e-5 px at 512, and real face tracking never repeats a point this exactly.
HOLD_TOLERANCE_PX = 1e-3
POINT_NAMES = ("left eye", "right eye", "nose")


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _plain(value: Any) -> Any:
    """``value`` with Paths, Fractions and numpy scalars turned into JSON types."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Report:
    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


# --- kind detection ---------------------------------------------------------------------------


def check_input_path(path: str | Path) -> Path:
    """``path`` as a Path, or an InputError when it is missing or unreadable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(
            f"{path} does not exist.",
            why="Nothing is at that path.",
            fix="Check the spelling, or pass the full path to the file or model folder.",
        )
    if not _is_readable(path):
        raise InputError(f"{path} cannot be read.", why="Permission denied.",
                         fix=f"Fix its permissions, e.g. chmod u+r {path}.")
    return path


def _is_readable(path: Path) -> bool:
    return os.access(path, os.R_OK)


def input_kind(path: str | Path) -> str:
    """``"model_folder"``, ``"audio"``, ``"image"``, ``"kps"``, ``"preset"`` or ``"video"``.

    A folder is a model folder; a file is judged by its suffix, else by its
    first bytes. Anything else raises InputError.
    """
    path = check_input_path(path)
    if path.is_dir():
        return "model_folder"
    if not path.is_file():
        raise InputError(f"{path} is not a regular file.", why="It is a device, pipe or socket.",
                         fix="Pass a file or a model folder.")
    suffix = path.suffix.lower()
    for kind, suffixes in INPUT_KIND_SUFFIXES.items():
        if suffix in suffixes:
            return kind
    kind = _kind_from_content(path)
    if kind is None:
        known = "; ".join(f"{kind} {' '.join(suffixes)}" for kind, suffixes in INPUT_KIND_SUFFIXES.items())
        raise InputError(
            f"Cannot tell what kind of input {path} is.",
            why=f"Its suffix '{path.suffix or '(none)'}' is not one vexpress reads, "
            "and its first bytes match no known format.",
            fix=f"Inspect a model folder or a file of one of these kinds: {known}.",
        )
    return kind


def _kind_from_content(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise InputError(f"{path} cannot be read.", why=str(error), fix="Check the file and its permissions.") from None
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"WEBP", b"AVI "):
        return {b"WAVE": "audio", b"WEBP": "image", b"AVI ": "video"}[head[8:12]]
    if head[4:8] == b"ftyp":  # ISO base media: mp4, mov, m4a
        return "audio" if head[8:12] in (b"M4A ", b"M4B ") else "video"
    signatures = {
        b"\x89PNG\r\n\x1a\n": "image", b"\xff\xd8\xff": "image", b"BM": "image",
        b"ID3": "audio", b"fLaC": "audio", b"OggS": "audio",
        b"\x1a\x45\xdf\xa3": "video",  # Matroska / WebM
    }
    # kps files are not sniffed: their reader picks the format by suffix, and a zip is not always torch.
    for magic, kind in signatures.items():
        if head.startswith(magic):
            return kind
    return None


# --- audio ------------------------------------------------------------------------------------


@dataclass
class AudioReport(_Report):
    path: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    samples: int
    duration_s: float
    container_duration_s: float | None
    peak: float
    peak_dbfs: float | None  # None for digital silence
    silent: bool
    fps: float
    frames: int  # video frames generate makes for this audio at ``fps``
    kind: str = "audio"
    warnings: list[str] = field(default_factory=list)


def inspect_audio(path: str | Path, fps: float = DEFAULT_FPS) -> AudioReport:
    """Format, length, level of a speech file, and how many video frames it makes at ``fps``."""
    from vexpress_cli.jobs.generate import frame_count
    from vexpress_cli.media.audio import STANDARD_SAMPLE_RATE, audio_info
    from vexpress_cli.media.frames import as_fps_fraction

    _check_fps(fps)
    info = audio_info(path)
    # generate counts frames on the audio resampled to 16 kHz: ceil(n * 16000 / rate) samples.
    resampled = -(-info.num_samples * STANDARD_SAMPLE_RATE // info.sample_rate)
    report = AudioReport(
        path=str(info.path),
        container=info.container,
        codec=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        samples=info.num_samples,
        duration_s=round(info.duration, 6),
        container_duration_s=info.container_duration,
        peak=round(info.peak, 6),
        peak_dbfs=_rounded(info.peak_dbfs, 2) if info.peak > 0 else None,
        silent=info.is_silent,
        fps=float(fps),
        frames=frame_count(resampled / STANDARD_SAMPLE_RATE, as_fps_fraction(float(fps))),
    )
    if _disagree(info.duration, info.container_duration):
        report.warnings.append(f"The header says {info.container_duration:g} s but {info.duration:.2f} s decode: "
                               "the file may be truncated (or its header is wrong).")
    if report.silent:
        report.warnings.append("The audio is silent (peak below -60 dBFS): the mouth will barely move.")
    if report.frames == 0:
        report.warnings.append(f"The audio is shorter than one frame at {fps:g} fps: nothing would be generated.")
    return report


def _disagree(decoded: float, claimed: float | None) -> bool:
    # Headers round to 10 ms, and MP3s without a Xing header only estimate; a gap this big is real.
    return claimed is not None and abs(decoded - claimed) > max(0.1, 0.05 * claimed)


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"--fps is {fps}.", why="A frame rate must be a positive number.", fix="Pass e.g. --fps 30.")


# --- image ------------------------------------------------------------------------------------


@dataclass
class FaceReport(_Report):
    backend: str
    backend_reason: str
    detect_width: int  # the image is resized to this size first, as generate does
    detect_height: int
    faces: int
    found: bool
    kps: list[list[float]] | None = None  # left eye, right eye, nose in detect-size pixels
    bbox: list[float] | None = None  # x1, y1, x2, y2 of the largest face
    score: float | None = None


@dataclass
class ImageReport(_Report):
    path: str
    format: str | None
    width: int
    height: int
    mode: str
    square: bool
    smaller_than_512: bool
    exif_orientation: int | None
    face: FaceReport
    kind: str = "image"
    warnings: list[str] = field(default_factory=list)


def inspect_image(
    path: str | Path,
    backend: str = "auto",
    width: int = MODEL_SIZE,
    height: int = MODEL_SIZE,
    model_root: str | Path | None = None,
) -> ImageReport:
    """Size and mode of a reference photo, and the face ``generate`` would find in it.

    Detection runs like :func:`vexpress_cli.face.detect_reference_kps` (resize
    to ``width`` x ``height``, largest face), but no face is reported, not raised.
    """
    from vexpress_cli.face import largest_face, load_backend, resize_like_original

    path = check_input_path(path)
    fmt, size, mode, orientation, rgb = _read_image(path)
    detector = load_backend(backend, model_root, width, height)
    faces = detector.detect(resize_like_original(rgb, width, height))
    face = FaceReport(detector.name, getattr(detector, "reason", ""), width, height, len(faces), bool(faces))
    if faces:
        best = largest_face(faces)
        face.kps = [[_rounded(x, 2), _rounded(y, 2)] for x, y in best.kps3.tolist()]
        face.bbox = [_rounded(value, 1) for value in best.bbox.tolist()]
        face.score = _rounded(best.score, 4)
    report = ImageReport(
        path=str(path.resolve()), format=fmt, width=size[0], height=size[1], mode=mode, square=size[0] == size[1],
        smaller_than_512=min(size) < MODEL_SIZE, exif_orientation=orientation, face=face,
    )
    report.warnings.extend(_image_warnings(report))
    return report


def _read_image(path: Path) -> tuple[str | None, tuple[int, int], str, int | None, np.ndarray]:
    from PIL import Image

    from vexpress_cli.media.images import IMAGE_READ_ERRORS

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(0x0112)  # EXIF Orientation
            return image.format, image.size, image.mode, orientation, np.asarray(image.convert("RGB"))
    except IMAGE_READ_ERRORS as error:
        raise InputError(
            f"Cannot read the image {path}.",
            why=f"Pillow cannot decode it ({error}).",
            fix="The file may be truncated or of another type; pass a JPEG or PNG photo.",
        ) from None


def _image_warnings(report: ImageReport) -> list[str]:
    warnings = []
    face = report.face
    if not face.found:
        warnings.append(f"No face found by {face.backend} at {face.detect_width}x{face.detect_height}: generate "
                        "needs a clearly visible, roughly frontal face (or keypoints passed by hand).")
    elif face.faces > 1:
        warnings.append(f"{face.faces} faces found; generate uses the largest.")
    aspect_out = face.detect_width / face.detect_height
    if abs(report.width / report.height - aspect_out) > 0.01:
        warnings.append(f"The image is {report.width}x{report.height}; generate stretches it to "
                        f"{face.detect_width}x{face.detect_height} (aspect not kept). Crop it first.")
    if report.smaller_than_512:
        warnings.append(f"The image is smaller than {MODEL_SIZE} px on a side; it will be upscaled and look soft.")
    if report.exif_orientation not in (None, 1):
        warnings.append(f"The photo has EXIF orientation {report.exif_orientation}; its pixels are used as "
                        "stored, which may be rotated. Save it upright first.")
    return warnings


# --- kps --------------------------------------------------------------------------------------


@dataclass
class PointMotion(_Report):
    point: str
    step_mean_px: float  # mean frame-to-frame displacement
    step_max_px: float
    jitter_rms_px: float  # RMS of the second difference: frame-to-frame shake, not smooth motion


@dataclass
class Gap(_Report):
    kind: str  # "held", "interpolated" or "jump"
    start: int  # first and last frame (0-based, inclusive) of the run
    end: int
    max_step_px: float


@dataclass
class KpsReport(_Report):
    path: str
    format: str
    frames: int
    fps: float | None  # as recorded in the file
    width: int | None
    height: int | None
    backend: str | None
    duration_fps: float  # the recorded fps, else the one passed in
    fps_assumed: bool
    duration_s: float
    x_range: list[float]
    y_range: list[float]
    frames_outside: int | None  # frames with a point outside width x height (None: size unknown)
    eye_distance_mean_px: float
    motion: list[PointMotion]
    jump_px: float
    held_frames: int
    interpolated_frames: int
    jump_frames: int
    gaps: list[Gap]
    kind: str = "kps"
    warnings: list[str] = field(default_factory=list)


def inspect_kps(path: str | Path, fps: float | None = None, jump_px: float = DEFAULT_JUMP_PX) -> KpsReport:
    """Metadata, coordinate range, motion, jitter and gaps of a kps track.

    Gaps (see docs/inspect.md): a *held* frame has every point within
    ``HOLD_TOLERANCE_PX`` of the previous frame; an *interpolated* frame lies
    on the straight line through its two neighbours (what ``vexpress extract``
    writes for frames without a face); a *jump* frame has a point more than
    ``jump_px`` from where it was in the previous frame.
    """
    from vexpress_cli.kps.io import load_kps

    if not (math.isfinite(jump_px) and jump_px > 0):
        raise InputError(f"--jump-px is {jump_px}.", why="It must be a positive distance in pixels.",
                         fix="Pass e.g. --jump-px 30.")
    if fps is not None:
        _check_fps(fps)
    track = load_kps(path)
    points = track.points.astype(np.float64)
    duration_fps = track.fps or fps or DEFAULT_FPS
    held, interpolated, jumps, steps = _frame_flags(points, jump_px)
    report = KpsReport(
        path=str(Path(track.source).resolve()),
        format="safetensors" if Path(path).suffix.lower() == KPS_SAFETENSORS_SUFFIX else "torch",
        frames=track.num_frames,
        fps=track.fps,
        width=track.width,
        height=track.height,
        backend=track.backend,
        duration_fps=duration_fps,
        fps_assumed=track.fps is None,
        duration_s=round(track.num_frames / duration_fps, 6),
        x_range=[_rounded(points[..., 0].min(), 2), _rounded(points[..., 0].max(), 2)],
        y_range=[_rounded(points[..., 1].min(), 2), _rounded(points[..., 1].max(), 2)],
        frames_outside=_frames_outside(points, track.width, track.height),
        eye_distance_mean_px=_rounded(np.linalg.norm(points[:, 1] - points[:, 0], axis=1).mean(), 2),
        motion=_point_motion(points, steps),
        jump_px=float(jump_px),
        held_frames=int(held.sum()),
        interpolated_frames=int(interpolated.sum()),
        jump_frames=int(jumps.sum()),
        gaps=_runs(held, "held", steps) + _runs(interpolated, "interpolated", steps) + _runs(jumps, "jump", steps),
    )
    report.gaps.sort(key=lambda gap: gap.start)
    report.warnings.extend(_kps_warnings(report))
    return report


def _frame_flags(points: np.ndarray, jump_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: held, interpolated and jump flags, and each point's step from the previous frame."""
    count = points.shape[0]
    steps = np.zeros((count, 3))
    steps[1:] = np.linalg.norm(np.diff(points, axis=0), axis=2)
    held = np.zeros(count, dtype=bool)
    held[1:] = np.abs(np.diff(points, axis=0)).max(axis=(1, 2)) <= HOLD_TOLERANCE_PX
    interpolated = np.zeros(count, dtype=bool)
    if count >= 3:
        bend = np.abs(points[2:] - 2 * points[1:-1] + points[:-2]).max(axis=(1, 2))
        interpolated[1:-1] = bend <= HOLD_TOLERANCE_PX
    interpolated &= ~held
    jumps = steps.max(axis=1) > jump_px
    return held, interpolated, jumps, steps


def _point_motion(points: np.ndarray, steps: np.ndarray) -> list[PointMotion]:
    moving = steps[1:]
    bend = points[2:] - 2 * points[1:-1] + points[:-2] if len(points) >= 3 else np.zeros((0, 3, 2))
    motion = []
    for index, name in enumerate(POINT_NAMES):
        jitter = math.sqrt(float((bend[:, index] ** 2).sum(axis=1).mean())) if len(bend) else 0.0
        motion.append(PointMotion(
            point=name,
            step_mean_px=_rounded(moving[:, index].mean() if len(moving) else 0.0),
            step_max_px=_rounded(moving[:, index].max() if len(moving) else 0.0),
            jitter_rms_px=_rounded(jitter),
        ))
    return motion


def _runs(flags: np.ndarray, kind: str, steps: np.ndarray) -> list[Gap]:
    runs = []
    start = None
    for frame, flagged in enumerate([*flags.tolist(), False]):
        if flagged and start is None:
            start = frame
        elif not flagged and start is not None:
            runs.append(Gap(kind, start, frame - 1, _rounded(steps[start:frame].max())))
            start = None
    return runs


def _frames_outside(points: np.ndarray, width: int | None, height: int | None) -> int | None:
    if width is None or height is None:
        return None
    x, y = points[..., 0], points[..., 1]
    outside = (x < 0) | (x > width) | (y < 0) | (y > height)
    return int(outside.any(axis=1).sum())


def _kps_warnings(report: KpsReport) -> list[str]:
    warnings = []
    if report.fps_assumed:
        warnings.append(f"The file records no fps (an original V-Express kps.pth?); the duration assumes "
                        f"{report.duration_fps:g} fps (set it with --fps).")
    if report.width is None:
        warnings.append("The file records no frame size; generate takes the points as pixels of the output size.")
    if report.frames_outside:
        warnings.append(f"{report.frames_outside} frames have points outside the {report.width}x{report.height} frame.")
    if report.jump_frames:
        warnings.append(f"{report.jump_frames} frames jump by more than {report.jump_px:g} px: "
                        "probably a wrong face or a detection error there.")
    if report.held_frames and report.held_frames == report.frames - 1:
        warnings.append("Every frame is the same: the head will not move.")
    elif report.held_frames:
        warnings.append(f"{report.held_frames} frames repeat the previous one (held; e.g. no face at the start "
                        "or end of the video).")
    if report.interpolated_frames:
        warnings.append(f"{report.interpolated_frames} frames lie on a straight line between their neighbours "
                        "(filled in where no face was found).")
    return warnings


# --- preset -----------------------------------------------------------------------------------


@dataclass
class PresetReport(_Report):
    name: str
    description: str
    source: str  # builtin, user or file
    path: str
    shadows_builtin: bool
    values: dict[str, Any]  # what the preset sets, validated
    settings: dict[str, Any]  # every generate setting with this preset: defaults < preset
    kind: str = "preset"
    warnings: list[str] = field(default_factory=list)


def inspect_preset(name_or_path: str | Path) -> PresetReport:
    """A preset's validated values and every setting ``generate`` would use with it."""
    from vexpress_cli.settings.presets import generation_settings, load_preset

    preset = load_preset(name_or_path)
    report = PresetReport(
        name=preset.name, description=preset.description, source=preset.source, path=preset.path,
        shadows_builtin=preset.shadows_builtin, values=dict(preset.values),
        settings=generation_settings(preset, {}),
    )
    if preset.shadows_builtin:
        report.warnings.append(f"This user preset replaces the built-in preset '{preset.name}'.")
    return report


# --- video ------------------------------------------------------------------------------------


@dataclass
class VideoReport(_Report):
    path: str
    container: str
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    rotation: int
    fps: Fraction  # exact; "30000/1001" in to_dict()
    fps_float: float
    avg_fps: Fraction  # frames / duration
    frames: int
    duration_s: float
    has_audio: bool
    audio_codec: str | None
    kind: str = "video"
    warnings: list[str] = field(default_factory=list)


def inspect_video(path: str | Path) -> VideoReport:
    """Codec, size, exact fps, frame count, duration and audio track of a (driving) video."""
    from vexpress_cli.media.video_reader import video_info

    info = video_info(path)
    report = VideoReport(
        path=str(info.path), container=info.container, codec=info.codec, pix_fmt=info.pix_fmt,
        width=info.width, height=info.height, rotation=info.rotation, fps=info.fps,
        fps_float=round(float(info.fps), 6), avg_fps=info.avg_fps, frames=info.frame_count,
        duration_s=round(info.duration, 6), has_audio=info.has_audio, audio_codec=info.audio_codec,
    )
    if info.fps and abs(float(info.avg_fps) / float(info.fps) - 1) > 0.01:
        report.warnings.append(f"Average rate {float(info.avg_fps):.3f} fps differs from the nominal "
                               f"{float(info.fps):.3f} fps: variable frame rate or a held last frame.")
    if not info.has_audio:
        report.warnings.append("No audio track: `vexpress extract --audio-out` has no speech to save.")
    if info.width != info.height:
        report.warnings.append(f"{info.width}x{info.height} is not square; extract stretches frames to "
                               "WIDTH x HEIGHT (aspect not kept). Crop the face region first.")
    return report


# --- any --------------------------------------------------------------------------------------


def inspect_input(
    path: str | Path,
    *,
    fps: float | None = None,
    backend: str = "auto",
    width: int = MODEL_SIZE,
    height: int = MODEL_SIZE,
    model_root: str | Path | None = None,
    jump_px: float = DEFAULT_JUMP_PX,
) -> AudioReport | ImageReport | KpsReport | PresetReport | VideoReport:
    """The report for any input file, its kind picked by :func:`input_kind` (model folders excluded)."""
    kind = input_kind(path)
    if kind == "audio":
        return inspect_audio(path, fps if fps is not None else DEFAULT_FPS)
    if kind == "image":
        return inspect_image(path, backend, width, height, model_root)
    if kind == "kps":
        return inspect_kps(path, fps, jump_px)
    if kind == "preset":
        return inspect_preset(Path(path))
    if kind == "video":
        return inspect_video(path)
    raise InputError(f"{path} is a folder.", why="inspect_input reports files.",
                     fix="Use vexpress_cli.jobs.inspect_model.inspect_model_folder for a model folder.")
