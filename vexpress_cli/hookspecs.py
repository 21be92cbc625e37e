"""The hooks a vexpress plugin can implement.

A plugin is a module (or object) exposed through the ``vexpress`` entry-point
group whose functions carry ``@vexpress_cli.hookimpl``. See docs/plugins.md.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vexpress")
hookimpl = pluggy.HookimplMarker("vexpress")


@hookspec
def register_retarget_strategies(register):
    """Register retarget strategies by calling ``register(strategy)`` for each.

    A strategy has a ``name`` (str), a one-line ``description`` (str) and a
    method ``retarget(reference_kps, driving_kps, num_frames)`` returning a
    float array of shape ``[num_frames, 3, 2]``.
    """
