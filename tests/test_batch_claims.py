"""Two runs of one manifest at once (another terminal, a cron job, another node) share its jobs: each job is
made once, the other run skips it. Both did every job, and the later one ended "failed" on each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from conftest import SAMPLES_DIR, TINY_MODEL_DIR

from vexpress_cli.jobs.batch.checks import NEW, REDO, BatchJob, file_stamp
from vexpress_cli.jobs.batch.claims import CLAIM_STALE_SECONDS, claim_output, claim_path
from vexpress_cli.jobs.batch.execute import run_job
from vexpress_cli.outputs.atomic import HOST_TAG


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_claim_is_held_until_released_and_names_its_holder(tmp_path):
    output = tmp_path / "out" / "a.mp4"
    claim = claim_output(output)
    assert claim.path == claim_path(output) and claim.path.name == ".a.mp4.vexpress-claim"
    held = claim_output(output)
    assert held.startswith(f"another run is making it (process {os.getpid()} on this machine, since ")
    claim.release()
    assert not claim_path(output).exists()
    claim_output(output).release()


@pytest.mark.parametrize(("host", "pid", "age", "held"), [
    ("this", "dead", 0, False),  # its run was killed
    ("other", "dead", 0, True),  # another machine's process cannot be asked: it may live
    ("other", "dead", CLAIM_STALE_SECONDS + 60, False),  # untouched too long: its run died
    ("this", "alive", CLAIM_STALE_SECONDS + 60, False),  # alive but stuck, or a reused process id
])
def test_a_claim_whose_run_ended_is_taken_over(tmp_path, host, pid, age, held):
    output = tmp_path / "a.mp4"
    path = claim_path(output)
    path.write_text(json.dumps({"host": HOST_TAG if host == "this" else "h00000000",
                                "pid": dead_pid() if pid == "dead" else os.getpid(), "started": "then"}))
    os.utime(path, (time.time() - age, time.time() - age))
    claim = claim_output(output)
    assert isinstance(claim, str) == held, claim
    if not held:
        assert json.loads(path.read_text())["pid"] == os.getpid()


class NeverRuns:
    device, dtype_name = torch.device("cpu"), "fp32"

    def plan(self, *args, **kwargs):
        raise AssertionError("the job ran")


def test_a_run_removes_only_its_own_claim_and_one_run_takes_over_a_stale_claim(tmp_path):
    """A run whose stale claim was taken over removed the new holder's claim when its job ended."""
    output = tmp_path / "a.mp4"
    first = claim_output(output)
    long_ago = time.time() - CLAIM_STALE_SECONDS - 60
    os.utime(first.path, (long_ago, long_ago))
    second = claim_output(output)  # the first run's claim went stale: taken over
    assert second.token != first.token
    first.release()
    assert claim_path(output).exists() and isinstance(claim_output(output), str)  # the second's claim stays
    second.release()
    assert not claim_path(output).exists()


def test_a_running_claim_is_touched_by_its_heartbeat(tmp_path, monkeypatch):
    """The claim was touched only with progress reports: compiling or a long CPU step made it look dead."""
    import vexpress_cli.jobs.batch.claims as claims

    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    claim = claim_output(tmp_path / "a.mp4")
    os.utime(claim.path, (1000, 1000))
    deadline = time.monotonic() + 10
    while claim.path.stat().st_mtime < time.time() - 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert claim.path.stat().st_mtime > time.time() - 60
    claim.release()


