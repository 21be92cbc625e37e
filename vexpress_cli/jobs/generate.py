"""The generate job: a reference photo and a speech clip in, a finished video out.

Use :func:`generate` for one video, or a :class:`Generator` to load the networks once and run
many jobs on them::

    import vexpress_cli

    with vexpress_cli.Generator(model_dir="model_ckpts") as generator:
        for line in ("hello.wav", "bye.wav"):
            generator.generate("me.jpg", line, line.replace(".wav", ".mp4"), preset="lip-sync")

A job runs in two phases, which front ends may call one by one: :meth:`Generator.plan` resolves
the settings, checks the output path and decodes and checks every input (seconds, no model);
:meth:`Generator.run` loads the networks when not loaded yet, denoises, decodes and streams the
frames into the output. Nothing here prints: progress goes to a ``progress(stage, done, total)``
callback, and warnings (something may be wrong) and notes (what was done to fit the inputs) travel in
the plan and the result.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from vexpress_cli.errors import InputError, VExpressError, parameter
from vexpress_cli.media.audio import STANDARD_SAMPLE_RATE
from vexpress_cli.media.images import open_rgb_image
from vexpress_cli.media.frames import as_fps_fraction
from vexpress_cli.outputs import check_output
from vexpress_cli.progress import ProgressCallback, no_progress
from vexpress_cli.settings.schema import AUTO_STRATEGY, GenerationSettings, ResolvedSettings

MIN_ADVISED_SIZE = 512
# wav2vec2's convolutional front end (kernels 10,3,3,3,3,2,2; strides 5,2,...) spans 400 samples.
MIN_AUDIO_SECONDS = 400 / STANDARD_SAMPLE_RATE
# Settings that belong to the loaded networks, not to one job.
MODEL_SETTINGS = ("device", "dtype")

PathLike = str | Path


@dataclass
class GenerationPlan:
    """One job with its inputs decoded and checked, ready for the model."""

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


@dataclass
class GenerationResult:
    """What a generation wrote, and how."""

    output: Path
    num_frames: int
    fps: float
    duration: float
    seconds: float
    strategy: str
    warnings: list[str]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    record: Path | None = None
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output), "frames": self.num_frames, "fps": self.fps, "duration": self.duration,
            "seconds": round(self.seconds, 3), "strategy": self.strategy, "warnings": self.warnings,
            "notes": self.notes, "record": str(self.record) if self.record else None, "stages": self.stages,
            "settings": self.settings,
        }


def resolve_job_settings(preset: str | Path | None, explicit: dict[str, Any]) -> ResolvedSettings:
    """``defaults < user config < preset < explicit``, each validated."""
    from vexpress_cli.settings.presets import load_preset
    from vexpress_cli.settings.schema import resolve_settings
    from vexpress_cli.settings.user_config import configured_settings

    preset_values = load_preset(preset).values if preset else {}
    return resolve_settings(preset_values, explicit, config_values=configured_settings())


class Generator:
    """The V-Express networks, loaded once on first use, and the jobs run on them.

    ``model_dir`` None looks the folder up as the CLI does ($VEXPRESS_MODEL_DIR, the user config,
    ./model_ckpts); ``device`` and ``dtype`` default to ``auto``. ``devices`` (``"cuda:0,cuda:1"``,
    ``"all"``, ``"cpu,cpu"``) instead splits each video's windows across several devices, one process and
    one copy of the networks per device (``engine/distributed.py``); it wins over ``device``. Use it as a context manager (or
    call :meth:`close`) to free the device's memory when done.
    """

    def __init__(self, model_dir: PathLike | None = None, device: str | None = None, dtype: str | None = None,
                 devices: str | None = None):
        from vexpress_cli.engine.devices import resolve_device, resolve_dtype
        from vexpress_cli.engine.distributed import resolve_devices
        from vexpress_cli.settings.schema import validate_value
        from vexpress_cli.settings.user_config import resolve_model_dir

        device = validate_value("device", device or "auto", f"Setting {parameter('device')}", within_advice=False)
        dtype = validate_value("dtype", dtype or "auto", f"Setting {parameter('dtype')}", within_advice=False)
        self.model_dir = resolve_model_dir(Path(model_dir) if model_dir is not None else None).path
        self.devices = resolve_devices(devices) if devices is not None else []
        self.device = self.devices[0] if self.devices else resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._pipeline = None

    # -- the networks ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def load(self, progress: ProgressCallback | None = None):
        """Load the networks now (the first job does it otherwise); returns the engine pipeline."""
        if self._pipeline is None:
            from vexpress_cli.engine.pipeline import VExpressPipeline

            report = progress or no_progress
            report("model", 0, 1)
            try:
                if len(self.devices) > 1:
                    from vexpress_cli.engine.distributed import MultiDevicePipeline

                    self._pipeline = MultiDevicePipeline(self.model_dir, self.devices, self.dtype)
                else:
                    self._pipeline = VExpressPipeline.from_pretrained(self.model_dir, device=self.device,
                                                                      dtype=self.dtype)
            except torch.cuda.OutOfMemoryError:
                raise out_of_memory_error("while loading the model") from None
            report("model", 1, 1)
        return self._pipeline

    def close(self) -> None:
        """Drop the networks (and stop the processes of other devices) and give their device memory back."""
        if hasattr(self._pipeline, "close"):
            self._pipeline.close()
        self._pipeline = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------

    def generate(self, reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
                 reference_kps=None, preset: str | Path | None = None, overwrite: bool = False,
                 progress: ProgressCallback | None = None, **settings: Any) -> GenerationResult:
        """One video: see :func:`vexpress_cli.generate` for the arguments."""
        plan = self.plan(reference_image, audio, output, kps=kps, reference_kps=reference_kps, preset=preset,
                         overwrite=overwrite, progress=progress, **settings)
        return self.run(plan, progress)

    def plan(self, reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
             reference_kps=None, preset: str | Path | None = None, overwrite: bool = False,
             progress: ProgressCallback | None = None, **settings: Any) -> GenerationPlan:
        """Resolve the settings and check the output and every input; no network runs yet."""
        for name in MODEL_SETTINGS:
            if settings.get(name) is not None:
                raise InputError(f"{parameter(name)} cannot change from one job to the next.",
                                 why="The networks were loaded onto one device in one precision.",
                                 fix=f"Give {parameter(name)} when creating the Generator.")
        from vexpress_cli.jobs.records import StageClock, input_files, reference_kps_text

        resolved = resolve_job_settings(preset, settings)
        output = Path(output)
        check_output(output, overwrite, "video")
        clock = StageClock(progress)
        clock("inputs", 0, 1)
        kps = Path(kps) if kps is not None else None
        plan = plan_inputs(Path(reference_image), Path(audio), output, overwrite, resolved, kps=kps,
                           reference_kps=reference_kps, face_model_root=self.model_dir)
        plan.inputs = input_files(Path(reference_image), Path(audio), kps, reference_kps)
        plan.reference_kps, plan.kps = reference_kps_text(reference_kps), kps
        plan.preset = str(preset) if preset is not None else None
        clock("inputs", 1, 1)
        plan.stages = clock.rounded()
        return plan

    def run(self, plan: GenerationPlan, progress: ProgressCallback | None = None) -> GenerationResult:
        """Denoise, decode and stream the frames into the output (a temp file renamed at the end).

        The run record (``<output>.json``, :mod:`vexpress_cli.jobs.records`) is written just before
        the finished output is renamed into place.
        """
        from vexpress_cli.jobs.records import StageClock, done_record, record_path, write_record
        from vexpress_cli.media.video_writer import open_video_writer

        from vexpress_cli.engine.distributed import configure_speed

        clock = StageClock(progress)
        pipeline = self.load(clock)
        settings = plan.settings
        configure_speed(pipeline, settings.window_batch, settings.compile)
        started = time.monotonic()
        generator = torch.manual_seed(settings.seed)  # the global generator, as the original seeds
        frames = pipeline.iter_frames(
            reference_image=plan.reference_image, audio_waveform=plan.waveform, video_length=plan.num_frames,
            width=settings.width, height=settings.height, kps_images=plan.kps_track,
            num_inference_steps=settings.num_inference_steps, guidance_scale=settings.guidance_scale,
            context_frames=settings.context_frames, context_overlap=settings.context_overlap,
            reference_attention_weight=settings.reference_attention_weight,
            audio_attention_weight=settings.audio_attention_weight,
            num_pad_audio_frames=settings.num_pad_audio_frames, generator=generator,
            save_gpu_memory=settings.save_gpu_memory, postprocess=settings.postprocess, progress=clock,
        )
        writer = open_video_writer(plan.output, plan.fps, settings.width, settings.height,
                                   audio_path=plan.audio, overwrite=plan.overwrite)
        record, stages, written = record_path(plan.output), dict(plan.stages), []

        def write_the_record(finished: Path) -> None:
            stages.update(clock.rounded())
            written.append(write_record(done_record(plan, self, writer.frames_written, time.monotonic() - started,
                                                    stages, finished), record))
        try:
            with writer:
                for chunk in frames:
                    writer.write(chunk)
                writer.close(before_commit=write_the_record)
        except BaseException as error:
            for path in written:  # the record was written but the output did not take its place
                path.unlink(missing_ok=True)
            if len(self.devices) > 1:  # the other devices' processes may be mid-step: start afresh next time
                self.close()
            if isinstance(error, torch.cuda.OutOfMemoryError):
                raise out_of_memory_error("while generating", settings) from None
            raise
        return GenerationResult(plan.output, plan.num_frames, float(plan.fps), plan.duration,
                                time.monotonic() - started, plan.strategy, plan.warnings,
                                {**settings.to_dict(), "retarget_strategy": plan.strategy,
                                 "device": self.device_names, "dtype": self.dtype_name},
                                plan.notes, record, stages)

    @property
    def device_names(self) -> str:
        """The device, or the devices a video is split across (``cpu,cpu``)."""
        return ",".join(str(device) for device in self.devices) if len(self.devices) > 1 else str(self.device)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def generate(reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
             reference_kps=None, preset: str | Path | None = None, model_dir: PathLike | None = None,
             device: str | None = None, dtype: str | None = None, devices: str | None = None, overwrite: bool = False,
             progress: ProgressCallback | None = None, **settings: Any) -> GenerationResult:
    """Generate a talking-portrait video: a reference photo + speech (+ an optional driving kps track).

    ``reference_image``: the portrait; ``audio``: speech (any format ffmpeg reads, or a video);
    ``output``: ``.mp4``/``.mov``/``.mkv``, or a folder path without suffix for PNG frames.
    ``kps``: a driving V-Kps track (``vexpress_cli.extract``). ``reference_kps``: the portrait's
    left eye, right eye and nose instead of detecting them (a ``[3, 2]`` array, ``"x,y;x,y;x,y"``
    or a kps file). ``preset``: a preset name or ``.toml`` path. ``settings``: any generation
    setting by its name (``num_inference_steps``, ``retarget_strategy``, ``audio_attention_weight``,
    ``fps``, ``width``, ``seed``, ...; see ``vexpress_cli.GenerationSettings``), winning over the
    preset. ``devices``: split the video across devices (``"cuda:0,cuda:1"``, ``"all"``), see
    :class:`Generator`. ``progress(stage, done, total)`` is called as the job advances.

    Raises :class:`vexpress_cli.VExpressError` (what, why and how to fix) for bad input.
    """
    resolved = resolve_job_settings(preset, {**settings, "device": device, "dtype": dtype}).settings
    job_settings = {name: value for name, value in settings.items() if name not in MODEL_SETTINGS}
    with Generator(model_dir, resolved.device, resolved.dtype, devices) as generator:
        return generator.generate(reference_image, audio, output, kps=kps, reference_kps=reference_kps,
                                  preset=preset, overwrite=overwrite, progress=progress, **job_settings)


# -- planning ------------------------------------------------------------------------------------


def choose_strategy(resolved: ResolvedSettings, has_kps: bool) -> tuple[str, str]:
    """The strategy to use and why: as asked, else ``no_retarget`` with a kps file and ``fix_face`` without."""
    asked = resolved.settings.retarget_strategy
    if asked != AUTO_STRATEGY:
        source = resolved.sources["retarget_strategy"]
        return asked, "as requested" if source == "explicit" else f"from the {source.replace('config', 'user config')}"
    if has_kps:
        return "no_retarget", "a driving kps file was given"
    return "fix_face", "no driving kps file was given"


def frame_count(duration: float, fps: Fraction) -> int:
    """Frames of a video as long as the audio: ``round(duration * fps)``, never truncated to windows."""
    return int(round(duration * float(fps)))


def plan_inputs(reference_image: Path, audio: Path, output: Path, overwrite: bool, resolved: ResolvedSettings, *,
                kps: Path | None = None, reference_kps=None, face_model_root: Path | None = None) -> GenerationPlan:
    """Decode and check every input of a job."""
    from vexpress_cli.kps.bounds import check_kps_in_frame
    from vexpress_cli.kps.retargeting import require_driving_kps, retarget_track, uses_reference_kps
    from vexpress_cli.media.audio import load_audio, truncation_warning
    from vexpress_cli.media.ffmpeg import probe
    from vexpress_cli.plugins import get_retarget_strategy

    settings = resolved.settings
    strategy, strategy_reason = choose_strategy(resolved, kps is not None)
    # The strategy is checked first: a typo should not cost a face detection to find out.
    retargeter = get_retarget_strategy(strategy)
    require_driving_kps(retargeter, kps is not None)
    width, height = settings.width, settings.height
    fps = as_fps_fraction(settings.fps)
    warnings = list(resolved.warnings)

    waveform = load_audio(audio)
    duration = waveform.shape[0] / STANDARD_SAMPLE_RATE
    _check_audio_length(audio, duration, fps)
    num_frames = frame_count(duration, fps)
    if not waveform.abs().max() > 0:
        warnings.append(f"The audio {audio} is silent: the mouth will not move.")
    truncated = truncation_warning(duration, probe(audio, "audio").duration)
    if truncated:
        warnings.append(f"{audio}: {truncated}")

    image = open_rgb_image(reference_image, "reference image")
    if abs(image.width / image.height - width / height) > 0.01:
        warnings.append(f"The reference image is {image.width}x{image.height}; it is stretched to "
                        f"{width}x{height}. Crop it to that shape around the face for best results.")
    if min(image.size) < MIN_ADVISED_SIZE:
        warnings.append(f"The reference image is {image.width}x{image.height}, smaller than {MIN_ADVISED_SIZE}px; "
                        "expect a blurry face.")
    reference = image.resize((width, height), PIL.Image.BICUBIC)

    notes: list[str] = []
    driving = _driving_track(kps, audio, settings, num_frames, warnings, notes)
    reference_points = _reference_points(reference_kps, width, height)
    if reference_points is None and uses_reference_kps(retargeter):
        from vexpress_cli.face import detect_reference_kps

        reference_points = detect_reference_kps(reference_image, width, height, settings.face_backend,
                                                face_model_root)
    if reference_points is None:
        reference_points = driving[0]
    track = retarget_track(reference_points, driving, num_frames, retargeter, settings.kps_fit)
    outside = check_kps_in_frame(track, width, height, "the keypoint track")
    warnings.extend([outside] if outside else [])
    return GenerationPlan(reference, audio, output, overwrite, waveform, duration, fps, num_frames, track, strategy,
                          strategy_reason, settings, dict(resolved.sources), warnings, notes)


def _reference_points(reference_kps, width: int, height: int) -> np.ndarray | None:
    """Reference keypoints given by the caller: ``[3, 2]`` numbers, ``"x,y;x,y;x,y"`` or a kps file."""
    if reference_kps is None:
        return None
    if isinstance(reference_kps, (str, Path)):
        from vexpress_cli.kps.io import reference_kps_from_text

        return reference_kps_from_text(str(reference_kps), width, height)
    return np.asarray(reference_kps, dtype=np.float32)


def _check_audio_length(path: Path, duration: float, fps: Fraction) -> None:
    frame_ms, audio_ms = 1000 / float(fps), duration * 1000
    if audio_ms < frame_ms:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, shorter than one frame.",
                         f"At {float(fps):g} fps a frame lasts {frame_ms:.0f} ms.", "Use a longer audio clip.")
    if duration < MIN_AUDIO_SECONDS:
        raise InputError(f"The audio {path} lasts {audio_ms:.0f} ms, too short for the speech encoder.",
                         f"wav2vec2 reads audio in {MIN_AUDIO_SECONDS * 1000:.0f} ms windows.",
                         "Use a longer audio clip.")


def _driving_track(path: Path | None, audio: Path, settings: GenerationSettings, num_frames: int,
                   warnings: list[str], notes: list[str]) -> np.ndarray | None:
    """The driving kps file in the output frame, fitted in time to the video's frames."""
    if path is None:
        return None
    from vexpress_cli.kps.fit import fit_track_in_time
    from vexpress_cli.kps.io import load_kps

    track = load_kps(path)
    rescaled, note = track.in_frame(settings.width, settings.height)
    notes.extend([note] if note else [])
    track_fps = track.fps or _assumed_track_fps(audio, notes)
    points, fitting = fit_track_in_time(rescaled.points, track_fps, settings.fps, num_frames, settings.kps_fit)
    notes.extend(fitting)
    return points


def _assumed_track_fps(audio: Path, notes: list[str]) -> float:
    """A kps file without a frame rate (the original's .pth) was filmed at the speech video's rate, else 25 fps."""
    from vexpress_cli.kps.io import ASSUMED_FPS
    from vexpress_cli.media.ffmpeg import probe
    from vexpress_cli.media.video_reader import video_info

    source = probe(audio, "audio")
    fps, where = (float(video_info(source).fps), f"the frame rate of {audio.name}") if source.video else (
        ASSUMED_FPS, "the original samples' rate")
    notes.append(f"The kps file records no frame rate; assumed {fps:g} fps ({where}). "
                    "Tracks saved as .safetensors keep theirs.")
    return fps


def out_of_memory_error(when: str, settings: GenerationSettings | None = None) -> VExpressError:
    size = f" at {settings.width}x{settings.height}" if settings else ""
    frames = f"{settings.context_frames} context frames" if settings else "The networks"
    return VExpressError(
        f"The GPU ran out of memory {when}.",
        f"{frames}{size} need more memory than this GPU has free.",
        f"Turn on {parameter('save_gpu_memory')}, lower {parameter('context_frames')} (e.g. 12), "
        f"or use {parameter('dtype')} fp16.",
    )
