"""The public Python API (``vexpress_cli.generate``, ``Generator``, ``extract``, ``retarget``) on the tiny model,
and the per-call settings reaching the denoising UNet's attention layers by every route (flag, preset, API)."""

from __future__ import annotations

import dataclasses
import pydoc
import re
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

import vexpress_cli
from vexpress_cli.cli.app import app
from vexpress_cli.engine.networks.denoising_unet import ReferenceTransformerBlock
from vexpress_cli.engine.pipeline import VExpressPipeline
from vexpress_cli.errors import InputError
from vexpress_cli.kps.io import load_kps
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_reader import video_info

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

TYS, AOC = SAMPLES_DIR / "tys", SAMPLES_DIR / "AOC"
SMALL = {"width": 64, "height": 64, "num_inference_steps": 1, "reference_kps": "22,26;42,26;32,38"}


@pytest.fixture
def attention_calls(monkeypatch):
    """Every call of a transformer block: the two weights it was given and its output's sum."""
    calls = []
    forward = ReferenceTransformerBlock.forward

    def recording(self, hidden_states, audio_tokens, num_frames, reference):
        output = forward(self, hidden_states, audio_tokens, num_frames, reference)
        calls.append((reference.reference_attention_weight, reference.audio_attention_weight,
                      float(output.double().sum())))
        return output

    monkeypatch.setattr(ReferenceTransformerBlock, "forward", recording)
    return calls


def test_generate_writes_a_video_as_long_as_the_audio(speech, tmp_path):
    output = tmp_path / "talk.mp4"
    result = vexpress_cli.generate(AOC / "ref.jpg", speech, output, model_dir=TINY_MODEL_DIR, seed=3, **SMALL)
    info = video_info(output)
    assert result.output == output and result.num_frames == info.frame_count == 12
    assert (info.codec, info.audio_codec, info.width, info.height) == ("h264", "aac", 64, 64)
    assert result.strategy == "fix_face"  # auto without a driving track
    assert result.settings["seed"] == 3 and result.settings["num_inference_steps"] == 1
    assert result.to_dict()["frames"] == 12 and result.to_dict()["output"] == str(output)


def test_unknown_setting_names_the_closest_one(speech, tmp_path):
    with pytest.raises(InputError, match="unknown keyword argument 'num_inference_step'.*Did you mean "
                       "'num_inference_steps'"):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "x.mp4", model_dir=TINY_MODEL_DIR,
                              num_inference_step=3)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("build", [lambda: vexpress_cli.GenerationSettings(num_inference_step=3),
                                   lambda: vexpress_cli.GenerationSettings().replace(num_inference_step=3)])
def test_settings_built_or_replaced_with_a_misspelt_name_say_which_was_meant_and_where_python_lists_them(build):
    """The constructor raised the dataclass's TypeError ("unexpected keyword argument"); then the fix pointed a
    Python caller at `vexpress generate --help`."""
    with pytest.raises(InputError, match="unknown key 'num_inference_step'") as raised:
        build()
    assert raised.value.fix.raw == ("Did you mean 'num_inference_steps'? vexpress_cli.SETTINGS lists every setting, "
                                    "and help(vexpress_cli.GenerationSettings) says each one.")
    assert vexpress_cli.GenerationSettings(num_inference_steps=3).num_inference_steps == 3


@pytest.mark.parametrize(("name", "value", "message"), [
    ("fps", float("nan"), "fps is nan, not a finite number"),
    ("guidance_scale", float("inf"), "guidance_scale is inf, not a finite number"),
    ("width", 100, "width is 100; it must be a multiple of 8"),
    ("kps_fit", "bounce", "kps_fit is 'bounce', which is not one of"),
])
def test_bad_setting_value_is_refused_with_its_python_name(name, value, message, speech, tmp_path):
    with pytest.raises(InputError, match=message):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "x.mp4", model_dir=TINY_MODEL_DIR, **{name: value})


@pytest.mark.slow
def test_generator_loads_once_for_many_jobs_and_frees_at_exit(speech, tmp_path, monkeypatch):
    loads = []
    original = VExpressPipeline.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(VExpressPipeline, "from_pretrained", classmethod(counting))
    with vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu") as generator:
        first = generator.generate(AOC / "ref.jpg", speech, tmp_path / "a.mp4", **SMALL)
        second = generator.generate(TYS / "ref.jpg", speech, tmp_path / "b.mp4", kps=TYS / "kps.pth",
                                    **{**SMALL, "reference_kps": None})
        assert generator.loaded
    assert not generator.loaded
    assert len(loads) == 1
    assert (first.strategy, second.strategy) == ("fix_face", "no_retarget")
    assert video_info(first.output).frame_count == video_info(second.output).frame_count == 12


def test_extract_writes_the_track_and_the_audio_together(tmp_path):
    video = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(TYS / "gt.mp4"), "-t", "0.5", str(video)], check=True)
    result = vexpress_cli.extract(video, tmp_path / "clip.safetensors", audio_out=tmp_path / "clip.wav",
                                  face_backend="dlib")
    track = load_kps(result.kps_out)
    assert result.report.frames == track.num_frames == video_info(video).frame_count
    assert track.backend == "dlib" and (track.width, track.height) == (512, 512)
    assert result.audio_out.is_file() and result.to_dict()["audio_out"] == str(tmp_path / "clip.wav")


