"""Model folder loading, key checks and the architecture at full size."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine.architecture import Architecture
from vexpress_cli.errors import ModelFolderError
from vexpress_cli.engine.checkpoints import compare_keys, released_tensors
from vexpress_cli.jobs.inspect import inspect_model_folder

from conftest import FIXTURES_DIR, TINY_MODEL_DIR

MANIFEST = json.loads((FIXTURES_DIR / "golden" / "vexpress_state_dict_manifest.json").read_text())
SD15_CONFIG = json.loads((FIXTURES_DIR / "golden" / "sd15_unet_config.json").read_text())


@pytest.fixture(scope="module")
def full_size():
    return Architecture.from_configs(SD15_CONFIG)


@pytest.mark.parametrize("network", ["reference_net", "denoising_unet", "v_kps_guider", "audio_projection"])
def test_full_size_networks_match_the_released_manifest(full_size, network):
    expected = {key: tuple(shape) for key, shape in MANIFEST[network].items()}
    ours = released_tensors(full_size, network)
    assert ours == expected


def test_inspect_counts_tensors_from_the_unet_config_alone(tmp_path):
    (tmp_path / "stable-diffusion-v1-5" / "unet").mkdir(parents=True)
    shutil.copy(FIXTURES_DIR / "golden" / "sd15_unet_config.json", tmp_path / "stable-diffusion-v1-5/unet/config.json")
    report = inspect_model_folder(tmp_path)
    counts = {network.name: network.expected_tensors for network in report.networks}
    assert counts == {"reference_net": 684, "denoising_unet": 1386, "v_kps_guider": 16, "audio_projection": 52}
    assert all(network.status == "absent" for network in report.networks)
    assert not report.complete


def test_tiny_model_folder_is_complete():
    report = inspect_model_folder(TINY_MODEL_DIR)
    assert report.complete, report.to_dict()


@pytest.fixture
def tiny_copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR, target)
    return target


def load(folder):
    return VExpressPipeline.from_pretrained(folder, device="cpu", dtype=torch.float32)


def test_missing_checkpoint_is_named(tiny_copy):
    (tiny_copy / "v-express" / "v_kps_guider.bin").unlink()
    with pytest.raises(ModelFolderError, match="v-express/v_kps_guider.bin"):
        load(tiny_copy)


def test_denoising_unet_with_motion_modules_inside_needs_no_motion_module_file(tiny_copy):
    express = tiny_copy / "v-express"
    merged = torch.load(express / "denoising_unet.bin", weights_only=True)
    merged.update(torch.load(express / "motion_module.bin", weights_only=True))
    torch.save(merged, express / "denoising_unet.bin")
    (express / "motion_module.bin").unlink()
    loaded = load(tiny_copy).denoising_unet.state_dict()
    assert any(".motion_modules." in name for name in merged)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in merged.items())


def test_missing_motion_modules_are_reported(tiny_copy):
    (tiny_copy / "v-express" / "motion_module.bin").unlink()
    with pytest.raises(ModelFolderError, match="motion_module.bin"):
        load(tiny_copy)


def test_wrong_keys_are_reported_by_network(tiny_copy):
    path = tiny_copy / "v-express" / "audio_projection.bin"
    state = torch.load(path, weights_only=True)
    state["proj_in.weight"] = torch.zeros(3, 3)
    state["surprise.weight"] = torch.zeros(1)
    del state["norm_out.bias"]
    torch.save(state, path)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    message = str(error.value)
    assert "audio_projection" in message
    assert "norm_out.bias" in message and "surprise.weight" in message and "proj_in.weight expects" in message


def test_safetensors_checkpoints_load_the_same(tiny_copy):
    express = tiny_copy / "v-express"
    state = torch.load(express / "v_kps_guider.bin", weights_only=True)
    save_file(state, str(express / "v_kps_guider.safetensors"))
    (express / "v_kps_guider.bin").unlink()
    guider = load(tiny_copy).v_kps_guider
    assert torch.equal(guider.conv_out.weight, state["conv_out.weight"])


def test_position_tables_are_recomputed_when_absent(tiny_copy):
    path = tiny_copy / "v-express" / "motion_module.bin"
    state = torch.load(path, weights_only=True)
    key = next(k for k in state if k.endswith("pos_encoder.pe"))
    stored = state[key].clone()
    torch.save({k: v for k, v in state.items() if not k.endswith("pos_encoder.pe")}, path)
    unet = load(tiny_copy).denoising_unet
    assert torch.allclose(unet.state_dict()[key], stored, atol=1e-6)


class Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_a_checkpoint_holding_code_is_refused_and_not_run(tiny_copy, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with open(tiny_copy / "v-express" / "v_kps_guider.bin", "wb") as handle:
        pickle.dump({"conv_in.weight": Exploit()}, handle)
    with pytest.raises(ModelFolderError, match="never as arbitrary Python objects"):
        load(tiny_copy)
    assert not (tmp_path / "PWNED").exists()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_compare_keys_tolerates_only_the_known_gaps(full_size):
    expected = full_size.expected_tensors("reference_net")
    found = {k: v for k, v in expected.items() if not k.startswith("conv_norm_out")}
    assert compare_keys("reference_net", expected, found).ok
    del found["conv_in.weight"]
    assert compare_keys("reference_net", expected, found).missing == ["conv_in.weight"]


def test_a_reference_net_with_its_final_norm_is_fine_too(tiny_copy):
    path = tiny_copy / "v-express" / "reference_net.bin"
    state = torch.load(path, weights_only=True)
    channels = state["conv_in.weight"].shape[0]
    state["conv_norm_out.weight"] = torch.ones(channels)
    state["conv_norm_out.bias"] = torch.zeros(channels)
    torch.save(state, path)
    report = inspect_model_folder(tiny_copy)
    assert {network.status for network in report.networks} == {"ok"}
    loaded = load(tiny_copy).reference_net.state_dict()
    assert torch.equal(loaded["conv_in.weight"], state["conv_in.weight"])  # loaded, the extra norm ignored


def test_missing_vae_weights_are_listed_before_loading(tiny_copy):
    (tiny_copy / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors").unlink()
    (tiny_copy / "v-express" / "audio_projection.bin").unlink()
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert "sd-vae-ft-mse/diffusion_pytorch_model" in str(error.value)
    assert "v-express/audio_projection.bin" in str(error.value)


def test_damaged_vae_config_is_a_clear_error(tiny_copy):
    (tiny_copy / "sd-vae-ft-mse" / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="Cannot read the VAE config at .* The file is not valid JSON"):
        load(tiny_copy)


def test_a_half_downloaded_folder_still_shows_what_it_lacks(tiny_copy):
    shutil.rmtree(tiny_copy / "stable-diffusion-v1-5")
    (tiny_copy / "wav2vec2-base-960h" / "model.safetensors").unlink()
    report = inspect_model_folder(tiny_copy)
    assert not report.complete and report.networks == [] and "UNet config" in report.networks_error
    missing = {component.name for component in report.components if not component.present}
    assert "UNet config" in missing and "wav2vec2 weights" in missing


TORCH_ADVICE = ("weights_only", "trusted source", "_use_new_zipfile_serialization", "please torch.save",
                "file an issue")


def assert_clean_model_folder_error(error: ModelFolderError, *phrases: str) -> None:
    message = str(error)
    for advice in TORCH_ADVICE:
        assert advice not in message, message
    for phrase in phrases:
        assert phrase in message, message
    assert "vexpress models download" in error.fix


def test_a_garbage_checkpoint_is_a_clean_model_folder_error(tiny_copy):
    """Issue 8 item 9: a .bin of random bytes made torch say "mmap can only be used with files saved with
    torch.save(_use_new_zipfile_serialization=True), please torch.save your checkpoint..." inside our message."""
    path = tiny_copy / "v-express" / "audio_projection.bin"
    path.unlink()
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert_clean_model_folder_error(error.value, f"Cannot read the checkpoint {path}", "not a torch checkpoint")


