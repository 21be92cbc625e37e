"""``batch()``: check the whole manifest, skip what is done, run the rest on one or more loaded Generators.

Where the jobs run: in this process (one worker, the default), in one worker process per device
(``devices=["cuda:0", "cuda:1"]`` or ``"all"``; ``workers=N`` on one device, e.g. the CPU) pulling jobs
from one queue (:mod:`.workers`), or on Ray actors (``ray="local"`` or a cluster address,
:mod:`.ray_runner`). Each worker loads the networks once and runs its jobs on them.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.errors import InputError, checked_switch, parameter
from vexpress_cli.input_files import as_path, optional_path
from vexpress_cli.interrupts import exit_code_of
from vexpress_cli.jobs.batch.checks import SKIP, BatchJob, prepare_jobs
from vexpress_cli.jobs.batch.execute import Emit, run_job
from vexpress_cli.jobs.batch.ray_runner import check_reachable, import_ray
from vexpress_cli.jobs.batch.summary import (INTERRUPTED, NOT_RUN, SKIPPED, BatchEvent, BatchInterrupted,
                                             BatchSummary, EventCallbackError, JobOutcome, raising_callback_apart)
from vexpress_cli.jobs.generate import MODEL_SETTINGS, Generator
from vexpress_cli.jobs.records import record_path
from vexpress_cli.outputs import missing_folders, remove_if_empty
from vexpress_cli.progress import checked_callback


def batch(manifest: str | Path, *, preset: str | Path | None = None, model_dir: str | Path | None = None,
          model: str | None = None, workers: int = 1, devices: str | list[str] | None = None,
          ray: str | None = None, force: bool = False, on_event: Emit | None = None,
          **settings: Any) -> BatchSummary:
    """Run every job of a manifest (``.jsonl`` or ``.csv``, see :mod:`.manifest`) with the networks loaded once.

    ``model``/``model_dir``: the weights, as for :class:`~vexpress_cli.Generator`. ``preset`` and
    ``settings`` (any generation setting by name) are defaults that each job's own values override, but
    ``device`` and ``dtype`` (given, else the preset's, else the user config's) are the whole batch's. The
    whole manifest is checked first: every problem raises one
    :class:`~vexpress_cli.jobs.batch.manifest.ManifestError` and nothing runs. Jobs whose
    output and matching run record exist are skipped (``force`` redoes them); a failing job is recorded
    and the batch goes on. ``on_event(BatchEvent)`` follows the jobs and their stages. Ctrl-C raises
    :class:`BatchInterrupted`, whose ``summary`` says what was done, after the running jobs cleaned up.
    """
    from vexpress_cli.engine.checkpoints import check_model_files
    from vexpress_cli.engine.model_folder import ModelFolder
    from vexpress_cli.jobs.model_identity import model_files
    from vexpress_cli.settings.model_lookup import resolve_model_dir

    started = time.monotonic()
    force = checked_switch("force", force)
    emit = _ignore if on_event is None else raising_callback_apart(checked_callback(on_event, "on_event", "event"))
    device, dtype = batch_model_settings(preset, settings, devices)
    names = _check_runner_choice(ray, devices, workers, device)
    weights = functools.cache(lambda: resolve_model_dir(optional_path(model_dir, "model_dir"), model=model).path)
    jobs = prepare_jobs(as_path(manifest, "manifest"), preset=preset, settings=settings, force=force,
                        loaded=_loaded(names if ray is None else None, device, dtype),
                        model_files=lambda: model_files(weights().absolute()))  # listed once
    model_dir = weights()
    check_model_files(ModelFolder(model_dir))  # before any worker reads gigabytes
    to_run = [job for job in jobs if job.action != SKIP]
    names = no_more_than(names, len(to_run))
    tally = _Tally(str(manifest), jobs, [f"ray {ray}"] if ray is not None else names, started, emit)
    # Made here or by the workers; those a stopped batch leaves empty go (two workers' claims shared one folder,
    # so neither job could remove it on its own).
    made_folders = sorted({folder for job in to_run for folder in missing_folders(Path(job.output).parent)},
                          key=lambda folder: len(folder.parts), reverse=True)
    try:
        tally.report_skipped()
        if to_run:
            _run(to_run, names, ray, workers, model_dir, device, dtype, tally.collect)
    except KeyboardInterrupt as stop:
        _remove_empty(made_folders)
        raise BatchInterrupted(tally.summary(interrupted=True), exit_code_of(stop)) from None
    except EventCallbackError as failed:
        _remove_empty(made_folders)
        raise failed.__cause__ from None
    return tally.summary()


def _check_runner_choice(ray: str | None, devices, workers: int, device: str | None) -> list[str]:
    """The workers' device names, once the choice of where the jobs run holds together: Ray installed and its
    cluster answering, or no more local CPU workers than cores."""
    if ray is not None and devices is not None:
        raise InputError(f"{parameter('devices')} cannot be used with {parameter('ray')}.",
                         "On Ray each actor gets one GPU of the cluster (or one CPU where there is none).",
                         f"Drop {parameter('devices')}; {parameter('workers', 'N')} sets the number of CPU actors.")
    names = worker_devices(devices, workers, device)
    if ray is not None:
        import_ray()  # without Ray, say how to install it before checking anything else
        check_reachable(ray)  # Ray itself would retry for minutes, deaf to Ctrl-C
    elif all(name.startswith("cpu") for name in names):
        check_local_workers(len(names), by_devices=devices is not None)
    return names


def _run(jobs: list[BatchJob], names: list[str], ray: str | None, workers: int, model_dir: Path,
         device: str | None, dtype: str, emit: Emit) -> None:
    """The jobs on Ray actors, in one worker process per name, or here when there is one name."""
    if ray is not None:
        from vexpress_cli.jobs.batch.ray_runner import run_on_ray

        run_on_ray(jobs, ray, workers, model_dir, device, dtype, emit)
    elif len(names) > 1:
        from vexpress_cli.jobs.batch.workers import run_in_processes

        run_in_processes(jobs, names, model_dir, dtype, emit)
    else:
        run_here(jobs, names[0], model_dir, dtype, emit)


@dataclass
class _Tally:
    """What the batch heard of its jobs (passed on to ``emit``), for its summary, a stopped batch's too."""

    manifest: str
    jobs: list[BatchJob]
    workers: list[str]  # as the summary shows them
    started: float  # time.monotonic() at the batch's start
    emit: Emit
    outcomes: dict[int, JobOutcome] = field(default_factory=dict)
    started_lines: set[int] = field(default_factory=set)

    def collect(self, event: BatchEvent) -> None:
        if event.kind == "started":
            self.started_lines.add(event.line)
        elif event.kind == "finished":
            self.outcomes[event.line] = event.outcome
        self.emit(event)

    def report_skipped(self) -> None:
        """The "checked" event, then each skipped job as finished."""
        skipped = [job for job in self.jobs if job.action == SKIP]
        self.emit(BatchEvent("checked", "", 0, done=len(skipped), total=len(self.jobs)))
        for job in skipped:
            self.collect(BatchEvent("finished", "", job.line, job.output, outcome=JobOutcome(
                job.line, job.output, SKIPPED, SKIP, job.reason, record=str(record_path(job.output)))))

    def summary(self, interrupted: bool = False) -> BatchSummary:
        ordered = [self.outcomes.get(job.line) or _unfinished(job, job.line in self.started_lines)
                   for job in self.jobs]
        return BatchSummary(self.manifest, ordered, time.monotonic() - self.started, self.workers, interrupted)