def test_retarget_saves_the_strategys_track(tmp_path):
    result = vexpress_cli.retarget(None, TYS / "kps.pth", "offset_retarget", tmp_path / "mine.safetensors",
                                   reference_kps="200,220;312,220;256,290", num_frames=30, kps_fit="loop", fps=25)
    saved = load_kps(result.output)
    assert saved.num_frames == result.num_frames == 30 and saved.fps == 25
    assert result.strategy == "offset_retarget" and result.fit == "loop"
    assert not np.allclose(saved.points[0], saved.points[-1])  # the driving motion moved the face
    fixed = vexpress_cli.retarget(None, None, "auto", tmp_path / "still.pth", reference_kps="200,220;312,220;256,290",
                                  num_frames=5)
    assert fixed.strategy == "fix_face"
    np.testing.assert_allclose(load_kps(fixed.output).points, np.repeat([[[200, 220], [312, 220], [256, 290]]], 5, 0))


# --- per-call settings reach the attention layers ----------------------------------------------


def test_audio_weight_by_api_reaches_every_attention_call(speech, tmp_path, attention_calls):
    vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "a.mp4", model_dir=TINY_MODEL_DIR,
                          audio_attention_weight=2.5, reference_attention_weight=0.8, **SMALL)
    assert attention_calls and {(call[0], call[1]) for call in attention_calls} == {(0.8, 2.5)}


def test_audio_weight_by_preset_reaches_the_attention_layers(speech, tmp_path, attention_calls):
    preset = tmp_path / "loud.toml"
    preset.write_text('description = "x"\n[generate]\naudio_attention_weight = 2.0\n')
    vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "a.mp4", model_dir=TINY_MODEL_DIR, preset=preset,
                          **SMALL)
    assert attention_calls and {call[1] for call in attention_calls} == {2.0}


@pytest.mark.slow
def test_audio_weight_by_flag_reaches_the_attention_layers(speech, tmp_path, attention_calls):
    result = CliRunner().invoke(app, ["generate", "-i", str(AOC / "ref.jpg"), "-a", str(speech), "-o",
                                      str(tmp_path / "a.mp4"), "--model-dir", str(TINY_MODEL_DIR), "--width", "64",
                                      "--height", "64", "--num-inference-steps", "1", "--reference-kps",
                                      SMALL["reference_kps"], "--audio-attention-weight", "1.7", "--quiet"])
    assert result.exit_code == 0, result.output
    assert attention_calls and {call[1] for call in attention_calls} == {1.7}


@pytest.mark.slow
def test_two_jobs_on_one_generator_each_get_their_own_weights(speech, tmp_path, attention_calls):
    """The weights travel through forward(): nothing of one job stays in the modules for the next."""
    with vexpress_cli.Generator(model_dir=TINY_MODEL_DIR) as generator:
        sums = []
        for number, weight in enumerate((1.0, 3.0, 1.0)):
            start = len(attention_calls)
            generator.generate(AOC / "ref.jpg", speech, tmp_path / f"{number}.mp4", audio_attention_weight=weight,
                               **SMALL)
            job_calls = attention_calls[start:]
            assert {call[1] for call in job_calls} == {weight}
            sums.append(job_calls[0][2])
    assert sums[0] != sums[1]  # the weight changes what the attention layer puts out
    assert sums[0] == sums[2]  # and the third job is not touched by the second one's weight


# --- the engine stands alone ----------------------------------------------------------------