def test_a_malicious_checkpoint_message_gives_no_unsafe_advice(tiny_copy, monkeypatch, tmp_path):
    """Issue 8 item 9: torch's "Re-running torch.load with weights_only set to False will likely succeed"
    is never repeated; the message names the refused object instead."""
    monkeypatch.chdir(tmp_path)
    path = tiny_copy / "v-express" / "v_kps_guider.bin"
    path.unlink()
    torch.save({"conv_in.weight": Exploit()}, path)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    # torch 2.5 names it builtins.exec, later releases exec.
    assert_clean_model_folder_error(error.value, "holds the Python object ", "exec, not only tensors")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("content", ["malicious", "garbage"])
def test_a_broken_wav2vec2_bin_is_a_clean_model_folder_error(tiny_copy, monkeypatch, tmp_path, content):
    """Issue 8 item 9: a corrupt or malicious wav2vec2-base-960h/pytorch_model.bin made transformers raise an
    UnpicklingError advising weights_only=False. pretrained_load_errors (around the pipeline's
    from_pretrained calls) turns it into a ModelFolderError without that advice."""
    from transformers import Wav2Vec2Model

    from vexpress_cli.engine.checkpoints import pretrained_load_errors
    from vexpress_cli.engine.model_folder import ModelFolder

    monkeypatch.chdir(tmp_path)
    folder = ModelFolder(tiny_copy)
    (folder.audio_encoder / "model.safetensors").unlink()
    weights = folder.audio_encoder / "pytorch_model.bin"
    if content == "malicious":
        torch.save({"masked_spec_embed": Exploit()}, weights)
    else:
        weights.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    with pytest.raises(ModelFolderError) as error:
        with pretrained_load_errors(folder):
            Wav2Vec2Model.from_pretrained(folder.audio_encoder)
    assert_clean_model_folder_error(error.value, f"Cannot load the VAE or the wav2vec2 audio encoder from {tiny_copy}")
    assert not (tmp_path / "PWNED").exists()


