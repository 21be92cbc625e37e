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
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vexpress_cli.engine.devices import runs_with
from vexpress_cli.errors import (InputError, VExpressError, checked_switch, messages, parameter, python_name,
                                 spell_parameters)
from vexpress_cli.face.insightface_backend import MissingDetectorError, missing_detector_error
from vexpress_cli.input_files import as_path, optional_path
from vexpress_cli.kps.io import reference_kps_file
from vexpress_cli.media.encoding import check_frame_size, encoding_for_output, unused_encoding_warnings
from vexpress_cli.outputs import check_output, refuse_replacing_an_input, written_meanwhile
from vexpress_cli.progress import ProgressCallback, checked_callback
from vexpress_cli.jobs.devices import check_job_device, compile_warnings, job_device_and_dtype
from vexpress_cli.jobs.keywords import check_keywords, not_a_generator_argument
from vexpress_cli.jobs.planning import GenerationPlan, checked_plan, plan_inputs
from vexpress_cli.settings.schema import GenerationSettings, ResolvedSettings, checked_setting
from vexpress_cli.settings.user_config import where_set

# Settings that belong to the loaded networks, not to one job.
MODEL_SETTINGS = ("device", "dtype")
GENERATOR_ARGUMENTS = ("model", "model_dir", "devices")  # no settings: a job passing one is told where it goes

PathLike = str | Path
ReferenceKps = str | Path | np.ndarray | Sequence[Sequence[float]]


@dataclass
class GenerationResult:
    """What a generation wrote, and how (:meth:`to_dict`: the same, JSON-ready, with ``num_frames`` as ``frames``).

    ``output``: the video, or the folder of PNG frames; ``num_frames`` and ``fps``: its frames and their rate;
    ``duration``: the audio's length in seconds; ``size``: the video's (width, height); ``crop``: [x, y, w, h] of
    the photo that was animated (None: the whole photo); ``seconds``: wall time of denoising, decoding and
    writing; ``strategy``: the retarget strategy used; ``warnings``: what may be wrong; ``notes``: what was done
    to fit the inputs; ``record``: the run record's path; ``stages``: wall seconds per progress stage;
    ``settings``: every setting as used, with the device and dtype.
    """

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
    crop: list[int] | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.warnings = messages(self.warnings)
        self.notes = messages(self.notes)

    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict[str, Any]:
        """Plain JSON types; settings named in warnings and notes read as ``spell`` says (Python names, or flags)."""
        return {
            "output": str(self.output), "frames": self.num_frames, "fps": self.fps, "duration": self.duration,
            "crop": self.crop, "size": list(self.size) if self.size else None,
            "seconds": round(self.seconds, 3), "strategy": self.strategy,
            "warnings": [spell_parameters(warning, spell) for warning in self.warnings],
            "notes": [spell_parameters(note, spell) for note in self.notes],
            "record": str(self.record) if self.record else None, "stages": self.stages, "settings": self.settings,
        }


def resolve_job_settings(preset: str | Path | None, explicit: dict[str, Any]) -> ResolvedSettings:
    """``defaults < user config < preset < explicit``, each validated."""
    from vexpress_cli.settings.presets import load_preset
    from vexpress_cli.settings.schema import resolve_settings
    from vexpress_cli.settings.user_config import configured_settings

    preset_values = load_preset(preset).values if preset is not None else {}
    return resolve_settings(preset_values, explicit, config_values=configured_settings())


def resolved_job(preset: str | Path | None, settings: dict[str, Any],
                 devices: str | list[str] | None = None) -> tuple[ResolvedSettings, dict[str, Any]]:
    """A job's settings resolved (:func:`resolve_job_settings`), its device and dtype checked before a
    :class:`Generator` takes them, so that one a preset or the user config set and that cannot run is told as
    theirs (``devices`` wins over it); and the settings for :meth:`Generator.plan`: all given but those two."""
    resolved = resolve_job_settings(preset, settings)
    check_job_device(resolved, devices)
    return resolved, {name: value for name, value in settings.items() if name not in MODEL_SETTINGS}


