"""Rich progress bars for the long steps of a command, with ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

# Engine stages (see VExpressPipeline's progress callback) and how they are shown.
STAGE_LABELS = {
    "reference": "Encoding the portrait",
    "audio": "Encoding the audio",
    "denoise": "Denoising (steps x windows)",
    "decode": "Decoding and writing frames",
}


class StageProgress:
    """One bar per stage; stages start when first reported and finish at their total."""

    def __init__(self, console: Console, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "StageProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, stage: str, label: str | None = None, total: int | None = None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(label or STAGE_LABELS.get(stage, stage), total=total)

    def finish(self, stage: str) -> None:
        task = self.tasks[stage]
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, total=total, completed=total)

    def update(self, stage: str, completed: int, total: int) -> None:
        """The engine's progress callback: ``(stage, completed, total)``."""
        self.start(stage, total=total)
        self.progress.update(self.tasks[stage], completed=completed, total=total)