class Interrupted:
    device, dtype_name = torch.device("cpu"), "fp32"

    def plan(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_a_job_stopped_by_ctrl_c_leaves_neither_its_claim_nor_the_folders_it_made(tmp_path):
    job = BatchJob(1, "aoc.jpg", "a.wav", str(tmp_path / "new" / "deeper" / "a.mp4"), {}, action=NEW)
    with pytest.raises(KeyboardInterrupt):
        run_job(Interrupted(), job, "cpu#1", lambda event: None)
    assert list(tmp_path.iterdir()) == []


def test_run_job_skips_a_job_another_run_holds_or_made_meanwhile(tmp_path):
    events = []
    held = BatchJob(1, "aoc.jpg", "a.wav", str(tmp_path / "a.mp4"), {}, action=NEW)
    claim = claim_output(held.output)
    outcome = run_job(NeverRuns(), held, "cpu#1", events.append)
    assert (outcome.status, outcome.reason.split(" (")[0]) == ("skipped", "another run is making it")
    assert [event.kind for event in events] == ["finished"] and claim_path(held.output).exists()
    claim.release()
    made = BatchJob(2, "aoc.jpg", "a.wav", str(tmp_path / "b.mp4"), {}, action=NEW)
    (tmp_path / "b.mp4").write_bytes(b"another run's video")
    outcome = run_job(NeverRuns(), made, "cpu#1", events.append)
    assert (outcome.status, outcome.reason) == ("skipped", "made meanwhile by another run")
    assert not claim_path(made.output).exists()


def test_a_redo_runs_unless_its_output_was_replaced_by_one_whose_record_names_this_job(tmp_path):
    """Skipping on a changed file alone would skip after a `touch`, or after another manifest wrote other settings
    there; the skip itself (a record naming this job) is proven by two real runs below."""
    output = tmp_path / "a.mp4"
    output.write_bytes(b"the video the check found")
    stamp = file_stamp(output)

    def redo():  # the job's plan raises KeyboardInterrupt: it went through only if the job ran
        job = BatchJob(1, "r.jpg", "a.wav", str(output), {}, action=REDO, output_stamp=stamp)
        return run_job(Interrupted(), job, "cpu#1", lambda event: None)

    with pytest.raises(KeyboardInterrupt):
        redo()  # the same file as checked
    replacement = tmp_path / "new.mp4"
    replacement.write_bytes(b"another manifest's video, with other settings")
    replacement.replace(output)
    (tmp_path / "a.mp4.json").write_text("{}")  # a record that describes no job
    with pytest.raises(KeyboardInterrupt):
        redo()
    output.unlink()  # removed by hand since the check: nothing to keep
    with pytest.raises(KeyboardInterrupt):
        redo()


@pytest.mark.slow
def test_two_runs_of_one_manifest_at_once_make_each_video_once(tmp_path):
    jobs = [{"reference_image": str(SAMPLES_DIR / "AOC" / "ref.jpg"), "audio": str(SAMPLES_DIR / "AOC" / "aud.mp3"),
             "output": f"out/{name}.mp4", "reference_kps": "20,26;42,26;32,38", "seed": seed}
            for seed, name in enumerate("abcd")]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    command = [sys.executable, "-m", "vexpress_cli", "batch", str(manifest), "--model-dir", str(TINY_MODEL_DIR),
               "--width", "64", "--height", "64", "--num-inference-steps", "1", "--json"]
    environment = {**os.environ, "VEXPRESS_CONFIG_DIR": str(tmp_path / "config"), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
            for _ in range(2)]
    results = [(run.wait(timeout=600), run.stdout.read(), run.stderr.read()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    summaries = [json.loads(stdout) for _, stdout, _ in results]
    done = sorted(job["line"] for summary in summaries for job in summary["jobs"] if job["status"] == "done")
    assert done == [1, 2, 3, 4]  # each made once, by one of the runs
    assert all(summary["counts"]["failed"] == 0 for summary in summaries)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        [f"{name}.mp4" for name in "abcd"] + [f"{name}.mp4.json" for name in "abcd"])  # no claim left
    manifest.write_text("".join(json.dumps({**job, "seed": job["seed"] + 10}) + "\n" for job in jobs))
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
            for _ in range(2)]
    results = [(run.wait(timeout=600), run.stdout.read(), run.stderr.read()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    jobs_seen = [job for _, stdout, _ in results for job in json.loads(stdout)["jobs"]]
    assert sorted(job["line"] for job in jobs_seen if job["status"] == "done") == [1, 2, 3, 4], jobs_seen  # redone once
