"""`vexpress batch` on the tiny model: a manifest of jobs, the model loaded once per worker, a record beside every
output, resume (skip, redo, retry), contained failures, Ctrl-C and kill -9, worker processes and Ray actors.

Jobs are tiny (64x64, one denoising step, 0.4-0.5 s of speech). The single-worker runs use one torch thread
(``like_the_real_command``), and so do the worker processes and Ray actors (``OMP_NUM_THREADS=1``): on the CPU
the thread count changes the last bits of the numbers, and the frames are compared exactly.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, SAMPLES_DIR, TINY_MODEL_DIR, free_port
from PIL import Image
from typer.testing import CliRunner

import vexpress_cli
from vexpress_cli.cli import batch as batch_cli
from vexpress_cli.cli.app import app
from vexpress_cli.engine.model_source import DEFAULT_HUB_ID
from vexpress_cli.errors import spell_parameters
from vexpress_cli.jobs.batch.summary import BatchSummary, JobOutcome
from vexpress_cli.jobs.batch.manifest import ManifestError, Problem
from vexpress_cli.jobs.batch.checks import prepare_jobs
from vexpress_cli.jobs.batch.runner import batch_model_settings
from vexpress_cli.jobs.records import RunRecord, file_facts, input_files, read_record, record_path
from vexpress_cli.media.encoding import resolve_codec
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_reader import iter_video_frames, video_info

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

AOC, TYS = SAMPLES_DIR / "AOC", SAMPLES_DIR / "tys"
REFERENCE_KPS = "22,26;42,26;32,38"
SMALL = ["--width", "64", "--height", "64", "--num-inference-steps", "1", "--model-dir", str(TINY_MODEL_DIR)]
THREE_JOBS = [
    {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/a.mp4", "reference_kps": REFERENCE_KPS, "seed": 1},
    {"reference_image": "tys.jpg", "audio": "b.wav", "output": "out/b.mp4", "kps": "tys_kps.pth"},
    {"reference_image": "aoc.jpg", "audio": "b.wav", "output": "out/c.mp4", "reference_kps": REFERENCE_KPS,
     "audio_attention_weight": 2.0},
]
OUTPUTS = ("a.mp4", "b.mp4", "c.mp4")
runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Portraits, a driving track, a face-less picture and two short speech clips, in one folder."""
    folder = tmp_path_factory.mktemp("inputs")
    for name, source, start, seconds in (("a.wav", AOC, 1.0, 0.4), ("b.wav", TYS, 0.0, 0.5)):
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i",
                        str(source / "aud.mp3"), str(folder / name)], check=True)
    shutil.copy(AOC / "ref.jpg", folder / "aoc.jpg")
    shutil.copy(TYS / "ref.jpg", folder / "tys.jpg")
    shutil.copy(TYS / "kps.pth", folder / "tys_kps.pth")
    Image.new("RGB", (256, 256), (128, 128, 128)).save(folder / "blank.png")
    return folder


def project(inputs: Path, where: Path, jobs: list[dict], name: str = "jobs.jsonl") -> Path:
    """A folder with the inputs and a manifest of ``jobs``; returns the manifest."""
    where.mkdir(parents=True, exist_ok=True)
    for item in inputs.iterdir():
        if not (where / item.name).exists():
            shutil.copy(item, where / item.name)
    manifest = where / name
    manifest.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    return manifest


def run_batch(manifest: Path, *flags) -> tuple[int, dict, object]:
    """``vexpress batch MANIFEST --json`` on the tiny model: exit code, summary, CliRunner result."""
    result = runner.invoke(app, ["batch", str(manifest), *SMALL, "--json", *map(str, flags)])
    summary = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, summary, result


def statuses(summary: dict) -> list[tuple[int, str]]:
    return [(job["line"], job["status"]) for job in summary["jobs"]]


def frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))


def mtimes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory, like_the_real_command):
    """The three-job manifest run once by one worker; later tests compare with its outputs."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("batch")
        patch.setenv("VEXPRESS_CONFIG_DIR", str(folder / "config"))
        patch.delenv("VEXPRESS_MODEL_DIR", raising=False)
        manifest = project(inputs, folder / "project", THREE_JOBS)
        code, summary, result = run_batch(manifest, "--report", folder / "report.json")
    assert code == 0, result.output
    return manifest, summary, json.loads((folder / "report.json").read_text())


def test_three_jobs_write_each_output_and_a_record_that_describes_it(first_run):
    manifest, summary, report = first_run
    out = manifest.parent / "out"
    assert statuses(summary) == [(1, "done"), (2, "done"), (3, "done")]
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0, "interrupted": 0, "not_run": 0}
    assert report == summary and summary["total"] == 3 and summary["interrupted"] is False
    assert sorted(path.name for path in out.iterdir()) == ["a.mp4", "a.mp4.json", "b.mp4", "b.mp4.json", "c.mp4",
                                                           "c.mp4.json"]
    expected = [("aoc.jpg", "a.wav", 12, "fix_face", 1, 1.0), ("tys.jpg", "b.wav", 15, "no_retarget", 42, 1.0),
                ("aoc.jpg", "b.wav", 15, "fix_face", 42, 2.0)]
    for name, (image, audio, count, strategy, seed, weight) in zip(OUTPUTS, expected):
        output = out / name
        record = read_record(record_path(output))
        info = video_info(output)
        assert (info.frame_count, info.width, info.codec, info.audio_codec) == (count, 64, "h264", "aac")
        assert (record.status, record.frames, record.fps, record.strategy) == ("done", count, 30.0, strategy)
        assert record.codec == resolve_codec("auto") and record.device not in ("auto", None)
        # what ran: the record's settings said "auto"
        assert (record.settings["device"], record.settings["dtype"]) == (record.device, record.dtype)
        assert record.seed == record.settings["seed"] == seed and record.settings["audio_attention_weight"] == weight
        assert record.settings["num_inference_steps"] == 1 and record.settings["width"] == 64
        assert record.inputs["reference_image"] == file_facts(manifest.parent / image)
        assert record.inputs["audio"] == file_facts(manifest.parent / audio)
        assert record.output_file == file_facts(output)
        assert record.job["reference_kps"] == (None if name == "b.mp4" else REFERENCE_KPS)
    assert read_record(record_path(out / "b.mp4")).inputs["kps"] == file_facts(manifest.parent / "tys_kps.pth")


def test_second_run_skips_all_three_without_touching_them(first_run):
    manifest = first_run[0]
    before = mtimes(manifest.parent / "out")
    code, summary, result = run_batch(manifest)
    assert code == 0, result.output
    assert statuses(summary) == [(1, "skipped"), (2, "skipped"), (3, "skipped")]
    assert mtimes(manifest.parent / "out") == before


@pytest.mark.slow
def test_a_changed_setting_on_one_line_redoes_only_that_job(first_run, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)  # mtimes kept
    before = mtimes(folder / "out")
    manifest = project(folder, folder, [THREE_JOBS[0], {**THREE_JOBS[1], "seed": 5}, THREE_JOBS[2]])
    code, summary, result = run_batch(manifest)
    assert code == 0, result.output
    assert statuses(summary) == [(1, "skipped"), (2, "done"), (3, "skipped")]
    assert summary["jobs"][1]["action"] == "redo" and summary["jobs"][1]["reason"] == "seed changed (42 -> 5)"
    after = mtimes(folder / "out")
    assert {name for name in after if after[name] != before[name]} == {"b.mp4", "b.mp4.json"}
    assert read_record(record_path(folder / "out" / "b.mp4")).seed == 5


@pytest.mark.slow
def test_other_weights_redo_the_jobs_and_the_same_weights_elsewhere_do_not(first_run, tmp_path):
    """A model whose files kept their names and sizes (a scaled UNet, another revision) skipped every job as done
    before, keeping the old model's videos."""
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)
    moved, other = tmp_path / "moved-model", tmp_path / "other-model"
    shutil.copytree(TINY_MODEL_DIR, moved)
    shutil.copytree(TINY_MODEL_DIR, other)
    unet = other / "v-express" / "denoising_unet.bin"
    size = unet.stat().st_size
    torch.save({name: value * 1.5 for name, value in torch.load(unet, weights_only=True).items()}, unet)
    assert unet.stat().st_size == size
    code, summary, result = run_batch(first_run[0].parent / "jobs.jsonl", "--model-dir", moved)
    assert code == 0 and statuses(summary) == [(1, "skipped"), (2, "skipped"), (3, "skipped")], result.output
    code, summary, result = run_batch(project(folder, folder, THREE_JOBS), "--model-dir", other)
    assert code == 0 and statuses(summary) == [(1, "done"), (2, "done"), (3, "done")], result.output
    assert {(job["action"], job["reason"]) for job in summary["jobs"]} == {("redo", "the model changed")}
    assert read_record(record_path(folder / "out" / "a.mp4")).model["folder"] == str(other)


