"""What the web app's pages share while it runs: per-session folders, the loaded models, jobs that a
user can cancel, and progress and errors shown in the page.

A job runs in a worker thread. When Gradio cancels its event (the Cancel button, a client's
``job.cancel()``, a closed page), the job's token is set and the job stops at its next progress
report, so the device is free for the next one in the queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vexpress_cli.errors import VExpressError, python_name
from vexpress_cli.progress import STAGE_LABELS

logger = logging.getLogger("vexpress_cli.ui")
T = TypeVar("T")

# A session's folder is removed when its page closes, or after this long without a job (API clients
# never close a page).
SESSION_MAX_IDLE_SECONDS = 6 * 3600
# How often a job waiting for its device looks whether it was cancelled meanwhile.
LOCK_POLL_SECONDS = 0.25


class JobCancelled(Exception):
    """The user cancelled the job; raised from its next progress report."""


# --- sessions -------------------------------------------------------------------------------


@dataclass
class _Session:
    folder: Path
    active: int = 0
    closed: bool = False
    tokens: set[threading.Event] = field(default_factory=set)
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """One temporary folder per browser session (or API client), removed when it is done with."""

    def __init__(self, root: Path, max_idle_seconds: float = SESSION_MAX_IDLE_SECONDS):
        self.root = root
        self.max_idle_seconds = max_idle_seconds
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    @contextmanager
    def job(self, session_hash: str, token: threading.Event) -> Iterator[Path]:
        """The session's folder, for one job; ``token`` is set if the session closes meanwhile."""
        with self._lock:
            self._sweep()
            session = self._sessions.get(session_hash)
            if session is None:
                name = re.sub(r"[^A-Za-z0-9_-]", "_", session_hash)[:64] or "session"
                session = self._sessions[session_hash] = _Session(self.root / name)
            session.folder.mkdir(parents=True, exist_ok=True)
            session.active += 1
            session.tokens.add(token)
        try:
            yield session.folder
        finally:
            with self._lock:
                session.active -= 1
                session.tokens.discard(token)
                session.last_used = time.monotonic()
                if session.closed and not session.active:
                    shutil.rmtree(session.folder, ignore_errors=True)

    def close(self, session_hash: str) -> None:
        """The page closed: cancel its jobs and remove its folder (once its jobs have stopped)."""
        with self._lock:
            session = self._sessions.pop(session_hash, None)
            if session is None:
                return
            session.closed = True
            for token in session.tokens:
                token.set()
            if not session.active:
                shutil.rmtree(session.folder, ignore_errors=True)

    def busy(self, session_hash: str) -> bool:
        """Whether a job of the session is running."""
        with self._lock:
            session = self._sessions.get(session_hash)
            return bool(session and session.active)

    def folder_of(self, session_hash: str) -> Path | None:
        with self._lock:
            session = self._sessions.get(session_hash)
            return session.folder if session else None

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if not session.active and now - session.last_used > self.max_idle_seconds:
                del self._sessions[key]
                shutil.rmtree(session.folder, ignore_errors=True)


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2``, ``stem-3``, ... when taken."""
    stem = re.sub(r"[^\w.-]", "_", stem).strip("._") or "output"
    candidate, number = folder / f"{stem}{suffix}", 1
    while candidate.exists():
        number += 1
        candidate = folder / f"{stem}-{number}{suffix}"
    return candidate


# --- the loaded models ----------------------------------------------------------------------


class ModelStore:
    """One :class:`vexpress_cli.Generator` per device, loaded by the first job and kept; one job at a
    time on each device."""

    def __init__(self, model_dir: Path | None):
        self.model_dir = model_dir
        self._generators: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def generator(self, device: str | None, dtype: str | None, token: threading.Event) -> Iterator[Any]:
        """The device's Generator, held for one job (waiting for the job before, unless cancelled)."""
        from vexpress_cli import Generator

        wanted = Generator(self.model_dir, device, dtype)  # resolves device and dtype; loads nothing
        key = str(wanted.device)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        while not lock.acquire(timeout=LOCK_POLL_SECONDS):
            if token.is_set():
                raise JobCancelled()
        try:
            current = self._generators.get(key)
            if current is None or current.dtype != wanted.dtype:
                if current is not None:
                    current.close()
                current = self._generators[key] = wanted
            yield current
        finally:
            lock.release()

    @property
    def loaded_devices(self) -> list[str]:
        return [key for key, generator in self._generators.items() if generator.loaded]

    def close(self) -> None:
        for generator in self._generators.values():
            generator.close()
        self._generators.clear()


# --- one job --------------------------------------------------------------------------------


def describe_stage(stage: str, done: int, total: int | None, elapsed: float) -> str:
    """``Denoising (steps x windows): 3 of 10, about 12 s left``."""
    label = STAGE_LABELS.get(stage, stage)
    if not total:
        return label
    text = f"{label}: {done} of {total}"
    if 0 < done < total and elapsed > 0:
        text += f", about {elapsed / done * (total - done):.0f} s left"
    return text


