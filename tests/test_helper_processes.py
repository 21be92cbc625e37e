"""vexpress's helper processes (spawn) do not run the caller's main module again: a script without a main
guard, or one read from stdin, starts them like the vexpress command does."""

from __future__ import annotations

import subprocess
import sys

import pytest

UNGUARDED = """\
import multiprocessing, sys, time
from vexpress_cli.helper_processes import start_helper

print("top level ran", flush=True)
helper = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
start_helper(helper) if sys.argv[-1] == "vexpress" else helper.start()
helper.join()
print("helper exit code", helper.exitcode, "main", sys.modules["__main__"].__name__, flush=True)
"""


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_a_helper_started_from_an_unguarded_script_does_not_run_the_script_again(tmp_path, how):
    script = tmp_path / "job.py"
    script.write_text(UNGUARDED)
    arguments = [str(script)] if how == "script" else ["-"]
    completed = subprocess.run([sys.executable, *arguments, "vexpress"], input=UNGUARDED if how == "stdin" else None,
                               capture_output=True, text=True, timeout=120)
    assert completed.stdout.splitlines() == ["top level ran", "helper exit code 0 main __main__"], completed.stderr
    assert completed.returncode == 0 and completed.stderr == ""


def test_pythons_own_start_runs_the_unguarded_script_again_in_the_helper(tmp_path):
    """What start_helper avoids: the helper re-runs the top level and fails starting its own helper."""
    script = tmp_path / "job.py"
    script.write_text(UNGUARDED)
    completed = subprocess.run([sys.executable, str(script), "python"], capture_output=True, text=True, timeout=120)
    assert completed.stdout.splitlines() == ["top level ran", "top level ran", "helper exit code 1 main __main__"]
    assert "bootstrapping phase" in completed.stderr
