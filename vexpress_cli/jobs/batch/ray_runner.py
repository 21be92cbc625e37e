"""The batch on a Ray cluster: one actor per GPU (``num_gpus=1``), or ``workers`` CPU actors where there is none.

Each actor holds one loaded ``Generator`` and takes the next job as soon as it finishes one (a queue kept
here, in the batch's process). Events travel back on a ``ray.util.queue.Queue``. Inputs, outputs and the
model folder must be at the same paths on every node (shared storage such as NFS; see docs/batch.md), so
records and resume work exactly as on one machine. Ctrl-C cancels the running jobs: each actor sees the
cancellation at its job's next progress report and removes the job's temp files.

Ray is an optional extra: ``pip install -e ".[ray]"`` in a clone, ``pip install "vexpress-cli[ray]"`` from a wheel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path

from vexpress_cli.errors import InputError, VExpressError, parameter
from vexpress_cli.jobs.batch.checks import BatchJob
from vexpress_cli.jobs.batch.claims import remove_claim
from vexpress_cli.jobs.batch.execute import Emit
from vexpress_cli.jobs.batch.summary import FAILED, BatchEvent, EventCallbackError, JobOutcome
from vexpress_cli.wording import extra_install_command

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 30.0
# How long a cluster's address may take to accept a connection: Ray itself retries for minutes, and
# meanwhile ignores Ctrl-C.
CONNECT_SECONDS = 5.0
# ``ray=LOCAL_RAY`` starts a Ray instance on this machine for the batch; any other value is a cluster address.
LOCAL_RAY = "local"
# Addresses that name no host: a Ray instance started here, and the one already running on this machine.
LOCAL_ADDRESSES = (LOCAL_RAY, "auto")
# A cluster's GCS (HOST:PORT) and its Ray Client server (ray://) are gRPC servers: to HTTP/2's connection preface
# and an empty SETTINGS frame they answer with a SETTINGS frame (type 4). Ray itself retried a port that
# accepts connections but is no Ray (another service) for over ten minutes, deaf to SIGTERM.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 4
# What Ray's C++ core logs while a cluster with token authentication refuses this machine (Ray 2.60).
REFUSED_TOKEN_WORDS = ("InvalidAuthToken", "Unauthenticated")


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError(f"{parameter('ray')} needs Ray, which is not installed.",
                         "Ray is an optional part of vexpress.",
                         f"Install it with: {extra_install_command('ray')} (the same Ray version on every node)."
                         ) from None
    return ray


class GeneratorActor:
    """A Ray actor holding one ``Generator``, loaded at its first job, on the GPU Ray gave it (or the CPU)."""

    def __init__(self, index: int, model_dir: str, device: str, dtype: str | None, events):
        import ray
        import torch

        self.model_dir, self.device, self.dtype, self.events = model_dir, device, dtype, events
        if device == "cpu":  # one CPU per actor, as reserved, unless $OMP_NUM_THREADS says otherwise
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
        where = f"gpu {','.join(map(str, ray.get_gpu_ids()))}" if device != "cpu" else f"cpu#{index}"
        self.name = f"{ray.util.get_node_ip_address()} {where}"
        self.generator = None

    def run(self, job: BatchJob) -> None:
        """Run one job; its events (the outcome included) go out on the event queue."""
        import ray

        from vexpress_cli.jobs.batch.execute import run_job
        from vexpress_cli.jobs.generate import Generator

        try:
            if self.generator is None:
                self.generator = Generator(self.model_dir, self.device, self.dtype)
        except VExpressError as error:
            self.events.put(BatchEvent("finished", self.name, job.line, job.output, outcome=JobOutcome(
                job.line, job.output, FAILED, job.action, error.render(), worker=self.name)))
            return
        # Newer Ray flags a cancelled task of a regular actor (is_canceled); older Ray lets the job finish.
        stop = getattr(ray.get_runtime_context(), "is_canceled", None)
        try:
            run_job(self.generator, job, self.name, self.events.put, stop=stop)
        except KeyboardInterrupt:
            pass  # cancelled: the job cleaned up and said so


def run_on_ray(jobs: list[BatchJob], address: str, workers: int, model_dir: Path, device: str | None,
               dtype: str | None, emit: Emit) -> None:
    """Run ``jobs`` on Ray actors: ``address`` ``local`` starts a Ray instance here for the batch only."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        connect(ray, address)
    pool = _RayPool(ray, emit)
    try:
        pool.run(jobs, workers, model_dir, device, dtype)
    finally:
        pool.close()
        if started_here:
            ray.shutdown()