@pytest.mark.slow
def test_engine_imports_nothing_of_the_cli_presets_or_downloader():
    code = ("import sys, vexpress_cli.engine\n"
            "from vexpress_cli.engine import VExpressPipeline\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click') or m.startswith("
            "('vexpress_cli.cli', 'vexpress_cli.settings', 'vexpress_cli.jobs')))\n"
            "print(VExpressPipeline.__name__, bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "VExpressPipeline []"


@pytest.mark.parametrize("names", ["", "VExpressError, InputError, BatchInterrupted, BatchSummary"])
def test_import_vexpress_cli_and_its_exceptions_loads_no_torch(names):
    """`except vexpress_cli.BatchInterrupted` cost a torch import (2.5 s)."""
    code = (f"import sys, vexpress_cli; [getattr(vexpress_cli, name) for name in {names!r}.split(', ') if name]; "
            "print('torch' in sys.modules, 'generate' in dir(vexpress_cli))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False True"


def test_overwrite_onto_a_folder_that_is_not_frames_is_refused_before_the_model_loads(speech, tmp_path):
    """Issue 8 item 15: `--overwrite` onto a folder of other files was refused only after the model had loaded."""
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("keep me")
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    with pytest.raises(InputError, match="Will not replace .*my-documents.* with a frame folder"):
        generator.plan(AOC / "ref.jpg", speech, folder, overwrite=True, **SMALL)
    assert not generator.loaded and (folder / "thesis.txt").read_text() == "keep me"


def test_retarget_at_another_fps_keeps_the_driving_motion_in_time(tmp_path):
    """Issue 8 item 2, for retarget too: a 25 fps track written at 30 fps keeps its speed and duration."""
    from vexpress_cli.kps.io import KpsTrack, save_kps

    seconds = np.arange(50, dtype=np.float32) / 25
    points = np.stack([np.stack([200 + 50 * seconds, 220 + 0 * seconds], -1)] * 3, axis=1)  # 50 px per second
    driving = tmp_path / "driving.safetensors"
    save_kps(driving, KpsTrack(points, fps=25.0, width=512, height=512))
    result = vexpress_cli.retarget(None, driving, "no_retarget", tmp_path / "at30.safetensors", fps=30)
    saved = load_kps(result.output)
    assert saved.num_frames == 60 and saved.fps == 30  # 2 s either way
    np.testing.assert_allclose(saved.points[:, 0, 0], np.minimum(200 + 50 * np.arange(60) / 30, 200 + 50 * 49 / 25),
                               atol=1e-3)
    assert result.notes == ["The 50-frame kps track at 25 fps was resampled in time to 60 frames at 30 fps."]


@pytest.mark.parametrize(("call", "named"), [
    (lambda: vexpress_cli.generate(123, "speech.wav", "talk.mp4", model_dir=TINY_MODEL_DIR),
     "reference_image is int 123"),
    (lambda: vexpress_cli.generate("ref.jpg", None, "talk.mp4", model_dir=TINY_MODEL_DIR), "audio is NoneType None"),
    (lambda: vexpress_cli.extract(["talk.mp4"]), "video is list ['talk.mp4']"),
    (lambda: vexpress_cli.batch(b"jobs.jsonl", model_dir=TINY_MODEL_DIR), "manifest is bytes b'jobs.jsonl'"),
    (lambda: vexpress_cli.retarget(123, None, "fix_face", num_frames=3), "reference_image is int 123"),
    (lambda: vexpress_cli.retarget(None, None, "fix_face", reference_kps="1,2;3,4;5,6", num_frames=3,
                                   model_root=1.5), "model_root is float 1.5"),
    (lambda: vexpress_cli.read_record(None), "path is NoneType None"),
])
def test_a_path_argument_of_another_type_is_an_input_error_naming_it(call, named):
    with pytest.raises(vexpress_cli.InputError) as raised:
        call()
    assert str(raised.value).startswith(f"{named}, not a path.")


@pytest.mark.parametrize(("call", "name"), [
    (lambda: vexpress_cli.Generator(TINY_MODEL_DIR).plan(str(AOC / "ref.jpg"), str(AOC / "aud.mp3"), ""), "output"),
    (lambda: vexpress_cli.extract(str(AOC / "gt.mp4"), "  "), "kps_out"),
    (lambda: vexpress_cli.batch("", model_dir=TINY_MODEL_DIR), "manifest"),
])
def test_an_empty_text_as_a_path_is_named_not_taken_for_the_current_folder(call, name):
    """plan(..., "") said it "will not replace" the current folder "with a frame folder"."""
    with pytest.raises(vexpress_cli.InputError) as raised:
        call()
    assert str(raised.value) == f"{name} is an empty text, not a path. Pass the file's path as {name}."


def test_a_missing_model_dir_is_named_as_the_python_argument():
    with pytest.raises(vexpress_cli.VExpressError) as raised:
        vexpress_cli.Generator(model_dir="/nonexistent/model")
    assert str(raised.value).startswith("No model folder: /nonexistent/model (model_dir) does not exist.")
    assert "--model-dir" not in str(raised.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 on the CPU: the device chosen without a GPU")
@pytest.mark.slow
def test_fp16_on_the_cpu_is_a_result_warning_and_nothing_is_printed(speech, tmp_path):
    script = ("import vexpress_cli\n"
              f"result = vexpress_cli.generate({str(AOC / 'ref.jpg')!r}, {str(speech)!r}, "
              f"{str(tmp_path / 'talk.mp4')!r}, model_dir={str(TINY_MODEL_DIR)!r}, dtype='fp16', **{SMALL!r})\n"
              "print(result.warnings)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""  # diffusers' "float16 cannot run with cpu" was printed once per network
    assert completed.stdout == ('[\'dtype="fp16" is slow on the CPU, which has few float16 kernels; leave dtype at '
                                "auto (fp32 there), or run on a GPU.']\n")


def test_numpy_numbers_bools_and_a_crop_box_as_results_give_it_are_settings():
    from vexpress_cli.settings.schema import resolve_settings

    settings = resolve_settings(explicit={"seed": np.int64(5), "width": np.int32(64), "fps": np.float32(25),
                                          "paste_back": np.bool_(True), "crop": (10, 20, np.int64(300), 300)}).settings
    assert (settings.seed, settings.width, settings.fps, settings.paste_back, settings.crop) == (
        5, 64, 25.0, True, "10,20,300,300")
    assert type(settings.seed) is int and type(settings.fps) is float and type(settings.paste_back) is bool
    assert resolve_settings(explicit={"crop": np.array([1, 2, 300, 300]), "dtype": np.str_("float16")}).settings.crop \
        == "1,2,300,300"


def test_an_exact_frame_rate_as_inspect_reports_it_is_an_fps_setting():
    """fps=Fraction(30000, 1001) was refused as "not Fraction Fraction(30000, 1001)"."""
    from fractions import Fraction

    from vexpress_cli.errors import described
    from vexpress_cli.settings.schema import resolve_settings

    assert resolve_settings(explicit={"fps": Fraction(30000, 1001)}).settings.fps == 30000 / 1001
    assert described(Fraction(1, 3)) == "Fraction(1, 3)" and described("x") == "str 'x'"
    assert described(10**30) == "a 31-digit number" and described(12) == "int 12"  # not "int a 31-digit number"


def test_an_image_held_in_memory_is_named_by_its_shape_and_told_to_be_saved_first():
    with pytest.raises(vexpress_cli.InputError) as raised:
        vexpress_cli.generate(np.zeros((512, 512, 3), np.uint8), "speech.wav", "talk.mp4", model_dir=TINY_MODEL_DIR)
    message = str(raised.value)
    assert message.startswith("reference_image is ndarray of shape (512, 512, 3) (an image or array in memory), "
                              "not a path.")
    assert "save what you hold to a file first" in message and len(message) < 400


@pytest.mark.slow
def test_two_threads_sharing_a_generator_run_one_job_at_a_time_and_each_seed_holds(speech, tmp_path):
    import threading

    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    generator.generate(AOC / "ref.jpg", speech, tmp_path / "alone", seed=1, **SMALL)
    failures = []

    def job(name):
        try:
            generator.generate(AOC / "ref.jpg", speech, tmp_path / name, seed=1, **SMALL)
        except Exception as error:  # reported by the assert below
            failures.append(error)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    frames = {name: [path.read_bytes() for path in sorted((tmp_path / name).glob("frame_*.png"))]
              for name in ("alone", "first", "second")}
    assert len(frames["alone"]) == 12 and frames["first"] == frames["alone"] and frames["second"] == frames["alone"]


def test_a_job_may_repeat_the_generators_own_device_and_dtype_but_not_change_them(speech, tmp_path):
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu")
    plan = generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", device="auto", dtype="auto", **SMALL)
    assert plan.settings.device == "auto"
    generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", device="cpu", dtype=torch.float32, **SMALL)
    with pytest.raises(InputError, match="dtype cannot change from one job to the next"):
        generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", dtype="fp16", **SMALL)
    with pytest.raises(InputError, match="device cannot change from one job to the next"):
        generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", device="cuda:1", **SMALL)


@pytest.mark.parametrize(("setting", "value", "running"), [("dtype", "bf16", "float32"), ("device", "cuda", "cpu")])
def test_a_presets_dtype_or_device_the_generator_does_not_run_with_is_refused_not_ignored(speech, tmp_path, setting,
                                                                                          value, running):
    """It planned, reported dtype 'bf16' from the preset, and ran in float32 (generate() honoured it); a GPU the
    preset names is refused for what the Generator runs with, not because this machine lacks CUDA."""
    preset = tmp_path / "other.toml"
    preset.write_text(f'[generate]\n{setting} = "{value}"\n')
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu")
    message = rf"^The preset sets {setting} = '{value}', but this Generator runs with {running}\."
    with pytest.raises(InputError, match=message):
        generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", preset=preset, **SMALL)
    if setting == "device":
        return
    preset = tmp_path / "half.toml"
    preset.write_text('[generate]\ndtype = "bf16"\n')
    in_bf16 = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu", dtype="bf16")
    assert in_bf16.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", preset=preset, **SMALL).settings.dtype == "bf16"


def test_a_generator_takes_device_and_dtype_from_the_user_config_as_the_cli_does(tmp_path):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.toml").write_text('[generate]\ndtype = "bf16"\ndevice = "cpu"\n')
    assert vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).dtype == torch.bfloat16
    assert vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, dtype="fp32").dtype == torch.float32


@pytest.mark.parametrize("devices", [["cpu", "cpu"], ("cpu", torch.device("cpu")), "cpu, cpu"])
def test_a_generators_devices_may_be_a_list_of_names_as_batch_takes_them(devices):
    """A list raised AttributeError: 'list' object has no attribute 'strip'."""
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, devices=devices)
    assert generator.devices == [torch.device("cpu")] * 2


@pytest.mark.parametrize(("devices", "message"), [
    (1, "devices is int 1. It names the devices each video's windows are split across"),
    ({"cpu"}, "devices is set {'cpu'}."),
    ([1], "devices is list [1]."),
])
def test_devices_of_another_kind_is_an_input_error_of_one_paragraph(devices, message):
    with pytest.raises(InputError) as raised:
        vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, devices=devices)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_torch_device_is_taken_wherever_a_device_is(speech, tmp_path):
    """It was refused ("device must be a string"), even the Generator's own device, while torch dtypes were taken."""
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device=torch.device("cpu"))
    assert vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device=generator.device).device == torch.device("cpu")
    generator.plan(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", device=torch.device("cpu"), **SMALL)
    assert vexpress_cli.GenerationSettings(device=torch.device("cpu")).device == "cpu"


def test_help_describes_the_progress_protocol_and_the_fields_of_a_result_and_a_plan():
    """help(ProgressCallback) showed typing.Protocol's own text; GenerationResult's and GenerationPlan's
    docstrings were one line, naming no field."""
    from vexpress_cli.jobs.planning import GenerationPlan

    shown = pydoc.render_doc(vexpress_cli.ProgressCallback, renderer=pydoc.plaintext)
    assert "Protocol classes are defined" not in shown and "progress(stage, done, total)" in shown
    for kind in (vexpress_cli.GenerationResult, GenerationPlan):
        described = [field.name for field in dataclasses.fields(kind) if f"``{field.name}``" in kind.__doc__]
        assert len(described) >= 13, (kind, described)
    assert all(f"``{field.name}``" in vexpress_cli.GenerationResult.__doc__
               for field in dataclasses.fields(vexpress_cli.GenerationResult))


def test_load_checks_offload_as_the_offload_setting_is_checked():
    """load(offload="bogus") loaded the networks as with "none", and the next job loaded them again."""
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    with pytest.raises(InputError, match=r"^offload is 'bogus', which is not one of: none, model, sequential\."):
        generator.load(offload="bogus")
    assert not generator.loaded


@pytest.mark.parametrize("plan", [None, {"reference_image": "ref.jpg", "audio": "speech.wav"}])
def test_running_anything_but_a_plan_is_an_input_error_that_points_to_plan(plan):
    """run(None) and frames(None) raised AttributeError: 'NoneType' object has no attribute 'settings'."""
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    for call in (lambda: generator.run(plan), lambda: next(generator.frames(plan))):
        with pytest.raises(InputError, match=r"^plan is (NoneType|dict) .* the result of generator\.plan\("):
            call()


@pytest.mark.parametrize(("reference_kps", "shown"), [({"a": 1}, "dict {'a': 1}"), ([[1, 2], [3, 4], [5]], "list"),
                                                      ({1, 2}, "set {1, 2}")])
def test_reference_kps_of_another_kind_is_an_input_error_naming_the_forms_it_takes(speech, tmp_path, reference_kps,
                                                                                   shown):
    """A dict raised TypeError: float() argument must be a string or a real number, not 'dict'."""
    forms = r"Give them as numbers \[\[x, y\], \[x, y\], \[x, y\]\] .*, as text \"x,y;x,y;x,y\", or as a kps file\."
    with pytest.raises(InputError, match=rf"^reference_kps is {re.escape(shown)}.*{forms}"):
        vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).plan(AOC / "ref.jpg", speech, tmp_path / "k.mp4",
                                                              **{**SMALL, "reference_kps": reference_kps})
    with pytest.raises(InputError, match=rf"^reference_kps is {re.escape(shown)}.*{forms}"):
        vexpress_cli.retarget(None, None, "fix_face", tmp_path / "r.pth", reference_kps=reference_kps, num_frames=3)


