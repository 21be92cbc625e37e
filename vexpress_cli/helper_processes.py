"""What vexpress's helper processes share: ``--devices`` and batch's workers start them with ``spawn``,
so each one imports the main module again before it runs."""

from __future__ import annotations

import sys

SCRIPT_GUARD = 'if __name__ == "__main__":'
_main_is_guarded = False


def main_is_guarded() -> None:
    """Say that the main module keeps its work under a main guard (the ``vexpress`` command does)."""
    global _main_is_guarded
    _main_is_guarded = True


def script_guard_fix() -> str:
    """How to fix a helper that ended before it reported anything, when the main module may be why: a
    script without a main guard (spawn imports it again), or one read from stdin (spawn cannot)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if _main_is_guarded or (spec is not None and spec.name.endswith("__main__")):  # python -m runs it once
        return ""
    path = getattr(main, "__file__", None)
    if path == "<stdin>":
        return "Save the script to a file and run that: each helper process imports it again, which stdin cannot give."
    if path is not None:
        return (f"Put your script's code under `{SCRIPT_GUARD}`: each helper process imports the script again, "
                "and a call to vexpress at its top level stops the helper.")
    return ""
