"""`vexpress batch --report`: the path is checked before any job runs, like every other output, and may not be a
file the batch reads or writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app

pytestmark = pytest.mark.usefixtures("no_user_config")
runner = CliRunner()
JOB = {"reference_image": "ref.jpg", "audio": "a.wav", "output": "out/a.mp4", "kps": "drive.pth",
       "reference_kps": "ref.pth"}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A manifest of one job, its files with known contents (they need not be media: nothing may run)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    for name in ("ref.jpg", "a.wav", "drive.pth", "ref.pth", "out/a.mp4", "out/a.mp4.json"):
        (tmp_path / name).write_text(f"the original {name}")
    (tmp_path / "jobs.jsonl").write_text(json.dumps(JOB) + "\n")
    return tmp_path


def run_with_report(report: str):
    # Wide enough that no temp path is broken inside (a word longer than the line is cut where the line ends)
    return runner.invoke(app, ["batch", "jobs.jsonl", "--model-dir", str(TINY_MODEL_DIR), "--report", report],
                         env={"COLUMNS": "400"})


def message(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.stderr.split())


@pytest.mark.parametrize(("report", "what"), [
    ("out/a.mp4", "the output of line 1"),
    ("out/a.mp4.json", "the run record of line 1"),
    ("ref.jpg", "the reference_image of line 1"),
    ("a.wav", "the audio of line 1"),
    ("drive.pth", "the kps of line 1"),
    ("ref.pth", "the reference_kps of line 1"),
    ("jobs.jsonl", "the manifest"),
])
def test_a_report_that_is_a_file_of_the_batch_is_refused_before_any_job_runs(project, report, what):
    originals = {path: path.read_text() for path in project.rglob("*") if path.is_file()}
    text = message(run_with_report(report))
    assert text == (f"Error: --report {project / report} is also {what}. Writing the report would replace a file "
                    "the batch reads or writes. Choose another report path.")
    assert {path: path.read_text() for path in project.rglob("*") if path.is_file()} == originals


def test_a_report_inside_a_jobs_frame_folder_is_refused(project):
    (project / "jobs.jsonl").write_text(json.dumps({**JOB, "output": "frames"}) + "\n")
    text = message(run_with_report("frames/report.json"))
    assert text.startswith(f"Error: --report {project / 'frames/report.json'} is inside the output of line 1, "
                           "a folder of frames.")


def test_a_report_that_is_a_folder_is_refused_before_any_job_runs(project):
    assert message(run_with_report("out")) == ("Error: --report out is a folder. The report is one JSON file. "
                                               "Name the file, e.g. --report out/report.json.")


def test_a_report_under_a_file_is_refused_before_any_job_runs(project):
    text = message(run_with_report("ref.jpg/report.json"))
    assert f"'{project / 'ref.jpg'}' is a file, not a folder." in text
    assert "no job was started" not in text  # refused before the manifest's own checks



def test_a_report_path_holding_another_file_is_refused_and_the_file_kept(project):
    """Audit item 14: `--report precious.txt` replaced the file, when every other output needs --overwrite."""
    (project / "precious.txt").write_text("keep")
    text = message(run_with_report("precious.txt"))
    assert text == (f"Error: --report {project / 'precious.txt'} already exists and is not a batch report. Each run "
                    "rewrites its report, so only a previous report (a JSON object with manifest, counts, jobs) is "
                    "replaced; any other file is kept. Choose another report path, or move that file away first.")
    assert (project / "precious.txt").read_text() == "keep"
    (project / "other.json").write_text(json.dumps({"manifest": "jobs.jsonl"}))  # JSON, but no report
    assert "is not a batch report" in message(run_with_report("other.json"))


def test_a_previous_batch_report_may_be_replaced_by_the_next_run(project):
    from vexpress_cli.cli.batch import check_report

    (project / "report.json").write_text(json.dumps({"manifest": "old.jsonl", "total": 0, "counts": {}, "jobs": []}))
    assert check_report(Path("report.json"), Path("jobs.jsonl")) == project / "report.json"


def test_a_report_on_a_full_disk_comes_after_the_summary_as_one_paragraph(project, monkeypatch):
    import errno

    from vexpress_cli.jobs import batch as batch_module
    from vexpress_cli.jobs.batch.summary import BatchSummary

    monkeypatch.setattr(batch_module, "batch", lambda jobs, **options: BatchSummary(str(jobs), [], 0.5))
    real_write = Path.write_text

    def full_disk(path, *args, **kwargs):
        if "report" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    result = run_with_report("report.json")
    text = message(result)
    assert text.index("Finished") < text.index(f"Error: Could not write {project / 'report.json'}: its disk is full "
                                               "(or your quota on it is reached); nothing was kept. The disk "
                                               f"holding {project / 'report.json'} is full: free space on it")
    assert not [path for path in project.iterdir() if "report" in path.name]
