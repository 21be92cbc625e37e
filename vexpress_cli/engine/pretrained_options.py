"""What ``from_pretrained`` and ``save_pretrained`` take besides the model: components passed by name,
``torch_dtype`` in diffusers' forms, and the folder to save in, each checked before anything is read or written."""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vexpress_cli.engine.devices import DTYPES
from vexpress_cli.errors import InputError, ModelFolderError, described, did_you_mean, parameter


def component_names(pipeline_class) -> tuple[str, ...]:
    return tuple(name for name in inspect.signature(pipeline_class.__init__).parameters if name != "self")


def released_layout_overrides(pipeline_class, kwargs: dict) -> dict:
    """The components given by name (they replace the folder's); a TypeError for any other keyword, which the
    released layout has no use for."""
    names = component_names(pipeline_class)
    unexpected = sorted(set(kwargs) - set(names))
    if unexpected:
        raise TypeError(f"from_pretrained() got unexpected keyword arguments for a folder in the released layout: "
                        f"{', '.join(unexpected)}. {_suggestions(unexpected, names)}It takes the components by "
                        f"name ({', '.join(names)}); variant and the like apply to a save_pretrained folder.")
    return kwargs


def check_saved_layout_keywords(pipeline_class, kwargs: dict) -> None:
    """A TypeError for a keyword that is neither a component nor one of diffusers' loading options: diffusers
    would only log that it ignores it, and loading is quiet, so a misspelt ``schedular=`` went unnoticed."""
    names = component_names(pipeline_class)
    options = diffusers_loading_options()
    unexpected = sorted(set(kwargs) - set(names) - options)
    if unexpected:
        raise TypeError(f"from_pretrained() got unexpected keyword arguments: {', '.join(unexpected)}. "
                        f"{_suggestions(unexpected, [*names, *sorted(options)])}It takes the components by name "
                        f"({', '.join(names)}) and diffusers' loading options (variant, use_safetensors, ...).")


@functools.cache
def diffusers_loading_options() -> frozenset[str]:
    """The keywords diffusers' DiffusionPipeline.from_pretrained reads, from its source: each version has its own."""
    from diffusers import DiffusionPipeline

    try:
        source = inspect.getsource(DiffusionPipeline.from_pretrained)
    except (OSError, TypeError):  # no source to read (a frozen install): the options of diffusers 0.42
        return DIFFUSERS_LOADING_OPTIONS
    return frozenset(re.findall(r"kwargs\.pop\([\"'](\w+)[\"']", source)) | DIFFUSERS_LOADING_OPTIONS


DIFFUSERS_LOADING_OPTIONS = frozenset((
    "cache_dir", "custom_pipeline", "custom_revision", "device_map", "disable_mmap", "dtype", "force_download",
    "load_connected_pipeline", "local_files_only", "low_cpu_mem_usage", "max_memory", "offload_folder",
    "offload_state_dict", "provider", "provider_options", "proxies", "quantization_config", "revision",
    "sess_options", "token", "torch_dtype", "trust_remote_code", "use_flashpack", "use_onnx", "use_safetensors",
    "variant"))


def _suggestions(unexpected: list[str], known) -> str:
    return "".join(did_you_mean(name, known) for name in unexpected)


def checked_torch_dtype(value) -> torch.dtype | dict | None:
    """None or "auto" (as stored), a floating torch dtype or its name, or diffusers' dict of a dtype per
    component with "default" for the rest."""
    if isinstance(value, dict):
        return {name: checked_torch_dtype(dtype) for name, dtype in value.items()}
    if value is None or value == "auto":
        return None
    dtype = _named_dtype(value.removeprefix("torch.")) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputError(f"{parameter('torch_dtype')} is {described(value)}.",
                         "The networks compute in a floating-point type.",
                         "Pass torch.float16, torch.bfloat16 or torch.float32 (or their names, or \"auto\").")
    return dtype


def _named_dtype(name: str) -> torch.dtype | None:
    """The short names of ``--dtype`` (fp16, bf16, fp32) and torch's own (float16, half, bfloat16, float, ...)."""
    named = getattr(torch, name, None)
    return DTYPES.get(name) or (named if named in DTYPES.values() else None)


def cast_and_move(pipeline, dtype: torch.dtype | dict | None, device) -> None:
    if isinstance(dtype, dict):
        for name, network in pipeline.networks().items():
            network_dtype = dtype.get(name, dtype.get("default"))
            if network_dtype is not None:
                network.to(dtype=network_dtype)
        dtype = None
    if dtype is not None or device is not None:
        # diffusers warns that fp16 "will fail" on the CPU; these networks run there (slowly).
        pipeline.to(device=device, dtype=dtype, silence_dtype_warnings=True)


# What torch's CPU allocator aligns every tensor to (c10's gAlignment).
CPU_ALIGNMENT = 64


def align_cpu_weights(pipeline) -> None:
    """Give every weight on the CPU memory of its own where it lies at an address that is no multiple of 64.

    Loaders keep tensors in the memory-mapped file: a .bin (torch.load) puts each at a multiple of 64 bytes,
    a .safetensors only at a multiple of 8 after its header. MKL's float32 kernels add in another order for
    weights that are not 16-byte aligned (a 128x32 matrix times a vector differs by 2e-6), so the released
    folder's .bin networks and the same networks saved by save_pretrained (.safetensors) gave frames 4e-5
    apart. Aligned, a pipeline computes the same numbers whichever files (or layout) it came from.
    """
    with torch.no_grad():
        for network in pipeline.networks().values():
            for tensor in [*network.parameters(), *network.buffers()]:
                if tensor.device.type == "cpu" and tensor.data_ptr() % CPU_ALIGNMENT:
                    tensor.data = tensor.data.clone()  # strides kept (preserve_format)


def checked_save_directory(save_directory) -> Path:
    """The folder ``save_pretrained`` writes into: a path that is a folder, or nothing yet."""
    text = os.fspath(save_directory) if isinstance(save_directory, (str, os.PathLike)) else None
    if not text:
        raise InputError(f"{parameter('save_directory')} is {described(save_directory)}.",
                         "An empty text would save into the current folder.",
                         "Pass the folder to save in, e.g. pipe.save_pretrained('v-express-saved').")
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"Cannot save the pipeline in {folder}: it is a file, not a folder.", "",
                         "Pass a new folder's path, or the path of a folder to write into.")
    return folder


@contextmanager
def saved_layout_errors(folder: Path) -> Iterator[None]:
    """diffusers' errors for a damaged save_pretrained folder, as one ModelFolderError."""
    try:
        yield
    except (OSError, ValueError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFolderError(f"Cannot load the pipeline saved in {folder}.",
                               f"diffusers could not read it: {reason}",
                               "Save it again with pipe.save_pretrained(folder), or load the released model folder "
                               "(vexpress models download).") from None
