"""One generation job, from files to a finished video: what ``vexpress generate`` runs.

It knows nothing of the command line: settings come in as a dict of the parameters in
``vexpress_cli.settings.presets.PARAMETERS`` and progress goes out through a callback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media.images import open_rgb_image
from vexpress_cli.media.audio import STANDARD_SAMPLE_RATE
from vexpress_cli.media.frames import as_fps_fraction

MIN_ADVISED_SIZE = 512
# wav2vec2's convolutional front end (kernels 10,3,3,3,3,2,2; strides 5,2,...) spans 400 samples.
MIN_AUDIO_SECONDS = 400 / STANDARD_SAMPLE_RATE


@dataclass
class GenerationRequest:
    reference_image: Path
    audio: Path
    output: Path
    settings: dict
    kps: Path | None = None
    reference_kps: np.ndarray | None = None
    face_backend: str = "auto"
    face_model_root: Path | None = None
    overwrite: bool = False


@dataclass
class GenerationPlan:
    """Inputs decoded and checked, ready for the model."""

    reference_image: PIL.Image.Image
    waveform: torch.Tensor
    duration: float
    fps: Fraction
    num_frames: int
    kps_track: np.ndarray
    strategy: str
    strategy_reason: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    output: Path
    num_frames: int
    fps: float
    duration: float
    seconds: float
    strategy: str
    warnings: list[str]

    def to_dict(self) -> dict:
        return {
            "output": str(self.output), "frames": self.num_frames, "fps": self.fps, "duration": self.duration,
            "seconds": round(self.seconds, 3), "strategy": self.strategy, "warnings": self.warnings,
        }


def default_strategy(settings: dict, explicit: set[str], has_kps: bool) -> tuple[str, str]:
    """The strategy to use and why: as asked, else ``no_retarget`` with a kps file and ``fix_face`` without."""
    if "retarget_strategy" in explicit:
        return settings["retarget_strategy"], "as requested"
    if has_kps:
        return "no_retarget", "a driving kps file was given"
    return "fix_face", "no driving kps file was given"


def frame_count(duration: float, fps: Fraction) -> int:
    """Frames of a video as long as the audio: ``round(duration * fps)``, never truncated to windows."""
    return int(round(duration * float(fps)))


def plan_generation(request: GenerationRequest, strategy: str, strategy_reason: str,
                    warnings: list[str] | None = None) -> GenerationPlan:
    """Decode and check every input; ``warnings`` (e.g. about settings) head the plan's own."""
    from vexpress_cli.kps.retargeting import missing_driving_kps_error, retarget_track, uses_reference_kps
    from vexpress_cli.media.audio import load_audio
    from vexpress_cli.plugins import get_retarget_strategy

    # The strategy is checked first: a typo should not cost a face detection to find out.
    retargeter = get_retarget_strategy(strategy)
    if request.kps is None and getattr(retargeter, "requires_driving_kps", True):
        raise missing_driving_kps_error(strategy)
    settings = request.settings
    width, height = settings["width"], settings["height"]
    fps = as_fps_fraction(float(settings["fps"]))
    warnings = list(warnings or [])

    waveform = load_audio(request.audio)
    duration = waveform.shape[0] / STANDARD_SAMPLE_RATE
    _check_audio_length(request.audio, duration, fps)
    num_frames = frame_count(duration, fps)
    if not waveform.abs().max() > 0:
        warnings.append(f"The audio {request.audio} is silent: the mouth will not move.")

    image = open_rgb_image(request.reference_image, "reference image")
    if abs(image.width / image.height - width / height) > 0.01:
        warnings.append(f"The reference image is {image.width}x{image.height}; it is stretched to "
                        f"{width}x{height}. Crop it to that shape around the face for best results.")
    if min(image.size) < MIN_ADVISED_SIZE:
        warnings.append(f"The reference image is {image.width}x{image.height}, smaller than {MIN_ADVISED_SIZE}px; "
                        "expect a blurry face.")
    reference = image.resize((width, height), PIL.Image.BICUBIC)

    driving = _load_driving_kps(request.kps, width, height, warnings)
    reference_kps = request.reference_kps
    if reference_kps is None and uses_reference_kps(retargeter):
        from vexpress_cli.face import detect_reference_kps

        reference_kps = detect_reference_kps(request.reference_image, width, height, request.face_backend,
                                             request.face_model_root)
    if reference_kps is None:
        reference_kps = driving[0]
    track = retarget_track(reference_kps, driving, num_frames, retargeter, settings["kps_fit"])
    return GenerationPlan(reference, waveform, duration, fps, num_frames, track, strategy, strategy_reason, warnings)


def _check_audio_length(path: Path, duration: float, fps: Fraction) -> None:
    frame_ms, audio_ms = 1000 / float(fps), duration * 1000
    if audio_ms < frame_ms:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, shorter than one frame.",
                         f"At {float(fps):g} fps a frame lasts {frame_ms:.0f} ms.", "Use a longer audio clip.")
    if duration < MIN_AUDIO_SECONDS:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, too short for the speech encoder.",
                         f"wav2vec2 reads audio in {MIN_AUDIO_SECONDS * 1000:.0f} ms windows.",
                         "Use a longer audio clip.")


def _load_driving_kps(path: Path | None, width: int, height: int, warnings: list[str]) -> np.ndarray | None:
    if path is None:
        return None
    from vexpress_cli.kps.io import load_kps

    track = load_kps(path)
    rescaled = track.rescaled_to(width, height)
    if rescaled is not track:
        warnings.append(f"The kps file was extracted at {track.width}x{track.height}; "
                        f"its points are rescaled to {width}x{height}.")
    return rescaled.points


def run_generation(pipeline, plan: GenerationPlan, request: GenerationRequest, progress=None) -> GenerationResult:
    """Denoise, decode and stream frames into the output file (written to a temp file, renamed at the end)."""
    from vexpress_cli.media.video_writer import open_video_writer

    settings = request.settings
    started = time.monotonic()
    generator = torch.manual_seed(settings["seed"])  # the global generator, as the original seeds
    frames = pipeline.iter_frames(
        reference_image=plan.reference_image, audio_waveform=plan.waveform, video_length=plan.num_frames,
        width=settings["width"], height=settings["height"], kps_images=plan.kps_track,
        num_inference_steps=settings["num_inference_steps"], guidance_scale=settings["guidance_scale"],
        context_frames=settings["context_frames"], context_overlap=settings["context_overlap"],
        reference_attention_weight=settings["reference_attention_weight"],
        audio_attention_weight=settings["audio_attention_weight"],
        num_pad_audio_frames=settings["num_pad_audio_frames"], generator=generator,
        save_gpu_memory=settings["save_gpu_memory"], postprocess=settings["postprocess"], progress=progress,
    )
    writer = open_video_writer(request.output, plan.fps, settings["width"], settings["height"],
                               audio_path=request.audio, overwrite=request.overwrite)
    try:
        with writer:
            for chunk in frames:
                writer.write(chunk)
    except torch.cuda.OutOfMemoryError:
        raise out_of_memory_error(settings, "while generating") from None
    return GenerationResult(request.output, plan.num_frames, float(plan.fps), plan.duration,
                            time.monotonic() - started, plan.strategy, plan.warnings)


def out_of_memory_error(settings: dict, when: str) -> VExpressError:
    return VExpressError(
        f"The GPU ran out of memory {when}.",
        f"{settings['context_frames']} context frames at {settings['width']}x{settings['height']} "
        "need more memory than this GPU has free.",
        "Add --save-gpu-memory, lower --context-frames (e.g. 12), or use --dtype fp16.",
    )
