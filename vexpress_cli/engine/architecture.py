"""The shapes of the four V-Express networks, derived from a model folder's configs.

The released model stores no V-Express config: its architecture is the Stable Diffusion 1.5
UNet config plus the fixed settings of the original ``inference_v2.yaml``. A folder may carry
``v-express/config.json`` to override those (tiny test models do).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vexpress_cli.engine.config_values import check_config_sizes, check_feature_extractor
from vexpress_cli.engine.model_folder import ModelFolder, redownload_fix
from vexpress_cli.errors import ModelFolderError, parameter
from vexpress_cli.input_files import parsed_text

NETWORK_NAMES = ("reference_net", "denoising_unet", "v_kps_guider", "audio_projection")
# What building a network from a config of the wrong type or size raises.
CONFIG_ERRORS = (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, RuntimeError)

DEFAULT_MOTION_MODULE = {
    "num_attention_heads": 8,
    "num_transformer_block": 1,
    "attention_block_types": ["Temporal_Self", "Temporal_Self"],
    "temporal_position_encoding": True,
    "temporal_position_encoding_max_len": 32,
    "temporal_attention_dim_div": 1,
}
DEFAULT_GUIDER_CHANNELS = [16, 32, 96, 256]
DEFAULT_WAV2VEC2_HIDDEN_SIZE = 768
# Audio frames on each side of a video frame that the projection sees (the original's default).
NUM_PAD_AUDIO_FRAMES = 2
# The largest config file read (the released ones are about 2 KB).
MAX_CONFIG_BYTES = 4 * 2**20


@dataclass
class Architecture:
    """Everything needed to build the networks, before any weight is read."""

    unet_config: dict
    motion_module: dict = field(default_factory=lambda: dict(DEFAULT_MOTION_MODULE))
    v_kps_guider: dict = field(default_factory=dict)
    audio_projection: dict = field(default_factory=dict)

    @property
    def cross_attention_dim(self) -> int:
        return self.unet_config["cross_attention_dim"]

    @property
    def max_context_frames(self) -> int:
        """Longest window the motion modules' position encoding covers."""
        return self.motion_module.get("temporal_position_encoding_max_len", 32)

    @property
    def num_pad_audio_frames(self) -> int:
        return (self.audio_projection["num_queries"] - 1) // 2

    @classmethod
    def from_configs(cls, unet_config: dict, audio_hidden_size: int = DEFAULT_WAV2VEC2_HIDDEN_SIZE,
                     overrides: dict | None = None) -> "Architecture":
        overrides = overrides or {}
        cross_dim = unet_config["cross_attention_dim"]
        guider = {
            "conditioning_embedding_channels": unet_config["block_out_channels"][0],
            "block_out_channels": DEFAULT_GUIDER_CHANNELS,
        }
        guider.update(overrides.get("v_kps_guider", {}))
        window = 2 * NUM_PAD_AUDIO_FRAMES + 1
        audio = {
            "dim": cross_dim, "depth": 4, "dim_head": 64, "heads": 12, "num_queries": window,
            "embedding_dim": audio_hidden_size, "output_dim": cross_dim, "ff_mult": 4, "max_seq_len": 2 * window,
        }
        audio.update(overrides.get("audio_projection", {}))
        motion = dict(DEFAULT_MOTION_MODULE)
        motion.update(overrides.get("motion_module", {}))
        return cls(unet_config=dict(unet_config), motion_module=motion, v_kps_guider=guider, audio_projection=audio)

    @classmethod
    def from_folder(cls, folder: ModelFolder) -> "Architecture":
        """The architecture a folder's configs describe; every config of the folder is read and checked here
        (a JSON object without NaN, its sizes in range), the VAE's and wav2vec2's too, before diffusers or
        transformers read them."""
        unet_config = read_json(folder.unet_config, what="the Stable Diffusion 1.5 UNet config")
        hidden_size = _read_component_configs(folder)
        overrides = {}
        if folder.architecture_overrides.is_file():
            overrides = read_json(folder.architecture_overrides, what="the V-Express architecture overrides")
        try:
            return cls.from_configs(unet_config, hidden_size, overrides)
        except CONFIG_ERRORS as error:
            raise _config_error(error) from error

    def build(self, name: str) -> nn.Module:
        """Build one network with freshly initialised weights on the current default device."""
        if name not in NETWORK_NAMES:
            raise KeyError(name)
        try:
            return self._build(name)
        except CONFIG_ERRORS as error:
            raise _config_error(error) from error

    def _build(self, name: str) -> nn.Module:
        from vexpress_cli.engine.networks.audio_projection import AudioProjection
        from vexpress_cli.engine.networks.denoising_unet import VExpressDenoisingUNet
        from vexpress_cli.engine.networks.reference_net import build_reference_net
        from vexpress_cli.engine.networks.v_kps_guider import VKpsGuider

        if name == "reference_net":
            return build_reference_net(self.unet_config)
        if name == "denoising_unet":
            return VExpressDenoisingUNet.from_config({**self.unet_config, "motion_module_kwargs": self.motion_module})
        if name == "v_kps_guider":
            return VKpsGuider(**self.v_kps_guider)
        return AudioProjection(**self.audio_projection)

    def build_on_meta(self, name: str) -> nn.Module:
        """Build a network without allocating memory: shapes only, in well under a second."""
        with torch.device("meta"):
            return self.build(name)

    def expected_tensors(self, name: str) -> dict[str, tuple[int, ...]]:
        return {key: tuple(tensor.shape) for key, tensor in self.build_on_meta(name).state_dict().items()}


