"""The advice for a helper process that ended before it reported anything depends on how Python was started:
a script (spawn imports it again), stdin (spawn cannot), the vexpress command or python -m (guarded)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PRINT_FIX = "from vexpress_cli.helper_processes import script_guard_fix\nprint(script_guard_fix())\n"
GUARDED = ("from vexpress_cli.helper_processes import main_is_guarded\nmain_is_guarded()  # as `vexpress` does\n"
           + PRINT_FIX)


@pytest.mark.parametrize(("how", "code", "fix"), [
    ("script", PRINT_FIX, "Put your script's code under `if __name__ == \"__main__\":`"),
    ("stdin", PRINT_FIX, "Save the script to a file and run that"),
    ("script", GUARDED, ""),
    ("-c", PRINT_FIX, ""),  # no main module to import again
])
def test_the_fix_for_a_helper_that_ended_early_fits_how_python_was_started(tmp_path, how, code, fix):
    script = tmp_path / "job.py"
    script.write_text(code)
    arguments = {"script": [str(script)], "stdin": ["-"], "-c": ["-c", code]}[how]
    printed = subprocess.run([sys.executable, *arguments], input=code if how == "stdin" else None,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert printed.startswith(fix) and bool(printed) == bool(fix)


def test_the_vexpress_command_marks_its_main_module_as_guarded(tmp_path):
    """Like the `vexpress` console script: a script file whose main() runs the app (here, a stand-in)."""
    script = tmp_path / "vexpress"
    script.write_text("from unittest import mock\nfrom vexpress_cli import helper_processes\n"
                      "from vexpress_cli.cli import app\n"
                      "with mock.patch.object(app, 'app'), mock.patch.object(app, 'handle_termination_signals'):\n"
                      "    app.main()\n"
                      "print(repr(helper_processes.script_guard_fix()))\n")
    printed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "''"
