"""The hooks a vexpress plugin can implement.

A plugin is a module (or object) exposed through the ``vexpress`` entry-point
group whose functions carry ``@hookimpl`` (``from vexpress_cli.hookspecs import
hookimpl``). See docs/plugins.md.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vexpress")
hookimpl = pluggy.HookimplMarker("vexpress")


@hookspec
def register_retarget_strategies(register):
    """Register retarget strategies by calling ``register(strategy)`` for each.

    A strategy has a ``name`` (str, lower case, unique among installed
    plugins), a one-line ``description`` (str), ``requires_driving_kps``
    (bool) and a method ``retarget(reference_kps, driving_kps, num_frames)``
    returning a float array of shape ``[num_frames, 3, 2]``. ``reference_kps``
    is ``[3, 2]``; ``driving_kps`` is ``[num_frames, 3, 2]`` (already fitted to
    the video length) or ``None``. See
    :class:`vexpress_cli.kps.retargeting.RetargetStrategy` and docs/plugins.md.
    """
