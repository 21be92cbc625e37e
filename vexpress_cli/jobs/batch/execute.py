"""One batch job on a worker's loaded ``Generator``: run it, contain its failure, say what happened.

Every kind of worker (the command's own process, a worker process per device, a Ray actor) runs its
jobs through :func:`run_job`, so records, failures and progress are the same everywhere.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from vexpress_cli.errors import VExpressError, join_messages, messages, parameter
from vexpress_cli.jobs.batch.checks import NEW, REDO, RETRY, BatchJob, file_stamp
from vexpress_cli.jobs.batch.claims import claim_output
from vexpress_cli.jobs.batch.summary import (DONE, FAILED, INTERRUPTED, SKIPPED, BatchEvent, EventCallbackError,
                                             JobOutcome)
from vexpress_cli.jobs.model_identity import model_files, model_of
from vexpress_cli.jobs.records import (RunRecord, StageClock, input_files, read_record, record_path,
                                       settings_as_run, write_record)
from vexpress_cli.outputs import OutputAppearedError, missing_folders, remove_if_empty

Emit = Callable[[BatchEvent], None]
# Stage reports are passed on at most this often (a stage's first and last report always are).
REPORT_INTERVAL = 0.25


def run_job(generator, job: BatchJob, worker: str, emit: Emit,
            stop: Callable[[], bool] | None = None) -> JobOutcome:
    """Run ``job`` on ``generator``; a failure becomes a failed outcome and a failure record, never an exception.

    KeyboardInterrupt (Ctrl-C, or ``stop()`` turning true) is the one exception that goes through, after
    the job's temp files are gone; the job then has no output and no record under their final names.
    """
    started = time.monotonic()
    made_folders = missing_folders(Path(job.output).parent)
    claim = claim_output(job.output)
    busy = claim if isinstance(claim, str) else _made_meanwhile(job, generator)
    if busy:
        if not isinstance(claim, str):
            claim.release()
        remove_if_empty(made_folders)
        outcome = JobOutcome(job.line, job.output, SKIPPED, job.action, busy, 0.0, worker)
        emit(BatchEvent("finished", worker, job.line, job.output, outcome=outcome))
        return outcome
    emit(BatchEvent("started", worker, job.line, job.output, reason=job.reason))
    clock = StageClock(_reporter(emit, worker, job, stop))
    try:
        plan = generator.plan(job.reference_image, job.audio, job.output, kps=job.kps,
                              reference_kps=job.reference_kps, overwrite=job.overwrite, progress=clock,
                              **job.settings)
        plan.preset = job.preset
        result = generator.run(plan, clock)
        outcome = JobOutcome(job.line, job.output, DONE, job.action, job.reason,
                             _seconds(started), worker, result.num_frames, str(result.record),
                             messages(result.warnings))
    except KeyboardInterrupt:
        claim.release()  # before the folders it made go, which its file would keep
        remove_if_empty(made_folders)
        emit(BatchEvent("finished", worker, job.line, job.output, outcome=JobOutcome(
            job.line, job.output, INTERRUPTED, job.action, "stopped by Ctrl-C; nothing was written",
            _seconds(started), worker)))
        raise
    except EventCallbackError:
        claim.release()
        remove_if_empty(made_folders)
        raise
    except Exception as error:  # noqa: BLE001 - one job's failure must not end the night's work
        outcome = _failed(generator, job, worker, error, clock, _seconds(started))
    finally:
        claim.release()
    emit(BatchEvent("finished", worker, job.line, job.output, outcome=outcome))
    return outcome


def _made_meanwhile(job: BatchJob, generator) -> str:
    """How another run made the output since the batch was checked ("" if it did not): a job that had none, or a
    redo whose output was replaced by this very job's (each run saw the old record; the first to finish redid it)."""
    if job.action in (NEW, RETRY) and os.path.lexists(job.output):
        return "made meanwhile by another run"
    replaced = job.action == REDO and (now := file_stamp(job.output)) is not None and now != job.output_stamp
    if replaced and _record_describes_job(job, generator):
        return "redone meanwhile by another run"
    return ""


def _record_describes_job(job: BatchJob, generator) -> bool:
    """Whether the output's run record now says it was made with this job's inputs, settings and weights."""
    try:
        record = read_record(record_path(job.output))
    except (VExpressError, OSError):
        return False
    inputs = input_files(Path(job.reference_image), Path(job.audio), Path(job.kps) if job.kps else None,
                         job.reference_kps)
    weights = model_files(Path(generator.model_dir).absolute())
    return record.describes_output(Path(job.output)) and not record.differences(inputs, job.settings,
                                                                                 job.reference_kps, weights)


def _seconds(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _reporter(emit: Emit, worker: str, job: BatchJob, stop: Callable[[], bool] | None):
    last = [0.0]

    def report(stage: str, done: int, total: int | None) -> None:
        if stop is not None and stop():
            raise KeyboardInterrupt
        now = time.monotonic()
        if done == 0 or done == total or now - last[0] >= REPORT_INTERVAL:
            last[0] = now
            emit(BatchEvent("stage", worker, job.line, job.output, stage, done, total))

    return report


def _failed(generator, job: BatchJob, worker: str, error: Exception, clock: StageClock,
            seconds: float) -> JobOutcome:
    """The failed outcome, with the failure recorded beside the output so that the next run retries it."""
    if isinstance(error, OutputAppearedError):  # the fix of a single run (overwrite) is not the batch's
        reason = details = join_messages(error.what, error.why, "Run the batch again: an output with its record "
                                         f"is skipped, and {parameter('force')} redoes the job.")
    elif isinstance(error, VExpressError):
        reason = details = join_messages(error.what, error.why, error.fix)  # the CLI spells its flags
    else:  # a bug: the record keeps the traceback for the report
        reason = f"Unexpected error: {type(error).__name__}: {error}"
        details = f"{reason}\n\n{traceback.format_exc()}"
    _free_device_memory(generator)
    if isinstance(error, OutputAppearedError):  # another run wrote the output and its record: they stay its
        return JobOutcome(job.line, job.output, FAILED, job.action, reason, seconds, worker)
    record = record_path(job.output)
    try:
        write_record(failure_record(generator, job, details, clock.rounded(), seconds), record)
    except (OSError, ValueError, VExpressError) as write_error:
        reason = join_messages(reason, f"(The failure could not be recorded in {record}: {write_error}.)")
        record = None
    return JobOutcome(job.line, job.output, FAILED, job.action, reason, seconds, worker,
                      record=str(record) if record else None)


def failure_record(generator, job: BatchJob, reason: str, stages: dict[str, float], seconds: float) -> RunRecord:
    try:
        inputs = input_files(Path(job.reference_image), Path(job.audio), Path(job.kps) if job.kps else None,
                             job.reference_kps)
    except OSError:  # an input vanished or cannot be read: the error says which
        inputs = {}
    job_values = {"reference_image": job.reference_image, "audio": job.audio, "kps": job.kps,
                  "reference_kps": job.reference_kps, "preset": job.preset}
    settings = settings_as_run(job.settings, generator)
    return RunRecord("failed", str(Path(job.output).absolute()), job_values, inputs, settings,
                     seed=job.settings.get("seed"), model=model_of(generator), device=settings["device"],
                     dtype=generator.dtype_name, seconds=round(seconds, 3), stages=stages, error=reason)


def _free_device_memory(generator) -> None:
    """After a failure (out of memory above all) the next job starts with the device's cache emptied."""
    if generator.device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
