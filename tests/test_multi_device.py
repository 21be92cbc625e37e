"""One video split across processes (engine/distributed.py): two gloo processes on the CPU give the frames
of one process, from the engine and from `vexpress generate --devices cpu,cpu`."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from typer.testing import CliRunner

from vexpress_cli import VExpressPipeline
from vexpress_cli.cli.app import app
from vexpress_cli.engine.distributed import MultiDevicePipeline, resolve_devices
from vexpress_cli.errors import InputError
from vexpress_cli.media.video_reader import video_info

from conftest import SAMPLES_DIR, TINY_MODEL_DIR

pytestmark = pytest.mark.usefixtures("like_the_real_command")

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def job(windowed_golden_job):
    return windowed_golden_job


@pytest.fixture(scope="module")
def one_device_latents(job):
    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)
    return pipe.denoise(generator=torch.manual_seed(4), **job)


@pytest.fixture(scope="class")
def two_processes():
    """One pair of processes for the class's tests, stopped before the CLI test starts its own."""
    pipeline = MultiDevicePipeline(TINY_MODEL_DIR, [CPU, CPU], torch.float32)
    yield pipeline
    pipeline.close()


@pytest.mark.slow
class TestTwoGlooProcesses:
    @pytest.mark.parametrize("window_batch", [1, 2])
    def test_two_gloo_processes_give_the_latents_of_one(self, two_processes, job, one_device_latents, window_batch):
        two_processes.window_batch = window_batch
        latents = two_processes.denoise(generator=torch.manual_seed(4), **job)
        assert (latents - one_device_latents).abs().max().item() <= 1e-4

    def test_two_processes_use_the_asked_scheduler_like_one(self, two_processes, job):
        pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)
        pipe.use_scheduler("dpm++")
        two_processes.use_scheduler("dpm++")
        try:
            latents = two_processes.denoise(generator=torch.manual_seed(4), **job)
        finally:
            two_processes.use_scheduler("ddim")
        expected = pipe.denoise(generator=torch.manual_seed(4), **job)
        assert (latents - expected).abs().max().item() <= 1e-4

    def test_step_callbacks_and_offload_are_refused_with_several_devices(self, two_processes, job):
        with pytest.raises(InputError, match="callback_on_step_end"):
            two_processes.denoise(generator=torch.manual_seed(4), callback_on_step_end=lambda *a: {}, **job)
        with pytest.raises(InputError, match="cannot be combined"):
            MultiDevicePipeline(TINY_MODEL_DIR, [CPU, CPU], torch.float32, offload="model")

    def test_the_same_seed_gives_the_same_frames_on_two_processes_as_on_one(self, two_processes, job):
        pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)
        two_processes.window_batch = 1
        one = pipe(generator=torch.manual_seed(7), **job).frames
        frames = torch.cat([torch.from_numpy(chunk) for chunk in
                            two_processes.iter_frames(generator=torch.manual_seed(7), postprocess=False, **job)])
        expected = (one[0].permute(1, 2, 3, 0) * 255).to(torch.uint8)
        # float frames within 1e-4 can still fall on either side of an 8-bit step.
        assert (frames.int() - expected.int()).abs().max().item() <= 1


    def test_two_processes_leave_the_callers_global_generator_as_one_process_does(self, two_processes, job):
        """The job draws from its own generator: the host's torch.manual_seed stream is not reseeded by it."""
        pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)
        two_processes.window_batch = 1
        after = {}
        for name, runner in (("one", pipe), ("two", two_processes)):
            torch.manual_seed(123)
            latents = runner.denoise(generator=runner.seeded_generator(7), **job)
            after[name] = (torch.rand(4), latents)
        assert torch.equal(after["two"][0], after["one"][0])
        assert (after["two"][1] - after["one"][1]).abs().max().item() <= 1e-4


def test_devices_are_parsed_and_checked():
    assert resolve_devices("cpu, cpu") == resolve_devices("CPU,Cpu") == [CPU, CPU]  # as --device takes CPU
    with pytest.raises(InputError, match="empty"):
        resolve_devices(" , ")
    for text, problem in (("cpu,,cpu", "has an empty item"), ("cpu,cpu,", "has an empty item"),
                          ("auto,auto", "names auto, which picks one device"),
                          ("cpu:1,cpu:7", "gives the CPU an index, which it does not have")):
        with pytest.raises(InputError, match=f'^devices="{text}" {problem}'):
            resolve_devices(text)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="found no GPU"):
            resolve_devices("all")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without CUDA")
def test_a_gpu_in_devices_without_cuda_points_to_what_works_with_devices_given():
    """device="cpu" cannot help: devices wins over device."""
    with pytest.raises(InputError) as raised:
        resolve_devices("cuda:0")
    assert raised.value.fix.startswith('Leave out devices to run on one device, or use devices="cpu,cpu"')


@pytest.mark.parametrize(("built_for", "why"), [
    (None, "The installed torch was built without CUDA support."),
    ("12.8", "The installed torch is built for CUDA 12.8 but sees no GPU."),
])
def test_cuda_asked_for_without_a_gpu_says_whether_the_build_or_the_machine_lacks_it(monkeypatch, built_for, why):
    """The reason used to be "this torch build or machine ... (see `vexpress doctor`)", also inside doctor."""
    from vexpress_cli.engine.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", built_for)
    for resolve in (lambda: resolve_device("cuda"), lambda: resolve_devices("all")):
        with pytest.raises(InputError) as raised:
            resolve()
        assert raised.value.why == why


