"""The retarget job: a driving keypoint track fitted to a reference face, saved for ``generate``,
with an optional preview video (the retargeted points over the photo, next to the driving ones)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vexpress_cli.errors import InputError, checked_switch, messages, parameter, python_name, spell_parameters
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR
from vexpress_cli.input_files import as_path, optional_folder, optional_path
from vexpress_cli.kps import KpsTrack, iter_kps_images, load_kps, retarget_track, save_kps
from vexpress_cli.kps.bounds import check_kps_in_frame, outside_frame_reasons
from vexpress_cli.kps.fit import fit_track_in_time
from vexpress_cli.kps.io import ASSUMED_FPS, reference_kps_file, reference_kps_points
from vexpress_cli.kps.limits import checked_frame_count
from vexpress_cli.kps.retargeting import checked_strategy, ignored_driving_track, uses_reference_kps
from vexpress_cli.progress import ProgressCallback, checked_callback
from vexpress_cli.settings.schema import checked_setting
from vexpress_cli.settings.user_config import your_defaults

# How bright the reference photo stays under the keypoints in a preview.
PREVIEW_DIMMING = 0.4

PathLike = str | Path


@dataclass
class RetargetResult:
    """What the retarget job wrote."""

    output: Path
    num_frames: int
    strategy: str
    fit: str
    fps: float | None
    width: int
    height: int
    driving_frames: int | None
    reference_kps: np.ndarray
    reference_detected: bool
    preview: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.notes = messages(self.notes)

    @property
    def source(self) -> str:
        if self.driving_frames is None:
            return "reference only"
        return f"{self.driving_frames}-frame driving track, fit {self.fit}"

    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict[str, Any]:
        """Plain JSON types; settings named in the notes read as ``spell`` says (Python names, or flags)."""
        return {
            "output": str(self.output), "frames": self.num_frames, "strategy": self.strategy, "fit": self.fit,
            "fps": self.fps, "width": self.width, "height": self.height, "driving_frames": self.driving_frames,
            "reference_kps": self.reference_kps.tolist(), "reference_detected": self.reference_detected,
            "preview": str(self.preview) if self.preview else None,
            "notes": [spell_parameters(note, spell) for note in self.notes],
        }


@dataclass
class _Reference:
    kps: np.ndarray  # [3, 2] in output-frame pixels
    image: np.ndarray | None  # RGB, output-frame size, for the preview
    detected: bool


def retarget(reference_image: PathLike | None, kps: PathLike | None, strategy: str | None = None,
             output: PathLike = "retargeted.safetensors", *, preview: PathLike | None = None,
             reference_kps=None, num_frames: int | None = None, kps_fit: str | None = None,
             width: int | None = None, height: int | None = None, fps: float | None = None,
             face_backend: str | None = None, model_root: PathLike | None = None,
             overwrite: bool = False, progress: ProgressCallback | None = None, crop: str | None = None,
             face_index: int | None = None) -> RetargetResult:
    """Fit a driving track to a reference face and save it (``.safetensors`` keeps fps and size, ``.pth``).

    ``strategy`` is any installed retarget strategy (``auto``: ``no_retarget`` with a driving track,
    ``fix_face`` without). The reference face comes from ``reference_kps`` (``[3, 2]`` numbers,
    ``"x,y;x,y;x,y"`` or a kps file) or is detected in ``reference_image``. ``num_frames`` defaults
    to the driving track's duration at ``fps`` (its length when the rates match); a shorter track is
    fitted by ``kps_fit``. ``crop`` and ``face_index`` frame the photo as ``generate`` does (the points are in
    that frame). ``preview`` also
    writes a video of the retargeted points over the photo, next to the driving ones.

    The settings it shares with generate (``strategy``, ``kps_fit``, ``width``, ``height``, ``face_backend``,
    ``crop``, ``face_index``) left as ``None`` take your config's ``[generate]`` value, else the default.
    """
    strategy, kps_fit, width, height, face_backend, crop, face_index = your_defaults(
        retarget_strategy=strategy, kps_fit=kps_fit, width=width, height=height, face_backend=face_backend,
        crop=crop, face_index=face_index).values()
    output, preview = as_path(output, "output"), optional_path(preview, "preview")
    kps, model_root = optional_path(kps, "kps"), optional_folder(model_root, "model_root", INSIGHTFACE_DETECTOR.suffix)
    reference_image = optional_path(reference_image, "reference_image")
    kps_fit = checked_setting("kps_fit", kps_fit)
    crop = checked_setting("crop", crop)
    face_index = checked_setting("face_index", face_index)
    overwrite = checked_switch("overwrite", overwrite)
    progress = checked_callback(progress)
    # The frame of the video the track is for: generate's limits (the photo is framed as generate frames it).
    width, height = checked_setting("width", width), checked_setting("height", height)
    fps = None if fps is None else checked_setting("fps", fps)
    num_frames = checked_frame_count(num_frames)
    _check_outputs(output, preview, overwrite, {"kps": kps, "reference_image": reference_image,
                                                 "reference_kps": reference_kps_file(reference_kps)})
    chosen = checked_strategy(strategy, kps is not None)
    notes: list[str] = []
    driving = _load_driving(kps, width, height, notes) if kps is not None else None
    if num_frames is None and driving is None:
        raise InputError(
            "How many frames? Without a driving kps track there is no track length to copy.",
            why=f"The strategy '{chosen.name}' builds the track from the reference alone.",
            fix=f"Give {parameter('num_frames', 'N')} (e.g. the audio's duration times the fps).",
        )
    fps = fps or (driving.fps if driving is not None and driving.fps else None)
    driving_points = None
    if driving is not None:
        driving_points, num_frames = _fitted_driving(driving, fps, num_frames, kps_fit, preview is not None, notes)
    framing = {"width": width, "height": height, "face_backend": face_backend, "crop": crop, "face_index": face_index}
    reference = _reference_for(chosen, reference_image, reference_kps, driving, framing, model_root, notes)
    points = retarget_track(reference.kps, driving_points, num_frames, chosen, kps_fit, (width, height))
    ignored = ignored_driving_track(chosen, reference.kps, driving_points, num_frames, points)
    notes.extend([ignored] if ignored else [])
    why, fix = outside_frame_reasons(reference_kps is not None, width, height)
    outside = check_kps_in_frame(points, width, height, "the retargeted track", why=why, fix=fix)  # generate refuses
    notes.extend([outside] if outside else [])
    track = KpsTrack(points, fps=fps, width=width, height=height, backend=driving.backend if driving else None)
    if preview is not None:
        write_preview(preview, track.points, driving_points, reference.image, fps or ASSUMED_FPS,
                      width, height, overwrite, progress)
    save_kps(output, track, overwrite=overwrite)
    return RetargetResult(output, num_frames, chosen.name, kps_fit, fps, width, height,
                          driving.num_frames if driving is not None else None, reference.kps, reference.detected,
                          preview, notes)


def _check_outputs(output: Path, preview: Path | None, overwrite: bool, inputs: dict[str, Path | None]) -> None:
    from vexpress_cli.outputs import check_output
    from vexpress_cli.outputs.checks import refuse_replacing_an_input

    # Checked now, created when written: a refused job leaves no folder behind.
    refuse_replacing_an_input(output, inputs)
    check_output(output, overwrite, "kps", folder_made_later=True)
    if preview is not None:
        refuse_replacing_an_input(preview, inputs)
        check_output(preview, overwrite, "video_file", folder_made_later=True)


def _fitted_driving(driving: KpsTrack, fps: float | None, num_frames: int | None, kps_fit: str, previewed: bool,
                    notes: list[str]) -> tuple[np.ndarray, int]:
    """The driving points fitted by time to the video (a 25 fps track written at 30 fps keeps its speed and, by
    default, its duration), and its frame count: ``num_frames``, else the track's duration at ``fps``."""
    track_fps = driving.fps or ASSUMED_FPS
    if driving.fps is None and fps is not None and fps != ASSUMED_FPS:
        notes.append(f"The kps file records no frame rate; assumed {ASSUMED_FPS:g} fps.")
    elif driving.fps is None and fps is None:
        shown = f"; the preview plays at {ASSUMED_FPS:g} fps" if previewed else ""
        notes.append(f"The kps file records no frame rate, so neither does the output{shown}. Give "
                     f"{parameter('fps', 'N')} to record one (generate times a track without one by the speech).")
    out_fps = fps or track_fps
    if num_frames is None:
        num_frames = max(1, round(driving.num_frames * out_fps / track_fps))
    points, fitting = fit_track_in_time(driving.points, track_fps, out_fps, num_frames, kps_fit)
    notes.extend(fitting)
    return points, num_frames


