"""Planning a generation: every input decoded and checked, the settings resolved (seconds, no model).

:func:`plan_inputs` makes the :class:`GenerationPlan` that ``Generator.run`` (``generate.py``) executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from vexpress_cli.errors import InputError, described, messages, parameter
from vexpress_cli.media.audio import STANDARD_SAMPLE_RATE
from vexpress_cli.media.frames import as_fps_fraction
from vexpress_cli.settings.schema import AUTO_STRATEGY, GenerationSettings, ResolvedSettings, source_name

if TYPE_CHECKING:
    from vexpress_cli.media.ffmpeg import Probe

# wav2vec2's convolutional front end (kernels 10,3,3,3,3,2,2; strides 5,2,...) spans 400 samples.
MIN_AUDIO_SECONDS = 400 / STANDARD_SAMPLE_RATE

PathLike = str | Path


@dataclass
class GenerationPlan:
    """One job with its inputs decoded and checked, ready for the model: ``Generator.plan()`` makes it,
    ``Generator.run()`` or ``frames()`` carries it out.

    ``reference_image``: the portrait as animated (upright, cropped, at the output size); ``audio``: the speech
    file, ``waveform`` its 16 kHz samples and ``duration`` its seconds; ``output`` and ``overwrite``: where the
    video goes and whether it may replace a file; ``fps`` and ``num_frames``: the video's rate and length;
    ``kps_track``: the keypoints drawn in each frame, ``[num_frames, 3, 2]`` pixels; ``strategy`` and
    ``strategy_reason``: the retarget strategy and why it was chosen; ``settings`` and ``sources``: every setting
    and where each came from; ``warnings``: what may be wrong; ``notes``: what was done to fit the inputs;
    ``crop``: [x, y, w, h] of the photo that is animated (None: the whole photo). The other fields are for
    the run record and the encoder.
    """

    reference_image: PIL.Image.Image
    audio: Path
    output: Path
    overwrite: bool
    waveform: torch.Tensor
    duration: float
    fps: Fraction
    num_frames: int
    kps_track: np.ndarray
    strategy: str
    strategy_reason: str
    settings: GenerationSettings
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # For the run record: the input files' facts by role, the job as given, and the planning's wall times.
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference_kps: str | None = None
    kps: Path | None = None
    preset: str | None = None
    stages: dict[str, float] = field(default_factory=dict)
    encoding: Any = None  # media.encoding.VideoEncoding, auto resolved; None for PNG frames
    photo: Any = None  # the ReferencePhoto (jobs.reference_photo): its crop box, and the photo for paste-back

    def __post_init__(self) -> None:
        self.warnings = messages(self.warnings)
        self.notes = messages(self.notes)

    @property
    def crop(self) -> list[int] | None:
        return self.photo.crop_list if self.photo is not None else None


def checked_plan(plan: object) -> GenerationPlan:
    """The ``plan`` given to ``Generator.run()`` or ``frames()``; InputError for anything but ``plan()``'s result."""
    if not isinstance(plan, GenerationPlan):
        raise InputError(f"{parameter('plan')} is {described(plan)}.",
                         "run() and frames() carry out a GenerationPlan, which generator.plan(...) returns with "
                         "every input decoded and checked.",
                         "Pass the result of generator.plan(reference_image, audio, output, ...), or call "
                         "generator.generate(...) to plan and run at once.")
    return plan


def choose_strategy(resolved: ResolvedSettings, has_kps: bool) -> tuple[str, str]:
    """The strategy to use and why: as asked, else ``no_retarget`` with a kps file and ``fix_face`` without."""
    from vexpress_cli.kps.retargeting import auto_strategy

    asked = resolved.settings.retarget_strategy
    if asked != AUTO_STRATEGY:
        source = resolved.sources["retarget_strategy"]
        return asked, "as requested" if source == "explicit" else f"from the {source_name(source)}"
    return auto_strategy(has_kps), "a driving kps file was given" if has_kps else "no driving kps file was given"