def edit_json(path, change) -> None:
    path.write_text(change(json.loads(path.read_text())) if callable(change) else change)


@pytest.mark.parametrize("config, change, phrases", [
    ("stable-diffusion-v1-5/unet/config.json", "[1, 2, 3]", ["is a JSON list, not an object"]),
    ("stable-diffusion-v1-5/unet/config.json", lambda c: json.dumps({**c, "norm_eps": float("nan")}),
     ["it holds NaN, which is no number a network can be built with"]),
    ("stable-diffusion-v1-5/unet/config.json", lambda c: json.dumps({**c, "block_out_channels": "lots"}),
     ["configs do not describe networks vexpress can build", "holds a value of the wrong type or size"]),
    ("v-express/config.json", lambda c: json.dumps({**c, "audio_projection": {"dim": "wide"}}),
     ["configs do not describe networks vexpress can build"]),
], ids=["list", "nan", "wrong type", "wrong type in the overrides"])
def test_a_config_of_the_wrong_type_or_with_nan_is_a_model_folder_error(tiny_copy, config, change, phrases):
    edit_json(tiny_copy / config, change)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    for phrase in phrases:
        assert phrase in str(error.value)
    assert "vexpress models download" in error.value.fix


def test_a_checkpoint_of_whole_numbers_is_a_model_folder_error(tiny_copy):
    path = tiny_copy / "v-express" / "v_kps_guider.bin"
    torch.save({key: tensor.long() for key, tensor in torch.load(path, weights_only=True).items()}, path)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert "The checkpoint of the v_kps_guider" in error.value.what and "torch.int64" in error.value.what


def test_inspect_finds_an_empty_or_cut_short_safetensors_component(tiny_copy):
    (tiny_copy / "wav2vec2-base-960h" / "model.safetensors").write_bytes(b"")
    vae = tiny_copy / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"
    vae.write_bytes(vae.read_bytes()[:-100])
    report = inspect_model_folder(tiny_copy)
    problems = {component.name: component.problem for component in report.components if component.problem}
    assert len(problems) == 2 and not report.complete
    assert "empty (0 bytes)" in problems.values()
    assert any(problem.startswith("damaged (") for problem in problems.values())


def test_a_cut_short_checkpoint_is_named_truncated_without_torchs_paragraph(tiny_copy):
    path = tiny_copy / "v-express" / "audio_projection.bin"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert "it is truncated, its end missing: a copy or download cut short" in error.value.why
    assert "miniz" not in str(error.value)