@pytest.mark.parametrize(("keyword", "message"), [
    ("seed", "Generator() got 'seed', which belongs to each job: the Generator takes only the model, device(s) and "
             "dtype. Give it to the job: generator.generate(photo, audio, out, seed=...)."),
    ("kps", "Generator() got 'kps', which belongs to each job: the Generator takes only the model, device(s) and "
            "dtype. Give it to the job: generator.generate(photo, audio, out, kps=...)."),
    ("overwrite", "Generator() got 'overwrite', which belongs to each job: the Generator takes only the model, "
                  "device(s) and dtype. Give it to the job: generator.generate(photo, audio, out, overwrite=...)."),
    ("model_path", "Generator() got an unexpected keyword argument 'model_path'. Did you mean 'model'?"),
    ("colour", "Generator() got an unexpected keyword argument 'colour'."),
])
def test_a_jobs_setting_or_an_unknown_keyword_given_to_the_generator_says_where_it_goes(keyword, message):
    with pytest.raises(TypeError) as raised:
        vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, **{keyword: 3})
    assert str(raised.value) == message


@pytest.mark.parametrize(("call", "message"), [
    (lambda out: vexpress_cli.extract(TYS / "gt.mp4", out / "k.pth", width=0), "width is 0. It is the size"),
    (lambda out: vexpress_cli.extract(TYS / "gt.mp4", out / "k.pth", width="512"), "width is str '512'"),
    (lambda out: vexpress_cli.extract(TYS / "gt.mp4", out / "k.pth", height=100000), "height is 100000"),
    (lambda out: vexpress_cli.retarget(None, None, "fix_face", out / "r.pth", reference_kps="1,2;3,4;5,6",
                                       num_frames=3, width=100), "width is 100; it must be a multiple of 8"),
    (lambda out: vexpress_cli.retarget(None, None, "fix_face", out / "r.pth", reference_kps="1,2;3,4;5,6",
                                       num_frames=10**9), "num_frames is 1000000000"),
    (lambda out: vexpress_cli.retarget(None, None, "fix_face", out / "r.pth", reference_kps="1,2;3,4;5,6",
                                       num_frames=2.5), "num_frames is float 2.5"),
])
def test_extract_and_retarget_check_sizes_and_lengths_before_allocating_anything(call, message, tmp_path):
    with pytest.raises(InputError) as raised:
        call(tmp_path)
    assert str(raised.value).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_retarget_takes_numpy_numbers(tmp_path):
    result = vexpress_cli.retarget(None, None, "fix_face", tmp_path / "r.safetensors", reference_kps="20,20;40,20;30,30",
                                   num_frames=np.int64(3), width=96, height=np.int64(64))
    track = load_kps(tmp_path / "r.safetensors")
    assert result.num_frames == 3 and (track.num_frames, track.width, track.height) == (3, 96, 64)