def _reference_for(strategy, reference_image: Path | None, reference_kps, driving: KpsTrack | None, framing: dict,
                   model_root: Path | None, notes: list[str]) -> _Reference:
    """The reference face: given, detected in the photo, or (for a strategy that keeps the driving points as they
    are, given neither) the driving track's first frame."""
    if reference_image is None and reference_kps is None and not uses_reference_kps(strategy) and driving is not None:
        return _Reference(kps=driving.points[0], image=None, detected=False)
    if reference_kps is None:
        from vexpress_cli.settings.model_lookup import face_model_root

        model_root = face_model_root(model_root, framing["face_backend"])
    return _load_reference(reference_image, reference_kps, framing, model_root, notes)


def _load_driving(path: Path, width: int, height: int, notes: list[str]) -> KpsTrack:
    rescaled, note = load_kps(path).in_frame(width, height)
    notes.extend([note] if note else [])
    return rescaled


def _load_reference(image_path, reference_kps, framing: dict, model_root, notes: list[str]) -> _Reference:
    if image_path is None and reference_kps is None:
        raise InputError(
            "No reference face given.",
            why="Retargeting fits the motion to the face you will animate.",
            fix=f"Give {parameter('reference_image', 'PHOTO')}, or {parameter('reference_kps', 'FILE')} "
            'or "x,y;x,y;x,y".',
        )
    from vexpress_cli.jobs.reference_photo import read_reference_photo, reference_keypoints
    from vexpress_cli.settings.schema import GenerationSettings

    settings = GenerationSettings(**framing)
    width, height = settings.width, settings.height
    photo = None
    if image_path is not None:  # upright, framed (cropped) as generate frames it, at the output size
        photo = read_reference_photo(image_path, settings, reference_kps_given=reference_kps is not None,
                                     face_model_root=model_root)
        notes.extend(photo.notes)
    image = np.asarray(photo.image) if photo is not None else None
    if reference_kps is not None:
        return _Reference(kps=reference_kps_points(reference_kps, width, height), image=image, detected=False)
    points = reference_keypoints(photo, image_path, settings, model_root)
    return _Reference(kps=np.asarray(points, dtype=np.float32), image=image, detected=True)


