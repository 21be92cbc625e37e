"""The hooks a vexpress plugin can implement.

A plugin is a module (or object) exposed through the ``vexpress`` entry-point
group whose functions carry ``@hookimpl`` (``from vexpress_cli.hookspecs import
hookimpl``). See docs/plugins.md.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pluggy

hookspec = pluggy.HookspecMarker("vexpress")
hookimpl = pluggy.HookimplMarker("vexpress")


@hookspec
def register_retarget_strategies(register):
    """Register retarget strategies by calling ``register(strategy)`` for each.

    A strategy has a ``name`` (str, lower case, unique among installed
    plugins), a one-line ``description`` (str), ``requires_driving_kps`` and ``uses_reference_kps``
    (bool, True when absent) and a method ``retarget(reference_kps, driving_kps, num_frames)``
    returning a float array of shape ``[num_frames, 3, 2]``. ``reference_kps``
    is ``[3, 2]``; ``driving_kps`` is ``[num_frames, 3, 2]`` (already fitted to
    the video length) or ``None``. See
    :class:`RetargetStrategy` and docs/plugins.md.
    """


@runtime_checkable
class RetargetStrategy(Protocol):
    """What a plugin registers with ``register(strategy)``.

    ``name``
        What users pass to ``--strategy``: a lower-case letter, then lower-case letters, digits, ``_``
        and ``-``; not ``auto`` (reserved).
    ``description``
        One line shown by ``vexpress strategies``.
    ``requires_driving_kps``
        True when ``retarget`` needs a driving track; the CLI then insists on ``--kps``. Optional (True).
    ``uses_reference_kps``
        False when ``retarget`` ignores ``reference_kps`` (as ``no_retarget`` does): a reference photo
        without a detectable face is then fine. Optional (True).
    ``retarget(reference_kps, driving_kps, num_frames)``
        ``reference_kps`` is float32 ``[3, 2]`` (left eye, right eye, nose of
        the reference photo, in output-frame pixels). ``driving_kps`` is
        float32 ``[num_frames, 3, 2]``, already fitted to ``num_frames`` by the
        caller, or ``None`` when the user gave no driving track. Return an
        array ``[num_frames, 3, 2]`` of finite pixel positions.
    """

    name: str
    description: str
    requires_driving_kps: bool

    def retarget(self, reference_kps: np.ndarray, driving_kps: np.ndarray | None, num_frames: int) -> np.ndarray: ...