class Generator:
    """The V-Express networks, loaded once on first use, and the jobs run on them.

    ``model`` is a hub id (``tk93/V-Express``, ``@revision`` allowed; read from the Hugging Face cache)
    or a folder, ``model_dir`` a folder; both None look the weights up as the CLI does ($VEXPRESS_MODEL,
    $VEXPRESS_MODEL_DIR, the user config, ./model_ckpts, then tk93/V-Express in the cache).
    ``device`` and ``dtype`` default to the user config's, else ``auto``. ``devices`` (``"cuda:0,cuda:1"``, ``"all"``,
    ``["cpu", "cpu"]``) instead splits each video's windows across several devices, one process and one copy
    of the networks per device (``engine/distributed.py``); it wins over ``device``. Use it as a context
    manager (or call :meth:`close`) to free the device's memory when done.
    """

    def __init__(self, model_dir: PathLike | None = None, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, devices: str | list[str] | None = None, *,
                 model: str | None = None, **others: Any):
        if others:
            raise TypeError(not_a_generator_argument(next(iter(others)), Generator.plan,
                                                     (*GENERATOR_ARGUMENTS, *MODEL_SETTINGS)))
        from vexpress_cli.engine.devices import dtype_warning
        from vexpress_cli.engine.distributed import resolve_devices
        from vexpress_cli.settings.model_lookup import resolve_model_dir
        from vexpress_cli.settings.user_config import configured_settings, your_setting

        configured = configured_settings()  # as the CLI and generate() do: the user config, then auto
        (device, device_source), (dtype, dtype_source) = (your_setting(name, value or None, configured)
                                                          for name, value in (("device", device), ("dtype", dtype)))
        self.model_dir = resolve_model_dir(optional_path(model_dir, "model_dir"), model=model).path
        self.devices = resolve_devices(devices) if devices is not None else []
        self.device, self.dtype = job_device_and_dtype(device, dtype, {"device": device_source, "dtype": dtype_source},
                                                       self.devices)
        self.warnings = [warning] if (warning := dtype_warning(self.dtype, self.device)) else []
        self._pipeline = None
        self._offload = "none"
        # One job at a time: jobs share the networks, their per-job settings and the device. A plain
        # Lock: a frames() iterator may be resumed, and so end, in another thread than the one that started it.
        self._running = threading.Lock()
        self._running_in: int | None = None  # the thread that started the running job

    # -- the networks ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def load(self, progress: ProgressCallback | None = None, offload: str = "none"):
        """Load the networks now (the first job does it otherwise); returns the engine pipeline.

        ``offload`` (none, model, sequential) is how the networks sit between the CPU and the device;
        a job asking for another mode than the loaded one reloads them (offload hooks do not come off).
        """
        offload = checked_setting("offload", offload)  # an unknown mode would load as none, then reload per job
        with self._one_job():
            return self._load(progress, offload)

    def _load(self, progress: ProgressCallback | None, offload: str):
        if self._pipeline is not None and self._offload != offload:
            self._close()
        if self._pipeline is None:
            report = checked_callback(progress)
            report("model", 0, 1)  # before the import: diffusers' takes seconds on a busy machine
            from vexpress_cli.engine.pipeline import VExpressPipeline

            try:
                if len(self.devices) > 1:
                    from vexpress_cli.engine.distributed import MultiDevicePipeline

                    pipeline = MultiDevicePipeline(self.model_dir, self.devices, self.dtype, offload=offload)
                else:
                    # With offloading the networks load into CPU memory: they may not fit on the device together.
                    device = self.device if offload == "none" else None
                    pipeline = VExpressPipeline.from_pretrained(self.model_dir, device=device, dtype=self.dtype)
                    pipeline.enable_offload(offload, self.device)
            except torch.cuda.OutOfMemoryError:
                raise out_of_memory_error("while loading the model") from None
            pipeline.set_progress_bar_config(disable=True)  # progress goes to the job's callback
            self._pipeline, self._offload = pipeline, offload
            report("model", 1, 1)
        return self._pipeline

    def close(self) -> None:
        """Drop the networks (and stop the processes of other devices) and give their device memory back."""
        with self._one_job():
            self._close()

    def _close(self) -> None:
        if hasattr(self._pipeline, "close"):
            self._pipeline.close()
        self._pipeline = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @contextmanager
    def _one_job(self) -> Iterator[None]:
        """Hold the Generator for one job (or load, or close); a job of another thread waits for it."""
        if not self._running.acquire(blocking=False):
            if self._running_in == threading.get_ident():  # waiting would never end
                raise VExpressError("This Generator is already running a job started in this thread.",
                                    why="A frames() iterator that is not finished holds it; jobs run one at a time.",
                                    fix="Finish the loop over frames(), or close the iterator (iterator.close(), "
                                    "or contextlib.closing), before anything else.")
            self._running.acquire()
        self._running_in = threading.get_ident()
        try:
            yield
        finally:
            self._running_in = None
            self._running.release()

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------

    def generate(self, reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
                 reference_kps: ReferenceKps | None = None, preset: str | Path | None = None, overwrite: bool = False,
                 progress: ProgressCallback | None = None, **settings: Any) -> GenerationResult:
        """One video: see :func:`vexpress_cli.generate` for the arguments."""
        check_keywords(Generator.generate, settings, also=MODEL_SETTINGS)
        plan = self.plan(reference_image, audio, output, kps=kps, reference_kps=reference_kps, preset=preset,
                         overwrite=overwrite, progress=progress, **settings)
        return self.run(plan, progress)

    def plan(self, reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
             reference_kps: ReferenceKps | None = None, preset: str | Path | None = None, overwrite: bool = False,
             progress: ProgressCallback | None = None, **settings: Any) -> GenerationPlan:
        """Resolve the settings and check the output and every input; no network runs yet."""
        for name in GENERATOR_ARGUMENTS:
            if name in settings:
                raise InputError(f"{parameter(name)} is given when creating the Generator, not to a job.",
                                 why="A Generator holds one model, loaded once for all its jobs.",
                                 fix=f"Create a Generator({name}=...) for it.")
        check_keywords(Generator.plan, settings, also=MODEL_SETTINGS)
        for name in MODEL_SETTINGS:
            given = settings.pop(name, None)
            if given is not None and not runs_with(name, checked_setting(name, given), self.device, self.dtype):
                raise InputError(f"{parameter(name)} cannot change from one job to the next.",
                                 why="The networks were loaded onto one device in one precision.",
                                 fix=f"Give {parameter(name)} when creating the Generator.")
        from vexpress_cli.jobs.records import StageClock, input_files, preset_text, reference_kps_text

        if self._pipeline is None:  # a folder lacking a file failed only once loading began, after the plan
            from vexpress_cli.engine.loading import check_model_folder

            check_model_folder(self.model_dir)
        reference_image, audio = as_path(reference_image, "reference_image"), as_path(audio, "audio")
        output, kps = as_path(output, "output"), optional_path(kps, "kps")
        overwrite = checked_switch("overwrite", overwrite)
        resolved = resolve_job_settings(preset, settings)
        self._refuse_other_model_settings(resolved)
        refuse_replacing_an_input(output, {"reference_image": reference_image, "audio": audio, "kps": kps,
                                           "reference_kps": reference_kps_file(reference_kps)})
        check_output(output, overwrite, "video", folder_made_later=True)
        encoding = encoding_for_output(resolved.settings, output)  # an unusable codec fails before slow work
        clock = StageClock(progress)
        clock("inputs", 0, 1)
        try:
            plan = plan_inputs(reference_image, audio, output, overwrite, resolved, kps=kps,
                               reference_kps=reference_kps, face_model_root=self.model_dir)
        except MissingDetectorError as error:  # worded for extract's model_root; a job has only its model folder
            raise where_set(missing_detector_error(error.root, root_parameter=None), "face_backend",
                            resolved.settings.face_backend, resolved.sources["face_backend"]) from None
        plan.inputs = input_files(reference_image, audio, kps, reference_kps)
        plan.reference_kps, plan.kps = reference_kps_text(reference_kps), kps
        plan.preset, plan.encoding = preset_text(preset), encoding
        pasted = plan.photo.paste_back_size(resolved.settings.max_size) if plan.photo is not None else None
        if pasted:  # the encoder's frame-size limits, checked before the slow work rather than at the end
            check_frame_size(encoding, *pasted, "Paste-back keeps the photo's size.",
                             f"Add {parameter('max_size', '1920')} to scale the video down, or crop the photo.")
        unused = unused_encoding_warnings(resolved.settings, encoding)
        slow = compile_warnings(resolved, self.device)
        plan.warnings = messages([*self.warnings, *plan.warnings, *unused, *slow])
        clock("inputs", 1, 1)
        plan.stages = clock.rounded()
        return plan

    def _refuse_other_model_settings(self, resolved) -> None:
        """A preset's ``device`` or ``dtype`` this Generator does not run with is refused, as a job's own is:
        the networks are already loaded, and ignoring it would give a video made otherwise without a word."""
        for name in MODEL_SETTINGS:
            value = getattr(resolved.settings, name)
            if resolved.sources[name] == "preset" and not runs_with(name, value, self.device, self.dtype):
                own = str(self.dtype).removeprefix("torch.") if name == "dtype" else self.device
                raise InputError(f"The preset sets {name} = {value!r}, but this Generator runs with {own}.",
                                 why="A Generator loads the networks once, onto one device in one precision.",
                                 fix=f"Create a Generator({name}={value!r}) for this preset's jobs.")

    def run(self, plan: GenerationPlan, progress: ProgressCallback | None = None) -> GenerationResult:
        """Denoise, decode and stream the frames into the output (a temp file renamed at the end).

        The run record (``<output>.json``, :mod:`vexpress_cli.jobs.records`) is written just before
        the finished output is renamed into place. Jobs run one at a time: a second thread's job waits.
        """
        plan = checked_plan(plan)
        with self._one_job():
            return self._run(plan, progress)

    def frames(self, plan: GenerationPlan, progress: ProgressCallback | None = None) -> Iterator[np.ndarray]:
        """The job's frames as they are made, and no file: ``[n, H, W, 3]`` uint8 RGB chunks in order (the
        frames :meth:`run` would encode, paste-back included); nothing is written at the plan's output path.

        The iterator holds the Generator until it ends: finish the loop, or close it, before the next job.
        """
        from vexpress_cli.jobs.records import StageClock

        plan = checked_plan(plan)
        with self._one_job():
            paste = plan.photo.paste_back(plan.settings.max_size) if plan.photo is not None else None
            yield from self._frame_chunks(plan, StageClock(progress), paste)

    def _frame_chunks(self, plan: GenerationPlan, clock: ProgressCallback, paste) -> Iterator[np.ndarray]:
        from vexpress_cli.engine.distributed import configure_speed

        settings = plan.settings
        pipeline = self._load(clock, settings.offload)
        pipeline.use_scheduler(settings.scheduler)
        configure_speed(pipeline, settings.window_batch, settings.compile)
        generator = pipeline.seeded_generator(settings.seed)
        chunks = pipeline.iter_frames(
            reference_image=plan.reference_image, audio_waveform=plan.waveform, video_length=plan.num_frames,
            width=settings.width, height=settings.height, kps_images=plan.kps_track,
            num_inference_steps=settings.num_inference_steps, guidance_scale=settings.guidance_scale,
            context_frames=settings.context_frames, context_overlap=settings.context_overlap,
            reference_attention_weight=settings.reference_attention_weight,
            audio_attention_weight=settings.audio_attention_weight,
            num_pad_audio_frames=settings.num_pad_audio_frames, generator=generator,
            save_gpu_memory=settings.save_gpu_memory, postprocess=settings.postprocess, progress=clock,
        )
        try:
            for chunk in chunks:
                if paste is None:
                    yield chunk
                else:
                    yield from (frame[None] for frame in paste.frames(chunk))  # full-size frames, one at a time
        except BaseException as error:
            if len(self.devices) > 1:  # the other devices' processes may be mid-step: start afresh next time
                self._close()
            if isinstance(error, torch.cuda.OutOfMemoryError):
                raise out_of_memory_error("while generating", settings) from None
            raise

    def _run(self, plan: GenerationPlan, progress: ProgressCallback | None) -> GenerationResult:
        from vexpress_cli.jobs.records import StageClock, done_record, record_path, settings_as_run, write_record
        from vexpress_cli.media.video_writer import open_video_writer

        clock = StageClock(progress)
        settings = plan.settings
        self._load(clock, settings.offload)  # before the clock starts: loading is a stage of its own
        started = time.monotonic()
        paste = plan.photo.paste_back(settings.max_size) if plan.photo is not None else None
        size = (paste.width, paste.height) if paste else (settings.width, settings.height)
        frames = self._frame_chunks(plan, clock, paste)
        writer = open_video_writer(plan.output, plan.fps, *size, audio_path=plan.audio, overwrite=plan.overwrite,
                                   encoding=plan.encoding)
        record, stages, written = record_path(plan.output), dict(plan.stages), []
        # The record goes in place before the output: of two runs racing for one new output, the first to
        # place its record wins, and the other's leaves the winner's record as it is.
        replace_record = plan.overwrite or os.path.lexists(record)  # a stale record (a broken link too) goes

        def write_the_record(finished: Path) -> None:
            if not replace_record and os.path.lexists(record):  # another run placed its record, then its output
                raise written_meanwhile(plan.output)
            stages.update(clock.rounded())
            written.append(write_record(done_record(plan, self, writer.frames_written, time.monotonic() - started,
                                                    stages, finished), record, overwrite=replace_record))
        try:
            with writer:
                for chunk in frames:
                    writer.write(chunk)
                writer.commit(before_commit=write_the_record)
        except BaseException:
            frames.close()  # a writer's failure too stops the networks' work (and other devices' processes)
            for path in written:  # the record was written but the output did not take its place
                path.unlink(missing_ok=True)
            raise
        return GenerationResult(plan.output, plan.num_frames, float(plan.fps), plan.duration,
                                time.monotonic() - started, plan.strategy, plan.warnings,
                                settings_as_run({**settings.to_dict(), "retarget_strategy": plan.strategy,
                                                 **({"codec": plan.encoding.codec} if plan.encoding else {})}, self),
                                plan.notes, record, stages, plan.crop, size)

    @property
    def device_names(self) -> str:
        """The device, or the devices a video is split across (``cpu,cpu``)."""
        return ",".join(str(device) for device in self.devices) if len(self.devices) > 1 else str(self.device)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def generate(reference_image: PathLike, audio: PathLike, output: PathLike, *, kps: PathLike | None = None,
             reference_kps: ReferenceKps | None = None, preset: str | Path | None = None,
             model_dir: PathLike | None = None, model: str | None = None, device: str | torch.device | None = None,
             dtype: str | torch.dtype | None = None, devices: str | list[str] | None = None, overwrite: bool = False,
             progress: ProgressCallback | None = None, **settings: Any) -> GenerationResult:
    """Generate a talking-portrait video: a reference photo + speech (+ an optional driving kps track).

    ``reference_image``: the portrait; ``audio``: speech (any format ffmpeg reads, or a video);
    ``output``: ``.mp4``/``.mov``/``.mkv``, or a folder path without suffix for PNG frames.
    ``kps``: a driving V-Kps track (``vexpress_cli.extract``). ``reference_kps``: the portrait's
    left eye, right eye and nose instead of detecting them (a ``[3, 2]`` array, ``"x,y;x,y;x,y"``
    or a kps file), in pixels of the output frame (the photo resized to ``width`` x ``height``, or a ``crop``
    box's frame), not of the photo. ``model``/``model_dir``: the weights, as for :class:`Generator`.
    ``preset``: a preset name or ``.toml`` path. ``settings``: any generation
    setting by its name (``num_inference_steps``, ``retarget_strategy``, ``audio_attention_weight``,
    ``fps``, ``width``, ``seed``, ...; see ``vexpress_cli.GenerationSettings``), winning over the
    preset. ``devices``: split the video across devices (``"cuda:0,cuda:1"``, ``"all"``), see
    :class:`Generator`. ``progress(stage, done, total)`` is called as the job advances.

    Raises :class:`vexpress_cli.VExpressError` (what, why and how to fix) for bad input.
    """
    check_keywords(generate, settings)
    resolved, job_settings = resolved_job(preset, {**settings, "device": device, "dtype": dtype}, devices)
    with Generator(model_dir, resolved.settings.device, resolved.settings.dtype, devices, model=model) as generator:
        return generator.generate(reference_image, audio, output, kps=kps, reference_kps=reference_kps,
                                  preset=preset, overwrite=overwrite, progress=progress, **job_settings)


def out_of_memory_error(when: str, settings: GenerationSettings | None = None) -> VExpressError:
    size = f" at {settings.width}x{settings.height}" if settings else ""
    frames = f"{settings.context_frames} context frames" if settings else "The networks"
    return VExpressError(
        f"The GPU ran out of memory {when}.",
        f"{frames}{size} need more memory than this GPU has free.",
        f"Turn on {parameter('save_gpu_memory')} or {parameter('offload', 'model')}, lower "
        f"{parameter('context_frames')} (e.g. 12), or use {parameter('dtype', 'fp16')}.",
    )
