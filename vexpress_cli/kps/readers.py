"""Read the points of a kps file, in each format, without trusting the file.

A safetensors header and a torch file both declare a tensor's shape before its data: the
shape is checked against the kps frame limit before anything is read. Torch files load with
``weights_only=True`` and an allow-list of exactly the numpy globals that rebuild a float
array (the original V-Express's kps files are pickled lists of numpy arrays), and a plain
``pickle.dump`` file is refused unread.
"""

from __future__ import annotations

import importlib
import math
import warnings
from pathlib import Path

import numpy as np

from vexpress_cli.errors import InputError
from vexpress_cli.kps.limits import MAX_FRAMES
from vexpress_cli.torch_errors import forbidden_global, torch_load_reason
from vexpress_cli.torch_files import zip_bomb_reason
from vexpress_cli.wording import first_few

KPS_TENSOR_NAME = "kps"


def read_safetensors(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """The ``kps`` tensor (or the only tensor, whatever its name) and the header metadata."""
    from safetensors import SafetensorError, safe_open

    try:
        # framework="pt": torch reads every safetensors dtype (bfloat16 too), numpy does not.
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            metadata = handle.metadata() or {}
            if KPS_TENSOR_NAME in names:
                name = KPS_TENSOR_NAME
            elif len(names) == 1:
                name = names[0]
            else:
                raise _not_a_track(path, names)
            check_declared_size(list(handle.get_slice(name).get_shape()), path)
            return _tensors_to_numpy(handle.get_tensor(name)), metadata
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(
            f"The kps file {path} is not a valid safetensors file.",
            why=f"Reading it failed: {error}.",
            fix="The file may be truncated or of another type; re-create it with `vexpress extract`.",
        ) from None


# More tensors than a kps file holds: the file is most likely a checkpoint (the UNet's has about 1,700).
MANY_TENSORS = 4


def _not_a_track(path: Path, names: list[str]) -> InputError:
    """A safetensors file with no tensor named kps among several: a few names and the count, not hundreds."""
    if not names:
        why = "It holds no tensor."
    else:
        weights = ": it looks like model weights, not a keypoint track" if len(names) >= MANY_TENSORS else ""
        why = f"It holds {len(names)} tensors but none named '{KPS_TENSOR_NAME}' (it has: {first_few(names)}){weights}."
    return InputError(
        f"The safetensors file {path} is not a kps file.", why=why,
        fix=f"Pass a kps file written by `vexpress extract`, or save the track as the only "
        f"tensor or under the name '{KPS_TENSOR_NAME}'.",
    )


def _refuse_a_dict(loaded, path: Path) -> None:
    """InputError for a torch file holding a dict (a state dict of weights, most likely), not a track."""
    if not isinstance(loaded, dict):
        return
    names = [str(key) for key in loaded]
    holds = f"a dict of {len(names)} entries ({first_few(names)})" if names else "an empty dict"
    raise InputError(
        f"The kps file {path} holds {holds}, not a keypoint track.",
        why="A dict of tensors is how model weights (a state dict) are saved; a kps track is one tensor or array "
        "of shape (frames, 3, 2), or a list of them.",
        fix="Pass a kps file written by `vexpress extract`; weights belong in the model folder (--model-dir).",
    )


# Where numpy keeps _reconstruct: numpy 2 name first, then numpy 1.x (pyproject allows numpy>=1.24).
MULTIARRAY_MODULES = ("numpy._core.multiarray", "numpy.core.multiarray")
# The names a pickle may use for it: numpy 1.x writes the second, numpy 2 the first.
RECONSTRUCT_NAMES = tuple(f"{module}._reconstruct" for module in MULTIARRAY_MODULES)


def _numpy_reconstruct():
    for module_name in MULTIARRAY_MODULES:
        try:
            with warnings.catch_warnings():  # numpy 2 deprecates the numpy.core alias
                warnings.simplefilter("ignore", DeprecationWarning)
                return importlib.import_module(module_name)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy provides none of {', '.join(MULTIARRAY_MODULES)}")


def _legacy_array_globals() -> list:
    """The only globals a legacy kps pickle may name: what rebuilds a numpy float array."""
    reconstruct = _numpy_reconstruct()
    dtype_classes = [type(np.dtype(name)) for name in ("float16", "float32", "float64")]
    return [
        # Whichever numpy wrote the pickle, its name for _reconstruct maps to ours.
        *((reconstruct, name) for name in RECONSTRUCT_NAMES),
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


# Lists in a track: of frames, of points, of (x, y); the values below are numbers or tensors.
MAX_NESTING = 3
# A file torch.save wrote in its legacy format starts with its magic number pickled as a long (LONG1 opcode).
TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def read_torch_file(path: Path):
    """The points a ``.pth``/``.pt`` file holds: a tensor, an array, or a list of them (the original's form)."""
    import pickle

    import torch

    _refuse_plain_pickle(path)
    if reason := zip_bomb_reason(path):
        raise InputError(f"Refused to load the kps file {path}: {reason}.",
                         why="A kps file written by torch.save stores its parts uncompressed; this one was made to "
                         "exhaust memory, or by another tool.",
                         fix="Pass a real keypoint track, re-created with `vexpress extract VIDEO`.")
    try:
        with torch.serialization.safe_globals(_legacy_array_globals()), warnings.catch_warnings():
            # A raw pickle (no torch file) makes torch warn about its protocol before it fails with a reason.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = forbidden_global(error)
        if found:
            name = f" ({found})"
            raise InputError(
                f"Refused to load {path}: it contains Python objects other than arrays{name}.",
                why="Unpickling arbitrary objects can run code, so kps files may only hold tensors or numpy arrays.",
                fix="If you trust the file, convert it in Python to a plain tensor: "
                "torch.save(torch.as_tensor(numpy.stack(points), dtype=torch.float32), 'kps.pth').",
            ) from None
        raise _unreadable_pickle(path, error) from None
    except Exception as error:  # a corrupt file can fail in the zip, pickle or storage layers
        raise _unreadable_pickle(path, error) from None
    _refuse_a_dict(loaded, path)
    check_nesting(loaded, path)
    check_declared_size(declared_shape(loaded), path)
    return _tensors_to_numpy(loaded)


def check_nesting(value, path: Path) -> None:
    """InputError for lists nested deeper than a track's (or a list holding itself), found level by level: the
    readers that follow recurse, and a file a few kilobytes long can nest a million levels."""
    level = [value]
    for _ in range(MAX_NESTING + 1):  # the last level: no list
        # Each list once: a pickle may hold one list many times (10,000 of 10,000 of 10,000 in 30 KB).
        level = list({id(item): item for each in level if isinstance(each, (list, tuple)) for item in each}.values())
        if not level:
            return
    raise InputError(
        f"The kps file {path} nests lists deeper than a keypoint track does.",
        why="A track is a tensor or array of shape (frames, 3, 2), a list of them, or a list of frames of three "
        "(x, y) points.",
        fix="Pass a real keypoint track, re-created with `vexpress extract VIDEO`.")


def _refuse_plain_pickle(path: Path) -> None:
    """A pickle.dump file (no torch file: it starts with pickle's PROTO opcode and a protocol it has, not torch's
    magic number). Anything else goes to torch, which says what it is not."""
    with open(path, "rb") as handle:
        start = handle.read(32)
    if len(start) > 1 and start[0] == 0x80 and 2 <= start[1] <= 5 and TORCH_MAGIC not in start:
        raise InputError(
            f"Refused to load {path}: it starts like a plain Python pickle (pickle.dump, protocol {start[1]}), not a "
            "file torch.save wrote.",
            why="Unpickling arbitrary objects can run code, so kps files may only be torch files of tensors or "
            "numpy arrays, or .safetensors files.",
            fix="If you trust the file, load it in Python and save the points as a plain tensor: "
            "torch.save(torch.as_tensor(numpy.stack(points), dtype=torch.float32), 'kps.pth').")


def declared_shape(value, _shapes: dict[int, list[int]] | None = None) -> list[int]:
    """The shape ``value`` claims, without reading its elements.

    A tensor's size (a repeated tensor costs nothing until it is read), or a list's length
    followed by the largest shape among its items; a list held many times is measured once.
    """
    import torch

    shapes = {} if _shapes is None else _shapes
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        if id(value) not in shapes:
            items = [declared_shape(item, shapes) for item in value] if len(value) <= MAX_FRAMES else []
            shapes[id(value)] = [len(value), *max(items, key=math.prod, default=[])]
        return shapes[id(value)]
    return []


def check_declared_size(shape: list[int], path: Path) -> None:
    """InputError before a track larger than MAX_FRAMES frames of 3 (x, y) points is materialised."""
    frames = shape[0] if shape else 0
    values = math.prod(shape) if shape else 0
    if frames > MAX_FRAMES or values > MAX_FRAMES * 6:
        raise InputError(
            f"The kps file {path} declares a track of shape {shape}, more than the {MAX_FRAMES:,} frames "
            "(24 hours at 60 fps) a kps track may have.",
            why=f"Reading it would take about {values * 8 / 1e9:.1f} GB of memory, however small the file is "
            "(a repeated tensor declares its full size in a few bytes).",
            fix="Pass a real keypoint track, re-created with `vexpress extract VIDEO`; split tracks longer than a day.",
        )


def _unreadable_pickle(path: Path, error: Exception) -> InputError:
    return InputError(
        f"The kps file {path} could not be read as a torch file.",
        why=f"Loading it failed: {torch_load_reason(error)}.",
        fix="The file may be truncated or of another type; re-create it with `vexpress extract`.",
    )


def _tensors_to_numpy(value):
    import torch

    if isinstance(value, torch.Tensor):  # complex stays complex, for the points' check to refuse
        return value.detach().numpy() if value.is_complex() else value.detach().to(torch.float64).numpy()
    if isinstance(value, (list, tuple)):
        return [_tensors_to_numpy(item) for item in value]
    return value
