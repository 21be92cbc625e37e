"""Reading the V-Express checkpoints safely and checking them key for key.

Checkpoints are read with ``torch.load(weights_only=True)`` (or safetensors), so a
checkpoint can never run code. Networks are built on the meta device and take the
checkpoint's tensors as they are (``assign=True``): no memory is spent on random
initialisation that would be overwritten.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from vexpress_cli.engine.architecture import NETWORK_NAMES, Architecture
from vexpress_cli.errors import ModelFolderError
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR, VEXPRESS_DIR, ModelFolder, redownload_fix
from vexpress_cli.input_files import special_file_kind
from vexpress_cli.torch_errors import torch_load_reason
from vexpress_cli.torch_files import zip_bomb_reason

# Tensors a checkpoint may leave out; they are filled in by ``materialize_tolerated_missing``.
# The released reference net has no final norm (only its transformer features are used);
# motion-module position tables are fixed sinusoids, recomputed exactly when absent.
NOT_IN_RELEASE = {"reference_net": ("conv_norm_out.weight", "conv_norm_out.bias")}
RECOMPUTABLE = {"denoising_unet": (".pos_encoder.pe",)}

# What reading a damaged, truncated, foreign or malicious weights file raises (torch, safetensors, zip).
CHECKPOINT_READ_ERRORS = (pickle.UnpicklingError, RuntimeError, OSError, SafetensorError, EOFError, ValueError)
# A config value of the wrong type: transformers checks them with huggingface_hub's strict dataclasses (newer
# versions only); older ones, and diffusers, fail with a TypeError or KeyError while building the network.
try:
    from huggingface_hub.errors import StrictDataclassError
except ImportError:  # huggingface_hub < 0.24 has no errors module, and no strict dataclasses
    CONFIG_CHECK_ERRORS: tuple[type[Exception], ...] = (TypeError, KeyError)
else:
    CONFIG_CHECK_ERRORS = (TypeError, KeyError, StrictDataclassError)

# The wav2vec2 tensors that come one set per layer.
AUDIO_ENCODER_LAYERS = ("encoder.layers.", "feature_extractor.conv_layers.")

# Which checkpoint files make up each network, in load order (later files win).
NETWORK_FILES = {
    "reference_net": ("reference_net",),
    "denoising_unet": ("denoising_unet", "motion_module"),
    "v_kps_guider": ("v_kps_guider",),
    "audio_projection": ("audio_projection",),
}


@dataclass
class KeyReport:
    """How a state dict matches a network."""

    network: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, expected, found

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 5) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                shown = ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
                parts.append(f"{len(items)} {label} ({shown})")
        if self.mismatched:
            shown = ", ".join(f"{key} expects {list(want)} but has {list(got)}"
                              for key, want, got in self.mismatched[:limit])
            parts.append(f"{len(self.mismatched)} with the wrong shape ({shown})")
        return f"{self.network}: " + "; ".join(parts)


def is_tolerated_missing(network: str, key: str) -> bool:
    allowed = NOT_IN_RELEASE.get(network, ()) + RECOMPUTABLE.get(network, ())
    return any(key == suffix or key.endswith(suffix) for suffix in allowed)


def released_tensors(architecture: Architecture, network: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors a released checkpoint of this network holds."""
    omitted = NOT_IN_RELEASE.get(network, ())
    return {key: shape for key, shape in architecture.expected_tensors(network).items() if key not in omitted}


