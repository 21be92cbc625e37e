"""The one rich progress display of every command: a job's ``progress(stage, done, total)`` as bars."""

from __future__ import annotations

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

    An instance is the ``progress`` callback a job takes.
    """

    def __init__(self, console: Console, enabled: bool = True):
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), CountColumn(),
            TaskProgressColumn(), RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(STAGE_LABELS.get(stage, stage), total=total,
                                                       unit=STAGE_UNITS.get(stage))
        self.progress.update(self.tasks[stage], completed=done, total=total)

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
