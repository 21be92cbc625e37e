"""The batch job: many videos from one manifest, with the networks loaded once per worker.

::

    import vexpress_cli

    summary = vexpress_cli.batch("jobs.jsonl", preset="lip-sync", model_dir="model_ckpts", seed=7)
    print(summary.count("done"), [(job.line, job.reason) for job in summary.failed])

Modules: :mod:`.manifest` reads the ``.jsonl``/``.csv`` file, :mod:`.checks` checks every job and decides
what it needs (run, redo, retry, skip) from its run record, :mod:`.execute` runs one job on a
``Generator``, :mod:`.runner` is :func:`batch` (in this process), :mod:`.workers` one process per device,
:mod:`.ray_runner` Ray actors, and :mod:`.summary` the events and the summary.
"""

import importlib

# Public name -> its module, imported when first used: the summary and errors cost no torch import.
_EXPORTS = {
    "batch": "vexpress_cli.jobs.batch.runner",
    "BatchEvent": "vexpress_cli.jobs.batch.summary",
    "BatchInterrupted": "vexpress_cli.jobs.batch.summary",
    "BatchSummary": "vexpress_cli.jobs.batch.summary",
    "JobOutcome": "vexpress_cli.jobs.batch.summary",
    "LOCAL_RAY": "vexpress_cli.jobs.batch.ray_runner",
    "ManifestError": "vexpress_cli.jobs.batch.manifest",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vexpress_cli.jobs.batch' has no attribute {name!r}")
