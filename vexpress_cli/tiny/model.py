"""A tiny random-weight V-Express model in the released folder layout.

It has every network and file of the real model, at a few megabytes, so the whole stack
(loading, audio encoding, denoising, decoding, ffmpeg) can be proven on any machine without
downloading the released weights. Its videos are noise: it only proves the install works.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import torch

from vexpress_cli.cache_folders import cache_folder
from vexpress_cli.engine.architecture import Architecture
from vexpress_cli.errors import VExpressError, parameter
from vexpress_cli.engine.model_folder import ModelFolder
from vexpress_cli.engine.checkpoints import NOT_IN_RELEASE
from vexpress_cli.engine.loading import quiet_loading
from vexpress_cli.outputs import OutputAppearedError, atomic_output

TINY_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 4,
    "block_out_channels": [32, 32, 64, 64],
    "center_input_sample": False,
    "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 8,
    "out_channels": 4,
    "sample_size": 8,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
TINY_AUDIO_HIDDEN_SIZE = 32
TINY_OVERRIDES = {
    "v_kps_guider": {"block_out_channels": [8, 16, 16, 32]},
    "audio_projection": {"dim": 64, "depth": 2, "dim_head": 16, "heads": 4, "num_queries": 5,
                         "embedding_dim": TINY_AUDIO_HIDDEN_SIZE, "output_dim": 32, "ff_mult": 4, "max_seq_len": 10},
    "motion_module": {"num_attention_heads": 4, "num_transformer_block": 1,
                      "attention_block_types": ["Temporal_Self", "Temporal_Self"],
                      "temporal_position_encoding": True, "temporal_position_encoding_max_len": 32,
                      "temporal_attention_dim_div": 1},
}


TINY_MARKER = ".vexpress-tiny-model"


def default_tiny_model_dir() -> Path:
    return cache_folder("tiny-model")


def ensure_tiny_model(target: Path | None = None, seed: int = 0) -> Path:
    """Create the tiny model at ``target`` unless a complete one is there; returns its folder."""
    target = Path(target or default_tiny_model_dir())
    if (target / TINY_MARKER).is_file():
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise VExpressError(
            f"{target} is not a tiny model folder and not empty.",
            "The tiny random model is only written into a new or empty folder, so no real weights get replaced.",
            f"Pass another {parameter('model_dir')} for the tiny model, or leave it out to use the user cache.",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, folder=True) as staging:
            write_tiny_model(staging, seed)
            (staging / TINY_MARKER).write_text("vexpress tiny random model\n")
            _remove_empty_folder(target)
    except OutputAppearedError:
        if not (target / TINY_MARKER).is_file():
            raise
        # another run made the same tiny model meanwhile: use it
    except OSError as error:
        raise VExpressError(
            f"Cannot write the tiny model into {target}: {error.strerror or error}.",
            "The tiny random model (about 20 MB) is written once and reused.",
            f"Pass a writable {parameter('model_dir')}, or leave it out to use the user cache.",
        ) from None
    return target


def _remove_empty_folder(target: Path) -> None:
    """Make room for the tiny model: remove ``target`` if it is (still) an empty folder.

    Another run may be creating the same model: if it removed the folder, or already put
    its complete model there, leave that to the publish step, whose OutputAppearedError
    lets this run use the other one's model.
    """
    try:
        target.rmdir()
    except FileNotFoundError:
        pass
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise


def write_tiny_model(root: Path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    folder = ModelFolder(root)
    folder.unet_config.parent.mkdir(parents=True, exist_ok=True)
    folder.unet_config.write_text(json.dumps(TINY_UNET_CONFIG, indent=1))
    with quiet_loading():  # transformers draws a "Writing model shards" bar otherwise
        _write_vae(folder.vae)
        _write_audio_encoder(folder.audio_encoder)
    _write_vexpress_networks(folder)


def _write_vae(path: Path) -> None:
    from diffusers import AutoencoderKL

    AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        latent_channels=4,
        sample_size=64,
    ).save_pretrained(path)


def _write_audio_encoder(path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=TINY_AUDIO_HIDDEN_SIZE, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(path)


def _write_vexpress_networks(folder: ModelFolder) -> None:
    folder.architecture_overrides.parent.mkdir(parents=True, exist_ok=True)
    folder.architecture_overrides.write_text(json.dumps(TINY_OVERRIDES, indent=1))
    architecture = Architecture.from_configs(TINY_UNET_CONFIG, TINY_AUDIO_HIDDEN_SIZE, TINY_OVERRIDES)
    express = folder.root / "v-express"
    for name in ("reference_net", "v_kps_guider", "audio_projection"):
        state = architecture.build(name).state_dict()
        for omitted in NOT_IN_RELEASE.get(name, ()):
            state.pop(omitted, None)
        torch.save(state, express / f"{name}.bin")
    # As released: the motion modules live in a file of their own.
    unet_state = architecture.build("denoising_unet").state_dict()
    motion = {key: value for key, value in unet_state.items() if ".motion_modules." in key}
    torch.save({key: value for key, value in unet_state.items() if key not in motion}, express / "denoising_unet.bin")
    torch.save(motion, express / "motion_module.bin")
