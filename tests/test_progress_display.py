"""The commands' progress display: live bars on a terminal, plain timed lines in a log file or pipe."""

from __future__ import annotations

import io
import re

from rich.console import Console

from vexpress_cli.cli.progress import stage_progress


def shown(terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, force_jupyter=False, width=100)
    with stage_progress(console) as progress:
        progress("inputs", 0, 1)
        progress("inputs", 1, 1)
        for done in range(21):
            progress("denoise", done, 20)
        progress("audio", 5, None)  # a stage of unknown length
    return out.getvalue()


def test_a_log_gets_a_timed_line_per_stage_start_and_tenth_and_no_bars():
    lines = shown(terminal=False).splitlines()
    assert all(re.match(r"\[\d+:\d\d:\d\d\] ", line) for line in lines), lines
    denoising = [line.split("] ", 1)[1] for line in lines if "Denoising" in line]
    assert denoising == [f"Denoising (steps x windows): {done}/20 ({5 * done}%)" for done in range(0, 21, 2)]
    assert [line.split("] ", 1)[1] for line in lines if "Reading inputs" in line] == [
        "Reading inputs: 0/1 (0%)", "Reading inputs: 1/1 (100%)"]
    assert sum("Encoding the audio" in line for line in lines) == 1  # no total: its start only
    assert "━" not in "".join(lines)


def test_a_terminal_gets_bars_and_no_lines():
    text = shown(terminal=True)
    assert "━" in text and "Denoising (steps x windows)" in text
    assert not re.search(r"\[\d+:\d\d:\d\d\] ", text)
