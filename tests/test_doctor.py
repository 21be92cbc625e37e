"""``vexpress doctor``: healthy and broken installations, through the real CLI."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app

# Rows every run has, whatever the machine (the model-folder rows depend on the folder).
ALWAYS = {
    "python", "dependencies", "torch", "cuda", "mps", "device", "dtypes", "attention (SDPA)", "ffmpeg",
    "ffmpeg encoders", "config file", "model folder", "insightface", "onnxruntime", "face detector",
    "dlib backend", "strategies", "presets",
}
WITH_MODEL = {"model files", "model configs"}


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A complete tiny model folder: the golden one in tests/fixtures, else one written now."""
    if TINY_MODEL_DIR.is_dir():
        return TINY_MODEL_DIR
    from vexpress_cli.tiny.model import write_tiny_model

    root = tmp_path_factory.mktemp("tiny-model")
    write_tiny_model(root)
    return root


@pytest.fixture
def tiny_copy(tiny_source, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(tiny_source, tmp_path / "model"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """No user config, model folder or cache from the machine running the tests."""
    config = tmp_path / "config"
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(config))
    monkeypatch.delenv("VEXPRESS_MODEL_DIR", raising=False)
    monkeypatch.delenv("VEXPRESS_MODEL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "home" / "hf-cache"))
    monkeypatch.chdir(tmp_path)
    return config


def doctor(*arguments: str):
    result = CliRunner().invoke(app, ["doctor", *arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def rows_of(result) -> dict[str, dict]:
    rows = json.loads(result.stdout)
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), f"duplicate rows: {names}"
    for row in rows:
        assert set(row) == {"name", "status", "detail", "fix", "data"}
        assert row["status"] in ("ok", "warning", "failure")
        assert row["detail"]
        if row["status"] != "ok":
            assert row["fix"], f"{row['name']} has no fix"
    return {row["name"]: row for row in rows}


def failures(rows: dict[str, dict]) -> set[str]:
    return {name for name, row in rows.items() if row["status"] == "failure"}


def test_healthy_installation_passes(tiny_source):
    result = doctor("--json", "--deep", "--model-dir", str(tiny_source))
    assert result.exit_code == 0, result.output
    rows = rows_of(result)
    assert ALWAYS | WITH_MODEL | {"checkpoints"} <= rows.keys()
    assert not failures(rows)
    assert rows["model folder"]["data"]["found_by"] == "--model-dir"
    sizes = rows["model files"]["data"]["files"]
    assert sizes["v-express/denoising_unet.bin"] == (tiny_source / "v-express/denoising_unet.bin").stat().st_size
    assert rows["checkpoints"]["data"]["networks"] == {
        "reference_net": "ok", "denoising_unet": "ok", "v_kps_guider": "ok", "audio_projection": "ok"}
    assert rows["ffmpeg encoders"]["status"] == "ok"
    assert "fix_face" in rows["strategies"]["data"]["strategies"]
    assert rows["presets"]["data"]["presets"]["lip-sync"]["ok"] is True
    # The tiny model ships no face detector: a warning (dlib stands in), not a failure.
    assert rows["face detector"]["status"] == "warning"
    assert "vexpress models download" in rows["face detector"]["fix"]
    assert rows["dlib backend"]["status"] == "ok"


def test_table_output(tiny_source):
    result = doctor("--model-dir", str(tiny_source))
    assert result.exit_code == 0, result.output
    for name in ALWAYS | WITH_MODEL:
        assert name in result.stdout
    assert "0 failures" in result.stdout


def test_missing_checkpoint_is_a_failure(tiny_copy):
    (tiny_copy / "v-express" / "audio_projection.bin").unlink()
    result = doctor("--json", "--model-dir", str(tiny_copy))
    assert result.exit_code == 2
    rows = rows_of(result)
    assert failures(rows) == {"model files"}
    assert "audio_projection" in rows["model files"]["detail"]
    assert f"vexpress models download --to {tiny_copy}" in rows["model files"]["fix"]
    table = doctor("--model-dir", str(tiny_copy))
    assert table.exit_code == 2 and "1 failure:" in table.stdout


def test_wrong_shape_tensor_is_found_by_deep(tiny_copy):
    path = tiny_copy / "v-express" / "v_kps_guider.bin"
    state = torch.load(path, weights_only=True)
    key = next(name for name, tensor in state.items() if tensor.ndim == 4)
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    torch.save(state, path)

    shallow = doctor("--json", "--model-dir", str(tiny_copy))
    assert shallow.exit_code == 0, "without --deep only files are checked"
    deep = doctor("--json", "--deep", "--model-dir", str(tiny_copy))
    assert deep.exit_code == 2
    rows = rows_of(deep)
    assert failures(rows) == {"checkpoints"}
    assert rows["checkpoints"]["data"]["networks"]["v_kps_guider"] == "mismatch"
    assert key in rows["checkpoints"]["detail"] and "wrong-shape" in rows["checkpoints"]["detail"]


def test_empty_weight_file_is_a_failure(tiny_copy):
    (tiny_copy / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    rows = rows_of(doctor("--json", "--model-dir", str(tiny_copy)))
    assert "sd-vae-ft-mse/diffusion_pytorch_model.safetensors is empty (0 bytes)" in rows["model files"]["detail"]
    assert rows["model files"]["fix"].startswith("Delete the broken files")


def test_a_feature_extractor_config_at_another_rate_fails_the_model_configs_row_alone(tiny_copy):
    path = tiny_copy / "wav2vec2-base-960h" / "preprocessor_config.json"
    path.write_text(path.read_text().replace('"sampling_rate": 16000', '"sampling_rate": 8000'))
    result = doctor("--json", "--model-dir", str(tiny_copy))
    rows = rows_of(result)
    assert result.exit_code == 2 and failures(rows) == {"model configs"}
    assert rows["model configs"]["detail"].startswith(
        f"In the wav2vec2 feature extractor config at {path}, sampling_rate is int 8000. It must be 16000")
    assert rows["model files"]["status"] == "ok"


def cut_in_half(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_weight_files_cut_short_fail_without_deep(tiny_copy):
    cut_in_half(tiny_copy / "wav2vec2-base-960h" / "model.safetensors")
    cut_in_half(tiny_copy / "v-express" / "denoising_unet.bin")
    result = doctor("--json", "--model-dir", str(tiny_copy))
    rows = rows_of(result)
    assert result.exit_code == 2 and "model files" in failures(rows)
    detail = rows["model files"]["detail"]
    assert "wav2vec2-base-960h/model.safetensors is damaged (" in detail
    assert "v-express/denoising_unet.bin is damaged (a zip file without its end: cut short)" in detail


def test_model_names_the_folder_as_generate_s_model_does(tiny_source):
    rows = rows_of(doctor("--json", "--model", str(tiny_source)))
    assert rows["model folder"]["data"] == {"path": str(tiny_source), "found_by": "--model"}


def test_missing_model_folder(tmp_path):
    result = doctor("--json", "--model-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    rows = rows_of(result)
    assert failures(rows) == {"model folder"}
    assert "nowhere" in rows["model folder"]["detail"]
    assert "vexpress models download" in rows["model folder"]["fix"]
    assert rows["model folder"]["fix"].endswith("Until then, `vexpress doctor --smoke` proves the rest of the install "
                                                 "with a tiny model.")
    assert not WITH_MODEL & rows.keys()

    assert "checkpoints" not in rows  # not asked for
    deep = rows_of(doctor("--json", "--deep", "--model-dir", str(tmp_path / "nowhere")))
    assert deep["checkpoints"]["status"] == "warning"  # --deep says it read nothing, rather than staying silent
    assert deep["checkpoints"]["detail"].startswith("not checked: no model folder")
    assert "--deep then reads every checkpoint tensor" in deep["checkpoints"]["fix"]

    # Nothing configured at all: the default ./model_ckpts is reported the same way.
    default = rows_of(doctor("--json"))
    assert "model_ckpts" in default["model folder"]["detail"]
    assert "vexpress models download" in default["model folder"]["fix"]


def test_face_detector_row_says_the_detector_is_looked_for_in_the_model_folder(tiny_source):
    """With no model folder the row named ./model_ckpts/insightface_models, which the lookup never uses."""
    without = rows_of(doctor("--json"))["face detector"]
    assert without["status"] == "warning"
    assert "<model folder>/insightface_models/models/buffalo_l/det_10g.onnx" in without["detail"]
    assert "no model folder was found" in without["detail"]
    assert "model_ckpts/insightface_models" not in without["detail"]

    found = rows_of(doctor("--json", "--model-dir", str(tiny_source)))["face detector"]
    assert f"{tiny_source / 'insightface_models/models/buffalo_l/det_10g.onnx'}" in found["detail"]


def test_model_folder_from_config_file(tiny_source, isolated):
    isolated.mkdir()
    (isolated / "config.toml").write_text(f'model_dir = "{tiny_source}"\n')
    rows = rows_of(doctor("--json"))
    assert rows["config file"]["status"] == "ok"
    assert rows["model folder"]["status"] == "ok"
    assert rows["model folder"]["data"]["found_by"].startswith("model_dir in ")


def test_broken_config_file(isolated):
    isolated.mkdir()
    (isolated / "config.toml").write_text("model_dri = 'x'\n")
    result = doctor("--json")
    assert result.exit_code == 2
    rows = rows_of(result)
    assert rows["config file"]["status"] == "failure"
    assert "model_dri" in rows["config file"]["detail"] and "model_dir" in rows["config file"]["fix"]


def test_a_config_file_that_is_a_folder_fails_its_row_as_generate_refuses_it(isolated):
    """doctor said "none at ... (optional)" for a config.toml folder (or FIFO, or dangling link) that generate
    refuses."""
    (isolated / "config.toml").mkdir(parents=True)
    rows = rows_of(doctor("--json"))
    assert rows["config file"]["status"] == "failure"
    assert "not a file but a folder" in rows["config file"]["detail"]


def test_broken_user_preset_is_named(tiny_source, isolated):
    presets = isolated / "presets"
    presets.mkdir(parents=True)
    (presets / "calm.toml").write_text('description = "fine"\n[generate]\nguidance_scale = 3.0\n')
    (presets / "wobbly.toml").write_text('[generate]\naudio_attention_weight = "loud"\n')
    result = doctor("--json", "--model-dir", str(tiny_source))
    assert result.exit_code == 2
    rows = rows_of(result)
    assert failures(rows) == {"presets"}
    assert str(presets / "wobbly.toml") in rows["presets"]["detail"]
    assert "calm.toml" not in rows["presets"]["detail"]
    assert str(presets / "wobbly.toml") in rows["presets"]["fix"]
    assert rows["presets"]["data"]["presets"]["calm"] == {"source": "user", "path": str(presets / "calm.toml"),
                                                          "ok": True}


def test_a_user_preset_naming_a_strategy_that_is_not_installed_fails_the_presets_row(tiny_source, isolated):
    presets = isolated / "presets"
    presets.mkdir(parents=True)
    (presets / "moonwalk.toml").write_text('[generate]\nretarget_strategy = "moonwalk"\n')
    result = doctor("--json", "--model-dir", str(tiny_source))
    rows = rows_of(result)
    assert result.exit_code == 2 and failures(rows) == {"presets"}
    assert rows["presets"]["detail"] == (f"user preset 'moonwalk' ({presets / 'moonwalk.toml'}) names the retarget "
                                         "strategy 'moonwalk', which is not installed")
    assert rows["presets"]["fix"].startswith("Install the plugin that provides the strategy")
    assert rows["presets"]["data"]["presets"]["moonwalk"]["ok"] is False


def test_broken_plugin_is_named(tiny_source, tmp_path, monkeypatch):
    from vexpress_cli.plugins import get_plugin_manager

    dist_info = tmp_path / "site" / "broken_plugin-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[vexpress]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    get_plugin_manager.cache_clear()
    try:
        result = doctor("--json", "--model-dir", str(tiny_source))
    finally:
        get_plugin_manager.cache_clear()
    assert result.exit_code == 2
    rows = rows_of(result)
    assert failures(rows) == {"strategies"}
    assert "'broken' (no_such_module_anywhere, from broken-plugin)" in rows["strategies"]["detail"]
    assert "pip uninstall" in rows["strategies"]["fix"]


def test_ffmpeg_without_the_encoders(tiny_source, tmp_path, monkeypatch):
    """A real (fake) ffmpeg binary whose encoder list lacks libx264."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *-version*) echo "ffmpeg version 6.1-test Copyright (c) the FFmpeg developers";;\n'
        '  *-encoders*) printf "Encoders:\\n V..... = Video\\n ------\\n V....D mpeg4  MPEG-4 part 2\\n'
        ' A....D aac  AAC (Advanced Audio Coding)\\n";;\n'
        "esac\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr("vexpress_cli.media.ffmpeg.ffmpeg_exe", lambda: str(fake))
    result = doctor("--json", "--model-dir", str(tiny_source))
    assert result.exit_code == 2
    rows = rows_of(result)
    assert rows["ffmpeg"]["data"] == {"path": str(fake), "version": "6.1-test"}
    assert rows["ffmpeg encoders"]["status"] == "failure"
    assert "libx264" in rows["ffmpeg encoders"]["detail"] and "aac" not in rows["ffmpeg encoders"]["detail"]
    assert "imageio-ffmpeg" in rows["ffmpeg encoders"]["fix"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_fails_and_skips_the_smoke_test(tiny_source):
    result = doctor("--json", "--device", "cuda", "--smoke", "--model-dir", str(tiny_source))
    assert result.exit_code == 2
    rows = rows_of(result)
    assert failures(rows) == {"device", "smoke test"}
    assert "--device cpu" in rows["device"]["fix"]
    assert "dtypes" not in rows


def test_a_crashing_check_becomes_a_failure_row(tiny_source, monkeypatch):
    def explode():
        raise RuntimeError("simulated breakage")

    monkeypatch.setattr("vexpress_cli.settings.presets.list_presets", explode)
    rows = rows_of(doctor("--json", "--model-dir", str(tiny_source)))
    assert rows["presets"]["status"] == "failure"
    assert "RuntimeError: simulated breakage" in rows["presets"]["detail"]
    assert rows["strategies"]["status"] == "ok"


def test_smoke_generation_on_cpu(tiny_source, tmp_path):
    result = doctor("--json", "--smoke", "--device", "cpu", "--model-dir", str(tiny_source))
    assert result.exit_code == 0, result.output
    smoke = rows_of(result)["smoke test"]
    assert smoke["status"] == "ok", smoke
    assert smoke["data"]["frames"] == 30  # round(1 s x 30 fps)
    assert smoke["data"]["video_codec"] == "h264" and smoke["data"]["audio_codec"] == "aac"
    assert smoke["data"]["device"] == "cpu" and smoke["data"]["dtype"] == "float32"
    assert smoke["data"]["seconds"] > 0
    # The tiny model went to the user cache (HOME is the test's), ready for the next run.
    assert (tmp_path / "home" / ".cache" / "vexpress" / "tiny-model" / ".vexpress-tiny-model").is_file()


def test_doctor_checks_read_as_python_for_the_library_and_as_flags_in_the_cli(monkeypatch):
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.errors import spell_parameters
    from vexpress_cli.jobs.doctor.device import device_checks
    from vexpress_cli.jobs.doctor.report import DoctorContext, DoctorOptions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    chosen = device_checks(DoctorContext(DoctorOptions(device="auto")))[0]
    assert chosen.detail == 'cpu (chosen by device="auto")'
    assert spell_parameters(chosen.detail, flag_of) == "cpu (chosen by --device auto)"
    refused = device_checks(DoctorContext(DoctorOptions(device="cuda")))[0]
    assert refused.fix == 'Use device="cpu", or install a CUDA build of torch.'
    assert spell_parameters(refused.fix, flag_of) == "Use --device cpu, or install a CUDA build of torch."
    assert "\\u001e" not in json.dumps([chosen.to_dict(), refused.to_dict()])  # how JSON writes \x1e


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_row_checks_the_user_config_s_device_as_generate_would_use_it(tiny_source, isolated):
    """doctor said "cpu (chosen by --device auto)" while generate then failed on the config's device = "cuda"."""
    isolated.mkdir()
    (isolated / "config.toml").write_text('[generate]\ndevice = "cuda"\n')
    result = doctor("--json", "--model-dir", str(tiny_source))
    rows = rows_of(result)
    assert result.exit_code == 2 and rows["device"]["status"] == "failure"
    detail = rows["device"]["detail"]
    assert "CUDA was asked for" in detail
    assert f'device = "cuda" under [generate] in {isolated / "config.toml"}' in detail
    assert "Change or remove that line" in rows["device"]["fix"]
    # --device still wins over the config, as it does for generate
    assert rows_of(doctor("--json", "--device", "cpu", "--model-dir", str(tiny_source)))["device"]["status"] == "ok"


def test_dtype_row_checks_the_user_config_s_dtype_on_the_device(tiny_source, isolated):
    isolated.mkdir()
    (isolated / "config.toml").write_text('[generate]\ndevice = "cpu"\ndtype = "fp16"\n')
    rows = rows_of(doctor("--json", "--model-dir", str(tiny_source)))
    assert rows["device"]["detail"] == 'cpu (device = "cpu" in the user config\'s [generate])'
    assert rows["dtype"]["status"] == "warning"
    assert rows["dtype"]["detail"].startswith('dtype = "fp16" in the user config\'s [generate]: float16 on cpu')
    assert "--dtype" not in rows["dtype"]["fix"] and 'dtype = "auto"' in rows["dtype"]["fix"]


def test_a_typo_in_the_config_s_generate_table_is_one_row_and_the_model_folder_is_still_checked(tiny_source,
                                                                                                 isolated):
    isolated.mkdir()
    (isolated / "config.toml").write_text(f'model_dir = "{tiny_source}"\n[generate]\nnum_inference_step = 3\n')
    rows = rows_of(doctor("--json"))
    assert failures(rows) == {"config file"}
    assert [name for name, row in rows.items() if "num_inference_step" in row["detail"]] == ["config file"]
    assert rows["model folder"]["status"] == "ok" and rows["model files"]["status"] == "ok"
    assert {"compile", "window batch"} <= rows.keys()


def test_a_config_that_does_not_load_is_named_once_and_the_model_folder_row_says_it_was_not_checked(isolated):
    isolated.mkdir()
    (isolated / "config.toml").write_text("model_dri = 'x'\n")
    rows = rows_of(doctor("--json"))
    assert [name for name, row in rows.items() if "model_dri" in row["detail"]] == ["config file"]
    assert rows["model folder"]["status"] == "warning"
    assert rows["model folder"]["detail"].startswith("not checked: the config file does not load")


def test_compile_turned_on_for_the_cpu_is_a_warning_with_what_generate_warns(tiny_source, isolated, monkeypatch):
    """doctor said "ok" where every generate warned that compiling on the CPU costs minutes and gains nothing."""
    from vexpress_cli.engine import compile as compile_module

    monkeypatch.setattr(compile_module.shutil, "which", lambda name: "/usr/bin/g++" if "g++" in name else None)
    isolated.mkdir()
    (isolated / "config.toml").write_text(f'model_dir = "{tiny_source}"\n[generate]\ncompile = true\ndevice = "cpu"\n')
    row = rows_of(doctor("--json"))["compile"]
    assert row["status"] == "warning" and row["data"]["on"] is True
    assert "--compile on the CPU first compiles the denoising UNet for minutes" in row["detail"]
    assert row["fix"] == "Set compile = false in config.toml's [generate]."
