"""vexpress-cli: audio-driven talking-portrait video with V-Express, as a library and a CLI.

The jobs every front end runs (the ``vexpress`` command included)::

    import vexpress_cli

    result = vexpress_cli.generate("me.jpg", "speech.wav", "talk.mp4", preset="lip-sync", num_inference_steps=20)
    summary = vexpress_cli.batch("jobs.jsonl", preset="lip-sync")         # a manifest, resumable
    track = vexpress_cli.extract("driving.mp4", "driving.safetensors", audio_out="driving.mp3")
    fitted = vexpress_cli.retarget("me.jpg", "driving.safetensors", "offset_retarget", "mine.safetensors")

    with vexpress_cli.Generator(model_dir="model_ckpts") as generator:   # load once, run many jobs
        for clip in ("a.wav", "b.wav"):
            generator.generate("me.jpg", clip, clip + ".mp4", seed=7)

Bad input raises :class:`VExpressError` (what, why, how to fix). Names are imported lazily, so
``import vexpress_cli`` stays fast and loads no torch. docs/library.md documents every name.
"""

from __future__ import annotations

import importlib
from importlib import metadata


def _installed_version() -> str:
    """The version of the installed distribution; pyproject.toml holds the one version string."""
    try:
        return metadata.version("vexpress-cli")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()

# Public name -> the module that defines it.
_EXPORTS = {
    "generate": "vexpress_cli.jobs.generate",
    "Generator": "vexpress_cli.jobs.generate",
    "GenerationPlan": "vexpress_cli.jobs.generate",
    "GenerationResult": "vexpress_cli.jobs.generate",
    "extract": "vexpress_cli.jobs.extract",
    "ExtractResult": "vexpress_cli.jobs.extract",
    "batch": "vexpress_cli.jobs.batch",
    "BatchSummary": "vexpress_cli.jobs.batch",
    "BatchInterrupted": "vexpress_cli.jobs.batch",
    "BatchEvent": "vexpress_cli.jobs.batch",
    "JobOutcome": "vexpress_cli.jobs.batch",
    "RunRecord": "vexpress_cli.jobs.records",
    "read_record": "vexpress_cli.jobs.records",
    "retarget": "vexpress_cli.jobs.retarget",
    "RetargetResult": "vexpress_cli.jobs.retarget",
    "GenerationSettings": "vexpress_cli.settings.schema",
    "SETTINGS": "vexpress_cli.settings.schema",
    "ProgressCallback": "vexpress_cli.progress",
    "VExpressError": "vexpress_cli.errors",
    "InputError": "vexpress_cli.errors",
    "ModelFolderError": "vexpress_cli.errors",
    "VExpressPipeline": "vexpress_cli.engine.pipeline",
    "VExpressPipelineOutput": "vexpress_cli.engine.pipeline",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vexpress_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
