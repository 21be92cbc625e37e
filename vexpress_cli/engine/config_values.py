"""What a model folder's configs may hold, checked as each is read (``architecture.read_json``).

The whole numbers they declare size the networks (widths, layer and head counts, the motion modules'
position tables): a hostile or damaged config could make building them take gigabytes before any
weight is compared with them. Each is bounded, generously for the released model (its values in the
comments: the Stable Diffusion 1.5 UNet, sd-vae-ft-mse, wav2vec2-base-960h, the original's V-Express
settings). The wav2vec2 feature extractor's config must hold the settings the pipeline depends on.
"""

from __future__ import annotations

from pathlib import Path

from vexpress_cli.engine.model_folder import redownload_fix
from vexpress_cli.errors import ModelFolderError, described, shown_number

# (smallest, largest) of each setting that sizes a network, in whichever config it appears.
SIZE_RANGES = {
    # widths
    "block_out_channels": (1, 2560),  # UNet 320..1280, VAE 128..512, V-Kps guider 16..256
    "conditioning_embedding_channels": (1, 2560),  # the UNet's first width, 320
    "cross_attention_dim": (1, 4096),  # 768
    "hidden_size": (1, 1024),  # wav2vec2 768
    "output_hidden_size": (1, 1024),  # wav2vec2 768
    "intermediate_size": (1, 4096),  # wav2vec2 3072
    "conv_dim": (1, 1024),  # wav2vec2 512 (each of 7)
    "dim": (1, 4096),  # audio projection 768
    "output_dim": (1, 4096),  # 768
    "embedding_dim": (1, 1024),  # wav2vec2's hidden size, 768
    "dim_head": (1, 256),  # 64
    "in_channels": (1, 16),  # UNet 4, VAE 3
    "out_channels": (1, 16),  # UNet 4, VAE 3
    "latent_channels": (1, 16),  # 4
    "conditioning_channels": (1, 16),  # 3
    # counts
    "layers_per_block": (1, 4),  # 2
    "transformer_layers_per_block": (1, 4),  # 1
    "num_hidden_layers": (1, 24),  # 12
    "num_feat_extract_layers": (1, 16),  # 7
    "num_adapter_layers": (0, 8),  # 3 (unused)
    "depth": (1, 16),  # audio projection 4
    "num_transformer_block": (1, 8),  # 1
    "num_attention_heads": (1, 64),  # wav2vec2 12, motion modules 8
    "attention_head_dim": (1, 256),  # 8
    "heads": (1, 64),  # 12
    "norm_num_groups": (1, 64),  # 32
    "num_conv_pos_embeddings": (1, 256),  # 128
    "num_conv_pos_embedding_groups": (1, 64),  # 16
    "conv_kernel": (1, 32),  # 10, 3, 2
    "conv_stride": (1, 16),  # 5, 2
    "adapter_kernel_size": (1, 32),  # 3 (unused)
    "ff_mult": (1, 8),  # 4
    "num_queries": (1, 63),  # 5
    "max_seq_len": (1, 128),  # 10
    "temporal_position_encoding_max_len": (1, 1024),  # 32
    "temporal_attention_dim_div": (1, 8),  # 1
}
# The rate the speech is resampled to, the one wav2vec2-base-960h reads.
AUDIO_SAMPLE_RATE = 16000
# The wav2vec2 feature extractor's settings (preprocessor_config.json): whether a value will do, what is needed.
# One left out takes transformers' default, which is the released value.
FEATURE_EXTRACTOR_SETTINGS = {
    "sampling_rate": (lambda value: _is_number(value) and value == AUDIO_SAMPLE_RATE,
                      "16000, the rate the speech is resampled to for wav2vec2"),
    "feature_size": (lambda value: _is_number(value) and value == 1, "1: one value per audio sample"),
    "padding_value": (lambda value: _is_number(value), "a number"),
    "do_normalize": (lambda value: isinstance(value, bool), "true or false"),
    "return_attention_mask": (lambda value: isinstance(value, bool), "true or false"),
    "padding_side": (lambda value: value in ("right", "left"), '"right" or "left"'),
}

# Any other whole number (ids, sample sizes, counts no network is built from).
OTHER_INTEGERS = (-65536, 65536)
# The longest list a config holds (wav2vec2's conv_dim has 7 entries).
MAX_LIST_LENGTH = 64


def check_config_sizes(config: dict, path: Path, what: str) -> None:
    """A ModelFolderError naming the first whole number of ``config`` (at any depth) out of its range."""
    for name, value, (low, high) in _bounded_numbers(config, ""):
        if not low <= value <= high:
            raise ModelFolderError(
                f"In {what} at {path}, {name} is {shown_number(value)}.",
                f"vexpress takes it only between {low} and {high} (the released model's values lie well inside): "
                "a value outside describes no network it runs, and a larger one could take all memory before "
                "any weight is checked.",
                redownload_fix(path))


def _bounded_numbers(value, name: str, key: str = ""):
    """(where, number, its range) for every int under ``value`` and every list's length; a list's items take
    the range of the list's setting."""
    if isinstance(value, dict):
        for child, item in value.items():
            yield from _bounded_numbers(item, f"{name}.{child}" if name else child, child)
    elif isinstance(value, list):
        yield f"the length of {name}", len(value), (0, MAX_LIST_LENGTH)
        for index, item in enumerate(value[:MAX_LIST_LENGTH]):
            yield from _bounded_numbers(item, f"{name}[{index}]", key)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield name, value, SIZE_RANGES.get(key, OTHER_INTEGERS)


def check_feature_extractor(config: dict, path: Path, what: str) -> None:
    """A ModelFolderError for the first setting of the wav2vec2 feature extractor the pipeline cannot encode
    speech with (found at load, not when a job's speech is encoded)."""
    for key, (will_do, needed) in FEATURE_EXTRACTOR_SETTINGS.items():
        if key in config and not will_do(config[key]):
            raise ModelFolderError(f"In {what} at {path}, {key} is {described(config[key])}.",
                                   f"It must be {needed}, as released; speech could not be encoded otherwise.",
                                   redownload_fix(path))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