def write_preview(path: Path, retargeted: np.ndarray, driving: np.ndarray | None, image: np.ndarray | None,
                  fps: float, width: int, height: int, overwrite: bool, progress: ProgressCallback) -> None:
    """The retargeted points over the dimmed photo, next to the driving points when there are some."""
    from vexpress_cli.media.video_writer import VideoWriter

    background = np.zeros((height, width, 3), np.uint8) if image is None else (image * PREVIEW_DIMMING).astype(np.uint8)
    panels = 1 if driving is None else 2
    left = iter_kps_images(height, width, retargeted)
    right = iter_kps_images(height, width, driving) if driving is not None else None
    total = len(retargeted)
    with VideoWriter(path, fps, width * panels, height, overwrite=overwrite) as writer:
        for index in range(total):
            frame = _labelled(_overlay(background, next(left)), "retargeted")
            if right is not None:
                frame = np.concatenate([frame, _labelled(next(right), "driving")], axis=1)
            writer.write(frame)
            progress("preview", index + 1, total)


def _overlay(background: np.ndarray, kps_image: np.ndarray) -> np.ndarray:
    drawn = kps_image.any(axis=2, keepdims=True)
    return np.where(drawn, kps_image, background)


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    """The panel with its name in its top-left corner, scaled to the panel's size."""
    import cv2

    scale = max(panel.shape[1] / 640, 0.3)
    panel = np.ascontiguousarray(panel)
    origin = (int(8 * scale) + 2, int(24 * scale) + 4)
    cv2.putText(panel, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(2 * scale)),
                cv2.LINE_AA)
    return panel