@pytest.mark.slow
@pytest.mark.usefixtures("no_user_config")
def test_generate_with_devices_cpu_cpu_writes_the_frames_of_a_plain_run(tmp_path, speech):
    # 0.4 s of speech: 12 frames, in 4 windows of 4 frames.
    common = ["generate", "-i", str(SAMPLES_DIR / "tys" / "ref.jpg"), "-a", str(speech),
              "--width", "64", "--height", "64", "--num_inference_steps", "2", "--context-frames", "4",
              "--context-overlap", "1", "--reference-kps", "22,26;42,26;32,38", "--model-dir", str(TINY_MODEL_DIR),
              "--quiet"]
    runner = CliRunner()
    plain = runner.invoke(app, [*common, "-o", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    split = runner.invoke(app, [*common, "-o", str(tmp_path / "split"), "--devices", "cpu,cpu"])
    assert split.exit_code == 0, split.output
    plain_frames = sorted((tmp_path / "plain").glob("*.png"))
    split_frames = sorted((tmp_path / "split").glob("*.png"))
    assert len(plain_frames) == len(split_frames) == 12
    for one, other in zip(plain_frames, split_frames):
        difference = np.abs(np.asarray(PIL.Image.open(one), dtype=int) - np.asarray(PIL.Image.open(other), dtype=int))
        assert difference.max() <= 1
    record = json.loads((tmp_path / "split.json").read_text())
    assert record["device"] == "cpu,cpu"


@pytest.mark.usefixtures("no_user_config")
@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_once_and_writes_its_video(tmp_path, speech):
    """The helper process used to import the script again (spawn), call generate() there and die."""
    import subprocess
    import sys

    script = tmp_path / "talk.py"
    script.write_text("import json, vexpress_cli\n"
                      "print('top level ran', flush=True)\n"
                      f"result = vexpress_cli.generate({str(SAMPLES_DIR / 'AOC' / 'ref.jpg')!r}, {str(speech)!r}, "
                      f"'talk.mp4', model_dir={str(TINY_MODEL_DIR)!r}, devices='cpu,cpu', width=64, height=64, "
                      "num_inference_steps=1, reference_kps='22,26;42,26;32,38')\n"
                      "print(result.num_frames, json.loads(result.record.read_text())['device'])\n")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                               timeout=300)
    assert completed.returncode == 0 and "Traceback" not in completed.stderr, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines.count("top level ran") == 1
    frames = int(lines[-1].split()[0])
    assert lines[-1].split()[1] == "cpu,cpu" and video_info(tmp_path / "talk.mp4").frame_count == frames > 0


@pytest.mark.slow
@pytest.mark.usefixtures("no_user_config")
def test_ctrl_c_during_a_two_process_run_leaves_nothing_and_warns_of_no_leaked_semaphore(tmp_path):
    """The helper, stopped mid-step, used to leave tqdm's process lock to the resource tracker, which warned."""
    import signal
    import subprocess
    import sys

    output = tmp_path / "long.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "vexpress_cli", "generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a",
         str(SAMPLES_DIR / "AOC" / "aud.mp3"), "-o", str(output), "--reference-kps", "22,26;42,26;32,38",
         "--devices", "cpu,cpu", "--model-dir", str(TINY_MODEL_DIR), "--width", "64", "--height", "64",
         "--num-inference-steps", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = []
        while not (line := process.stderr.readline()).startswith("[") or "Denoising" not in line:
            assert line, "".join(lines)  # the run ended before it denoised
            lines.append(line)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, rest
    assert "Interrupted; nothing was written." in rest and "leaked semaphore" not in rest
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "value", "loaded", "same"), [
    ("device", "cuda:0", torch.device("cuda"), True),  # a batch at the default device loads on cuda, cuda:0
    ("device", "cuda:1", torch.device("cuda"), False),
    ("device", "cuda", torch.device("cuda:1"), True),
    ("device", "cpu", torch.device("cuda:0"), False),
    ("device", "auto", torch.device("cpu"), True),
    ("device", "cuda", None, True),  # a Ray actor's: the cluster's, not known here
    ("dtype", "fp16", torch.float32, False),
    ("dtype", "fp32", torch.float32, True),
    ("dtype", "bf16", None, True),
])
def test_a_jobs_device_or_dtype_runs_with_the_loaded_networks_by_one_rule(name, value, loaded, same):
    """engine.devices.runs_with: the one rule of a Generator and of every batch worker."""
    from vexpress_cli.engine.devices import runs_with

    device, dtype = (loaded, torch.float32) if name == "device" else (torch.device("cpu"), loaded)
    assert runs_with(name, value, device, dtype) is same


@pytest.mark.slow
def test_a_helper_killed_while_denoising_is_one_error_naming_its_exit_not_gloos_traceback(job):
    """kill -9 of a helper (or the out-of-memory killer) ended the run in 88 lines of gloo's RuntimeError."""
    import os
    import signal

    from vexpress_cli.engine.distributed import MultiDeviceError

    pipeline = MultiDevicePipeline(TINY_MODEL_DIR, [CPU, CPU], torch.float32)
    try:
        def kill_the_helper(stage, done, total):
            if stage == "denoise" and done == 1:
                os.kill(pipeline._helpers[0].pid, signal.SIGKILL)

        with pytest.raises(MultiDeviceError) as raised:
            pipeline.denoise(generator=torch.manual_seed(4), progress=kill_the_helper, **job)
    finally:
        pipeline.close()
    assert raised.value.what.raw == "A helper process ended while the video was made."
    assert raised.value.why.raw.startswith("It ended (exit code -9 (a negative code is the signal that killed it")