class PageProgress:
    """A job's ``progress(stage, done, total)`` shown as Gradio's progress bar, with the stage and an ETA.

    It is also where a cancelled job stops: the next report after cancellation raises JobCancelled.
    """

    def __init__(self, report: Callable[..., Any] | None, token: threading.Event):
        self.report, self.token = report, token
        self.stage: str | None = None
        self.started = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self.token.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.started = stage, now
        if self.report is not None:
            self.report((done, total), desc=describe_stage(stage, done, total, now - self.started))


@dataclass
class Job:
    """What a job's work function gets: its own folder in its session's, the models, its progress callback."""

    folder: Path
    models: ModelStore
    token: threading.Event
    progress: PageProgress

    def output(self, stem: str, suffix: str) -> Path:
        return unique_path(self.folder, stem, suffix)


class Runtime:
    """Sessions, models and the temp folder of one app; runs the pages' jobs."""

    def __init__(self, root: Path, model_dir: Path | None):
        self.root = root
        self.uploads = (root / "gradio").resolve()  # Gradio's upload cache (GRADIO_TEMP_DIR): the only inputs read
        self.sessions = Sessions(root / "sessions")
        self.models = ModelStore(model_dir)

    @property
    def model_dir(self) -> Path | None:
        return self.models.model_dir

    async def run(self, request, work: Callable[[Job], T], *, progress=None,
                  spell: Callable[[str], str] = python_name) -> T:
        """``work(job)`` in a worker thread of the request's session; errors become one paragraph in the page."""
        token = threading.Event()
        session_hash = getattr(request, "session_hash", None) or "anonymous"

        def in_thread() -> T:
            with self.sessions.job(session_hash, token) as session_folder:
                folder = Path(tempfile.mkdtemp(prefix="job-", dir=session_folder))
                try:
                    result = work(Job(folder, self.models, token, PageProgress(progress, token)))
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)  # a failed job leaves nothing behind
                    raise
                if not any(folder.iterdir()):
                    folder.rmdir()
                return result

        loop = asyncio.get_running_loop()
        # A copy of the context: Gradio's progress bar finds its event through context variables.
        future = loop.run_in_executor(None, contextvars.copy_context().run, in_thread)
        try:
            return await future
        except asyncio.CancelledError:
            token.set()
            raise
        except Exception as error:
            raise self.page_error(error, spell) from None

    async def run_in_page(self, request, work: Callable[[Job], T], *, progress=None,
                          spell: Callable[[str], str] = python_name) -> tuple[T | None, str | None]:
        """``run`` for a page: ``(result, None)``, or ``(None, paragraph)`` with the error as the summary shows it,
        where the result would have been (a pop-up of the other side of the page is easily missed)."""
        import gradio as gr

        try:
            return await self.run(request, work, progress=progress, spell=spell), None
        except gr.Error as error:
            return None, paragraph_of(error)

    def page_paragraph(self, error: Exception, spell: Callable[[str], str] = python_name) -> str:
        """``error`` as the one paragraph a tab's summary shows (see :meth:`run_in_page`)."""
        return paragraph_of(self.page_error(error, spell))

    def page_error(self, error: Exception, spell: Callable[[str], str] = python_name):
        """The ``gr.Error`` that shows ``error`` in the page as one paragraph, never a traceback."""
        import gradio as gr

        if isinstance(error, JobCancelled):
            return gr.Error("The job was cancelled.", title="Cancelled", print_exception=False)
        if isinstance(error, VExpressError):
            message = error.render(spell)
        else:  # a bug: the traceback goes to the server's log, one paragraph to the page
            logger.error("vexpress ui: a job failed", exc_info=error)
            message = (f"Something went wrong inside vexpress: {type(error).__name__}: {error}. This is a bug, "
                       "not your input; the server's console has the details. Please report it.")
        return gr.Error(self.page_message(message), duration=None, print_exception=False)

    def page_message(self, text: str) -> str:
        """``text`` without the app's temp folders: an uploaded file is named by its file name."""
        return re.sub(re.escape(str(self.root)) + r"[^\s'\"]*/", "", text)

    def page_values(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, text) with each text through :meth:`page_message`: no server path of
        the app's temp folders, whose upload addresses anyone who has them can fetch."""
        if isinstance(value, dict):
            return {key: self.page_values(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.page_values(item) for item in value]
        return self.page_message(value) if isinstance(value, str) else value

    def clean_record(self, record: Path) -> Path:
        """The job's run record as the app hands it out: its inputs and output by their file names, so that
        ``vexpress generate --from-record`` elsewhere is not pointed at this server's temp folders."""
        from vexpress_cli.jobs.records import write_text_atomically

        data = self.page_values(json.loads(record.read_text(encoding="utf-8")))
        return write_text_atomically(record, json.dumps(data, indent=2, allow_nan=False) + "\n")

    def close(self) -> None:
        self.models.close()


def paragraph_of(error) -> str:
    """A ``gr.Error`` as the summary's paragraph: ``**Error**: what, why, how to fix``."""
    from vexpress_cli.ui.form import in_page_words

    return f"**{error.title}**: {in_page_words(error.message)}"
