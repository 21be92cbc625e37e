"""The V-Express engine: networks, checkpoint loading, the model folder layout, context windows, the
median filter and the pipeline. It imports nothing of the CLI, rich, typer, presets or the downloader."""

from __future__ import annotations


def __getattr__(name: str):
    # The pipeline pulls in torch and diffusers; import it only when asked for.
    if name in ("VExpressPipeline", "VExpressPipelineOutput"):
        from vexpress_cli.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'vexpress_cli.engine' has no attribute {name!r}")
