"""vexpress's built-in retarget strategies: a plugin like any other.

This module is the ``builtin_strategies`` entry point of the ``vexpress``
group (see pyproject.toml), so vexpress loads it exactly as it loads a
third-party plugin.
"""

from __future__ import annotations

from vexpress_cli.hookspecs import hookimpl
from vexpress_cli.kps.retargeting import FunctionStrategy
from vexpress_cli.strategies import face

BUILTIN_STRATEGIES = (
    FunctionStrategy(
        "fix_face",
        "Keep the reference face still; only the mouth moves (no driving kps needed).",
        face.fix_face,
        requires_driving_kps=False,
    ),
    FunctionStrategy(
        "no_retarget",
        "Use the driving keypoints as they are (same person and framing as the reference).",
        face.no_retarget,
        uses_reference_kps=False,
    ),
    FunctionStrategy(
        "offset_retarget",
        "Keep the reference face's shape; move it by half the driving head's (rescaled) motion, mirrored.",
        face.offset_retarget,
    ),
    FunctionStrategy(
        "naive_retarget",
        "Rescale the driving track to the reference face and start it on the reference nose.",
        face.naive_retarget,
    ),
)


@hookimpl
def register_retarget_strategies(register):
    for strategy in BUILTIN_STRATEGIES:
        register(strategy)