def _remove_empty(folders: list[Path]) -> None:
    """Each of the folders (deepest first) that is empty now."""
    for folder in folders:
        remove_if_empty([folder])


def batch_model_settings(preset, settings: dict[str, Any], devices) -> tuple[str | None, str]:
    """The whole batch's device and dtype (popped from ``settings``), as generate resolves them: given > preset
    > user config > auto; resolved here, so that a worker on another machine runs with them, not its own config.
    ``devices`` says where each worker runs: a preset's or the config's device then gives way to it."""
    from vexpress_cli.jobs.generate import resolved_job

    given = {name: value for name in MODEL_SETTINGS if (value := settings.pop(name, None)) is not None}
    resolved, _ = resolved_job(preset, given, devices)
    device = resolved.settings.device if resolved.sources["device"] != "default" else None
    return (given.get("device") if devices is not None else device), resolved.settings.dtype


def _loaded(names: list[str] | None, device: str | None, dtype: str) -> list[tuple]:
    """The device and dtype each worker loads the networks with (``names``; ``None``: Ray actors, whose device,
    unless ``cpu``, is the cluster's and not known here)."""
    import torch

    from vexpress_cli.engine.devices import resolve_dtype

    if names is None:
        ray_device = torch.device("cpu") if device == "cpu" else None
        known = dtype != "auto" or ray_device is not None
        return [(ray_device, resolve_dtype(dtype, ray_device or torch.device("cpu")) if known else None)]
    devices = [torch.device(name) for name in dict.fromkeys(name.split("#")[0] for name in names)]  # resolved
    return [(each, resolve_dtype(dtype, each)) for each in devices]


