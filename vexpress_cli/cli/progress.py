"""The one rich progress display of every command: a job's ``progress(stage, done, total)`` as bars."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn,
                           TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from vexpress_cli.progress import STAGE_LABELS, STAGE_UNITS


class RateColumn(ProgressColumn):
    """Items per second, for stages that have a unit."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit")
        if not unit:
            return Text("")
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} {unit}/s" if speed else f"  ?   {unit}/s", style="progress.data.speed")


class StageProgress:
    """One bar per stage; a stage starts when first reported and is complete at its total.

    An instance is the ``progress`` callback a job takes.
    """

    def __init__(self, console: Console, enabled: bool = True):
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
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