def test_extract_takes_any_frame_size_from_8_to_8192_pixels(tmp_path):
    result = vexpress_cli.extract(TYS / "gt.mp4", tmp_path / "k.safetensors", width=100, height=np.int64(100),
                                  face_backend="dlib")
    track = load_kps(tmp_path / "k.safetensors")
    assert (result.report.width, track.width, track.height) == (100, 100, 100)


@pytest.mark.parametrize(("call", "message"), [
    (lambda out: vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).plan(AOC / "ref.jpg", AOC / "aud.mp3", out / "a.mp4",
                                                                      progress="yes"),
     "progress is str 'yes', which cannot be called. It is called as progress(stage, done, total)"),
    (lambda out: vexpress_cli.batch(out / "jobs.jsonl", model_dir=TINY_MODEL_DIR, on_event=5),
     "on_event is int 5, which cannot be called. It is called as on_event(event)"),
    (lambda out: vexpress_cli.retarget(None, None, "fix_face", out / "r.pth", reference_kps="1,2;3,4;5,6",
                                       num_frames=3, progress=1), "progress is int 1, which cannot be called"),
    (lambda out: vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).plan(AOC / "ref.jpg", AOC / "aud.mp3", out / "a.mp4",
                                                                      model_dir=TINY_MODEL_DIR),
     "model_dir is given when creating the Generator, not to a job."),
])
def test_a_callback_that_cannot_be_called_or_a_generators_argument_given_to_a_job_is_named(call, message, tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"reference_image": "r.jpg", "audio": "a.wav", "output": "o.mp4"}\n')
    with pytest.raises(InputError) as raised:
        call(tmp_path)
    assert str(raised.value).startswith(message)


