"""``compile``: the denoising UNet through ``torch.compile``, with a compile cache that outlives the run.

The UNet is 90+ % of the work and its shapes are fixed for a job (one window batch, one size), so it
is compiled once per shape (``dynamic=False``: a smaller last batch is one more specialisation, not
slower dynamic kernels). Inductor's FX-graph and AOT-autograd caches are kept in a folder of the user's
cache (``compile_cache_dir``) instead of ``/tmp``, so the compile cost is paid once per machine: the
cache's keys hold the torch version, the graph, the input shapes and dtypes and the device, so another
torch, size or precision compiles anew instead of using a wrong kernel.

Compiling changes numbers by float noise only (fused kernels round differently): within 1e-4 on the
tiny model in fp32 (tests/test_compile.py).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch

from vexpress_cli.cache_folders import cache_folder
from vexpress_cli.errors import InputError, parameter

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
CACHE_SUBDIR = "torch-compile"


def compile_cache_dir() -> Path:
    """Where the compiled kernels are kept: ``$TORCHINDUCTOR_CACHE_DIR``, else ``~/.cache/vexpress/torch-compile``.

    Inductor writes its own default (a folder in /tmp, lost at reboot) into the variable when it first
    looks, so that value counts as unset.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get(CACHE_ENV)
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    return cache_folder(CACHE_SUBDIR)


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None when it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (it needs torch 2.0 or newer)"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "compiling for CUDA needs Triton, which is not installed (it comes with the CUDA builds of torch)"
    if device.type == "cpu":
        from torch._inductor import config

        compiler = getattr(config.cpp, "cxx", (None, "g++"))
        names = [name for name in (compiler if isinstance(compiler, tuple) else (compiler,)) if name]
        if not any(shutil.which(name) for name in names):
            return "compiling for the CPU needs a C++ compiler (g++ or clang++) on the PATH"
    if device.type not in ("cuda", "cpu"):
        return f"compiling is not supported on {device.type} by this version of vexpress"
    return None


def compile_error(device: torch.device) -> InputError | None:
    """The error for compiling on ``device`` where :func:`compile_unavailable` says it cannot be, else None."""
    reason = compile_unavailable(device)
    if reason is None:
        return None
    return InputError(f"{parameter('compile')} cannot be used on {device}.", f"{reason[0].upper()}{reason[1:]}.",
                      f"Run without {parameter('compile')} (it changes no result, only the speed).")


def set_unet_compiled(pipeline, compiled: bool, mode: str | None = None) -> None:
    """Compile the pipeline's denoising UNet (or undo it); refuses clearly where the backend is missing.

    ``mode`` is ``torch.compile``'s (None: torch's default, the mode measured in benchmarks/README.md).
    """
    unet = pipeline.denoising_unet
    if not compiled:
        unet._compiled_call_impl = None  # nn.Module.compile's hook: back to the eager forward
        return
    if getattr(unet, "_compiled_call_impl", None) is not None:
        return
    if error := compile_error(pipeline.device):
        raise error
    os.environ[CACHE_ENV] = str(compile_cache_dir())
    unet.compile(dynamic=False, mode=mode)


def is_compiled(pipeline) -> bool:
    return getattr(pipeline.denoising_unet, "_compiled_call_impl", None) is not None
