"""Choosing the device and precision to run on."""

from __future__ import annotations

import torch

from vexpress_cli.errors import InputError, parameter

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(name: str = "auto", setting: str = "device") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; ``cuda:N`` picks a GPU.

    ``setting`` is where ``name`` came from (``device``, or one entry of ``devices``): the fixes name it.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"Unknown device '{name}'.", "", "Use auto, cuda, cuda:N, mps or cpu.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but is not available.", f"The installed {cuda_missing_reason()}.",
                         f"{_use_the_cpu(setting)}, or install a CUDA build of torch.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"There is no GPU {device}.", f"{torch.cuda.device_count()} GPU(s) are visible.",
                         "Pick an index below that count.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("MPS was asked for but is not available.", "It needs an Apple-silicon Mac.",
                         f"{_use_the_cpu(setting)}.")
    return device


def cuda_missing_reason() -> str:
    """Why torch sees no CUDA GPU, as a clause starting with 'torch': the build, or the machine."""
    if torch.version.cuda is None:
        return "torch was built without CUDA support"
    return f"torch is built for CUDA {torch.version.cuda} but sees no GPU"


def _use_the_cpu(setting: str) -> str:
    if setting == "devices":  # it wins over device: naming the CPU there would not help
        return f"Leave out {parameter('devices')} to run on one device, or use {parameter('devices', 'cpu,cpu')}"
    return f"Use {parameter(setting, 'cpu')}"


def dtype_warning(dtype: torch.dtype, device: torch.device) -> str | None:
    """Why this precision is a poor choice on this device, if it is."""
    if dtype == torch.float16 and device.type == "cpu":
        return (f"{parameter('dtype', 'fp16')} is slow on the CPU, which has few float16 kernels; leave "
                f"{parameter('dtype')} at auto (fp32 there), or run on a GPU.")
    return None


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: half precision on GPUs (as the original), float32 on the CPU."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise InputError(f"Unknown dtype '{name}'.", "", "Use auto, fp16, bf16 or fp32.")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("This GPU does not support bf16.", "", f"Use {parameter('dtype', 'fp16')}.")
    return DTYPES[name]


def runs_with(name: str, value: str, device: torch.device | None, dtype: torch.dtype | None) -> bool:
    """Whether a job's ``device`` or ``dtype`` setting ``value`` is ``auto`` or what networks loaded on ``device``
    in ``dtype`` run with. ``None``: not known here (a Ray actor's device is the cluster's): any value does."""
    if value == "auto" or (device if name == "device" else dtype) is None:
        return True
    if name == "dtype":
        return resolve_dtype(value, device or torch.device("cpu")) == dtype
    wanted = torch.device(value)  # as named: a GPU this machine lacks is not the loaded device either
    return wanted.type == device.type and wanted.index in (None, _index(device))


def _index(device: torch.device) -> int | None:
    """A device's number: ``cuda`` is the current GPU (cuda:0 unless changed)."""
    if device.index is None and device.type == "cuda":
        return torch.cuda.current_device() if torch.cuda.is_available() else 0
    return device.index