def test_torch_dtypes_and_their_names_are_precisions():
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, dtype=torch.float32)
    assert generator.dtype == torch.float32
    assert vexpress_cli.GenerationSettings(dtype="bfloat16").dtype == "bf16"


@pytest.mark.slow
def test_frames_gives_the_frames_run_writes_and_writes_nothing(speech, tmp_path):
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    written = generator.generate(AOC / "ref.jpg", speech, tmp_path / "frames", seed=2, **SMALL)
    plan = generator.plan(AOC / "ref.jpg", speech, tmp_path / "unused.mp4", seed=2, **SMALL)
    stages = []
    chunks = list(generator.frames(plan, progress=lambda stage, done, total: stages.append(stage)))
    frames = np.concatenate(chunks)
    assert frames.dtype == np.uint8 and frames.shape == (written.num_frames, 64, 64, 3)
    png = [np.asarray(PIL.Image.open(path)) for path in sorted((tmp_path / "frames").glob("frame_*.png"))]
    np.testing.assert_array_equal(frames, np.stack(png))
    assert "denoise" in stages and "decode" in stages
    assert not (tmp_path / "unused.mp4").exists() and not (tmp_path / "unused.mp4.json").exists()


def test_an_unfinished_frames_iterator_holds_the_generator_until_closed_even_from_another_thread(speech, tmp_path):
    import threading

    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    plan = generator.plan(AOC / "ref.jpg", speech, tmp_path / "a.mp4", **{**SMALL, "paste_back": False})
    chunks = generator.frames(plan)
    next(chunks)
    with pytest.raises(vexpress_cli.VExpressError, match="already running a job started in this thread"):
        generator.run(plan)
    rest = threading.Thread(target=lambda: sum(len(chunk) for chunk in chunks))  # finished by another thread
    rest.start()
    rest.join()
    assert generator.run(plan).num_frames == 12 and (tmp_path / "a.mp4").exists()


@pytest.mark.slow
def test_of_two_runs_racing_for_one_output_the_winner_keeps_its_record(speech, tmp_path):
    """The loser replaced the winner's record with its own, then removed it when its output could not take the
    place: the winner's video was left without a record, which batch then refuses. The loser says its video was
    written by another run meanwhile (it said its record .json "already exists", as if there from the start)."""
    import threading

    from vexpress_cli.outputs import OutputAppearedError

    output = tmp_path / "race.mp4"
    winner = {}

    def other_run_finishes_first(stage, done, total):
        if stage == "decode" and not winner:  # this run is about to write; the other one starts and ends now
            def other() -> None:
                winner["result"] = vexpress_cli.generate(AOC / "ref.jpg", speech, output, model_dir=TINY_MODEL_DIR,
                                                         seed=5, **SMALL)
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()

    with pytest.raises(OutputAppearedError, match=r"race\.mp4' was written by another run meanwhile\."):
        vexpress_cli.generate(AOC / "ref.jpg", speech, output, model_dir=TINY_MODEL_DIR, seed=3,
                              progress=other_run_finishes_first, **SMALL)
    record = vexpress_cli.read_record(winner["result"].record)
    assert record.seed == 5 and record.output_file == vexpress_cli.jobs.records.file_facts(output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["race.mp4", "race.mp4.json"]


def test_an_output_that_is_one_of_the_inputs_is_refused_even_with_overwrite(speech, tmp_path):
    """generate -a talk.mp4 -o talk.mp4 --overwrite replaced its speech with the video (batch refused it)."""
    audio = tmp_path / "talk.mp4"  # a video whose sound is the speech
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=0.4", "-i", str(speech),
                    "-shortest", "-c:v", "libx264", "-c:a", "aac", str(audio)], check=True)
    link = tmp_path / "same.mp4"
    link.symlink_to(audio)
    before = audio.read_bytes()
    for output, overwrite in ((audio, True), (link, True), (audio, False)):  # not "allow overwriting" first
        with pytest.raises(InputError, match=r"is also the job's audio\. Writing the output would replace an input"):
            vexpress_cli.generate(AOC / "ref.jpg", audio, output, model_dir=TINY_MODEL_DIR, overwrite=overwrite,
                                  **SMALL)
    result = CliRunner().invoke(app, ["generate", "-i", str(AOC / "ref.jpg"), "-a", str(audio), "-o", str(audio),
                                      "--overwrite", "--model-dir", str(TINY_MODEL_DIR)])
    assert result.exit_code == 2 and "is also the job's --audio." in " ".join(result.stderr.split())
    assert audio.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["same.mp4", "talk.mp4"]


