"""How vexpress starts its helper processes (``--devices`` and batch's workers): ``spawn``, so no CUDA state
is inherited, but without importing the caller's main module again.

Python's ``spawn`` runs the main script again in each child, so that what it defines can be unpickled
there. vexpress's helpers run only vexpress code on plain data, so they skip that: a script without an
``if __name__ == "__main__":`` guard, or one read from stdin, starts helpers like the ``vexpress`` command
does, instead of re-running its own top level in every helper (which failed with multiprocessing's
"bootstrapping phase" traceback).
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import types

_main_swap = threading.Lock()


def start_helper(process: multiprocessing.process.BaseProcess) -> None:
    """``process.start()`` for a spawn-context process whose target and arguments need nothing of ``__main__``.

    While it starts, other threads see a bare ``__main__`` too: what they pickle then must not live in it.
    """
    with _main_swap:
        main = sys.modules.get("__main__")
        # spawn names the module to import from __main__'s __spec__ or __file__; a bare module has neither.
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is None:
                del sys.modules["__main__"]
            else:
                sys.modules["__main__"] = main