def compare_keys(network: str, expected: dict[str, tuple], found: dict[str, tuple]) -> KeyReport:
    report = KeyReport(network)
    for key, shape in expected.items():
        if key not in found:
            if not is_tolerated_missing(network, key):
                report.missing.append(key)
        elif tuple(found[key]) != tuple(shape):
            report.mismatched.append((key, tuple(shape), tuple(found[key])))
    report.unexpected = [key for key in found if key not in expected]
    return report


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.bin``/``.pt`` (torch.save) or ``.safetensors`` file, never unpickling objects."""
    check_torch_file(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except CHECKPOINT_READ_ERRORS as error:
        raise ModelFolderError(
            f"Cannot read the checkpoint {path}.",
            f"It is damaged or holds more than tensors ({torch_load_reason(error)}); "
            "checkpoints are only read as plain tensors, never as arbitrary Python objects.",
            redownload_fix(path),
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelFolderError(f"The checkpoint {path} is not a state dict of tensors.",
                               "V-Express checkpoints map parameter names to tensors.",
                               redownload_fix(path))
    return state


def check_torch_file(path: Path | None) -> None:
    """ModelFolderError for a torch checkpoint that would inflate in memory (see :mod:`vexpress_cli.torch_files`)."""
    if path is not None and path.suffix != ".safetensors" and (reason := zip_bomb_reason(path)):
        raise ModelFolderError(f"Refused to load the checkpoint {path}: {reason}.",
                               "torch.save stores a checkpoint's parts uncompressed; this file was changed by another "
                               "tool, or made to exhaust memory.", redownload_fix(path))


@contextmanager
def pretrained_load_errors(folder: ModelFolder) -> Iterator[None]:
    """Around ``from_pretrained`` of the VAE and wav2vec2: a damaged file becomes a ModelFolderError.

    diffusers and transformers read ``.bin`` weights with ``torch.load(weights_only=True)``; a
    damaged or malicious ``pytorch_model.bin`` then raises an UnpicklingError whose text advises
    retrying with ``weights_only=False``. The error names the folder and the reason, never that advice.
    """
    try:
        yield
    except CONFIG_CHECK_ERRORS as error:
        raise ModelFolderError(
            f"Cannot load the VAE or the wav2vec2 audio encoder from {folder.root}.",
            f"A config.json there holds a value of the wrong type ({_config_reason(error)}).",
            "Download the model again (`vexpress models download`).",
        ) from None
    except CHECKPOINT_READ_ERRORS as error:
        raise ModelFolderError(
            f"Cannot load the VAE or the wav2vec2 audio encoder from {folder.root}.",
            f"A file there is damaged, of another model, or holds more than tensors ({torch_load_reason(error)}).",
            "Download the model again (`vexpress models download`).",
        ) from None


def check_audio_encoder_fits(folder: ModelFolder) -> None:
    """The wav2vec2 config's sizes against the shapes in its weights file (read from the header, or memory-mapped):
    transformers would build a network of the config's sizes first, and only then find that they differ."""
    weights = folder.audio_encoder_weights
    if weights is None:
        return
    try:
        held = read_checkpoint_shapes(weights)
    except ModelFolderError:
        return  # transformers may still read it (an old torch format); if not, pretrained_load_errors says why
    expected = _audio_encoder_shapes(folder)
    found = {_wav2vec2_key(key): shape for key, shape in held.items()}
    problems = [f"{key} is {list(found[key])} there but the config makes it {list(shape)}"
                for key, shape in expected.items() if key in found and tuple(found[key]) != shape]
    problems += _layer_count_problems(expected, found)
    if problems:
        config = folder.audio_encoder / "config.json"
        more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
        raise ModelFolderError(f"The wav2vec2 config at {config} does not describe the weights in {weights}: "
                               f"{problems[0]}{more}.",
                               "The config (or the weights) is of another model, or damaged.",
                               redownload_fix(config))