@pytest.mark.parametrize("job", ["generate", "extract", "retarget", "batch"])
def test_a_switch_given_anything_but_a_bool_is_refused(job, speech, tmp_path):
    """overwrite="no" is a true string: generate replaced the existing output and batch(force="no") redid the
    done jobs. numpy's bool is a bool."""
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    calls = {
        "generate": lambda **switch: vexpress_cli.generate(AOC / "ref.jpg", speech, existing,
                                                           model_dir=TINY_MODEL_DIR, **SMALL, **switch),
        "extract": lambda **switch: vexpress_cli.extract(existing, tmp_path / "k.pth", **switch),
        "retarget": lambda **switch: vexpress_cli.retarget(None, None, "fix_face", tmp_path / "r.pth",
                                                           reference_kps="22,26;42,26;32,38", num_frames=3, **switch),
        "batch": lambda **switch: vexpress_cli.batch(tmp_path / "none.jsonl", **switch),
    }
    name = "force" if job == "batch" else "overwrite"
    for value in ("no", 1, None):
        with pytest.raises(InputError, match=rf"^{name} is .*It is a switch: {name} must be True or False"):
            calls[job](**{name: value})
    assert existing.read_bytes() == b"keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4"]
    if job == "extract":
        with pytest.raises(InputError, match=r"^strict is str 'yes'"):
            vexpress_cli.extract(existing, tmp_path / "k.pth", strict="yes")
    if job == "retarget":  # numpy's bool passes as the bool it is
        assert vexpress_cli.retarget(None, None, "fix_face", tmp_path / "r.pth", reference_kps="22,26;42,26;32,38",
                                     num_frames=3, overwrite=np.bool_(False)).output == tmp_path / "r.pth"


def test_a_pasted_back_video_too_wide_for_h264_is_refused_before_generating(speech, tmp_path):
    """A 20000x4 photo with paste_back generated everything, then ffmpeg could not open its encoder."""
    PIL.Image.new("RGB", (20000, 4), (120, 110, 100)).save(tmp_path / "wide.png")
    job = dict(paste_back=True, codec="h264", **{**SMALL, "reference_kps": "8,1;16,1;12,2"})
    with vexpress_cli.Generator(TINY_MODEL_DIR) as generator:
        with pytest.raises(InputError, match=r"The video would be 20000x4, larger than the 16384 pixels a side h264 "
                                             r"encodes\. Paste-back keeps the photo's size\. Add max_size=1920"):
            generator.plan(tmp_path / "wide.png", speech, tmp_path / "wide.mp4", **job)
        plan = generator.plan(tmp_path / "wide.png", speech, tmp_path / "wide.mp4", max_size=1920, **job)
        assert plan.photo.paste_back_size(plan.settings.max_size) == (1920, 2)  # the least even height
    assert sorted(path.name for path in tmp_path.iterdir()) == ["wide.png"]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"crop": [0, 0, float("nan"), 512]}, r"^crop is list \[0, 0, nan, 512\]\. A box is four whole numbers"),
    ({"crop": (0, 0, 512)}, r"^crop is tuple \(0, 0, 512\)\. A box is four whole numbers"),
    ({"preset": 3}, r"^preset is int 3\. A preset is chosen by its name or the path of its file"),
])
def test_a_crop_box_or_preset_of_the_wrong_kind_is_named_as_such(arguments, message, speech, tmp_path):
    """crop=[0, 0, nan, 512] was "must be a string, not list" (a list is a documented form); preset=3 was "no
    preset named '3'"."""
    with pytest.raises(InputError, match=message):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "x.mp4", model_dir=TINY_MODEL_DIR, **arguments)


def test_a_setting_outside_its_advised_range_is_named_as_the_caller_spells_it(speech, tmp_path):
    plan = vexpress_cli.Generator(TINY_MODEL_DIR).plan(AOC / "ref.jpg", speech, tmp_path / "x.mp4",
                                                       audio_attention_weight=3.5, **SMALL)
    assert "audio_attention_weight=3.5 is outside the advised range 1.0-3.0" in plan.warnings[0]
    from vexpress_cli.settings.schema import resolve_settings

    resolved = resolve_settings(explicit={"audio_attention_weight": 3.5})
    assert resolved.warnings[0].startswith("audio_attention_weight=3.5 is outside the advised range")


