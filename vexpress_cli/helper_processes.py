"""What vexpress's helper processes share: ``--devices`` and batch's workers start them with ``spawn``."""

from __future__ import annotations

import sys

SCRIPT_GUARD = 'if __name__ == "__main__":'


def main_is_a_script() -> bool:
    """Whether a spawned helper imports the main module again: a script file or stdin, not a REPL or
    notebook, and not a package's ``__main__`` (``python -m vexpress_cli``), which spawn never re-runs."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):
        return False
    return getattr(main, "__file__", None) is not None


def script_guard_fix() -> str:
    """The fix for a helper that ended before it reported anything, worded for how vexpress was started."""
    if main_is_a_script():
        return (f"Put your script's code under `{SCRIPT_GUARD}`: each helper process imports the script again, "
                "and a call to vexpress at its top level stops the helper.")
    return ""
