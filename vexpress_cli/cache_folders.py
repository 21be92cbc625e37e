"""Where vexpress keeps what it makes once per machine (the tiny demo model, compiled kernels):
``$XDG_CACHE_HOME/vexpress``, else ``~/.cache/vexpress``. Uninstalling vexpress leaves it (docs/install.md)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(name: str) -> Path:
    """The folder ``name`` in vexpress's cache (not created here)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vexpress" / name
