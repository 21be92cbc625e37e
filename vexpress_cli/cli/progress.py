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


class StageProgress:
    """One bar per stage; a stage starts when first reported and is complete at its total.

    An instance is the ``progress`` callback a job takes. Where bars cannot be redrawn (stderr is a log
    file or a pipe), each stage prints a line instead, when it starts and at every tenth of its total.
    """

    def __init__(self, console: Console, enabled: bool = True):
        self.log_lines = enabled and not console.is_terminal and not console.is_jupyter
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), CountColumn(),
            TaskProgressColumn(), RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled or self.log_lines, transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.logged: dict[str, int] = {}  # the last tenth of each stage printed
        self.started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(STAGE_LABELS.get(stage, stage), total=total,
                                                       unit=STAGE_UNITS.get(stage))
        self.progress.update(self.tasks[stage], completed=done, total=total)
        if self.log_lines:
            self._log_line(stage, done, total)

    def _log_line(self, stage: str, done: int, total: int | None) -> None:
        tenth = 10 * done // total if total else 0
        if stage in self.logged and tenth <= self.logged[stage]:
            return
        self.logged[stage] = tenth
        elapsed = datetime.timedelta(seconds=round(time.monotonic() - self.started))
        unit = STAGE_UNITS.get(stage)
        amount = f": {_amount(done, unit)}/{_amount(total, unit)} ({100 * done // total}%)" if total else ""
        self.progress.console.print(f"[{elapsed}] {STAGE_LABELS.get(stage, stage)}{amount}", markup=False,
                                    highlight=False)

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
