"""Checks of the chosen compute device: that it resolves, which dtypes work on it, and fused attention."""

from __future__ import annotations

import json

from vexpress_cli.errors import VExpressError, parameter
from vexpress_cli.jobs.doctor.report import (
    FAILURE, OK, TORCH_INSTALL_URL, WARNING, Check, DoctorContext, Status, describe, join, worst,
)
from vexpress_cli.settings.user_config import where_set


def device_checks(context: DoctorContext) -> list[Check]:
    """The device and precision generate would use: ``--device``, else the user config's, else auto."""
    from vexpress_cli.engine.devices import resolve_device

    requested, source = context.options.device, "explicit"
    try:
        requested, source = context.setting("device")
        device = resolve_device(requested)
    except VExpressError as error:
        error = where_set(error, "device", requested, source)
        return [Check("device", FAILURE, join(error.what, error.why), error.fix)]
    context.device = device
    data = {"device": str(device), "requested": requested, "source": source}
    checks = [Check("device", OK, str(device) + _how_chosen(requested, source), data=data), _dtype_check(device),
              _configured_dtype_check(context, device), _sdpa_check(device)]
    return [check for check in checks if check is not None]


def _how_chosen(requested: str, source: str) -> str:
    if source == "config":
        return f" (device = {json.dumps(requested)} in the user config's [generate])"
    return f" (chosen by {parameter('device', 'auto')})" if requested == "auto" else ""


def _configured_dtype_check(context: DoctorContext, device) -> Check | None:
    """The user config's dtype on this device, as generate would resolve it; None when not configured (the
    dtypes row covers auto)."""
    from vexpress_cli.engine.devices import dtype_warning, resolve_dtype

    name, source = context.setting("dtype")
    try:
        context.dtype = resolve_dtype(name, device)
    except VExpressError as error:
        error = where_set(error, "dtype", name, source)
        return Check("dtype", FAILURE, join(error.what, error.why), error.fix)
    if source != "config":
        return None
    dtype_name = str(context.dtype).removeprefix("torch.")
    detail = f"dtype = {json.dumps(name)} in the user config's [generate]: {dtype_name} on {device}"
    if name != "auto" and _matmul_error(device, context.dtype):
        return Check("dtype", FAILURE, detail + ", which fails here (see the dtypes row)",
                     "Change or remove dtype in the user config's [generate] (auto picks one that works).")
    if dtype_warning(context.dtype, device) is not None:  # fp16 on the CPU
        return Check("dtype", WARNING, detail + ", which is slow there (few float16 kernels)",
                     "Set dtype = \"auto\" in the user config's [generate] (fp32 on the CPU) or remove the line, "
                     "or run on a GPU.")
    return Check("dtype", OK, detail)


def _matmul_error(device, dtype) -> str | None:
    """None when a small matrix product in ``dtype`` on ``device`` is right, else what went wrong."""
    import torch

    generator = torch.Generator().manual_seed(0)
    left = torch.randn(16, 32, generator=generator)
    right = torch.randn(32, 8, generator=generator)
    expected = left @ right
    try:
        got = (left.to(device, dtype) @ right.to(device, dtype)).float().cpu()
    except Exception as error:  # unsupported dtypes raise RuntimeError, TypeError, ...
        return describe(error)
    tolerance = 0.05 * float(expected.abs().max())  # generous: fp16/bf16 keep ~3 digits
    if not torch.isfinite(got).all() or float((got - expected).abs().max()) > tolerance:
        return "wrong results"
    return None


def _dtype_check(device) -> Check:
    import torch

    from vexpress_cli.engine.devices import resolve_dtype

    results: dict[str, Status] = {}
    words: dict[str, str] = {}  # ok, slow or fails, for the detail line
    notes: list[str] = []
    fixes: list[str] = []
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        error = _matmul_error(device, dtype)
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            error = error or "not supported by this GPU"
        if error is None:
            results[name], words[name] = OK, "ok"
            if name == "fp16" and device.type == "cpu":
                results[name], words[name] = WARNING, "slow"
                notes.append("fp16 works but is slow on the CPU")
                fixes.append(f"Keep {parameter('dtype', 'auto')} (fp32 on the CPU) or run on a GPU.")
            continue
        auto_dtype = resolve_dtype("auto", device)
        essential = dtype == auto_dtype or name == "fp32"
        results[name] = FAILURE if essential else WARNING
        words[name] = "fails"
        notes.append(f"{name} fails ({error})")
        fixes.append(f"Use {parameter('dtype', 'fp16' if name == 'bf16' else 'fp32')}." if not essential else
                     f"Update the GPU driver and torch ({TORCH_INSTALL_URL}), or use {parameter('dtype', 'fp32')}.")
    auto_name = {torch.float32: "fp32", torch.float16: "fp16"}.get(resolve_dtype("auto", device), "?")
    summary = ", ".join(f"{name} {word}" for name, word in words.items())
    detail = f"{summary} on {device}; {parameter('dtype', 'auto')} uses {auto_name} here"
    if notes:
        detail += f" ({'; '.join(notes)})"
    return Check("dtypes", worst(results.values()), detail, " ".join(dict.fromkeys(fixes)),
                 data={"dtypes": results, "auto": auto_name})


def _sdpa_check(device) -> Check:
    """torch's fused attention runs on the device, and which of its kernels do (on CUDA)."""
    import torch
    import torch.nn.functional as F

    from vexpress_cli.engine.devices import resolve_dtype

    if not hasattr(F, "scaled_dot_product_attention"):
        return Check("attention (SDPA)", FAILURE, f"torch {torch.__version__} has no scaled_dot_product_attention",
                     f"Upgrade torch to 2.2 or newer ({TORCH_INSTALL_URL}).")
    dtype = resolve_dtype("auto", device)
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, 2, 64, 64, generator=generator) for _ in range(3))
    expected = torch.softmax(query @ key.transpose(-1, -2) / 8.0, dim=-1) @ value

    def attention_error() -> str | None:
        try:
            got = F.scaled_dot_product_attention(*(t.to(device, dtype) for t in (query, key, value)))
        except Exception as error:
            return describe(error)
        if float((got.float().cpu() - expected).abs().max()) > 0.05:
            return "wrong results"
        return None

    if device.type != "cuda":
        error = attention_error()
        if error:
            return Check("attention (SDPA)", FAILURE, f"scaled_dot_product_attention fails on {device}: {error}",
                         f"Reinstall torch ({TORCH_INSTALL_URL}).")
        return Check("attention (SDPA)", OK, f"scaled_dot_product_attention works on {device}")

    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "memory-efficient": SDPBackend.EFFICIENT_ATTENTION,
               "math": SDPBackend.MATH}
    working = []
    for label, backend in kernels.items():
        with sdpa_kernel([backend]):
            if attention_error() is None:
                working.append(label)
    detail = f"kernels that run on {device} in {str(dtype).removeprefix('torch.')}: {', '.join(working) or 'none'}"
    if not working:
        return Check("attention (SDPA)", FAILURE, detail, f"Update the GPU driver and torch ({TORCH_INSTALL_URL}).")
    if working == ["math"]:
        return Check("attention (SDPA)", WARNING, detail + " (no fused kernel: slower, more memory)",
                     f"Install a torch build with fused attention for this GPU ({TORCH_INSTALL_URL}).",
                     data={"kernels": working})
    return Check("attention (SDPA)", OK, detail, data={"kernels": working})

