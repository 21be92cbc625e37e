"""The report on a frame folder, what ``generate -o NAME`` (no video suffix) writes: PNG frames and audio.wav."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vexpress_cli.file_types import FRAME_FOLDER_AUDIO, FRAME_SUFFIX
from vexpress_cli.jobs.inspect.report import Report

FRAME_NAME = re.compile(r"frame_(\d+)" + re.escape(FRAME_SUFFIX))


@dataclass
class FramesReport(Report):
    path: str
    frames: int
    width: int | None
    height: int | None
    first: str | None  # the first frame's file name
    missing: int  # frame numbers skipped between 1 and the last one
    has_audio: bool  # audio.wav beside the frames
    fps: float | None  # from the run record, when there is one
    duration: float | None
    run_record: str | None  # NAME.json beside the folder, when it describes it
    kind: str = "frames"
    warnings: list[str] = field(default_factory=list)


def is_frame_folder(path: Path) -> bool:
    """A folder holding frame PNGs (at least one) and perhaps audio.wav, and nothing else."""
    from vexpress_cli.outputs import looks_like_frame_folder

    try:
        return path.is_dir() and any(_numbers(path)) and looks_like_frame_folder(path)
    except OSError:
        return False


def inspect_frames(path: str | Path) -> FramesReport:
    """Frame count, size and audio of a frame folder, and the fps its run record gives."""
    from vexpress_cli.jobs.inspect.video import describing_record
    from vexpress_cli.jobs.records import read_record

    folder = Path(path)
    numbers = sorted(_numbers(folder))
    first = f"frame_{numbers[0]:06d}{FRAME_SUFFIX}" if numbers else None
    width, height = _frame_size(folder / first) if first else (None, None)
    record = describing_record(folder)
    fps = read_record(record).fps if record else None
    report = FramesReport(
        path=str(folder), frames=len(numbers), width=width, height=height, first=first,
        missing=(numbers[-1] - len(numbers)) if numbers else 0, has_audio=(folder / FRAME_FOLDER_AUDIO).is_file(),
        fps=fps, duration=round(len(numbers) / fps, 6) if fps else None, run_record=record,
    )
    if report.missing:
        report.warnings.append(f"{report.missing} frame numbers between 1 and {numbers[-1]} are missing.")
    if record is None:
        report.warnings.append(f"No run record that describes this folder ({folder.name}.json): its fps is unknown.")
    return report


def _numbers(folder: Path) -> list[int]:
    return [int(match.group(1)) for entry in os.scandir(folder) if (match := FRAME_NAME.fullmatch(entry.name))]


def _frame_size(frame: Path) -> tuple[int | None, int | None]:
    from PIL import Image

    try:
        with Image.open(frame) as image:  # reads the header only
            return image.size
    except OSError:
        return None, None
