"""`compile` (engine/compile.py): the compiled denoising UNet gives the eager numbers within float noise on
the CPU, and where the backend is missing it is refused in one clear paragraph."""

from __future__ import annotations

import json

import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine import compile as compile_module
from vexpress_cli.engine.compile import compile_cache_dir, is_compiled, set_unet_compiled
from vexpress_cli.engine.pipeline import windows_progress
from vexpress_cli.errors import InputError

from conftest import GOLDEN_DIR, TINY_MODEL_DIR

pytestmark = pytest.mark.usefixtures("like_the_real_command")


@pytest.fixture
def pipe():
    return VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)


def test_compile_is_refused_clearly_without_a_cpp_compiler(pipe, monkeypatch):
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    with pytest.raises(InputError) as raised:
        set_unet_compiled(pipe, True)
    message = raised.value.render()
    assert "compile" in message and "C++ compiler" in message
    assert not is_compiled(pipe)


def test_the_tiny_model_and_the_compile_cache_share_the_xdg_cache_folder(monkeypatch, tmp_path):
    from vexpress_cli.tiny.model import default_tiny_model_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert (default_tiny_model_dir(), compile_cache_dir()) == (tmp_path / "xdg" / "vexpress" / "tiny-model",
                                                              tmp_path / "xdg" / "vexpress" / "torch-compile")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_tiny_model_dir() == tmp_path / "home" / ".cache" / "vexpress" / "tiny-model"


def test_the_compile_cache_outlives_the_run_unless_the_user_chose_one(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "vexpress" / "torch-compile"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"


@pytest.mark.slow
def test_compiled_unet_gives_the_eager_latents_within_float_noise(pipe):
    """Minutes the first time on a machine (inductor builds C++ kernels); the cache makes later runs quicker."""
    golden = load_file(str(GOLDEN_DIR / "golden.safetensors"))
    params = {**json.loads((GOLDEN_DIR / "pipeline_params.json").read_text()), "num_inference_steps": 1}
    job = dict(reference_image=PIL.Image.open(GOLDEN_DIR / "ref.png").convert("RGB"),
               audio_waveform=golden["audio_waveform"], kps_images=golden["kps_sequence"].numpy(), **params)
    eager_stages, compiled_stages = [], []
    eager = pipe.denoise(generator=torch.manual_seed(4), progress=lambda *event: eager_stages.append(event), **job)
    set_unet_compiled(pipe, True)
    try:
        assert is_compiled(pipe)
        compiled = pipe.denoise(generator=torch.manual_seed(4), progress=lambda *event: compiled_stages.append(event),
                                **job)
    finally:
        set_unet_compiled(pipe, False)
    assert not is_compiled(pipe)
    assert (compiled - eager).abs().max().item() <= 1e-4
    # The compiled run's first UNet call is shown as compiling, just before the first window is done.
    first_window = compiled_stages.index(("denoise", 1, compiled_stages[-1][2]))
    assert compiled_stages[first_window - 2:first_window] == [("compile", 0, 1), ("compile", 1, 1)]
    assert [event for event in compiled_stages if event[0] != "compile"] == eager_stages


def test_a_compiled_unets_first_window_is_reported_as_compiling_then_windows_count_on():
    events = []
    window_done = windows_progress(lambda *event: events.append(event), total=3, compiling=True)
    assert events == [("compile", 0, 1)]  # before the first call, which compiles
    for done in (1, 2, 3):
        window_done(done)
    assert events == [("compile", 0, 1), ("compile", 1, 1), ("denoise", 1, 3), ("denoise", 2, 3), ("denoise", 3, 3)]
    events.clear()
    window_done = windows_progress(lambda *event: events.append(event), total=2, compiling=False)
    window_done(1)
    assert events == [("denoise", 1, 2)]


@pytest.mark.usefixtures("no_user_config")
@pytest.mark.slow
def test_generate_refuses_compile_in_one_paragraph_and_writes_nothing(monkeypatch, tmp_path, speech):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app
    from conftest import SAMPLES_DIR

    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    output = tmp_path / "talk.mp4"
    result = CliRunner().invoke(app, ["generate", "-i", str(SAMPLES_DIR / "tys" / "ref.jpg"), "-a", str(speech),
                                      "-o", str(output), "--width", "64", "--height", "64", "--num_inference_steps",
                                      "1", "--reference-kps", "22,26;42,26;32,38", "--model-dir", str(TINY_MODEL_DIR),
                                      "--device", "cpu", "--compile", "--quiet"])
    message = " ".join(result.output.split())  # the paragraph is wrapped to the terminal
    assert result.exit_code == 2
    assert "--compile cannot be used on cpu" in message and "C++ compiler" in message
    assert "Traceback" not in message
    assert list(tmp_path.iterdir()) == []


def test_compile_on_the_cpu_is_planned_with_a_warning_that_it_is_slow_there(tmp_path, speech):
    """It ran past 300 s on a 0.3 s clip without a word; the warning says what it costs before it starts."""
    from vexpress_cli import Generator
    from conftest import SAMPLES_DIR

    generator = Generator(TINY_MODEL_DIR, device="cpu")
    job = (SAMPLES_DIR / "tys" / "ref.jpg", speech, tmp_path / "talk.mp4")
    small = {"width": 64, "height": 64, "reference_kps": "22,26;42,26;32,38"}
    compiled = [str(warning) for warning in generator.plan(*job, compile=True, **small).warnings]
    assert [warning for warning in compiled if "compile" in warning] == [
        "compile on the CPU first compiles the denoising UNet for minutes (373 s for the tiny test model on two cores "
        "the first time, 46 s once cached; longer for the real one) and is not faster there: leave it off on the "
        "CPU."]
    assert not any("compile" in str(warning) for warning in generator.plan(*job, **small).warnings)


@pytest.mark.usefixtures("no_user_config")
def test_compile_set_in_the_config_and_impossible_here_is_refused_at_plan_naming_the_config_line(
        monkeypatch, tmp_path, speech):
    """It was refused as "--compile cannot be used ... Run without --compile", a flag nobody typed, and only after
    the networks had loaded."""
    import os

    from vexpress_cli import Generator
    from vexpress_cli.settings.user_config import config_file
    from conftest import SAMPLES_DIR

    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    os.makedirs(config_file().parent)
    config_file().write_text("[generate]\ncompile = true\n")
    generator = Generator(TINY_MODEL_DIR, device="cpu")
    with pytest.raises(InputError) as raised:
        generator.plan(SAMPLES_DIR / "tys" / "ref.jpg", speech, tmp_path / "talk.mp4", width=64, height=64,
                       reference_kps="22,26;42,26;32,38")
    assert raised.value.what.raw == "\x1ecompile\x1e cannot be used on cpu."
    assert f"It was set in the user config: compile = true under [generate] in {config_file()}." in str(raised.value)
    assert not generator.loaded and not (tmp_path / "talk.mp4").exists()
