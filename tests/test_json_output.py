"""With --json, stdout holds only the JSON: Ray printed its "(raylet) A worker died ..." lines there, before the
summary, and `json.load` of a batch's stdout failed."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app

NOISY = """
import os, threading
from vexpress_cli.cli.json_output import stdout_kept_for_json

with stdout_kept_for_json(True):
    print("a print")
    os.write(1, b"a write to descriptor 1\\n")
    thread = threading.Thread(target=print, args=("a thread's print",))
    thread.start()
    thread.join()
print('{"ok": true}')
"""


def test_prints_writes_and_threads_go_to_stderr_while_a_json_command_runs():
    result = subprocess.run([sys.executable, "-c", NOISY], capture_output=True, text=True, cwd=REPO_ROOT,
                            check=True)
    assert result.stdout == '{"ok": true}\n'
    assert result.stderr.splitlines() == ["a print", "a write to descriptor 1", "a thread's print"]


def test_batch_json_stdout_is_the_summary_alone_when_the_batch_prints(tmp_path, monkeypatch):
    import vexpress_cli.jobs.batch as batch_jobs
    from vexpress_cli.jobs.batch.summary import BatchSummary

    def noisy_batch(manifest, **options):  # as Ray's driver prints while its actors run
        print("(raylet) A worker died or was killed while executing a task")
        return BatchSummary(str(manifest), [], 0.5, ["ray"])

    monkeypatch.setattr(batch_jobs, "batch", noisy_batch)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("{}\n")
    result = CliRunner().invoke(app, ["batch", str(manifest), "--model-dir", str(TINY_MODEL_DIR), "--json"])
    assert json.loads(result.stdout)["manifest"] == str(manifest), result.output
    assert "(raylet) A worker died" in result.stderr