def frame_count(duration: float, fps: Fraction) -> int:
    """Frames of a video as long as the audio: ``round(duration * fps)``, never truncated to windows."""
    return int(round(duration * float(fps)))


def plan_inputs(reference_image: Path, audio: Path, output: Path, overwrite: bool, resolved: ResolvedSettings, *,
                kps: Path | None = None, reference_kps=None, face_model_root: Path | None = None) -> GenerationPlan:
    """Decode and check every input of a job."""
    from vexpress_cli.kps.bounds import check_kps_in_frame, outside_frame_reasons
    from vexpress_cli.kps.retargeting import (checked_strategy, ignored_driving_track, retarget_track,
                                              uses_reference_kps)
    from vexpress_cli.media.audio import (load_audio, low_rate_problem, probe_audio, truncation_warning,
                                          uncounted_wav_warning)

    settings = resolved.settings
    strategy, strategy_reason = choose_strategy(resolved, kps is not None)
    # The strategy is checked first: a typo should not cost a face detection to find out.
    try:
        retargeter = checked_strategy(strategy, kps is not None)
    except InputError as error:  # a name from a preset or the user config: say where it was set
        if resolved.sources["retarget_strategy"] in ("explicit", "default"):
            raise
        raise InputError(error.what, f"It was set {strategy_reason}. {error.why}", error.fix) from None
    width, height = settings.width, settings.height
    fps = as_fps_fraction(settings.fps)
    warnings = list(resolved.warnings)

    speech = probe_audio(audio)
    # Checked before decoding: 16,000 samples at 2 Hz decode to over 2 hours at 16 kHz.
    if problem := low_rate_problem(speech.path, speech.audio.sample_rate):
        raise InputError(f"{problem}.",
                         why="Every second of it would become a second of video, made from almost nothing.",
                         fix="Pass the original recording, or one converted at its real rate "
                         "(ffmpeg -i IN -ar 16000 OUT.wav when the rate in its header is right).")
    waveform = load_audio(speech)
    duration = waveform.shape[0] / STANDARD_SAMPLE_RATE
    _check_audio_length(audio, duration, fps)
    num_frames = frame_count(duration, fps)
    if not waveform.abs().max() > 0:
        warnings.append(f"The audio {audio} is silent: the mouth will not move.")
    # A video's header gives its longest stream's length, the picture's: its sound may well end sooner.
    truncated = truncation_warning(duration, speech.duration) if speech.video is None else None
    if truncated:
        warnings.append(f"{audio}: {truncated}")
    if uncounted := uncounted_wav_warning(speech.path):
        warnings.append(f"{audio}: {uncounted}")

    from vexpress_cli.jobs.reference_photo import read_reference_photo, reference_keypoints

    photo = read_reference_photo(reference_image, settings, reference_kps_given=reference_kps is not None,
                                 face_model_root=face_model_root)
    warnings.extend(photo.warnings)
    notes = list(photo.notes)
    driving_notes_from, driving_warnings_from = len(notes), len(warnings)
    driving = _driving_track(kps, speech, duration, settings, num_frames, warnings, notes)
    reference_points = _reference_points(reference_kps, width, height)
    if reference_points is None and uses_reference_kps(retargeter):
        reference_points = reference_keypoints(photo, reference_image, settings, face_model_root)
    if reference_points is None:
        reference_points = driving[0]
    track = retarget_track(reference_points, driving, num_frames, retargeter, settings.kps_fit, (width, height))
    ignored = ignored_driving_track(retargeter, reference_points, driving, num_frames, track)
    if ignored:  # the track's fitting notes and warnings would say it was used
        del notes[driving_notes_from:], warnings[driving_warnings_from:]
        warnings.append(ignored)
    why, fix = outside_frame_reasons(True, width, height) if reference_kps is not None else (None, None)
    outside = check_kps_in_frame(track, width, height, "the keypoint track (as drawn: rescaled and retargeted)",
                                 why=why, fix=fix)
    warnings.extend([outside] if outside else [])
    return GenerationPlan(photo.image, audio, output, overwrite, waveform, duration, fps, num_frames, track, strategy,
                          strategy_reason, settings, dict(resolved.sources), warnings, notes, photo=photo)