def _read_component_configs(folder: ModelFolder) -> int:
    """The VAE's and wav2vec2's configs, read and checked; wav2vec2's hidden size."""
    if (folder.vae / "config.json").is_file():
        read_json(folder.vae / "config.json", what="the VAE config")
    preprocessor = folder.audio_encoder / "preprocessor_config.json"
    if preprocessor.is_file():
        what = "the wav2vec2 feature extractor config"
        check_feature_extractor(read_json(preprocessor, what=what), preprocessor, what)
    audio_config_path = folder.audio_encoder / "config.json"
    if not audio_config_path.is_file():
        return DEFAULT_WAV2VEC2_HIDDEN_SIZE
    return read_json(audio_config_path, what="the wav2vec2 config").get("hidden_size", DEFAULT_WAV2VEC2_HIDDEN_SIZE)


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelFolderError(
            f"Cannot find {what} at {path}.",
            "The model folder does not have the released V-Express layout.",
            f"Point {parameter('model_dir')} at the folder that holds stable-diffusion-v1-5/, sd-vae-ft-mse/, "
            "wav2vec2-base-960h/ and v-express/, or run `vexpress models download`.",
        )
    try:
        text = _bounded_text(path, what)
        data = parsed_text(json.loads, text, parse_constant=_no_constant, parse_float=_finite_float)
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"Cannot read {what} at {path}: {error}.", "The file is not valid JSON.",
                               redownload_fix(path)) from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{_capitalized(what)} at {path} is a JSON {type(data).__name__}, not an object.",
                               "A config maps each setting's name to its value: {\"name\": value, ...}.",
                               redownload_fix(path))
    check_config_sizes(data, path, what)
    return data


def _bounded_text(path: Path, what: str) -> str:
    """The file's text, read only when it is no larger than a config can be."""
    with path.open("rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ModelFolderError(f"{_capitalized(what)} at {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB.",
                               "A config holds a few kilobytes of settings; a larger file is not one, and reading "
                               "it whole could exhaust memory.", redownload_fix(path))
    return data.decode("utf-8")


def _capitalized(what: str) -> str:
    return what[0].upper() + what[1:]


def _no_constant(name: str):
    raise ValueError(f"it holds {name}, which is no number a network can be built with")


def _finite_float(text: str) -> float:
    """json's float, refusing a number too large for a float (1e999), which Python reads as infinity."""
    value = float(text)
    if not math.isfinite(value):
        _no_constant(text)
    return value


def _config_error(error: Exception) -> ModelFolderError:
    return ModelFolderError(
        f"The model folder's configs do not describe networks vexpress can build ({type(error).__name__}: {error}).",
        "A config.json (stable-diffusion-v1-5/unet/, wav2vec2-base-960h/ or v-express/) holds a value of the "
        "wrong type or size; the released files do not.",
        "Restore the configs from the released model (`vexpress models download`).")
