"""One worker process per device, all pulling jobs from one queue (``spawn``: no CUDA state is inherited).

Each worker loads its ``Generator`` once and sends every event (job started, stage, finished) back on one
event queue; the batch's process draws them and notices a worker that died (its job fails with the
reason). Ctrl-C reaches each worker, which removes its running job's temp files and exits; a worker
whose parent is killed (``kill -9``) dies with it (Linux), so no orphan keeps writing.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from pathlib import Path

from vexpress_cli.helper_processes import start_helper
from vexpress_cli.jobs.batch.checks import BatchJob
from vexpress_cli.jobs.batch.execute import Emit
from vexpress_cli.jobs.batch.summary import FAILED, BatchEvent, EventCallbackError, JobOutcome

# How long the workers get to clean up after Ctrl-C before they are terminated.
STOP_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.2


def run_in_processes(jobs: list[BatchJob], names: list[str], model_dir: Path, dtype: str | None,
                     emit: Emit) -> None:
    """Run ``jobs`` on one worker process per entry of ``names`` (``cuda:0``, ``cpu#1``, ...)."""
    context = multiprocessing.get_context("spawn")
    jobs_queue, events = context.Queue(), context.Queue()
    threads = cpu_threads(names)
    processes = {name: context.Process(target=worker_main, name=f"vexpress-batch {name}", daemon=True,
                                       args=(name, str(model_dir), dtype, threads, jobs_queue, events))
                 for name in names}
    for process in processes.values():
        start_helper(process)
    for job in [*jobs, *[None] * len(names)]:  # once started: the queue's feeder thread pickles them
        jobs_queue.put(job)
    running: dict[str, BatchEvent] = {}
    finished: set[int] = set()
    try:
        while len(finished) < len(jobs):
            try:
                event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if _lost_workers(processes, running, finished, emit):
                    _fail_the_rest(jobs, processes, finished, emit)
                    break
                continue
            _follow(event, running, finished, emit)
    except KeyboardInterrupt:
        _stop(processes, events, running, finished, emit)
        raise
    except EventCallbackError:
        _stop(processes, events, running, finished, _drop)
        raise
    finally:
        for process in processes.values():
            process.join(timeout=STOP_GRACE_SECONDS)
            if process.is_alive():
                process.terminate()


def cpu_threads(names: list[str]) -> int | None:
    """Torch threads for each CPU worker: $OMP_NUM_THREADS when set (None: torch reads it), else the cores shared out.

    The thread count changes the last bits of CPU results: the same seed gives the same video on
    workers with the same number of threads.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, (os.cpu_count() or 1) // max(1, sum(name.startswith("cpu") for name in names)))


def _follow(event: BatchEvent, running: dict[str, BatchEvent], finished: set[int], emit: Emit) -> None:
    if event.kind == "started":
        running[event.worker] = event
    elif event.kind == "finished":
        running.pop(event.worker, None)
        finished.add(event.line)
    emit(event)


def _lost_workers(processes, running: dict[str, BatchEvent], finished: set[int], emit: Emit) -> bool:
    """Fail the job of each worker that died; True when no worker is left to run the rest."""
    for name, process in processes.items():
        if process.exitcode is not None and name in running:
            started = running.pop(name)
            finished.add(started.line)
            reason = (f"The worker process on {name} ended (exit code {process.exitcode}) while running this job, "
                      "e.g. killed for memory. Run the batch again to retry it.")
            emit(BatchEvent("finished", name, started.line, started.output,
                            outcome=JobOutcome(started.line, started.output, FAILED, "", reason, worker=name)))
    return all(process.exitcode is not None for process in processes.values())


def _fail_the_rest(jobs: list[BatchJob], processes, finished: set[int], emit: Emit) -> None:
    """Every worker ended: each job not run fails with why, so the summary says it (the next run retries it)."""
    codes = ", ".join(sorted({str(process.exitcode) for process in processes.values()}))
    reason = (f"No worker process was left to run it: they ended (exit code {codes}) before they could report an "
              "error. Run the batch again to retry it.")
    for job in jobs:
        if job.line not in finished:
            finished.add(job.line)
            emit(BatchEvent("finished", "", job.line, job.output,
                            outcome=JobOutcome(job.line, job.output, FAILED, job.action, reason)))


def _drop(event: BatchEvent) -> None:
    """Where the workers' last events go once the caller's on_event has failed."""


def _stop(processes, events, running: dict[str, BatchEvent], finished: set[int], emit: Emit) -> None:
    """After Ctrl-C: every worker is asked to stop (they clean up their job), and their last events are read."""
    for process in processes.values():
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)  # the terminal may have sent it already: a worker takes one
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(process.is_alive() for process in processes.values()) and time.monotonic() < deadline:
        try:
            _follow(events.get(timeout=POLL_SECONDS), running, finished, emit)
        except queue.Empty:
            pass
    while True:
        try:
            _follow(events.get_nowait(), running, finished, emit)
        except (queue.Empty, OSError, ValueError):
            break


def worker_main(name: str, model_dir: str, dtype: str | None, threads: int | None, jobs, events) -> None:
    """A worker process: load the networks once, then run jobs from the queue until its end marker."""
    _die_with_parent()
    _one_interrupt()
    import torch

    from vexpress_cli.jobs.batch.execute import run_job
    from vexpress_cli.jobs.generate import Generator

    device = name.partition("#")[0]
    if device.startswith("cpu") and threads:
        torch.set_num_threads(threads)
    try:
        with Generator(model_dir, device, dtype) as generator:
            while (job := jobs.get()) is not None:
                run_job(generator, job, name, events.put)
    except KeyboardInterrupt:
        pass
    finally:
        events.close()
        events.join_thread()  # every event is handed over before the process ends


def _one_interrupt() -> None:
    """The first SIGINT raises KeyboardInterrupt (the job cleans up); later ones cannot interrupt the clean-up."""

    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


def _die_with_parent() -> None:
    """On Linux, end this worker when the batch's process dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the parent is already gone
            os._exit(1)
    except (OSError, AttributeError):
        pass
