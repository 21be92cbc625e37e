"""The one rich progress display of every command: a job's ``progress(stage, done, total)`` as bars."""

from __future__ import annotations

import datetime
import time
from contextlib import contextmanager

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from vexpress_cli.progress import STAGE_LABELS, STAGE_UNITS


def _amount(value: float, unit: str | None) -> str:
    return decimal(int(value)) if unit == "bytes" else f"{value:g}"


class CountColumn(ProgressColumn):
    """Done / total, in kB, MB, GB for byte stages."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit")
        total = "?" if task.total is None else _amount(task.total, unit)
        return Text(f"{_amount(task.completed, unit)}/{total}", style="progress.download")


class RateColumn(ProgressColumn):
    """Items (or bytes) per second, for stages that have a unit."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit")
        if not unit:
            return Text("")
        speed = task.finished_speed or task.speed
        if unit == "bytes":
            return Text(f"{decimal(int(speed))}/s" if speed else "?/s", style="progress.data.speed")
        return Text(f"{speed:5.1f} {unit}/s" if speed else f"  ?   {unit}/s", style="progress.data.speed")


def draws_live(console: Console) -> bool:
    """Whether ``console`` can redraw bars (a terminal or a notebook), not a log file or a pipe."""
    return console.is_terminal or console.is_jupyter


# A log gets a line at least this often while a stage reports, however long its tenths take.
LOG_EVERY_SECONDS = 60


class StageLog:
    """Progress for a log file or a pipe, where bars cannot be redrawn: a timed line when a stage starts, at
    every tenth of its total and at least once a minute, ``[0:02:13] Denoising (steps x windows): 60/150 (40%)``."""

    def __init__(self, console: Console):
        self.console = console
        self.started = time.monotonic()
        self.logged: dict[object, tuple[int, float]] = {}  # the last tenth printed and when, by stage (of a job)

    def __call__(self, key: object, stage: str, done: int, total: int | None, prefix: str = "") -> None:
        tenth, now = 10 * done // total if total else 0, time.monotonic()
        last = self.logged.get(key)
        if last is not None and tenth <= last[0] and now - last[1] < LOG_EVERY_SECONDS:
            return
        self.logged[key] = (tenth, now)
        elapsed = datetime.timedelta(seconds=round(now - self.started))
        unit = STAGE_UNITS.get(stage)
        amount = f": {_amount(done, unit)}/{_amount(total, unit)} ({100 * done // total}%)" if total else ""
        self.console.print(f"[{elapsed}] {prefix}{STAGE_LABELS.get(stage, stage)}{amount}", markup=False,
                           highlight=False)


class StageProgress:
    """One bar per stage; a stage starts when first reported and is complete at its total.

    An instance is the ``progress`` callback a job takes. Where bars cannot be redrawn (stderr is a log
    file or a pipe), a :class:`StageLog` prints lines instead.
    """

    def __init__(self, console: Console, enabled: bool = True):
        self.log = StageLog(console) if enabled and not draws_live(console) else None
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), CountColumn(),
            TaskProgressColumn(), RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled or self.log is not None, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(STAGE_LABELS.get(stage, stage), total=total,
                                                       unit=STAGE_UNITS.get(stage))
        self.progress.update(self.tasks[stage], completed=done, total=total)
        if self.log is not None:
            self.log(stage, stage, done, total)

    def remove_unfinished(self) -> None:
        for task in list(self.progress.tasks):
            if not task.finished:
                self.progress.remove_task(task.id)


@contextmanager
def stage_progress(console: Console, enabled: bool = True):
    """Bars for a job's stages; on failure the finished ones stay on screen but no half-drawn bar above the error."""
    display = StageProgress(console, enabled)
    with display.progress:
        try:
            yield display
        except BaseException:
            display.remove_unfinished()
            raise