@pytest.mark.slow
def test_naming_the_strategy_auto_stood_for_is_the_same_job(first_run, tmp_path):
    """The first run left the strategy at auto: fix_face for jobs 1 and 3 (no kps), no_retarget for job 2."""
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)
    manifest = project(folder, folder, THREE_JOBS)
    code, summary, result = run_batch(manifest, "--retarget-strategy", "fix_face")
    assert code == 0, result.output
    assert statuses(summary) == [(1, "skipped"), (2, "done"), (3, "skipped")]
    assert summary["jobs"][1]["reason"] == "retarget_strategy changed ('no_retarget' -> 'fix_face')"


@pytest.mark.slow
def test_a_job_run_again_says_why_before_it_runs_and_a_log_gets_timed_lines_per_job(first_run, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)
    manifest = project(folder, folder, [THREE_JOBS[0], {**THREE_JOBS[1], "seed": 5},
                                        {**THREE_JOBS[2], "output": "out/d.mp4"}])
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])  # not a terminal: no live bars
    assert result.exit_code == 0, result.output
    log = [" ".join(line.split()) for line in result.stderr.splitlines()]
    again = log.index("Running line 2 b.mp4 again: seed changed (42 -> 5)")
    assert again < next(index for index, line in enumerate(log) if line.startswith("Done line 2:"))
    assert "Started line 3 d.mp4" in log
    assert any(re.fullmatch(r"\[\d+:\d\d:\d\d\] line 3 d\.mp4: Denoising \(steps x windows\): 1/1 \(100%\)", line)
               for line in log), log  # the job's stages as timed lines, as generate logs them
    assert not any(line.startswith(("Started line 1", "Running line 1")) for line in log)  # skipped