class _RayPool:
    """The batch's actors, each given the next waiting job as it finishes one; the events they send are
    followed (passed on to ``emit``) as they come."""

    def __init__(self, ray, emit: Emit):
        self.ray, self.emit = ray, emit
        self.actors: list = []
        self.events = None  # the actors' ray.util.queue.Queue of events
        self.waiting: deque[BatchJob] = deque()
        self.pending: dict = {}  # a running job's object ref: (its actor, the job)
        self.running: dict[int, tuple[str, float]] = {}  # line: the worker that started it, and when
        self.finished: set[int] = set()

    def run(self, jobs: list[BatchJob], workers: int, model_dir: Path, device: str | None,
            dtype: str | None) -> None:
        try:
            self._start(jobs, workers, model_dir, device, dtype)
            while self.pending:
                self._next_ready()
        except KeyboardInterrupt:
            _cancel(self.ray, self.pending, self.drain)
            raise
        except EventCallbackError:
            _cancel(self.ray, self.pending, lambda: None)  # the caller's on_event failed: its events are not followed
            raise

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)

    def _start(self, jobs: list[BatchJob], workers: int, model_dir: Path, device: str | None,
               dtype: str | None) -> None:
        """One actor per GPU of the cluster (``workers`` CPU actors where it has none), no more than the jobs;
        each given its first job."""
        from ray.util.queue import Queue

        self.events = Queue(actor_options={"num_cpus": 0})
        gpus = 0 if device == "cpu" else int(self.ray.cluster_resources().get("GPU", 0))
        count = min(len(jobs), gpus or workers)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        actor_class = self.ray.remote(GeneratorActor)
        self.actors = [actor_class.options(**resources).remote(index, str(model_dir), "cuda" if gpus else "cpu",
                                                               dtype, self.events) for index in range(1, count + 1)]
        self.waiting = deque(jobs)
        for actor in self.actors:
            self.submit(actor)

    def _next_ready(self) -> None:
        """Wait a moment for a job to end; its actor takes the next job, unless it died."""
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=POLL_SECONDS)
        self.drain()
        for reference in ready:
            actor, job = self.pending.pop(reference)
            if self._actor_lived(reference, job):
                self.submit(actor)

    def _actor_lived(self, reference, job: BatchJob) -> bool:
        """Whether the actor that ran ``job`` lived through it; when the actor or its node died, the job fails."""
        try:
            self.ray.get(reference)
        except self.ray.exceptions.RayError as error:
            self.drain()
            if job.line not in self.finished:
                self.follow(_lost(job, error, *self.running.get(job.line, ("ray", time.monotonic()))))
            return False
        return True

    def submit(self, actor) -> None:
        if self.waiting:
            job = self.waiting.popleft()
            self.pending[actor.run.remote(job)] = (actor, job)

    def follow(self, event: BatchEvent) -> None:
        if event.kind == "started":
            self.running[event.line] = (event.worker, time.monotonic())
        if event.kind == "finished":
            self.finished.add(event.line)
        self.emit(event)

    def drain(self) -> None:
        """Follow every event the actors sent so far."""
        from ray.util.queue import Empty

        while self.events is not None:
            try:
                self.follow(self.events.get_nowait())
            except Empty:
                return