def _audio_encoder_shapes(folder: ModelFolder) -> dict[str, tuple[int, ...]]:
    """The tensors of wav2vec2 as its config describes it, built on the meta device (no memory)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with pretrained_load_errors(folder):
        config = Wav2Vec2Config.from_pretrained(folder.audio_encoder)
        with torch.device("meta"):
            model = Wav2Vec2Model(config)
    return {_wav2vec2_key(key): tuple(tensor.shape) for key, tensor in model.state_dict().items()}


def _wav2vec2_key(key: str) -> str:
    """One spelling of a wav2vec2 tensor's name: without the prefix of the released (ForCTC) checkpoint, the position
    conv's weight norm as weight_g and weight_v (torch's parametrizations call them original0 and original1)."""
    key = key.removeprefix("wav2vec2.")
    return key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v")


def _layer_count_problems(expected: dict, found: dict) -> list[str]:
    """A config declaring more or fewer layers than the weights hold (transformers would fill the others in
    at random)."""
    problems = []
    for prefix in AUDIO_ENCODER_LAYERS:
        declared, held = (len({key[len(prefix):].split(".")[0] for key in keys if key.startswith(prefix)})
                          for keys in (expected, found))
        if held and declared != held:
            problems.append(f"{prefix.rstrip('.')} are {held} there but the config makes them {declared}")
    return problems


def file_problem(path: Path) -> str | None:
    """Why a weights or config file cannot be used, judged from its size and ends only (a download cut
    short): empty, a safetensors header that is damaged or promises more than the file holds, or a zip
    (torch's format) whose directory at the end is gone. None when nothing is seen."""
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt"):
                pass
        else:
            with path.open("rb") as handle:
                zipped = handle.read(4) == b"PK\x03\x04"
            if zipped and not zipfile.is_zipfile(path):
                return "damaged (a zip file without its end: cut short)"
    except (SafetensorError, OSError) as error:
        return f"damaged ({_first_line(error)})"
    return None


def read_checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes only; cheap for safetensors, memory-mapped for torch files."""
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except (SafetensorError, OSError) as error:
            raise ModelFolderError(f"Cannot read the checkpoint {path}.", f"It is damaged ({_first_line(error)}).",
                                   redownload_fix(path)) from None
    return {key: tuple(tensor.shape) for key, tensor in read_checkpoint(path).items()}


def network_state_dict(folder: ModelFolder, network: str, read=read_checkpoint) -> tuple[dict, list[Path]]:
    """Merge the files of one network; returns the state dict and the files it came from."""
    state: dict = {}
    used = []
    for stem in NETWORK_FILES[network]:
        path = folder.checkpoint(stem)
        if path is not None:
            state.update(read(path))
            used.append(path)
    return state, used


def missing_checkpoint_files(folder: ModelFolder) -> list[str]:
    missing = [f"v-express/{stem}.bin" for network in NETWORK_FILES for stem in NETWORK_FILES[network][:1]
               if folder.checkpoint(stem) is None]
    denoising = folder.checkpoint("denoising_unet")
    # A denoising_unet holding the motion modules needs no motion_module file; without one, the released
    # layout's motion_module.bin is listed too, so that copying the listed files is enough.
    if folder.checkpoint("motion_module") is None and (
            denoising is None or not any(".motion_modules." in key for key in read_checkpoint_shapes(denoising))):
        missing.append("v-express/motion_module.bin")
    return missing


def missing_model_files(folder: ModelFolder) -> list[str]:
    """Every file generation needs that the folder lacks (the face detector is optional)."""
    from vexpress_cli.engine.model_folder import REQUIRED_FILES

    missing = [required.choices[0] for required in REQUIRED_FILES
               if not required.choices[0].startswith(VEXPRESS_DIR.as_posix())
               and INSIGHTFACE_DETECTOR.as_posix() not in required.choices
               and required.present_in(folder.root) is None]
    return missing + missing_checkpoint_files(folder)


def described_missing(root: Path, names: list[str]) -> str:
    """``names`` (paths in the folder) joined, each with what stands in its place when something does."""
    described = []
    for name in names:
        path = root / name
        if path.is_symlink() and not path.exists():
            name += " (a link that leads nowhere is in its place)"
        elif path.is_dir():
            name += " (a folder is in its place)"
        elif path.exists() and not path.is_file():  # a link to /dev/zero, a named pipe
            name += f" ({special_file_kind(path.stat().st_mode)} is in its place)"
        described.append(name)
    return ", ".join(described)


def check_model_files(folder: ModelFolder) -> None:
    missing = missing_model_files(folder)
    if missing:
        raise ModelFolderError(
            f"The model folder {folder.root} lacks {described_missing(folder.root, missing)}.",
            "V-Express needs every part of the released model.",
            "Run `vexpress models download` or copy the files from the released model.",
        )


def load_networks(folder: ModelFolder, architecture: Architecture, names=None) -> dict[str, nn.Module]:
    """Build the V-Express networks and load their weights; one error lists every problem."""
    names = names or NETWORK_NAMES
    missing_files = missing_checkpoint_files(folder)
    if missing_files:
        raise ModelFolderError(
            f"The model folder {folder.root} lacks {described_missing(folder.root, missing_files)}.",
            "V-Express needs all of its checkpoints.",
            "Run `vexpress models download` or copy the files from the released model.",
        )
    networks, reports = {}, []
    for name in names:
        state, files = network_state_dict(folder, name)
        module = architecture.build_on_meta(name)
        report = compare_keys(name, {k: tuple(v.shape) for k, v in module.state_dict().items()},
                              {k: tuple(v.shape) for k, v in state.items()})
        if not report.ok:
            reports.append(report)
            continue
        expected = module.state_dict()
        not_float = sorted(key for key, tensor in state.items()
                           if key in expected and expected[key].is_floating_point() and not tensor.is_floating_point())
        if not_float:
            raise ModelFolderError(
                f"The checkpoint of the {name} in {folder.root / VEXPRESS_DIR} holds {len(not_float)} tensors of "
                f"integers or booleans where weights are real numbers (the first: {not_float[0]}, "
                f"{state[not_float[0]].dtype}).",
                "The file is damaged or is not a V-Express checkpoint.",
                "Download the model again (`vexpress models download`).")
        non_finite = first_non_finite(state)
        if non_finite is not None:
            raise non_finite_error(_file_holding(non_finite, files), non_finite, state[non_finite])
        module.load_state_dict(state, strict=False, assign=True)
        materialize_tolerated_missing(module)
        networks[name] = module.eval()
    if reports:
        raise ModelFolderError(
            f"The checkpoints in {folder.root / 'v-express'} do not fit the V-Express architecture: "
            + " | ".join(report.describe() for report in reports) + ".",
            "The files are from another model, damaged, or the folder's configs describe another size.",
            "Check `vexpress inspect` on the folder, and download the released model again if needed.",
        )
    return networks


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The key of the first floating-point tensor holding NaN or infinity, so that such weights are found at load
    and not after a whole denoise (a black video)."""
    return next((key for key, tensor in tensors.items() if tensor.is_floating_point() and not _is_finite(tensor)),
                None)


def _is_finite(tensor: torch.Tensor) -> bool:
    """One pass over the tensor as read, without a copy: its least and greatest values are NaN when it holds a NaN,
    infinite when it holds an infinity (20 times faster than torch.isfinite on the CPU, which makes a mask)."""
    if tensor.numel() == 0:
        return True
    if tensor.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        tensor = tensor.float()  # aminmax has no 8-bit floats
    low, high = torch.aminmax(tensor)
    return math.isfinite(low.item()) and math.isfinite(high.item())  # Python floats: fewer torch calls per tensor


def non_finite_error(path: Path, key: str, tensor: torch.Tensor) -> ModelFolderError:
    found = "NaN" if torch.isnan(tensor).any() else "an infinite value"
    return ModelFolderError(f"The weights in {path} hold {found} in {key}.",
                            "Weights are finite numbers: the file is damaged, and a video made with it would come "
                            "out black, found only after the whole denoise.", redownload_fix(path))


def _file_holding(key: str, files: list[Path]) -> Path:
    """Which of a network's files a tensor came from (the last that holds it, as in ``network_state_dict``)."""
    return next(path for path in reversed(files) if key in read_checkpoint_shapes(path))


def materialize_tolerated_missing(module: nn.Module) -> None:
    """Give real values to the few tensors the checkpoints leave out (still on the meta device)."""
    for submodule in module.modules():
        own = list(submodule.parameters(recurse=False)) + list(submodule.buffers(recurse=False))
        if any(tensor.is_meta for tensor in own):
            submodule.to_empty(device="cpu", recurse=False)
            submodule.reset_parameters()


def _config_reason(error: BaseException) -> str:
    """The first two lines of a config error: strict dataclasses name the field on one line, the problem on the next."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
    return " ".join(lines).rstrip(".") or type(error).__name__


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