def test_a_folder_a_dangling_link_or_a_device_in_a_files_place_is_named(tiny_copy):
    express = tiny_copy / "v-express"
    (express / "reference_net.bin").unlink()
    (express / "reference_net.bin").mkdir()
    (express / "v_kps_guider.bin").unlink()
    (express / "v_kps_guider.bin").symlink_to("v_kps_guider.bin")  # a link to itself: a loop
    (express / "audio_projection.bin").unlink()
    (express / "audio_projection.bin").symlink_to("/dev/zero")
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert error.value.what == (f"The model folder {tiny_copy} lacks v-express/reference_net.bin (a folder is in its "
                                "place), v-express/v_kps_guider.bin (a link that leads nowhere is in its place), "
                                "v-express/audio_projection.bin (a character device is in its place).")


@pytest.mark.parametrize("config, change, phrase", [
    ("sd-vae-ft-mse/config.json", "[1]", "The VAE config at"),
    ("sd-vae-ft-mse/config.json", lambda c: json.dumps({**c, "block_out_channels": "lots"}),
     "A config.json there holds a value of the wrong type"),
], ids=["vae list", "vae wrong type"])
def test_a_broken_vae_config_is_a_model_folder_error(tiny_copy, config, change, phrase):
    edit_json(tiny_copy / config, change)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert phrase in str(error.value) and "vexpress models download" in error.value.fix


def test_inspect_marks_a_damaged_checkpoint_and_still_reports_the_other_networks(tiny_copy):
    path = tiny_copy / "v-express" / "audio_projection.bin"
    path.write_bytes(path.read_bytes()[:-200])
    report = inspect_model_folder(tiny_copy)
    statuses = {network.name: network.status for network in report.networks}
    assert statuses == {"reference_net": "ok", "denoising_unet": "ok", "v_kps_guider": "ok",
                        "audio_projection": "damaged"}
    assert not report.complete and "it is truncated" in report.networks[-1].damaged


def test_a_vae_without_safetensors_loads_without_diffusers_logging_an_error(tiny_copy, monkeypatch):
    from diffusers.models import modeling_utils
    from safetensors.torch import load_file

    vae = tiny_copy / "sd-vae-ft-mse"
    torch.save(load_file(vae / "diffusion_pytorch_model.safetensors"), vae / "diffusion_pytorch_model.bin")
    (vae / "diffusion_pytorch_model.safetensors").unlink()
    logged = []
    monkeypatch.setattr(modeling_utils.logger, "error", lambda message, *args, **kwargs: logged.append(message))
    weights = torch.load(vae / "diffusion_pytorch_model.bin", weights_only=True)
    loaded = load(tiny_copy).vae.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in weights.items())
    assert logged == []


def spoil(path, value: float) -> str:
    """Put ``value`` in the middle of the file's largest floating-point tensor; return that tensor's key."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    key = max((key for key, tensor in state.items() if tensor.is_floating_point()), key=lambda k: state[k].numel())
    state[key].view(-1)[state[key].numel() // 2] = value
    if path.suffix == ".safetensors":  # its header's metadata kept: older transformers read its "format"
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        save_file(state, str(path), metadata=metadata)
    else:
        torch.save(state, path)
    return key


@pytest.mark.parametrize("weights, value, found", [
    ("v-express/motion_module.bin", float("nan"), "NaN"),
    ("v-express/v_kps_guider.bin", float("inf"), "an infinite value"),
    ("sd-vae-ft-mse/diffusion_pytorch_model.safetensors", float("nan"), "NaN"),
    ("wav2vec2-base-960h/model.safetensors", float("-inf"), "an infinite value"),
], ids=["motion module", "guider", "vae", "wav2vec2"])
def test_a_weight_that_is_nan_or_infinite_is_refused_at_load_naming_its_file_and_key(tiny_copy, weights, value,
                                                                                     found):
    """Such weights were found only by decode_latents, after the whole denoise."""
    key = spoil(tiny_copy / weights, value)
    with pytest.raises(ModelFolderError) as error:
        load(tiny_copy)
    assert error.value.what == f"The weights in {tiny_copy / weights} hold {found} in {key}."
    assert error.value.why == ("Weights are finite numbers: the file is damaged, and a video made with it would come "
                               "out black, found only after the whole denoise.")