def connect(ray, address: str) -> None:
    """``ray.init`` at ``address``, or an InputError saying why not (no cluster there, Ray Client missing, a
    cluster that wants a token)."""
    from vexpress_cli.interrupts import signal_handlers_kept

    no_token = getattr(getattr(ray, "exceptions", None), "AuthenticationError", None) or ()
    native_log = []
    try:
        # Ray's C++ core logs every retry of a refused connection on file descriptor 2, a line a second.
        with native_stderr_kept(native_log), signal_handlers_kept(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Ray Client connection timed out")  # said below
            ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    except no_token:  # RAY_AUTH_MODE=token, and no token on this machine
        raise token_error(address, "Token authentication is on here (RAY_AUTH_MODE=token), but Ray found no "
                          "token: no RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.") from None
    except (ConnectionError, ValueError) as error:  # "auto" with no instance; ray:// without Ray Client
        if any(word in "".join(native_log) for word in REFUSED_TOKEN_WORDS):
            raise token_error(address, _refused_token_reason()) from None
        reason = _first_and_last_line(str(error)).rstrip(".")
        raise InputError(f"Cannot connect to the Ray cluster at {address}.",
                         why=f"Ray says: {reason}.{_last_log_line(native_log)}",
                         fix=_connect_fix(address, reason)) from None
    sys.stderr.write("".join(native_log))  # connected: whatever Ray said is shown as it would have been


def _first_and_last_line(text: str) -> str:
    """A message's first line, and its last when the first only announces what follows (Ray Client passes the
    server's traceback on: "Initialization failure from server:", then the traceback)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
    return f"{lines[0]} {lines[-1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _last_log_line(native_log: list[str]) -> str:
    """What Ray's own log said last while connecting (a TLS or DNS failure shows there), as a sentence."""
    lines = [line.strip() for line in "".join(native_log).splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1] if len(lines[-1]) <= 300 else f"{lines[-1][:300]}..."
    return f" Its log here ended with: {last}{'' if last.endswith(('.', '!', '?')) else '.'}"


@contextlib.contextmanager
def native_stderr_kept(into: list[str]):
    """What is written to file descriptor 2 (by C++ code too) inside the block, appended to ``into``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            kept.seek(0)
            into.append(kept.read().decode(errors="replace"))


def token_error(address: str, why: str) -> InputError:
    return InputError(
        f"The Ray cluster at {address} refused the connection: it asks for a token (Ray's token authentication).",
        why=why,
        fix="Give this machine the cluster's token: `ray get-auth-token` on the head node prints it; run vexpress "
        "with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> (or the token in ~/.ray/auth_token here).")


def _refused_token_reason() -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return "The token this machine sent (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) is not the " \
               "cluster's."
    return ("RAY_AUTH_MODE is not 'token' here, so Ray sent none: to an address it is given, Ray never sends this "
            "machine's own token unasked.")


def check_reachable(address: str) -> None:
    """An InputError unless something accepts a connection at ``HOST:PORT`` (or ``ray://HOST:PORT``) in time."""
    if address in LOCAL_ADDRESSES:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{parameter('ray', address)} is not a Ray address.",
                         why="A cluster is named as HOST:PORT (its head node's GCS port, 6379 by default), "
                         "ray://HOST:10001 (Ray Client) or auto (the one running on this machine).",
                         fix=f"Give the head node's address, e.g. {parameter('ray', '10.0.0.1:6379')}.")
    host = host.strip("[]")  # an IPv6 address is written [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS) as connection:
            speaks_grpc = _answers_http2(connection)
    except socket.gaierror:
        raise InputError(f"The host of the Ray address {address} is not known here.",
                         why=f"This machine cannot resolve {host!r} to an IP address.",
                         fix="Check the spelling, or give the head node's IP address.") from None
    except OSError as error:
        reason = "no answer in time" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise InputError(f"Nothing answers at the Ray address {address} ({reason}).",
                         why="No Ray cluster is running there, or a firewall is in the way.",
                         fix=_connect_fix(address)) from None
    if not speaks_grpc:
        raise InputError(f"Something answers at the Ray address {address}, but it is no Ray cluster.",
                         why="A Ray head node answers there in gRPC (HTTP/2); this port answered otherwise or not "
                         f"within {CONNECT_SECONDS:g} s: another program listens on it.",
                         fix="Give the head node's GCS port (6379 unless `ray start --head --port` chose another; "
                         "`ray status` on the head node prints it), or ray://HOST:10001 for Ray Client.")


def _answers_http2(connection: socket.socket) -> bool:
    """Whether the server answers HTTP/2's preface with a SETTINGS frame, as gRPC servers do (a TLS cluster,
    RAY_USE_TLS, is not asked: it would not answer in plain text)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return True
    try:
        connection.sendall(HTTP2_PREFACE)
        answer = b""
        while len(answer) < 4 and (chunk := connection.recv(64)):
            answer += chunk
    except OSError:
        return False
    return len(answer) >= 4 and answer[3] == HTTP2_SETTINGS


def _connect_fix(address: str, reason: str = "") -> str:
    if "ray[client]" in reason:
        return 'Install Ray Client here: pip install "ray[client]" (the same Ray version as the cluster\'s).'
    if not address.startswith("ray://"):
        return (f"Start the cluster (`ray start --head` on its head node) and give its address, or use "
                f"{parameter('ray', LOCAL_RAY)} for a Ray instance on this machine.")
    fix = ("Start the cluster (`ray start --head` on its head node; its Ray Client server listens on port 10001 "
           "unless --ray-client-server-port says otherwise).")
    if "timeout" in reason:  # what a cluster with token authentication does to a client that sends no token
        fix += (" A cluster with token authentication lets a Ray Client time out unless this machine sends its "
                "token: run with RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<token> (`ray get-auth-token` on the head node "
                "prints it).")
    return fix


def _lost(job: BatchJob, error: Exception, worker: str, started: float) -> BatchEvent:
    """The failed outcome of a job whose actor died, on the worker that started it (``ray`` when it never said)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = f"The Ray worker running this job died ({first_line}). Run the batch again to retry it."
    seconds = round(time.monotonic() - started, 3)
    remove_claim(job.output)  # its actor is dead: the rerun the reason asks for need not wait for the claim to age
    return BatchEvent("finished", worker, job.line, job.output,
                      outcome=JobOutcome(job.line, job.output, FAILED, job.action, reason, seconds, worker))


def _cancel(ray, pending: dict, drain) -> None:
    """Ctrl-C: cancel every running job and give the actors time to clean up."""
    for reference in pending:
        ray.cancel(reference)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while pending and time.monotonic() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
        for reference in ready:
            pending.pop(reference)
        drain()
    drain()
