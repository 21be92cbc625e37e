"""vexpress-cli: audio-driven talking-portrait video with V-Express."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["VExpressPipeline", "VExpressPipelineOutput", "__version__"]


def __getattr__(name: str):
    # The engine pulls in torch and diffusers; import it only when asked for.
    if name in ("VExpressPipeline", "VExpressPipelineOutput"):
        from vexpress_cli.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