def _unfinished(job: BatchJob, started: bool) -> JobOutcome:
    """A job the batch stopped before it reported its end (a second Ctrl-C ends the wait for its cleanup)."""
    if started:
        return JobOutcome(job.line, job.output, INTERRUPTED, job.action, "stopped by Ctrl-C")
    return JobOutcome(job.line, job.output, NOT_RUN, job.action)


def run_here(jobs: list[BatchJob], device: str, model_dir: Path, dtype: str | None, emit: Emit) -> None:
    """The jobs one after the other in this process, on one Generator."""
    with Generator(model_dir, device, dtype) as generator:
        for job in jobs:
            run_job(generator, job, str(generator.device), emit)


def worker_devices(devices: str | list[str] | None, workers: int, device: str | None) -> list[str]:
    """One device name per worker: ``devices`` (a list, ``"cuda:0,cuda:1"`` or ``"all"``) or ``workers`` x
    ``device``."""
    from vexpress_cli.engine.devices import resolve_device
    from vexpress_cli.settings.schema import validate_value

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"{parameter('workers')} is {workers!r}; it must be a whole number of 1 or more.")
    if devices is None:
        names = [device or "auto"] * workers
    elif workers != 1 or device is not None:
        raise InputError(f"{parameter('devices')} was given with {parameter('workers' if workers != 1 else 'device')}.",
                         f"{parameter('devices')} already says where each worker runs: one per device.",
                         f"Give only {parameter('devices')}.")
    elif devices == "all":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"{parameter('devices', 'all')} found no GPU.", "This machine or torch build has no CUDA.",
                             f"Use {parameter('workers', 'N')} to run N workers on the CPU.")
        names = [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    else:
        names = [name.strip() for name in devices.split(",")] if isinstance(devices, str) else list(devices)
        names = [validate_value("device", name, f"{parameter('devices')} entry", within_advice=False)
                 for name in names if name]
        if not names:
            raise InputError(f"{parameter('devices')} is empty.", "", "Give devices like cuda:0,cuda:1, or all.")
    # An unknown or absent device stops the batch before it starts.
    names = [str(resolve_device(name, "device" if devices is None else "devices")) for name in names]
    if devices is not None:
        names = ["cuda:0" if name == "cuda" else name for name in names]
        gpus = [name for name in names if name != "cpu"]
        if len(set(gpus)) != len(gpus):
            raise InputError(f"{parameter('devices')} must name each GPU once, e.g. cuda:0,cuda:1 (or all); "
                             "cpu may repeat, one worker each.")
    return _numbered(names)


def check_local_workers(workers: int, by_devices: bool = False) -> None:
    """InputError for more CPU worker processes than this machine has cores (asked for with ``workers``, or by
    naming the CPU that many times in ``devices``)."""
    cores = os.cpu_count() or 1
    if workers <= cores:
        return
    asked = (f"{parameter('devices')} names the CPU {workers} times, one worker each, more than this machine's "
             f"{cores} CPU cores." if by_devices else
             f"{parameter('workers', workers)} is more than this machine's {cores} CPU cores.")
    fix = (f"Name it {cores} times or fewer ({','.join(['cpu'] * min(cores, 2))})." if by_devices else
           f"Use {parameter('workers', cores)} or fewer, or {parameter('devices')} for one worker per GPU.")
    raise InputError(asked, "Each worker is a process with its own copy of the networks: more workers than cores "
                     "only compete for the cores and the memory.", fix)


def no_more_than(names: list[str], jobs: int) -> list[str]:
    """The first ``jobs`` workers (at least one): a worker process with nothing to do still loads the networks."""
    kept = names[:max(jobs, 1)]
    return kept if len(kept) > 1 else [kept[0].partition("#")[0]]


def _numbered(names: list[str]) -> list[str]:
    """A repeated name numbered, one worker each: cpu, cpu, cuda:0 -> cpu#1, cpu#2, cuda:0."""
    return [f"{name}#{names[:index + 1].count(name)}" if names.count(name) > 1 else name
            for index, name in enumerate(names)]


def _ignore(event: BatchEvent) -> None:
    """The event callback when the caller passes none."""
