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



def test_a_log_also_gets_a_line_a_minute_while_a_stage_is_slow_within_a_tenth(monkeypatch):
    """A ten-minute video's face finding printed nothing for minutes between two tenths."""
    from vexpress_cli.cli import progress as progress_module

    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with stage_progress(Console(file=out, force_terminal=False, force_jupyter=False, width=100)) as progress:
        for done in range(0, 50):  # 1,000 frames, 1 s each: under a tenth
            progress("faces", done, 1000)
            clock[0] += 1 if done < 30 else 5
        progress("audio", 1, None)
        clock[0] += 61
        progress("audio", 2, None)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert [line for line in lines if "faces" in line.lower()] == [  # at 0 s, 60 s (frame 36) and 120 s
        "Finding faces: 0/1000 (0%)", "Finding faces: 36/1000 (3%)", "Finding faces: 48/1000 (4%)"]
    assert sum("Encoding the audio" in line for line in lines) == 2

def test_a_terminal_gets_bars_and_no_lines():
    text = shown(terminal=True)
    assert "━" in text and "Denoising (steps x windows)" in text
    assert not re.search(r"\[\d+:\d\d:\d\d\] ", text)