def test_a_seed_is_the_jobs_own_whatever_else_seeds_torch_meanwhile_and_the_callers_stream_is_kept(speech, tmp_path):
    """Jobs seeded torch's global generator and drew their noise from it after the speech encoder: another thread's
    job (or anything seeding torch) in between gave this job another seed's video, its record still saying its own."""
    import torch

    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR)
    plan = generator.plan(AOC / "ref.jpg", speech, tmp_path / "unused.mp4", seed=2, **SMALL)
    alone = np.concatenate(list(generator.frames(plan)))

    def reseeding(stage, done, total):
        if stage == "audio":  # between the job's seeding and its noise, as a second job's thread would
            torch.manual_seed(1)

    torch.manual_seed(123)
    disturbed = np.concatenate(list(generator.frames(plan, progress=reseeding)))
    np.testing.assert_array_equal(disturbed, alone)
    other_seed = generator.plan(AOC / "ref.jpg", speech, tmp_path / "unused.mp4", seed=1, **SMALL)
    assert not np.array_equal(np.concatenate(list(generator.frames(other_seed))), alone)
    wav2vec2_draws = wav2vec2_own_draws(generator.load())
    torch.manual_seed(123)
    generator.generate(AOC / "ref.jpg", speech, tmp_path / "frames", seed=2, **SMALL)
    assert torch.initial_seed() == 123  # the caller's own seeding stands: not reseeded to the job's seed
    after_job = torch.rand(4)
    torch.manual_seed(123)
    torch.rand(wav2vec2_draws)  # transformers 4.41's own LayerDrop draws, not the job's
    assert torch.equal(after_job, torch.rand(4))  # nor its stream moved on by the job's LayerDrop stand-in draws


def wav2vec2_own_draws(pipe) -> int:
    """How many numbers the installed transformers' wav2vec2 draws from torch's global generator per pass: one per
    layer for LayerDrop in 4.41 (even in eval mode), none in newer ones."""
    import torch

    before = torch.get_rng_state()
    with torch.no_grad():
        pipe.audio_encoder(torch.zeros(1, 16000, dtype=pipe.audio_encoder.dtype))
    return 0 if torch.equal(before, torch.get_rng_state()) else pipe.audio_encoder.config.num_hidden_layers


def test_inputs_given_with_a_tilde_are_found_in_the_home_folder_and_recorded_there(speech, tmp_path, monkeypatch):
    """``~/ref.jpg`` was read, then the run record's file facts looked for a folder named '~' (FileNotFoundError)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(AOC / "ref.jpg", home / "ref.jpg")
    shutil.copy(speech, home / "speech.wav")
    monkeypatch.setenv("HOME", str(home))
    result = vexpress_cli.generate("~/ref.jpg", "~/speech.wav", "~/talk", model_dir=TINY_MODEL_DIR, seed=1, **SMALL)
    assert result.num_frames == 12 and (home / "talk" / "frame_000012.png").is_file()
    record = vexpress_cli.read_record("~/talk.json")
    assert set(record.inputs) == {"reference_image", "audio"}
    assert record.job["reference_image"] == str(home / "ref.jpg") and record.job["audio"] == str(home / "speech.wav")


@pytest.mark.parametrize(("call", "keywords", "message"), [
    (lambda **kw: vexpress_cli.generate("r.jpg", "s.wav", "o.mp4", **kw), {"overwite": True},
     "generate() got an unknown keyword argument 'overwite'. Its keywords are its own arguments (reference_image, "),
    (lambda **kw: vexpress_cli.generate("r.jpg", "s.wav", "o.mp4", **kw), {"on_progress": print},
     "Did you mean 'progress'?"),
    (lambda **kw: vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).generate("r.jpg", "s.wav", "o.mp4", **kw),
     {"overwite": True}, "Generator.generate() got an unknown keyword argument 'overwite'."),
    (lambda **kw: vexpress_cli.Generator(model_dir=TINY_MODEL_DIR).plan("r.jpg", "s.wav", "o.mp4", **kw),
     {"settings": vexpress_cli.GenerationSettings()}, "Pass its values as keywords: plan(..., **settings.to_dict())."),
])
def test_a_misspelt_keyword_of_a_job_call_is_matched_against_its_own_arguments_too(call, keywords, message):
    """`overwite=True` was answered with the 30 setting names and no 'overwrite'; `on_progress` with 'postprocess'."""
    with pytest.raises(InputError) as raised:
        call(**keywords)
    assert message in str(raised.value)
    if "overwite" in keywords:
        assert "Did you mean 'overwrite'?" in str(raised.value)


def test_the_batch_callback_s_event_and_outcome_types_are_importable_from_the_package():
    """library.md describes BatchEvent and JobOutcome for typing an on_event callback; only the submodule had them."""
    from vexpress_cli import BatchEvent, JobOutcome
    from vexpress_cli.jobs.batch.summary import BatchEvent as event_class, JobOutcome as outcome_class

    assert (BatchEvent, JobOutcome) == (event_class, outcome_class)


@pytest.mark.parametrize("output", ["new/sub/talk.mp4", "new/sub/frames"])
def test_a_job_failing_before_its_output_is_written_leaves_no_folder_it_made_for_it(speech, tmp_path, output):
    """The video and frame writers created the output's folders before the job could fail, and left them empty."""
    def failing(stage, done, total):
        if stage == "denoise":
            raise RuntimeError("stopped by the caller")

    with pytest.raises(RuntimeError, match="stopped by the caller"):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / output, model_dir=TINY_MODEL_DIR, progress=failing,
                              **SMALL)
    assert list(tmp_path.iterdir()) == []
