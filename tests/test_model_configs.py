"""A model folder's configs are read bounded and checked before any network is built from them."""

from __future__ import annotations

import json
import shutil

import pytest

from vexpress_cli.engine.architecture import Architecture
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
