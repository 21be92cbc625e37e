"""Reading the pipeline's components from a model folder, quietly.

The folder comes from ``model_source.resolve_model_folder`` (a folder, or a hub id through the
Hugging Face cache). Two layouts load: the released one (the original's ``model_ckpts`` folder, see ``model_folder.py``)
and the pipeline's own ``save_pretrained`` layout (``model_index.json`` and one folder per
component), which diffusers' generic loader reads.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vexpress_cli.engine.architecture import Architecture
from vexpress_cli.engine.checkpoints import (check_audio_encoder_fits, check_model_files, check_torch_file,
                                             first_non_finite, load_networks, non_finite_error,
                                             pretrained_load_errors)
from vexpress_cli.engine.model_folder import ModelFolder
from vexpress_cli.file_types import TORCH_FILE_SUFFIXES

SAVED_LAYOUT_INDEX = "model_index.json"
LIBRARY_LOGGERS = ("diffusers", "transformers")


class _EmptyFloat32ListFilter(logging.Filter):
    """Drops diffusers' "modules ... should be kept in float32: []" warning, which it gives on every
    ``.to(dtype)`` of a model that has no such module (so there is nothing to warn about)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("should be kept in float32: []" in message)


def install_log_filters() -> None:
    logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(item, _EmptyFloat32ListFilter) for item in logger.filters):
        logger.addFilter(_EmptyFloat32ListFilter())


class _FallbackFetchFilter(logging.Filter):
    """Drops diffusers' "An error occurred while trying to fetch ..." that it logs as an error before it falls
    back from safetensors to a .bin it then loads (a real failure raises, and is reported as a ModelFolderError)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("An error occurred while trying to fetch")


FALLBACK_FETCH_LOGGER = "diffusers.models.modeling_utils"


@contextmanager
def _without_fallback_errors() -> Iterator[None]:
    fallback_filter, logger = _FallbackFetchFilter(), logging.getLogger(FALLBACK_FETCH_LOGGER)
    logger.addFilter(fallback_filter)
    try:
        yield
    finally:
        logger.removeFilter(fallback_filter)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """diffusers' and transformers' loading chatter (notes, progress bars) off while loading; errors still show."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    bars = {diffusers_logging: diffusers_logging.is_progress_bar_enabled(),
            transformers_logging: transformers_logging.is_progress_bar_enabled()}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.ERROR, levels[name]))
    for module in bars:
        module.disable_progress_bar()
    try:
        with _without_fallback_errors():
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for module, enabled in bars.items():
            if enabled:
                module.enable_progress_bar()


# The modules of our own networks that a saved pipeline's model_index.json names. diffusers imports no module a
# repository names (that would run its code), so they are imported here, from this fixed list only.
NETWORK_MODULES = ("vexpress_cli.engine.networks.audio_projection", "vexpress_cli.engine.networks.denoising_unet",
                   "vexpress_cli.engine.networks.v_kps_guider")


def import_network_modules() -> None:
    for name in NETWORK_MODULES:
        importlib.import_module(name)


def check_saved_layout_files(folder: Path) -> None:
    """Every torch file of a saved pipeline folder (``save_pretrained(safe_serialization=False)`` writes ``.bin``
    files, which diffusers torch.loads) checked before diffusers reads any (see :func:`check_torch_file`)."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in TORCH_FILE_SUFFIXES and path.is_file():
            check_torch_file(path)


def is_saved_layout(folder: Path) -> bool:
    return (folder / SAVED_LAYOUT_INDEX).is_file()


def check_model_folder(root: Path) -> None:
    """ModelFolderError when a released-layout folder lacks a file: in seconds, before any job's slow work."""
    if not is_saved_layout(root):
        check_model_files(ModelFolder(root))


def load_released_components(root: Path) -> dict:
    """The pipeline's components from a folder in the released layout (every problem in one error)."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model
    from diffusers import AutoencoderKL

    from vexpress_cli.engine.scheduling import default_scheduler

    folder = ModelFolder(root)
    check_model_files(folder)  # before reading gigabytes of checkpoints
    for weights in (folder.vae_weights, folder.audio_encoder_weights):  # diffusers and transformers torch.load them
        check_torch_file(weights)
    architecture = Architecture.from_folder(folder)
    check_audio_encoder_fits(folder)
    networks = load_networks(folder, architecture)
    with pretrained_load_errors(folder):
        # Told which format is there: asked to find it, diffusers logs an error for a VAE without safetensors.
        vae = AutoencoderKL.from_pretrained(folder.vae, use_safetensors=folder.vae_weights_are_safetensors)
        audio_encoder = Wav2Vec2Model.from_pretrained(folder.audio_encoder)
        feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder.audio_encoder)
    for network, weights in ((vae, folder.vae_weights), (audio_encoder, folder.audio_encoder_weights)):
        _check_finite(network, weights)
    return {"vae": vae, "audio_encoder": audio_encoder.eval(), "feature_extractor": feature_extractor,
            "scheduler": default_scheduler(), **networks}


def _check_finite(network, weights: Path) -> None:
    """The VAE's or wav2vec2's weights as loaded, before the pipeline casts or moves them, without NaN or infinity."""
    state = network.state_dict()
    key = first_non_finite(state)
    if key is not None:
        raise non_finite_error(weights, key, state[key])