@pytest.mark.slow
def test_force_on_a_job_never_done_runs_it_as_new_not_again(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    result = runner.invoke(app, ["batch", str(manifest), *SMALL, "--force"])
    assert result.exit_code == 0, result.output
    assert "again" not in result.stderr and "Started line 1 a.mp4" in result.stderr
    code, summary, _ = run_batch(manifest, "--force")  # now it exists: forced
    assert code == 0 and (summary["jobs"][0]["action"], summary["jobs"][0]["reason"]) == ("force", "--force was given")


@pytest.mark.slow
def test_a_faceless_portrait_fails_with_its_reason_while_the_others_succeed(inputs, tmp_path):
    faceless = {"reference_image": "blank.png", "audio": "a.wav", "output": "out/face.mp4",
                "retarget_strategy": "fix_face", "face_backend": "dlib"}
    manifest = project(inputs, tmp_path, [THREE_JOBS[0], faceless, THREE_JOBS[2]])
    result = runner.invoke(app, ["batch", str(manifest), *SMALL, "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 1, result.output
    summary = json.loads((tmp_path / "report.json").read_text())
    assert statuses(summary) == [(1, "done"), (2, "failed"), (3, "done")]
    assert summary["jobs"][1]["reason"].startswith("No face was found in ") and "dlib" in summary["jobs"][1]["reason"]
    assert (tmp_path / "out" / "a.mp4").is_file() and (tmp_path / "out" / "c.mp4").is_file()
    assert not (tmp_path / "out" / "face.mp4").exists()
    failure = read_record(tmp_path / "out" / "face.mp4.json")
    reason = summary["jobs"][1]["reason"]
    assert failure.status == "failed" and failure.error.startswith(reason[:40])
    table = " ".join(result.stderr.split())
    assert "Failed jobs" in table and "No face was found" in table and "2 done, 1 failed" in table
    # The reason's fix names flags in the terminal and in the CLI's report (as extract's and retarget's --json do),
    # Python arguments in the record the library wrote.
    assert "--crop" in table and 'crop="X,Y,W,H"' not in table + reason and "--crop X,Y,W,H" in reason
    assert 'crop="X,Y,W,H"' in failure.error and "--crop" not in failure.error
    # Run again: the failed job is retried (and fails again), the others are skipped.
    code, again, _ = run_batch(manifest)
    assert code == 1 and statuses(again) == [(1, "skipped"), (2, "failed"), (3, "skipped")]
    assert again["jobs"][1]["action"] == "retry"


@pytest.mark.slow
def test_a_run_killed_after_its_first_video_resumes_to_completion_with_no_stray_files(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "vexpress_cli", "batch", str(manifest), *SMALL, "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        names = {path.name for path in out.iterdir()} if out.is_dir() else set()
        if "a.mp4" in names and any(name.startswith(".b.") or name == "b.mp4" for name in names):
            break  # the first video is done and the second one is being written
        time.sleep(0.02)
    assert process.poll() is None, f"the batch ended before it could be killed: {process.stderr.read()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(1.0)  # the killed job's ffmpeg sees its input close and exits
    left = {path.name for path in out.iterdir()}
    assert {"a.mp4", "a.mp4.json"} <= left and not {"c.mp4", "c.mp4.json"} & left
    assert ("b.mp4" in left) == ("b.mp4.json" in left)  # an output and its record, or neither

    code, summary, result = run_batch(manifest)
    assert code == 0, result.output
    assert statuses(summary)[0] == (1, "skipped") and statuses(summary)[2] == (3, "done")
    assert sorted(path.name for path in out.iterdir()) == ["a.mp4", "a.mp4.json", "b.mp4", "b.mp4.json", "c.mp4",
                                                           "c.mp4.json"]
    for name in OUTPUTS:
        assert read_record(record_path(out / name)).output_file == file_facts(out / name)


@pytest.mark.slow
def test_two_worker_processes_give_the_same_frames_as_one_worker(first_run, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = first_run[0].parent
    manifest = project(folder, folder, [{**job, "output": job["output"].replace("out/", "two/")} for job in THREE_JOBS],
                       name="two.jsonl")
    code, summary, result = run_batch(manifest, "--workers", "2")
    assert code == 0, result.output
    assert summary["workers"] == ["cpu#1", "cpu#2"]
    assert {job["worker"] for job in summary["jobs"]} == {"cpu#1", "cpu#2"}  # both took jobs from the queue
    for name in OUTPUTS:
        np.testing.assert_array_equal(frames(folder / "two" / name), frames(folder / "out" / name))
        assert read_record(record_path(folder / "two" / name)).status == "done"


@pytest.mark.slow
def test_ray_actors_on_a_local_ray_instance_give_the_same_frames_as_one_worker(first_run, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = first_run[0].parent
    manifest = project(folder, folder, [{**job, "output": job["output"].replace("out/", "ray/")} for job in THREE_JOBS],
                       name="ray.jsonl")
    try:
        code, summary, result = run_batch(manifest, "--ray", "--workers", "2")
    finally:
        if ray.is_initialized():  # the batch shuts down the instance it started; this is in case it did not
            ray.shutdown()
    assert code == 0, result.output
    assert summary["workers"] == ["ray local"] and all(" cpu#" in job["worker"] for job in summary["jobs"])
    for name in OUTPUTS:
        np.testing.assert_array_equal(frames(folder / "ray" / name), frames(folder / "out" / name))
        assert read_record(record_path(folder / "ray" / name)).status == "done"


@pytest.mark.slow
def test_sigterm_stops_a_ray_batch_like_ctrl_c_with_its_summary_and_exit_143(inputs, tmp_path):
    """Ray's driver installs a SIGTERM handler that aborts with a crash dump; vexpress keeps its own."""
    pytest.importorskip("ray")
    manifest = project(inputs, tmp_path, THREE_JOBS)
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "vexpress_cli", "batch", str(manifest), *SMALL, "--ray",
               "--report", str(tmp_path / "report.json")]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and not (out / "a.mp4").exists():
            time.sleep(0.05)
        assert process.poll() is None, f"the batch ended before it could be stopped: {log.read_text()}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143, log.read_text()
    text = " ".join(log.read_text().split())
    assert "Interrupted after" in text and "Run the same command again" in text and "SIGTERM received" not in text
    assert json.loads((tmp_path / "report.json").read_text())["interrupted"] is True


def ray_actor_pids(title: bytes = b"ray::GeneratorActor") -> list[int]:
    """This machine's processes running a vexpress Ray actor (Ray titles them ``ray::GeneratorActor``, and
    ``ray::GeneratorActor.run`` while a job runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and title in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_ray_actor_killed_mid_job_fails_its_job_on_its_worker_and_json_stdout_stays_the_summary(inputs, tmp_path):
    """Ray printed "(raylet) A worker died ..." on stdout before the --json summary, and the lost job was
    reported on worker "ray" after 0 s though it ran on cpu#1."""
    pytest.importorskip("ray")
    if not Path("/proc").is_dir():
        pytest.skip("finds the actor's process in /proc")
    manifest = project(inputs, tmp_path, [{**THREE_JOBS[0], "num_inference_steps": 60}, THREE_JOBS[1]])
    command = [sys.executable, "-m", "vexpress_cli", "batch", str(manifest), *SMALL, "--ray", "--json"]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                                   stderr=stderr)
        deadline = time.monotonic() + 300
        while not ray_actor_pids(b"ray::GeneratorActor.run"):  # the first job is running
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(1)
        for pid in ray_actor_pids():
            os.kill(pid, signal.SIGKILL)
        stdout, _ = process.communicate(timeout=300)
    summary = json.loads(stdout)  # nothing of Ray's before it
    lost = summary["jobs"][0]
    assert process.returncode == 1 and lost["status"] == "failed", log.read_text()
    assert lost["reason"].startswith("The Ray worker running this job died")
    assert " cpu#1" in lost["worker"] and lost["seconds"] > 0.1  # from when its start reached the batch


@pytest.fixture(scope="module")
def ray_head_with_a_token(tmp_path_factory):
    """A real `ray start --head` cluster whose GCS and Ray Client server ask for a token: (GCS port, Ray Client
    port, token). Ray 2.60 turns token authentication on by itself where ~/.ray/auth_token exists."""
    pytest.importorskip("ray")
    pytest.importorskip("grpc", reason="Ray Client is part of the ray extra (ray[client])")
    token, gcs, client = "0123456789abcdef" * 4, free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="vxray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    with log.open("wb") as output:
        head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                                 "--port", str(gcs), "--ray-client-server-port", str(client), "--num-cpus", "2",
                                 "--include-dashboard=false", "--temp-dir", temp_dir, "--disable-usage-stats"],
                                env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not all(answers(port) for port in (gcs, client)):
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield gcs, client, token, Path(temp_dir)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:  # `ray start --block` took over 30 s to stop here
            pass
        with contextlib.suppress(ProcessLookupError):  # every process of the cluster is in the head's group
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def ray_client_logs(temp_dir: Path) -> str:
    """The last lines of the Ray Client servers' logs of a cluster, for a failed assert to show."""
    return "".join(f"\n--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                   for path in sorted(temp_dir.glob("session_*/logs/ray_client_server*")))


def batch_process(manifest: Path, address: str, **environment) -> subprocess.CompletedProcess:
    """`vexpress batch MANIFEST --ray ADDRESS --json` in its own process, with only the Ray variables given."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    return subprocess.run([sys.executable, "-m", "vexpress_cli", "batch", str(manifest), *SMALL, "--json", "--ray",
                           address], env={**env, "OMP_NUM_THREADS": "1", **environment}, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_cluster_asking_for_a_token_is_refused_in_one_paragraph_and_its_token_lets_both_ways_in(
        ray_head_with_a_token, first_run, inputs, tmp_path):
    """Without the token Ray retried for 20 s, a log line a second, then said only "Failed to connect"."""
    gcs, client, token, temp_dir = ray_head_with_a_token
    refused = batch_process(project(inputs, tmp_path / "refused", THREE_JOBS[:1]), f"127.0.0.1:{gcs}",
                            RAY_NUM_REDIS_GET_RETRIES="3")  # Ray's retries of the refused connection: 20 s
    assert refused.returncode == 2, refused.stderr
    assert " ".join(refused.stderr.split()).startswith(
        f"Error: The Ray cluster at 127.0.0.1:{gcs} refused the connection: it asks for a token (Ray's token "
        "authentication). RAY_AUTH_MODE is not 'token' here, so Ray sent none")
    assert "gcs_client.cc" not in refused.stderr and not (tmp_path / "refused" / "out").exists()
    for way, address in (("gcs", f"127.0.0.1:{gcs}"), ("client", f"ray://127.0.0.1:{client}")):
        manifest = project(inputs, tmp_path / way, THREE_JOBS[:1])
        done = batch_process(manifest, address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        if way == "client" and "Initialization failure from server" in done.stderr:
            # Ray Client's per-client server failed to start once in CI and once in six runs here (cause not found;
            # not our code: the connection is refused inside Ray). One more try; a second failure shows its logs.
            done = batch_process(manifest, address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        assert done.returncode == 0, done.stderr + ray_client_logs(temp_dir)
        assert json.loads(done.stdout)["workers"] == [f"ray {address}"]
        np.testing.assert_array_equal(frames(tmp_path / way / "out" / "a.mp4"),
                                      frames(first_run[0].parent / "out" / "a.mp4"))


def test_every_manifest_problem_is_listed_with_its_line_and_nothing_starts(inputs, tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    project(inputs, tmp_path, [])
    (tmp_path / "notes.jpg").write_text("not a photo")
    manifest.write_text("\n".join([
        json.dumps({"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/a.mp4", "seed": -1}),
        json.dumps({"reference_image": "nope.jpg", "audio": "a.wav", "output": "out/a.mp4", "num_inference_step": 3}),
        "not json",
        json.dumps({"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/b.avi", "width": 100,
                    "preset": "expresive"}),
        json.dumps({"reference_image": "aoc.jpg", "output": "out/c.mp4", "preset": "lipsync"}),
        json.dumps({"reference_image": "notes.jpg", "audio": "a.wav", "output": "out/d.mp4"}),
        json.dumps(["aoc.jpg", "a.wav", "out/e.mp4"]),
    ]) + "\n")
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    for expected in ["has 12 problems; no job was started",
                     "line 1: 'seed' is -1; it must be from 0",
                     "line 2: unknown key 'num_inference_step'. Did you mean 'num_inference_steps'?",
                     f"line 2: The reference image {tmp_path / 'nope.jpg'} does not exist.",
                     "is also the output of line 1: two jobs cannot write one file.",
                     "line 3: not valid JSON",
                     "line 4: 'width' is 100; it must be a multiple of 8.",
                     "line 4: There is no preset named 'expresive'.",  # a second problem of the same line
                     "unknown file type '.avi'",
                     "line 5: 'audio' is missing",
                     "line 5: There is no preset named 'lipsync'.",
                     f"line 6: Cannot read the reference image {tmp_path / 'notes.jpg'}.",
                     "line 7: a job is a JSON object {...}, not an array [...]."]:
        assert expected in message, expected
    assert result.stderr.splitlines()[-1].rstrip() == "Fix these lines and run the same command again."
    assert not (tmp_path / "out").exists()


def test_a_manifest_error_is_pickled_and_copied_with_its_problems():
    """It could not be built again (missing 'problems'), so a pool's worker raising it broke the pool."""
    error = ManifestError(Path("jobs.jsonl"), [Problem(3, "bad seed"), Problem(1, "no audio")])
    for copied in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
        assert type(copied) is ManifestError and str(copied) == str(error) and copied.fix == error.fix
        assert copied.problems == error.problems and copied.manifest == error.manifest


def test_batch_in_a_process_pool_raises_the_manifests_problems_not_a_broken_pool(tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"reference_image": "aoc.jpg", "output": "out/a.mp4"}) + "\n")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with pytest.raises(ManifestError) as raised:
            pool.submit(vexpress_cli.batch, manifest).result()
    assert [problem.line for problem in raised.value.problems] == [1, 1]
    assert "'audio' is missing" in str(raised.value)


def test_inputs_that_would_fail_their_job_at_once_are_line_problems_and_nothing_starts(inputs, tmp_path):
    import wave

    project(inputs, tmp_path, [])
    with wave.open(str(tmp_path / "empty.wav"), "wb") as empty:
        empty.setnchannels(1), empty.setsampwidth(2), empty.setframerate(16000)
    (tmp_path / "notes.wav").write_text("hello")
    manifest = project(inputs, tmp_path, [
        {"reference_image": "aoc.jpg", "audio": "aoc.jpg", "output": "out/a.mp4"},
        {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/b.mp4", "kps": "notes.wav"},
        {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/c.mp4", "reference_kps": "1,2;3"},
        {"reference_image": "aoc.jpg", "audio": "empty.wav", "output": "out/d.mp4"},
        {"reference_image": "tys.jpg", "audio": "b.wav", "output": "out/e.mp4", "kps": "tys_kps.pth"},  # fine
    ])
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    for expected in ["has 4 problems; no job was started",
                     f"line 1: 'audio' {tmp_path / 'aoc.jpg'} is a .jpg file, not a speech recording",
                     f"line 2: Cannot read kps file {tmp_path / 'notes.wav'}: unknown file type '.wav'.",
                     "line 3: Cannot read keypoints from '1,2;3'.",
                     f"line 4: 'audio' {tmp_path / 'empty.wav'} holds no samples"]:
        assert expected in message, expected
    assert not (tmp_path / "out").exists()


def test_a_pipe_or_an_empty_file_in_a_manifest_is_refused_in_the_words_generate_uses(inputs, tmp_path):
    """The batch's own check said "'audio' X is not a file." of a FIFO and let an empty file through to its
    job; it now asks what generate's loaders ask first (require_regular_file), so each reads as it does there."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.kps.io import load_kps
    from vexpress_cli.media.audio import load_audio
    from vexpress_cli.media.images import opened_image

    project(inputs, tmp_path, [])
    os.mkfifo(tmp_path / "pipe.wav")
    os.mkfifo(tmp_path / "pipe.pth")
    (tmp_path / "empty.jpg").touch()
    (tmp_path / "empty.wav").touch()
    manifest = project(inputs, tmp_path, [
        {"reference_image": "aoc.jpg", "audio": "pipe.wav", "output": "out/a.mp4"},
        {"reference_image": "empty.jpg", "audio": "a.wav", "output": "out/b.mp4"},
        {"reference_image": "aoc.jpg", "audio": "empty.wav", "output": "out/c.mp4"},
        {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/d.mp4", "kps": "pipe.pth"},
    ])

    def open_reference(path):
        with opened_image(path, "reference image"):
            pass

    generate_says = []
    for load, name in ((load_audio, "pipe.wav"), (open_reference, "empty.jpg"), (load_audio, "empty.wav"),
                       (load_kps, "pipe.pth")):
        with pytest.raises(InputError) as refused:
            load(tmp_path / name)
        generate_says.append(" ".join(refused.value.render().split()))
    assert "is not a regular file but a named pipe (FIFO)" in generate_says[0] and "empty (0 bytes)" in generate_says[1]
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "has 4 problems; no job was started" in message
    for line, said in enumerate(generate_says, 1):
        assert f"line {line}: {said}" in message, said
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_done_jobs_warnings_are_shown_and_in_the_summary_naming_settings_by_their_flags(inputs, tmp_path):
    """The warnings were kept as Python text: the command said `retarget_strategy="offset_retarget"`."""
    import wave

    project(inputs, tmp_path, [])
    with wave.open(str(tmp_path / "silent.wav"), "wb") as silent:
        silent.setnchannels(1), silent.setsampwidth(2), silent.setframerate(16000)
        silent.writeframes(bytes(2 * 6400))
    manifest = project(inputs, tmp_path, [{**THREE_JOBS[1], "audio": "silent.wav", "retarget_strategy": "fix_face"}])
    code, summary, result = run_batch(manifest)
    assert code == 0, result.output
    silence = f"The audio {tmp_path / 'silent.wav'} is silent"
    unused_kps = ("The strategy fix_face does not use a driving kps track: the keypoints are the same without --kps. "
                  "To move the head with the track, use --retarget-strategy offset_retarget")
    warnings = summary["jobs"][0]["warnings"]
    assert [warning.startswith(silence) for warning in warnings] == [True, False]
    assert warnings[1].startswith(unused_kps)
    shown = " ".join(result.stderr.split())
    assert f"Warning line 1 ({tmp_path / 'out' / 'b.mp4'}): {silence}" in shown
    assert f"Warning line 1 ({tmp_path / 'out' / 'b.mp4'}): {unused_kps}" in shown


def test_an_unknown_strategy_or_one_without_its_driving_track_is_a_line_problem_and_nothing_starts(inputs, tmp_path):
    manifest = project(inputs, tmp_path, [
        {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/a.mp4", "retarget_strategy": "nosuch"},
        {"reference_image": "aoc.jpg", "audio": "a.wav", "output": "out/b.mp4", "retarget_strategy": "no_retarget"},
        {"reference_image": "tys.jpg", "audio": "b.wav", "output": "out/c.mp4", "kps": "tys_kps.pth",
         "retarget_strategy": "no_retarget"},
    ])
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "has 2 problems; no job was started" in message
    assert "line 1: Unknown retarget strategy 'nosuch'." in message
    assert "line 2: The retarget strategy 'no_retarget' needs a driving kps track, and none was given." in message
    assert "line 3" not in message and not (tmp_path / "out").exists()


def test_s_on_the_command_line_sets_every_jobs_strategy(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS)
    result = runner.invoke(app, ["batch", str(manifest), *SMALL, "-s", "nosuch"])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()).count("Unknown retarget strategy 'nosuch'.") == 3


@pytest.mark.parametrize(("text", "problems"), [
    ("refrence_image,audio,output\naoc.jpg,a.wav,x.mp4\naoc.jpg,a.wav,y.mp4\n",  # one typo, not one per row
     ["line 1: the header's column 'refrence_image' is not a known key. Did you mean 'reference_image'?",
      "line 1: the header has no 'reference_image' column (every job needs reference_image, audio, output)."]),
    ("reference_image;audio;output\naoc.jpg;a.wav;x.mp4\n",
     ["line 1: the header 'reference_image;audio;output' is one column: columns are separated by commas, not "
      "semicolons."]),
    ("reference_image,audio,output,output\naoc.jpg,a.wav,x.mp4,y.mp4\n",
     ["line 1: the header names a column twice (reference_image, audio, output, output)."]),
    ("reference_image,audio,output\naoc.jpg,a.wav,x.mp4\n\"aoc.jpg,a.wav,y.mp4\naoc.jpg,a.wav,z.mp4\n",
     ["line 3: not valid CSV from here on (unexpected end of data): a quote left open, or text after a closing "
      "quote?"]),
    ("reference_image,audio,output\naoc.jpg,a.wav,x.mp4,extra\n",
     ["line 2: this row has more cells than the header has columns."]),
    ("reference_image,audio,output,\naoc.jpg,a.wav,x.mp4,\naoc.jpg,b.wav,out/y.mp4,\n",  # a spreadsheet's export
     []),
])
def test_a_csv_manifests_header_and_quoting_problems_are_told_once_where_they_are(inputs, tmp_path, text, problems):
    project(inputs, tmp_path, [])
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(text)
    if not problems:  # a trailing comma's unnamed, empty column is no problem
        from vexpress_cli.jobs.batch.checks import prepare_jobs

        assert [Path(job.output).name for job in prepare_jobs(manifest)] == ["x.mp4", "y.mp4"]
        return
    with pytest.raises(ManifestError) as raised:
        vexpress_cli.batch(manifest, model_dir=TINY_MODEL_DIR)
    assert [f"line {problem.line}: {problem.text}" for problem in raised.value.problems] == problems


@pytest.mark.slow
def test_csv_manifest_paths_are_relative_to_it_and_job_values_beat_the_command_line_speed_settings_included(
        inputs, tmp_path, monkeypatch):
    from vexpress_cli.engine.pipeline import VExpressPipeline

    denoised_in_batches_of, loop = [], VExpressPipeline.denoising_loop
    monkeypatch.setattr(VExpressPipeline, "denoising_loop", lambda self, *args, **kwargs: (
        denoised_in_batches_of.append(self.window_options.window_batch) or loop(self, *args, **kwargs)))
    project(inputs, tmp_path / "project", [])
    manifest = tmp_path / "project" / "jobs.csv"
    manifest.write_text("reference_image,audio,output,reference_kps,seed,preset\n"
                        f"aoc.jpg,a.wav,out/one.mp4,\"{REFERENCE_KPS}\",9,\n"
                        f"aoc.jpg,a.wav,out/two.mp4,\"{REFERENCE_KPS}\",,expressive\n")
    code, summary, result = run_batch(manifest, "--seed", "3", "--audio-attention-weight", "1.5", "--window-batch", "2")
    assert code == 0, result.output
    one = read_record(tmp_path / "project" / "out" / "one.mp4.json")
    two = read_record(tmp_path / "project" / "out" / "two.mp4.json")
    assert one.settings["window_batch"] == two.settings["window_batch"] == 2  # was dropped on the way to the worker
    assert denoised_in_batches_of == [2, 2]  # and the worker's pipeline ran with it
    assert (one.seed, one.settings["audio_attention_weight"]) == (9, 1.5)  # its own seed, the flag's weight
    # The job's preset beats the command line's flag; its seed is the flag's.
    assert (two.seed, two.settings["audio_attention_weight"], two.settings["reference_attention_weight"]) == (
        3, 3.0, 0.95)
    assert two.job["preset"] == "expressive" and one.inputs["audio"] == file_facts(tmp_path / "project" / "a.wav")


def test_compile_and_window_batch_travel_to_the_worker_from_flags_presets_and_lines_but_do_not_redo_a_job(
        inputs, tmp_path):
    (tmp_path / "fast.toml").write_text("[generate]\ncompile = true\n")
    manifest = project(inputs, tmp_path, [{**THREE_JOBS[0], "window_batch": 3},
                                          {**THREE_JOBS[1], "preset": str(tmp_path / "fast.toml")}])
    first, second = prepare_jobs(manifest, settings={"window_batch": 2})
    assert (first.settings["window_batch"], first.settings["compile"]) == (3, False)
    assert (second.settings["window_batch"], second.settings["compile"]) == (2, True)
    assert "device" not in first.settings and "dtype" not in first.settings  # the Generator's own
    record = RunRecord("done", str(Path(first.output).absolute()), {"reference_kps": REFERENCE_KPS},
                       input_files(Path(first.reference_image), Path(first.audio), None, REFERENCE_KPS),
                       {**first.settings, "window_batch": 1, "compile": True})
    assert record.differences(record.inputs, first.settings, REFERENCE_KPS) == []


def test_a_batch_takes_device_and_dtype_from_its_preset_and_the_user_config_as_generate_does(tmp_path):
    (tmp_path / "half.toml").write_text('[generate]\ndtype = "bf16"\n')
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[generate]\ndevice = "cpu"\ndtype = "fp16"\n')
    assert batch_model_settings(None, {}, None) == ("cpu", "fp16")  # the user config
    assert batch_model_settings(tmp_path / "half.toml", {}, None) == ("cpu", "bf16")  # the preset beats it
    assert batch_model_settings(tmp_path / "half.toml", {"dtype": "fp32", "device": "cpu"}, None) == ("cpu", "fp32")
    assert batch_model_settings(None, {}, "cpu,cpu") == (None, "fp16")  # --devices says where workers run


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_batch_names_where_a_device_that_cannot_run_was_set_the_user_config_or_its_preset(tmp_path):
    """The batch passed them to each worker's Generator as if typed: "Use --device cpu", the file never named."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[generate]\ndevice = "cuda"\n')
    with pytest.raises(vexpress_cli.VExpressError, match="It was set in the user config: device = .cuda."):
        batch_model_settings(None, {}, None)
    (tmp_path / "config" / "config.toml").unlink()
    (tmp_path / "gpu.toml").write_text('[generate]\ndevice = "cuda"\n')
    with pytest.raises(vexpress_cli.VExpressError, match="It was set from the preset."):
        batch_model_settings(tmp_path / "gpu.toml", {}, None)
    assert batch_model_settings(tmp_path / "gpu.toml", {}, "cpu") == (None, "auto")  # --devices wins over it


@pytest.mark.slow
def test_a_batch_preset_s_dtype_is_the_one_its_jobs_run_in_and_a_job_s_own_preset_may_not_change_it(
        inputs, tmp_path):
    (tmp_path / "half.toml").write_text('[generate]\ndtype = "bf16"\n')
    (tmp_path / "full.toml").write_text('[generate]\ndtype = "fp32"\n')
    manifest = project(inputs, tmp_path / "project", [THREE_JOBS[0]])
    code, summary, result = run_batch(manifest, "--preset", tmp_path / "half.toml")
    assert code == 0, result.output
    record = read_record(tmp_path / "project" / "out" / "a.mp4.json")
    assert (record.dtype, record.settings["dtype"]) == ("bfloat16", "bfloat16")  # it ran in float32 before
    other = project(inputs, tmp_path / "other", [{**THREE_JOBS[0], "preset": str(tmp_path / "full.toml")}])
    with pytest.raises(ManifestError) as refused:
        vexpress_cli.batch(other, preset=tmp_path / "half.toml", model_dir=TINY_MODEL_DIR)
    assert [spell_parameters(problem.text) for problem in refused.value.problems] == [
        f"its preset '{tmp_path / 'full.toml'}' sets dtype = 'fp32', but the batch runs with bfloat16: dtype is "
        "the whole batch's (dtype or the batch's preset), as the networks are loaded once per worker."]
    (tmp_path / "any.toml").write_text('[generate]\ndtype = "auto"\n')  # auto: whatever the batch runs with
    anything = project(inputs, tmp_path / "any", [{**THREE_JOBS[0], "preset": str(tmp_path / "any.toml")}])
    cpu_in_bf16 = [(torch.device("cpu"), torch.bfloat16)]
    assert prepare_jobs(anything, loaded=cpu_in_bf16)[0].preset == str(tmp_path / "any.toml")
    assert not (tmp_path / "other" / "out").exists()


def test_a_job_s_preset_naming_a_dtype_is_refused_under_a_batch_at_auto_that_runs_in_another(inputs, tmp_path):
    """The batch's auto is what each worker resolves it to (float32 on the CPU), as a Generator's is."""
    (tmp_path / "half.toml").write_text('[generate]\ndtype = "fp16"\n')
    manifest = project(inputs, tmp_path / "project", [{**THREE_JOBS[0], "preset": str(tmp_path / "half.toml")}])
    with pytest.raises(ManifestError) as refused:
        vexpress_cli.batch(manifest, model_dir=TINY_MODEL_DIR, devices="cpu,cpu")
    assert [problem.text.split(":")[0] for problem in refused.value.problems] == [
        f"its preset '{tmp_path / 'half.toml'}' sets dtype = 'fp16', but the batch runs with float32"]
    # A Ray actor's device is the cluster's: a named dtype is compared, auto is not known here.
    assert prepare_jobs(manifest, loaded=[(None, None)])[0].preset == str(tmp_path / "half.toml")
    with pytest.raises(ManifestError):
        prepare_jobs(manifest, loaded=[(None, torch.bfloat16)])


def test_a_job_stopped_before_it_reported_its_end_is_interrupted_not_not_run(inputs, tmp_path, monkeypatch):
    """A second Ctrl-C ends the wait for the workers' last events: their running jobs read as 'not run'."""
    from vexpress_cli.jobs.batch import runner as batch_runner
    from vexpress_cli.jobs.batch.summary import BatchEvent

    def second_ctrl_c(jobs, device, model_dir, dtype, emit):
        emit(BatchEvent("started", device, jobs[0].line, jobs[0].output))
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_runner, "run_here", second_ctrl_c)
    manifest = project(inputs, tmp_path, THREE_JOBS[:2])
    with pytest.raises(vexpress_cli.BatchInterrupted) as raised:
        vexpress_cli.batch(manifest, model_dir=TINY_MODEL_DIR)
    outcomes = raised.value.summary.outcomes
    assert [(job.status, job.reason) for job in outcomes] == [("interrupted", "stopped by Ctrl-C"), ("not run", "")]


@pytest.mark.slow
def test_ctrl_c_cleans_up_the_running_job_and_prints_the_summary(inputs, tmp_path, monkeypatch):
    manifest = project(inputs, tmp_path, THREE_JOBS)
    stage = batch_cli.BatchDisplay._stage

    def interrupted_while_writing_line_2(self, event):
        if event.line == 2 and event.stage == "decode":
            raise KeyboardInterrupt
        stage(self, event)

    monkeypatch.setattr(batch_cli.BatchDisplay, "_stage", interrupted_while_writing_line_2)
    result = runner.invoke(app, ["batch", str(manifest), *SMALL, "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 130, result.output
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["interrupted"] and statuses(summary) == [(1, "done"), (2, "interrupted"), (3, "not run")]
    assert "Interrupted after" in result.stderr and "1 done, 1 interrupted, 1 not run" in result.stderr
    assert "Run the same command again, with the same options, to finish" in " ".join(result.stderr.split())
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.mp4", "a.mp4.json"]


@pytest.mark.slow
def test_an_output_without_a_record_is_not_replaced_unless_forced(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.mp4").write_bytes(b"precious")
    code, _, result = run_batch(manifest)
    assert code == 2
    assert "exists and has no run record (a.mp4.json)" in " ".join(result.stderr.split()) and "--force" in result.stderr
    assert (tmp_path / "out" / "a.mp4").read_bytes() == b"precious"
    code, summary, result = run_batch(manifest, "--force")
    assert code == 0, result.output
    assert summary["jobs"][0]["action"] == "force" and video_info(tmp_path / "out" / "a.mp4").frame_count == 12
    assert summary["jobs"][0]["reason"] == "--force was given"  # the flag, no reference marks
    assert "Finished in" in result.stderr  # --json: the JSON alone on stdout, the summary still on stderr


@pytest.mark.slow
def test_an_output_changed_since_its_run_is_not_replaced_unless_forced(first_run, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)
    edited = (folder / "out" / "b.mp4").read_bytes() + b"trimmed by hand"
    (folder / "out" / "b.mp4").write_bytes(edited)
    manifest = project(folder, folder, [THREE_JOBS[0], {**THREE_JOBS[1], "seed": 5}, THREE_JOBS[2]])
    code, _, result = run_batch(manifest)
    assert code == 2
    assert "b.mp4 changed since vexpress wrote it (it is not the file b.mp4.json describes)" in " ".join(
        result.stderr.split())
    assert (folder / "out" / "b.mp4").read_bytes() == edited
    code, summary, result = run_batch(manifest, "--force")
    assert code == 0, result.output
    assert summary["jobs"][1]["action"] == "force" and read_record(record_path(folder / "out" / "b.mp4")).seed == 5


def test_an_output_whose_record_cannot_be_read_is_not_replaced_unless_forced(first_run, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(first_run[0].parent, folder, copy_function=shutil.copy2)
    (folder / "out" / "a.mp4.json").write_text("{ edited by hand")
    before = (folder / "out" / "a.mp4").read_bytes()
    code, _, result = run_batch(project(folder, folder, THREE_JOBS))
    assert code == 2
    assert "a.mp4 exists and its run record a.mp4.json cannot be read (Expecting property name" in " ".join(
        result.stderr.split())
    assert (folder / "out" / "a.mp4").read_bytes() == before


def test_ray_without_ray_installed_says_how_to_install_it(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    manifest = project(inputs, tmp_path, THREE_JOBS)
    result = runner.invoke(app, ["batch", str(manifest), "--ray", *SMALL])
    assert result.exit_code == 2
    assert f'pip install -e "{REPO_ROOT}[ray]"' in " ".join(result.stderr.split())  # this clone's own folder


def test_a_ray_address_where_nothing_listens_is_refused_in_seconds_before_any_job(inputs, tmp_path):
    """Ray retried such an address for minutes, deaf to Ctrl-C; and with every job done it never tried."""
    port = free_port()  # nothing listens there
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    started = time.monotonic()
    result = runner.invoke(app, ["batch", str(manifest), "--ray", f"127.0.0.1:{port}", *SMALL])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: Nothing answers at the Ray address 127.0.0.1:{port} (Connection refused).")
    assert "ray start --head" in message and time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()


def listener_answering(answer: bytes) -> int:
    """A port on 127.0.0.1 where a server reads what a client sends first, then answers ``answer``."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        with server:
            connection, _ = server.accept()
            with connection:
                connection.recv(64)
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_a_ray_address_where_another_program_listens_is_refused_in_seconds_before_any_job(inputs, tmp_path):
    """Ray retried a port that accepts connections but is no Ray for over ten minutes, deaf to SIGTERM."""
    port = listener_answering(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    started = time.monotonic()
    result = runner.invoke(app, ["batch", str(manifest), "--ray", f"127.0.0.1:{port}", *SMALL])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: Something answers at the Ray address 127.0.0.1:{port}, but it is no Ray "
                              "cluster. A Ray head node answers there in gRPC (HTTP/2)")
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_a_server_answering_http2s_preface_with_settings_passes_the_reachability_check():
    """What a Ray GCS answers (measured on ray start --head): a SETTINGS frame, type 4."""
    from vexpress_cli.jobs.batch.ray_runner import check_reachable

    settings_frame = b"\x00\x00\x18\x04\x00\x00\x00\x00\x00" + bytes(24)
    check_reachable(f"127.0.0.1:{listener_answering(settings_frame)}")  # no InputError
    with pytest.raises(vexpress_cli.InputError, match="but it is no Ray cluster"):
        check_reachable(f"127.0.0.1:{listener_answering(b'')}")  # accepts, then closes without a word


@pytest.mark.slow
def test_token_authentication_on_with_no_token_here_is_one_paragraph_not_a_traceback(inputs, tmp_path):
    """RAY_AUTH_MODE=token and no token: Ray's AuthenticationError escaped as a traceback with exit 1."""
    pytest.importorskip("ray")
    settings_frame = b"\x00\x00\x18\x04\x00\x00\x00\x00\x00" + bytes(24)  # passes the reachability check
    address = f"127.0.0.1:{listener_answering(settings_frame)}"
    result = batch_process(project(inputs, tmp_path, THREE_JOBS[:1]), address, RAY_AUTH_MODE="token",
                           HOME=str(tmp_path))  # no ~/.ray/auth_token
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert " ".join(result.stderr.split()).startswith(
        f"Error: The Ray cluster at {address} refused the connection: it asks for a token (Ray's token "
        "authentication). Token authentication is on here (RAY_AUTH_MODE=token), but Ray found no token")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("address", "expected"), [
    ("10.0.0.1:70000", '--ray 10.0.0.1:70000 is not a Ray address.'),
    ("no-such-host.invalid:6379", "The host of the Ray address no-such-host.invalid:6379 is not known here."),
])
def test_a_ray_address_with_no_port_or_no_known_host_says_so(address, expected):
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.jobs.batch.ray_runner import check_reachable

    with pytest.raises(vexpress_cli.InputError) as raised:
        check_reachable(address)
    assert raised.value.render(flag_of).startswith(expected)


@pytest.mark.parametrize(("address", "raised", "fix"), [
    ("auto", ConnectionError("Could not find any running Ray instance. Please specify one."),
     'or use ray="local" for a Ray instance on this machine.'),
    ("ray://10.0.0.1:10001", ValueError("Ray Client requires pip package `ray[client]`."),
     'Install Ray Client here: pip install "ray[client]" (the same Ray version as the cluster\'s).'),
    ("ray://10.0.0.1:10001", ConnectionError("ray client connection timeout"),  # also a cluster's token refusal
     "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<token> (`ray get-auth-token` on the head node prints it)."),
])
def test_ray_refusing_to_connect_is_one_paragraph_with_rays_reason(address, raised, fix):
    from vexpress_cli.jobs.batch.ray_runner import connect

    class Ray:  # stands for the ray module: what its init raises in each case
        @staticmethod
        def init(**options):
            raise raised

    with pytest.raises(vexpress_cli.InputError) as refused:
        connect(Ray, address)
    assert str(refused.value).startswith(f"Cannot connect to the Ray cluster at {address}. Ray says: "
                                         f"{str(raised).splitlines()[0].rstrip('.')}.")
    assert str(refused.value).endswith(fix)


def test_ray_refusing_to_connect_shows_the_last_line_rays_own_log_wrote():
    """Ray's C++ core logs on file descriptor 2 (kept out of the terminal while connecting): a TLS or DNS
    failure is only there, so its last line joins the paragraph."""
    from vexpress_cli.jobs.batch.ray_runner import connect

    class Ray:
        @staticmethod
        def init(**options):
            os.write(2, b"[2026-11-30 12:00:00,000 I 1 1] retrying\n[2026-11-30 12:00:01,000 E 1 1] "
                        b"ssl_transport_security.cc:1519: Handshake failed\n")
            raise ConnectionError("Failed to connect to GCS.")

    with pytest.raises(vexpress_cli.InputError) as refused:
        connect(Ray, "10.0.0.1:6379")
    assert refused.value.why == ("Ray says: Failed to connect to GCS. Its log here ended with: [2026-11-30 "
                                 "12:00:01,000 E 1 1] ssl_transport_security.cc:1519: Handshake failed.")


def test_a_ray_address_that_is_no_address_says_what_one_looks_like(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    result = runner.invoke(app, ["batch", str(manifest), "--ray", "headnode", *SMALL])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()).startswith("Error: --ray headnode is not a Ray address. A cluster is named "
                                                      "as HOST:PORT")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_devices_all_without_a_gpu_points_to_workers(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS)
    result = runner.invoke(app, ["batch", str(manifest), "--devices", "all", *SMALL])
    assert result.exit_code == 2 and "--devices all found no GPU" in result.stderr and "--workers N" in result.stderr


def test_devices_may_repeat_the_cpu_for_one_worker_each():
    from vexpress_cli.jobs.batch.runner import worker_devices

    assert worker_devices("cpu,cpu", 1, None) == ["cpu#1", "cpu#2"]  # like workers=2, device="cpu"
    assert worker_devices(None, 3, "cpu") == ["cpu#1", "cpu#2", "cpu#3"]
    assert worker_devices(["cpu", "cpu", "cpu"], 1, None) == ["cpu#1", "cpu#2", "cpu#3"]


def test_a_jobs_own_key_given_to_the_whole_batch_is_named_as_such(inputs, tmp_path):
    """batch(..., kps="x.pth") said "unknown key 'kps'. Did you mean 'fps'?"."""
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    with pytest.raises(vexpress_cli.InputError) as raised:
        vexpress_cli.batch(manifest, kps="x.pth", model_dir=TINY_MODEL_DIR)
    assert str(raised.value) == ("kps cannot be given to the whole batch. 'kps' is one job's own key: each line of "
                                 "the manifest names its own. Put \"kps\" in the manifest's lines.")


@pytest.mark.slow
def test_more_workers_than_cpu_cores_are_refused_before_any_starts(inputs, tmp_path, monkeypatch):
    """workers=10000 started processes until the machine stopped answering."""
    manifest = project(inputs, tmp_path, THREE_JOBS)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    result = runner.invoke(app, ["batch", str(manifest), "--workers", "5", *SMALL])
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "--workers 5 is more than this machine's 4 CPU cores." in message
    assert "Use --workers 4 or fewer, or --devices for one worker per GPU." in message
    with pytest.raises(vexpress_cli.InputError, match=r"workers=10000 is more than this machine's 4 CPU cores"):
        vexpress_cli.batch(manifest, workers=10000, model_dir=TINY_MODEL_DIR)
    # the same workers asked for by naming the CPU in --devices, which the docs call equivalent, were all started
    by_devices = runner.invoke(app, ["batch", str(manifest), "--devices", "cpu,cpu,cpu,cpu,cpu", *SMALL])
    assert by_devices.exit_code == 2 and ("--devices names the CPU 5 times, one worker each, more than this "
                                          "machine's 4 CPU cores.") in " ".join(by_devices.stderr.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_is_the_batchs_one_paragraph_error_not_clicks_box(tmp_path, workers):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps(THREE_JOBS[0]) + "\n")
    result = runner.invoke(app, ["batch", str(manifest), f"--workers={workers}", *SMALL])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()) == f"Error: --workers is {workers}; it must be a whole number of 1 or more."


def test_a_batch_on_a_gpu_without_ray_runs_its_jobs_here_and_never_asks_for_ray(inputs, tmp_path, monkeypatch):
    """A GPU worker went down the Ray path: check_reachable(None) crashed, or "--ray needs Ray" without Ray."""
    from vexpress_cli.jobs.batch import runner as batch_runner

    ran_on = []
    monkeypatch.setattr(batch_runner, "worker_devices", lambda devices, workers, device: ["cuda:0"])
    monkeypatch.setattr(batch_runner, "import_ray", lambda: pytest.fail("Ray was asked for"))
    monkeypatch.setattr(batch_runner, "run_here", lambda jobs, device, *rest: ran_on.append((len(jobs), device)))
    vexpress_cli.batch(project(inputs, tmp_path, THREE_JOBS), model_dir=TINY_MODEL_DIR)
    assert ran_on == [(3, "cuda:0")]


@pytest.mark.slow
def test_no_more_workers_start_than_there_are_jobs_to_run(inputs, tmp_path, monkeypatch):
    """Two workers for one job: the job runs in this process, with no worker process loading the networks idly."""
    from vexpress_cli.jobs.batch import workers

    monkeypatch.setattr(workers, "run_in_processes", lambda *args: pytest.fail("worker processes were started"))
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    summary = vexpress_cli.batch(manifest, workers=2, device="cpu", model_dir=TINY_MODEL_DIR, width=64, height=64,
                                 num_inference_steps=1)
    assert summary.workers == ["cpu"] and [job.status for job in summary.outcomes] == ["done"]


def test_every_worker_of_a_mixed_devices_list_gets_its_own_name(monkeypatch):
    """cpu,cpu,cuda:0 was three names of which two were equal: the workers, keyed by name, were two."""
    from vexpress_cli.jobs.batch.runner import worker_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert worker_devices("cpu,cpu,cuda:0", 1, None) == ["cpu#1", "cpu#2", "cuda:0"]
    for twice in ("cuda:0,cuda:0", "cuda,cuda:0"):  # cuda is cuda:0
        with pytest.raises(vexpress_cli.InputError, match="must name each GPU once"):
            worker_devices(twice, 1, None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_devices_all_without_a_gpu_names_python_arguments_in_the_library(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS)
    with pytest.raises(vexpress_cli.VExpressError) as raised:
        vexpress_cli.batch(manifest, devices="all", model_dir=TINY_MODEL_DIR, width=64, height=64)
    assert str(raised.value).startswith('devices="all" found no GPU.') and "Use workers=N " in str(raised.value)


class Stop(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow
def test_an_on_event_callback_that_raises_stops_the_batch_with_its_exception(inputs, tmp_path, workers):
    """It was taken for each job's failure: every job got a failure record and batch() returned normally."""
    manifest = project(inputs, tmp_path, THREE_JOBS[:2])

    def on_event(event):
        if event.kind == "stage" and event.stage == "denoise":
            raise Stop("the caller's display broke")

    with pytest.raises(Stop, match="the caller's display broke"):
        vexpress_cli.batch(manifest, workers=workers, device="cpu", model_dir=TINY_MODEL_DIR, width=64, height=64,
                           num_inference_steps=1, on_event=on_event)
    assert not (tmp_path / "out").exists()  # no job ran on: no video, no record, no folder


def test_batch_is_a_public_library_call_with_events(inputs, tmp_path):
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    events = []
    summary = vexpress_cli.batch(manifest, model_dir=TINY_MODEL_DIR, width=64, height=64, num_inference_steps=1,
                                 on_event=events.append)
    assert summary.exit_code == 0 and summary.count("done") == 1
    kinds = [event.kind for event in events]
    assert kinds[0] == "checked" and kinds[1] == "started" and kinds[-1] == "finished"
    assert {event.stage for event in events if event.kind == "stage"} >= {"inputs", "model", "denoise", "decode"}


def test_model_takes_a_hub_id_at_a_revision_from_the_cache_like_generate(inputs, tmp_path, fake_hf_cache):
    manifest = project(inputs, tmp_path, THREE_JOBS[:1])
    model = f"{DEFAULT_HUB_ID}@{fake_hf_cache.commit}"
    result = runner.invoke(app, ["batch", str(manifest), *SMALL[:-2], "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "a.mp4.json").read_text())
    assert Path(record["model"]["folder"]).is_relative_to(fake_hf_cache.cache)
    with pytest.raises(vexpress_cli.VExpressError) as raised:  # the library's batch() takes it too
        vexpress_cli.batch(manifest, model=f"{DEFAULT_HUB_ID}@v9", force=True)
    assert "v9" in str(raised.value)


@pytest.mark.slow
def test_workers_from_a_script_without_a_main_guard_run_the_jobs_and_not_the_script_again(inputs, tmp_path):
    """spawn's workers used to import the script again, call batch() there and die with multiprocessing's
    "bootstrapping phase" traceback; each job failed."""
    manifest = project(inputs, tmp_path, THREE_JOBS[:2])
    script = tmp_path / "run.py"
    script.write_text("import json, vexpress_cli\n"
                      "print('top level ran', flush=True)\n"
                      f"summary = vexpress_cli.batch({str(manifest)!r}, model_dir={str(TINY_MODEL_DIR)!r}, workers=2, "
                      "device='cpu', width=64, height=64, num_inference_steps=1)\n"
                      "print(json.dumps([[job.status, job.worker] for job in summary.outcomes]))\n")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                               timeout=300)
    assert completed.returncode == 0 and "Traceback" not in completed.stderr, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines.count("top level ran") == 1
    outcomes = json.loads(lines[-1])
    assert [status for status, _ in outcomes] == ["done", "done"]
    assert {worker for _, worker in outcomes} <= {"cpu#1", "cpu#2"}
    assert [video_info(tmp_path / "out" / name).frame_count for name in ("a.mp4", "b.mp4")] == [12, 15]  # 0.4 s, 0.5 s


def test_outputs_that_meet_through_a_link_or_inside_a_frame_folder_are_manifest_problems(inputs, tmp_path):
    """real/a.mp4 and link/a.mp4 (link -> real) passed and the second job's failure record replaced the first's;
    an output inside another job's frame folder made every later run of the manifest fail."""
    project(inputs, tmp_path, [])
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # resolve() raised RuntimeError on it
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({"reference_image": "aoc.jpg", "audio": "a.wav", "output": output}) + "\n"
                                for output in ("real/a.mp4", "link/a.mp4", "frames", "frames/inner.mp4", "real",
                                               "loop/a.mp4")))
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "has 3 problems; no job was started" in message, message
    assert "Traceback" not in result.output  # line 6's folder is checked when its job runs
    assert "line 2: 'output' " + str(tmp_path / "link" / "a.mp4") + " is also the output of line 1" in message
    assert (f"line 4: 'output' {tmp_path / 'frames' / 'inner.mp4'} is inside {str(tmp_path / 'frames')!r}, "
            "the output of line 3.") in message
    assert f"line 5: 'output' {tmp_path / 'real'} is a folder holding the output of line 1." in message
    assert list((tmp_path / "real").iterdir()) == [] and not (tmp_path / "frames").exists()


def test_a_key_given_twice_and_an_output_name_with_a_line_break_are_manifest_problems(inputs, tmp_path):
    """JSON kept the last of two "output" values silently; a name with a line break wrote 'new\\nline.mp4'."""
    project(inputs, tmp_path, [])
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text('{"reference_image": "aoc.jpg", "audio": "a.wav", "output": "n.mp4", "output": "m.mp4"}\n'
                        + json.dumps({"reference_image": "aoc.jpg", "audio": "a.wav",
                                      "output": "new\nline.mp4"}) + "\n")
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "has 2 problems; no job was started" in message
    assert "line 1: 'output' given more than once: which value is meant?" in message
    assert "line 2: The output path" in message and "holds a control character (such as a line break)" in message
    assert not any(path.suffix == ".mp4" for path in tmp_path.iterdir())


def test_numbers_too_long_for_python_are_line_problems_of_a_jsonl_and_a_csv_manifest(inputs, tmp_path):
    """A seed of 5001 digits was a ValueError traceback (json, int()), a guidance_scale of 401 an OverflowError, a
    crop box of 5001 digits passed the check and failed its job as "Unexpected error: ValueError"."""
    project(inputs, tmp_path, [])
    long = "1" + "0" * 5000
    manifest = tmp_path / "jobs.jsonl"
    extras = [f'"seed": {long}', f'"guidance_scale": {long[:401]}', f'"crop": "{long},0,10,10"',
              f'"crop": [0, {long}, 1, 1]']
    manifest.write_text("".join(f'{{"reference_image": "aoc.jpg", "audio": "a.wav", "output": "{line}.mp4", {extra}}}\n'
                                for line, extra in enumerate(extras)))
    with pytest.raises(ManifestError) as raised:
        prepare_jobs(manifest)
    texts = [(problem.line, problem.text.split(". ")[0]) for problem in raised.value.problems]
    assert texts[:2] == [(1, "'seed' is a 5001-digit number; it must be from 0 to 9223372036854775807"),
                         (2, "'guidance_scale' is a 401-digit number; it must be from 0.0 to 20.0")]
    boxes = [problem.text for problem in raised.value.problems[2:]]
    assert [text.split("X,Y,W,H. ")[1].split(" Use")[0] for text in boxes] == [
        "X is a 5001-digit number, but X,Y,W,H are pixels of the photo, at most 1000000 (no picture is larger).",
        "Y is a 5001-digit number, but X,Y,W,H are pixels of the photo, at most 1000000 (no picture is larger)."]
    assert [problem.line for problem in raised.value.problems] == [1, 2, 3, 4]
    csv = tmp_path / "jobs.csv"
    csv.write_text(f"reference_image,audio,output,seed\naoc.jpg,a.wav,x.mp4,{long}\n")
    with pytest.raises(ManifestError) as raised:
        prepare_jobs(csv)
    [problem] = raised.value.problems
    assert problem.line == 2 and problem.text.startswith("'seed' is a 5001-digit number; it must be from 0 to ")
    as_path = tmp_path / "paths.jsonl"  # a path key or dtype given a long number was written out: a traceback
    as_path.write_text(f'{{"reference_image": "aoc.jpg", "audio": {long}, "output": "p.mp4", "dtype": {long}}}\n')
    with pytest.raises(ManifestError) as raised:
        prepare_jobs(as_path)
    assert [problem.text.split(". ")[0] for problem in raised.value.problems] == [
        "'dtype' belongs to the whole batch (dtype), not to one job: the networks are loaded once per "
        "worker.", "'audio' must be a non-empty text, not a 5001-digit number.",
        "'dtype' must be a string, not a 5001-digit number"]


def test_a_manifest_that_is_a_pipe_a_folder_a_link_loop_or_too_large_is_refused_as_every_input_is(
        tmp_path, monkeypatch):
    """A FIFO or a folder was "is not a file. Check the path.", a link to itself "does not exist"; the whole file was
    read however large."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.jobs.batch import manifest as manifest_module

    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    (tmp_path / "large.jsonl").write_bytes(b"\n" * ((1 << 20) + 1))
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 1 << 20)
    refusals = {}
    for name in ("pipe", "folder", "loop", "large"):
        with pytest.raises(InputError) as caught:
            manifest_module.read_manifest(tmp_path / f"{name}.jsonl")
        refusals[name] = (caught.value.what, caught.value.why)
    assert refusals == {
        "pipe": (f"The manifest {tmp_path / 'pipe.jsonl'} is not a regular file but a named pipe (FIFO).",
                 "Reading from a pipe, device or socket can wait forever or never end, so inputs must be regular "
                 "files."),
        "folder": (f"Cannot read the manifest {tmp_path / 'folder.jsonl'}: it is not a file but a folder.", ""),
        "loop": (f"Cannot read the manifest {tmp_path / 'loop.jsonl'}.", "Too many levels of symbolic links."),
        "large": (f"The manifest {tmp_path / 'large.jsonl'} is larger than 1 MiB.",
                  "A manifest is at most a few MB of text, so a file this large is another file.")}


def test_a_job_that_loses_the_race_for_its_output_leaves_the_winners_record(tmp_path):
    """Another run wrote the output and its record meanwhile: the batch wrote its "failed" record over the
    winner's "done" one, so the next batch would have redone the finished job."""
    from vexpress_cli.jobs.batch.checks import BatchJob
    from vexpress_cli.jobs.batch.execute import run_job
    from vexpress_cli.outputs import written_meanwhile

    output = tmp_path / "a.mp4"

    class LosingGenerator:
        device, dtype_name = torch.device("cpu"), "fp32"

        def plan(self, *args, **kwargs):  # the winner finishes while this job runs
            output.write_bytes(b"the winner's video")
            record_path(output).write_text('{"the winner": "record"}')
            raise written_meanwhile(output)

    job = BatchJob(1, "aoc.jpg", "a.wav", str(output), {})
    outcome = run_job(LosingGenerator(), job, "cpu#1", lambda event: None)
    assert outcome.status == "failed" and "was written by another run meanwhile" in outcome.reason
    assert outcome.record is None and record_path(output).read_text() == '{"the winner": "record"}'


def test_ray_clients_server_side_failure_shows_the_servers_last_line():
    """Ray Client says "Initialization failure from server:" and puts the server's traceback below: the
    paragraph showed only that first line."""
    from vexpress_cli.jobs.batch.ray_runner import connect

    class Ray:
        @staticmethod
        def init(**options):
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                         "  File \"proxier.py\", line 790\n"
                                         "RuntimeError: Proxy failed to Connect to backend!")

    with pytest.raises(vexpress_cli.InputError) as refused:
        connect(Ray, "ray://10.0.0.1:10001")
    assert str(refused.value).startswith("Cannot connect to the Ray cluster at ray://10.0.0.1:10001. Ray says: "
                                         "Initialization failure from server: RuntimeError: Proxy failed to Connect to "
                                         "backend!")


def test_the_summary_names_settings_in_reasons_and_warnings_as_asked_python_names_by_default():
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.errors import join_messages, parameter

    outcome = JobOutcome(3, "out/a.mp4", "done", "force", join_messages(f"{parameter('force')} was given"),
                         warnings=[join_messages(f"Give {parameter('max_size', 1024)} to keep it smaller.")])
    summary = BatchSummary("jobs.jsonl", [outcome], 1.0)
    assert [(job["reason"], job["warnings"]) for job in summary.to_dict()["jobs"]] == [
        ("force was given", ["Give max_size=1024 to keep it smaller."])]
    assert [(job["reason"], job["warnings"]) for job in summary.to_dict(flag_of)["jobs"]] == [
        ("--force was given", ["Give --max-size 1024 to keep it smaller."])]


def test_a_batch_argument_on_a_manifest_line_is_named_as_the_caller_spells_it(tmp_path):
    """batch() from Python was told "'device' belongs to the command line (--device, --devices)"; a model_dir
    column got no hint at all."""
    from vexpress_cli.cli.options import flag_of

    manifest = tmp_path / "jobs.csv"
    manifest.write_text("reference_image,audio,output,device,model_dir\naoc.jpg,a.wav,x.mp4,cpu,/m\n")
    with pytest.raises(ManifestError) as raised:
        prepare_jobs(manifest)
    assert [problem.text for problem in raised.value.problems][:2] == [
        "'device' belongs to the whole batch (device or devices), not to one job: the networks are loaded once per "
        "worker.",
        "'model_dir' belongs to the whole batch (model_dir), not to one job: the networks are loaded once per worker."]
    rendered = raised.value.render(flag_of)
    assert "(--device or --devices)" in rendered and "(--model-dir)" in rendered