def _reference_points(reference_kps, width: int, height: int) -> np.ndarray | None:
    """Reference keypoints given by the caller: ``[3, 2]`` numbers, ``"x,y;x,y;x,y"`` or a kps file."""
    if reference_kps is None:
        return None
    from vexpress_cli.kps.io import reference_kps_points

    return reference_kps_points(reference_kps, width, height)


def _check_audio_length(path: Path, duration: float, fps: Fraction) -> None:
    frame_ms, audio_ms = 1000 / float(fps), duration * 1000
    if audio_ms < frame_ms:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, shorter than one frame.",
                         f"At {float(fps):g} fps a frame lasts {frame_ms:.0f} ms.", "Use a longer audio clip.")
    if duration < MIN_AUDIO_SECONDS:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, too short for the speech encoder.",
                         f"wav2vec2 reads audio in {MIN_AUDIO_SECONDS * 1000:.0f} ms windows.",
                         "Use a longer audio clip.")


def _driving_track(path: Path | None, speech: Probe, duration: float, settings: GenerationSettings, num_frames: int,
                   warnings: list[str], notes: list[str]) -> np.ndarray | None:
    """The driving kps file in the output frame, fitted in time to the video's frames."""
    if path is None:
        return None
    from vexpress_cli.kps.fit import fit_track_in_time
    from vexpress_cli.kps.io import load_kps

    track = load_kps(path)
    rescaled, note = track.in_frame(settings.width, settings.height)
    notes.extend([note] if note else [])
    track_fps = track.fps or _assumed_track_fps(speech, duration, len(track.points), notes)
    points, fitting = fit_track_in_time(rescaled.points, track_fps, settings.fps, num_frames, settings.kps_fit)
    notes.extend(fitting)
    track_seconds = len(track.points) / track_fps
    if settings.kps_fit != "stretch" and track_seconds < duration * SHORT_TRACK_SHARE:
        warnings.append(f"The kps track {path.name} lasts {track_seconds:.1f} s, under a tenth of the speech's "
                        f"{duration:.1f} s: its motion repeats about {duration / track_seconds:.0f} times "
                        f"({parameter('kps_fit', settings.kps_fit)}). Check that it is the driving track meant for "
                        "this speech.")
    return points


# A driving track shorter than this share of the speech is repeated so often it is likely the wrong file.
SHORT_TRACK_SHARE = 0.1


def _assumed_track_fps(speech: Probe, duration: float, frames: int, notes: list[str]) -> float:
    """The frame rate of a kps file that records none (the original's .pth): that of the speech's video (its
    probe: ``speech``); else a common rate at which the track lasts the speech's ``duration`` (it was made from
    the speech's video, as the original's samples were, and the original stretched a track over the whole
    video); else 25 fps."""
    from vexpress_cli.kps.io import ASSUMED_FPS
    from vexpress_cli.media.video_reader import video_info

    name = speech.path.name
    if speech.video:
        fps, where = float(video_info(speech).fps), f"the frame rate of {name}"
    elif (spanning := _rate_spanning(frames, duration)) is not None:
        fps, where = spanning, f"its {frames} frames last as long as {name}"
    else:
        fps, where = ASSUMED_FPS, f"{name} is not a video, and at no common rate would the track last as long as it"
    notes.append(f"The kps file records no frame rate; assumed {fps:g} fps ({where}). "
                 "Tracks saved as .safetensors keep theirs.")
    return fps


# Frame rates a camera or an editor writes; a track whose length is one of them times the speech's is
# taken to be of that rate.
COMMON_FRAME_RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60000 / 1001, 60.0)


def _rate_spanning(frames: int, seconds: float) -> float | None:
    """The common frame rate at which ``frames`` last ``seconds`` (within 2 %), if there is one."""
    rate = frames / seconds
    nearest = min(COMMON_FRAME_RATES, key=lambda common: abs(common - rate))
    return nearest if abs(nearest - rate) <= 0.02 * nearest else None
