"""The device and dtype a job runs with, resolved; a bad one's error says where it was set (a flag or argument,
the user config or a preset), since a value from a file was typed as no flag."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.settings.schema import ResolvedSettings
from vexpress_cli.settings.user_config import where_set

CPU_COMPILE_WARNING = (f"{parameter('compile')} on the CPU first compiles the denoising UNet for minutes (373 s for "
                       "the tiny test model on two cores the first time, 46 s once cached; longer for the real one) "
                       "and is not faster there: leave it off on the CPU.")


def job_device_and_dtype(device: str, dtype: str, sources: Mapping[str, str],
                         devices: list[torch.device] | None = None) -> tuple[torch.device, torch.dtype]:
    """``device`` (``auto`` resolved; the first of ``devices`` when given) and ``dtype`` on it. ``sources``: where
    each was set, as the resolved settings' sources say it (explicit, config, preset or default)."""
    from vexpress_cli.engine.devices import resolve_device, resolve_dtype

    try:
        resolved = devices[0] if devices else resolve_device(device)
    except InputError as error:
        raise where_set(error, "device", device, sources["device"]) from None
    try:
        return resolved, resolve_dtype(dtype, resolved)
    except InputError as error:
        raise where_set(error, "dtype", dtype, sources["dtype"]) from None


def check_job_device(resolved: ResolvedSettings, devices: str | list[str] | None = None) -> None:
    """A job's resolved device and dtype checked before a :class:`~vexpress_cli.Generator` takes them as given, so
    that one a preset or the user config set and that cannot run is told as theirs (``devices`` wins over it)."""
    if devices is None:
        job_device_and_dtype(resolved.settings.device, resolved.settings.dtype, resolved.sources)


def compile_warnings(resolved: ResolvedSettings, device: torch.device) -> list[str]:
    """A job's ``compile`` checked on ``device`` before the networks load (refused where it cannot run, told where
    it was set: a flag, the user config or a preset), and the warning that it is slow on the CPU."""
    from vexpress_cli.engine.compile import compile_error

    if not resolved.settings.compile:
        return []
    if error := compile_error(device):
        raise where_set(error, "compile", True, resolved.sources["compile"])
    return [CPU_COMPILE_WARNING] if device.type == "cpu" else []
