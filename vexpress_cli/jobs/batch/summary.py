"""What a batch reports while it runs (:class:`BatchEvent`) and at the end (:class:`BatchSummary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from vexpress_cli.errors import python_name, spell_parameters

# A job's status at the end of a batch.
DONE, SKIPPED, FAILED, INTERRUPTED, NOT_RUN = "done", "skipped", "failed", "interrupted", "not run"


@dataclass
class JobOutcome:
    """How one job ended. ``reason``: the error paragraph of a failure, or why it was skipped or redone."""

    line: int
    output: str
    status: str
    action: str
    reason: str = ""
    seconds: float = 0.0
    worker: str | None = None
    frames: int | None = None
    record: str | None = None
    warnings: list[str] = field(default_factory=list)  # what a done job's result warned about


@dataclass
class BatchEvent:
    """One thing that happened in a batch, as a front end's ``on_event`` callback receives it.

    ``kind``: ``checked`` (first, once: ``total`` jobs in the manifest, ``done`` of them skipped),
    ``started`` (a worker took job ``line``; ``reason`` says why a job done before runs again), ``stage``
    (the job's ``progress(stage, done, total)``, as in :mod:`vexpress_cli.progress`), or ``finished`` (with
    its ``outcome``; skipped jobs are reported as finished right after ``checked``).
    """

    kind: str
    worker: str
    line: int
    output: str = ""
    stage: str = ""
    done: int = 0
    total: int | None = None
    outcome: JobOutcome | None = None
    reason: str = ""


@dataclass
class BatchSummary:
    """Every job's outcome in manifest order, and how the batch ended."""

    manifest: str
    outcomes: list[JobOutcome]
    seconds: float
    workers: list[str] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        """How many jobs ended in ``status`` (``not run`` may be spelled ``not_run``, as in :meth:`to_dict`)."""
        status = status.replace("_", " ")
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[JobOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == FAILED]

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when a job failed or was left unrun (its workers died), else 0."""
        return 130 if self.interrupted else 1 if self.failed or self.count(NOT_RUN) else 0

    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict[str, Any]:
        """Plain JSON types; settings named in the reasons and warnings read as ``spell`` says (Python names, or
        flags)."""
        counts = {status.replace(" ", "_"): self.count(status)
                  for status in (DONE, SKIPPED, FAILED, INTERRUPTED, NOT_RUN)}
        jobs = [{**asdict(outcome), "reason": spell_parameters(outcome.reason, spell),
                 "warnings": [spell_parameters(warning, spell) for warning in outcome.warnings]}
                for outcome in self.outcomes]
        return {"manifest": self.manifest, "total": len(self.outcomes), "counts": counts,
                "interrupted": self.interrupted, "seconds": round(self.seconds, 3), "workers": self.workers,
                "jobs": jobs}


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the batch after the running jobs were cleaned up; ``summary`` says what was done."""

    def __init__(self, summary: BatchSummary, exit_code: int = 130):
        super().__init__("The batch was interrupted.")
        self.summary = summary
        self.exit_code = exit_code  # 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM


class EventCallbackError(Exception):
    """The caller's ``on_event`` raised (its exception is the ``__cause__``): not a job's failure, so the batch
    stops its jobs, like Ctrl-C, and :func:`batch` raises that exception."""


def raising_callback_apart(on_event: Callable[[BatchEvent], None]) -> Callable[[BatchEvent], None]:
    """``on_event``, with what it raises wrapped in :class:`EventCallbackError`."""
    def emit(event: BatchEvent) -> None:
        try:
            on_event(event)
        except Exception as error:
            raise EventCallbackError() from error

    return emit
