"""--scheduler and --offload (issue 13 item 3): schema settings that presets hold, reaching the pipeline
through the generate job; the fast preset."""

from __future__ import annotations

import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from typer.testing import CliRunner

import vexpress_cli
from vexpress_cli.cli.app import app
from vexpress_cli.engine.pipeline import VExpressPipeline
from vexpress_cli.engine.scheduling import SCHEDULERS
from vexpress_cli.settings.presets import load_preset
from vexpress_cli.settings.schema import SETTINGS

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

AOC = SAMPLES_DIR / "AOC"
SMALL = {"width": 64, "height": 64, "num_inference_steps": 2, "reference_kps": "22,26;42,26;32,38"}


@pytest.fixture
def denoised_with(monkeypatch):
    """Per denoising run: the scheduler's class and whether offload hooks were on the networks."""
    runs = []
    loop = VExpressPipeline.denoising_loop

    def recording(self, *args, **kwargs):
        hooked = any(hasattr(network, "_hf_hook") for network in self.networks().values())
        runs.append((type(self.scheduler), hooked))
        return loop(self, *args, **kwargs)

    monkeypatch.setattr(VExpressPipeline, "denoising_loop", recording)
    return runs


def test_schema_offers_exactly_the_engine_samplers_with_ddim_by_default():
    assert SETTINGS["scheduler"].choices == tuple(SCHEDULERS)
    assert SETTINGS["scheduler"].default == "ddim"
    assert SETTINGS["offload"].choices == ("none", "model", "sequential")
    assert SETTINGS["offload"].default == "none"


def test_generate_help_says_only_ddim_reproduces_the_original():
    result = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    text = " ".join(result.output.split())
    assert "--scheduler" in text and "--offload" in text
    assert "Only ddim reproduces the original" in text


@pytest.mark.slow
def test_jobs_use_the_asked_scheduler_and_offload_and_reload_only_when_offload_changes(speech, tmp_path,
                                                                                       denoised_with, monkeypatch):
    loads = []
    load = VExpressPipeline.from_pretrained.__func__
    monkeypatch.setattr(VExpressPipeline, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: loads.append(args) or load(cls, *args, **kwargs)))
    with vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu") as generator:
        generator.generate(AOC / "ref.jpg", speech, tmp_path / "a.mp4", **SMALL)
        generator.generate(AOC / "ref.jpg", speech, tmp_path / "b.mp4", scheduler="dpm++", **SMALL)
        generator.generate(AOC / "ref.jpg", speech, tmp_path / "c.mp4", scheduler="unipc", offload="model", **SMALL)
        generator.generate(AOC / "ref.jpg", speech, tmp_path / "d.mp4", scheduler="ddim", offload="model", **SMALL)
    assert denoised_with == [(DDIMScheduler, False), (DPMSolverMultistepScheduler, False),
                             (UniPCMultistepScheduler, True), (DDIMScheduler, True)]
    assert len(loads) == 2


@pytest.mark.slow
def test_a_preset_holds_the_scheduler_and_the_flag_wins(speech, tmp_path, denoised_with):
    preset = tmp_path / "quick.toml"
    preset.write_text('description = "test"\n[generate]\nscheduler = "unipc"\nnum_inference_steps = 2\n')
    vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "a.mp4", model_dir=TINY_MODEL_DIR, device="cpu",
                          preset=preset, **{k: v for k, v in SMALL.items() if k != "num_inference_steps"})
    result = CliRunner().invoke(app, ["generate", "-i", str(AOC / "ref.jpg"), "-a", str(speech),
                                      "-o", str(tmp_path / "b.mp4"), "--model-dir", str(TINY_MODEL_DIR),
                                      "--preset", str(preset), "--scheduler", "euler", "--width", "64",
                                      "--height", "64", "--reference-kps", SMALL["reference_kps"], "--quiet"])
    assert result.exit_code == 0, result.output
    assert [scheduler.__name__ for scheduler, _ in denoised_with] == ["UniPCMultistepScheduler",
                                                                      "EulerDiscreteScheduler"]


def test_unknown_scheduler_is_refused_with_the_choices(speech, tmp_path):
    with pytest.raises(vexpress_cli.VExpressError, match="not one of: ddim, dpm\\+\\+, euler, unipc"):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "x.mp4", model_dir=TINY_MODEL_DIR,
                              scheduler="lms")


def test_fast_preset_is_dpm_solver_with_fewer_steps():
    fast = load_preset("fast").values
    assert fast["scheduler"] == "dpm++"
    assert fast["num_inference_steps"] < SETTINGS["num_inference_steps"].default


@pytest.mark.parametrize("other", ["dpm++", "euler", "unipc"])
def test_switching_to_another_sampler_and_back_gives_the_original_ddim(other):
    from vexpress_cli.engine.scheduling import default_scheduler, make_scheduler

    there_and_back = make_scheduler("ddim", make_scheduler(other, default_scheduler().config).config)
    original = default_scheduler()
    public = {key: value for key, value in original.config.items() if not key.startswith("_")}
    assert {key: there_and_back.config[key] for key in public} == public
