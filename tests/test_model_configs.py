"""A model folder's configs are read bounded and checked before any network is built from them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine.architecture import Architecture
from vexpress_cli.engine.config_values import check_config_sizes
from vexpress_cli.engine.model_folder import ModelFolder
from vexpress_cli.errors import ModelFolderError

from conftest import FIXTURES_DIR, TINY_MODEL_DIR

UNET_CONFIG = "stable-diffusion-v1-5/unet/config.json"
WAV2VEC2_CONFIG = "wav2vec2-base-960h/config.json"
OVERRIDES = "v-express/config.json"
SD15_CONFIG = json.loads((FIXTURES_DIR / "golden" / "sd15_unet_config.json").read_text())
# sd-vae-ft-mse's config.json as released (its whole numbers).
RELEASED_VAE = {"block_out_channels": [128, 256, 512, 512], "in_channels": 3, "latent_channels": 4,
                "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 256}


@pytest.fixture
def tiny_copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR, target)
    return target


def edit_json(path, change) -> None:
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def read_architecture(folder):
    return Architecture.from_folder(ModelFolder(folder))


def test_a_config_larger_than_4_mib_is_refused_unread(tiny_copy):
    path = tiny_copy / UNET_CONFIG
    path.write_text(path.read_text() + " " * (4 * 2**20))
    with pytest.raises(ModelFolderError) as error:
        read_architecture(tiny_copy)
    assert error.value.what == f"The Stable Diffusion 1.5 UNet config at {path} is larger than 4 MiB."


def test_a_number_too_large_for_a_float_is_refused_like_nan(tiny_copy):
    path = tiny_copy / UNET_CONFIG
    path.write_text(path.read_text().replace('"norm_eps": 1e-05', '"norm_eps": 1e999'))
    with pytest.raises(ModelFolderError) as error:
        read_architecture(tiny_copy)
    assert error.value.what == (f"Cannot read the Stable Diffusion 1.5 UNet config at {path}: it holds 1e999, "
                                "which is no number a network can be built with.")


def test_a_huge_wav2vec2_hidden_size_is_refused_before_any_network_is_built(tiny_copy, monkeypatch):
    """Audit: hidden_size 8192 with one layer made loading peak at 2.48 GB before transformers refused it."""
    from transformers import Wav2Vec2Model

    edit_json(tiny_copy / WAV2VEC2_CONFIG, lambda config: config.update(hidden_size=8192, num_hidden_layers=1))
    monkeypatch.setattr(Architecture, "build_on_meta", lambda *_: pytest.fail("a network was built"))
    monkeypatch.setattr(Wav2Vec2Model, "from_pretrained", lambda *_, **__: pytest.fail("wav2vec2 was built"))
    with pytest.raises(ModelFolderError) as error:
        VExpressPipeline.from_pretrained(tiny_copy, device="cpu")
    assert error.value.what == f"In the wav2vec2 config at {tiny_copy / WAV2VEC2_CONFIG}, hidden_size is 8192."
    assert error.value.why == (
        "vexpress takes it only between 1 and 1024 (the released model's values lie well inside): a value outside "
        "describes no network it runs, and a larger one could take all memory before any weight is checked.")
    assert "vexpress models download" in error.value.fix


def test_a_long_position_table_is_refused_when_the_checkpoint_lacks_it(tiny_copy):
    """Audit: max_len 200000 with the pos_encoder.pe tables removed loaded without an error, at 1.46 GB."""
    edit_json(tiny_copy / OVERRIDES, lambda config: config["motion_module"].update(
        temporal_position_encoding_max_len=200000))
    path = tiny_copy / "v-express" / "motion_module.bin"
    state = torch.load(path, weights_only=True)
    torch.save({key: tensor for key, tensor in state.items() if not key.endswith("pos_encoder.pe")}, path)
    with pytest.raises(ModelFolderError) as error:
        VExpressPipeline.from_pretrained(tiny_copy, device="cpu")
    assert error.value.what == (f"In the V-Express architecture overrides at {tiny_copy / OVERRIDES}, "
                                "motion_module.temporal_position_encoding_max_len is 200000.")


@pytest.mark.parametrize("config, change, named", [
    (UNET_CONFIG, lambda c: c.update(layers_per_block=1000), "layers_per_block is 1000"),
    (UNET_CONFIG, lambda c: c.update(block_out_channels=[32] * 100), "the length of block_out_channels is 100"),
    ("sd-vae-ft-mse/config.json", lambda c: c["block_out_channels"].__setitem__(3, 100000),
     "block_out_channels[3] is 100000"),
    (WAV2VEC2_CONFIG, lambda c: c["conv_dim"].__setitem__(2, 0), "conv_dim[2] is 0"),
    (WAV2VEC2_CONFIG, lambda c: c.update(num_conv_pos_embeddings=100000), "num_conv_pos_embeddings is 100000"),
    (WAV2VEC2_CONFIG, lambda c: c.update(vocab_size=10**12), "vocab_size is 1000000000000"),
    (OVERRIDES, lambda c: c["audio_projection"].update(depth=10**6), "audio_projection.depth is 1000000"),
    (OVERRIDES, lambda c: c["motion_module"].update(num_attention_heads=-4), "motion_module.num_attention_heads is -4"),
], ids=["unet layers", "unet list length", "vae width", "wav2vec2 conv width", "wav2vec2 position conv",
        "any whole number", "audio projection depth", "negative heads"])
def test_every_whole_number_of_the_configs_is_bounded(tiny_copy, config, change, named):
    edit_json(tiny_copy / config, change)
    with pytest.raises(ModelFolderError) as error:
        read_architecture(tiny_copy)
    assert error.value.what.startswith("In the ") and error.value.what.endswith(f" at {tiny_copy / config}, {named}.")


def test_the_released_models_sizes_lie_inside_the_bounds(tmp_path):
    from transformers import Wav2Vec2Config

    released = Architecture.from_configs(SD15_CONFIG)
    wav2vec2_base = Wav2Vec2Config().to_dict()  # transformers' defaults are wav2vec2-base's sizes
    assert wav2vec2_base["hidden_size"] == 768 and wav2vec2_base["num_conv_pos_embeddings"] == 128
    for config in (SD15_CONFIG, RELEASED_VAE, wav2vec2_base, released.motion_module, released.audio_projection,
                   released.v_kps_guider):
        check_config_sizes(config, tmp_path, "a released config")


def released_spelling(folder) -> None:
    """The wav2vec2 weights as the released pytorch_model.bin names them (a ForCTC checkpoint, weight norm as
    weight_g/weight_v)."""
    from safetensors.torch import load_file

    weights = folder / "wav2vec2-base-960h" / "model.safetensors"
    renamed = {"wav2vec2." + key.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): tensor
               for key, tensor in load_file(weights).items()}
    torch.save(renamed, weights.with_name("pytorch_model.bin"))
    weights.unlink()


@pytest.mark.parametrize("spelling", ["transformers", "released"])
@pytest.mark.parametrize("change, difference", [
    ({"hidden_size": 64}, "masked_spec_embed is [32] there but the config makes it [64] (and 36 more differences)"),
    ({"num_hidden_layers": 3}, "encoder.layers are 2 there but the config makes them 3"),
], ids=["wider", "deeper"])
def test_a_wav2vec2_config_that_does_not_fit_its_weights_is_refused_before_wav2vec2_is_built(
        tiny_copy, monkeypatch, change, difference, spelling):
    """A hidden_size in range but not the weights' was found only after transformers built the network (with the
    ignore_mismatched_sizes text); an extra layer was filled in at random, without a word."""
    from transformers import Wav2Vec2Model

    if spelling == "released":
        released_spelling(tiny_copy)
    edit_json(tiny_copy / WAV2VEC2_CONFIG, lambda config: config.update(change))
    monkeypatch.setattr(Wav2Vec2Model, "from_pretrained", lambda *_, **__: pytest.fail("wav2vec2 was built"))
    with pytest.raises(ModelFolderError) as error:
        VExpressPipeline.from_pretrained(tiny_copy, device="cpu")
    weights = tiny_copy / "wav2vec2-base-960h" / ("model.safetensors" if spelling == "transformers"
                                                  else "pytorch_model.bin")
    assert error.value.what == (f"The wav2vec2 config at {tiny_copy / WAV2VEC2_CONFIG} does not describe the weights "
                                f"in {weights}: {difference}.")


def test_the_released_wav2vec2_spelling_loads_the_same_weights(tiny_copy):
    expected = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu").audio_encoder.state_dict()
    released_spelling(tiny_copy)
    loaded = VExpressPipeline.from_pretrained(tiny_copy, device="cpu").audio_encoder.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


PREPROCESSOR = "wav2vec2-base-960h/preprocessor_config.json"


@pytest.mark.parametrize("setting, written, shown, needed", [
    ("sampling_rate", 8000, "int 8000", "16000, the rate the speech is resampled to for wav2vec2"),
    ("feature_size", 2, "int 2", "1: one value per audio sample"),
    ("padding_value", "zero", "str 'zero'", "a number"),
    ("do_normalize", "yes", "str 'yes'", "true or false"),
    ("padding_side", "middle", "str 'middle'", '"right" or "left"'),
])
def test_a_feature_extractor_setting_the_pipeline_cannot_encode_with_is_refused_at_load(
        tiny_copy, setting, written, shown, needed):
    """Audit: sampling_rate 8000 loaded, and encoding the speech failed ~40 s later with transformers' traceback."""
    edit_json(tiny_copy / PREPROCESSOR, lambda config: config.update({setting: written}))
    with pytest.raises(ModelFolderError) as error:
        VExpressPipeline.from_pretrained(tiny_copy, device="cpu")
    assert error.value.what == (f"In the wav2vec2 feature extractor config at {tiny_copy / PREPROCESSOR}, "
                                f"{setting} is {shown}.")
    assert error.value.why == f"It must be {needed}, as released; speech could not be encoded otherwise."


def test_a_nan_padding_value_is_refused_at_load(tiny_copy):
    path = tiny_copy / PREPROCESSOR
    path.write_text(path.read_text().replace('"padding_value": 0.0', '"padding_value": NaN'))
    with pytest.raises(ModelFolderError) as error:
        VExpressPipeline.from_pretrained(tiny_copy, device="cpu")
    assert error.value.what == (f"Cannot read the wav2vec2 feature extractor config at {path}: it holds NaN, "
                                "which is no number a network can be built with.")
