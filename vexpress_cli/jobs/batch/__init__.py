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

from vexpress_cli.jobs.batch.manifest import ManifestError
from vexpress_cli.jobs.batch.ray_runner import LOCAL_RAY
from vexpress_cli.jobs.batch.runner import batch
from vexpress_cli.jobs.batch.summary import BatchEvent, BatchInterrupted, BatchSummary, JobOutcome

__all__ = ["batch", "BatchEvent", "BatchInterrupted", "BatchSummary", "JobOutcome", "LOCAL_RAY", "ManifestError"]
