"""Health checks of a vexpress installation: what ``vexpress doctor`` runs.

Each check reports a :class:`Check` (``ok``, ``warning`` or ``failure``, a one-line detail and a
one-line fix). :func:`run_checks` runs them all and never raises: a check that crashes becomes a
failure row naming the crash, so one broken part never hides the others.

Checks, in order: Python, installed dependencies, torch, CUDA, MPS, the chosen device, dtypes
and scaled-dot-product attention on it, what is on for speed (compile, window batch, devices), the bundled ffmpeg and its encoders, the config file,
the model folder and its files (``deep``: every checkpoint tensor against the architecture),
the face backends, retarget-strategy plugins, presets and (``smoke``) a one-second generation
with the built-in tiny random model through the same code path as ``vexpress generate``.

One module per group of checks: :mod:`.environment` (Python, packages, torch, CUDA, MPS),
:mod:`.device`, :mod:`.speed`, :mod:`.ffmpeg`, :mod:`.model_folder`, :mod:`.face`, :mod:`.plugins` and
:mod:`.smoke`; :mod:`.report` holds the :class:`Check` row and what the checks share.
"""

from __future__ import annotations

from collections.abc import Callable

from vexpress_cli.jobs.doctor.device import device_checks
from vexpress_cli.jobs.doctor.environment import python_checks, torch_checks
from vexpress_cli.jobs.doctor.face import face_checks
from vexpress_cli.jobs.doctor.ffmpeg import ffmpeg_checks
from vexpress_cli.jobs.doctor.model_folder import model_checks
from vexpress_cli.jobs.doctor.plugins import plugin_checks
from vexpress_cli.jobs.doctor.report import (
    FAILURE,
    OK,
    SEVERITY,
    WARNING,
    Check,
    counted,
    DoctorContext,
    DoctorOptions,
    Status,
    guarded,
    has_failures,
    status_counts,
    worst,
)
from vexpress_cli.jobs.doctor.smoke import smoke_checks
from vexpress_cli.jobs.doctor.speed import speed_checks

__all__ = ["FAILURE", "OK", "SEVERITY", "WARNING", "Check", "DoctorOptions", "Status", "counted", "has_failures",
           "run_checks", "status_counts", "worst"]


def run_checks(options: DoctorOptions | None = None,
               on_section: Callable[[str], None] | None = None) -> list[Check]:
    """Run every check; ``on_section(title)`` is called before each group (for a spinner)."""
    options = options or DoctorOptions()
    context = DoctorContext(options)
    sections: list[tuple[str, str, Callable[[DoctorContext], list[Check]]]] = [
        ("Python and packages", "python", python_checks),
        ("torch and accelerators", "torch", torch_checks),
        ("the compute device", "device", device_checks),
        ("speed options", "speed", speed_checks),
        ("ffmpeg", "ffmpeg", ffmpeg_checks),
        ("configuration and model folder", "model folder", model_checks),
        ("face detection", "face detection", face_checks),
        ("plugins and presets", "plugins", plugin_checks),
    ]
    if options.smoke:
        sections.append(("a one-second generation with the tiny model", "smoke test", smoke_checks))
    checks: list[Check] = []
    for title, name, section in sections:
        if on_section is not None:
            on_section(title)
        checks.extend(guarded(name, section, context))
    return checks
