"""Where vexpress keeps what it makes once per machine (the tiny demo model, compiled kernels):
``$XDG_CACHE_HOME/vexpress``, else ``~/.cache/vexpress``. Uninstalling vexpress leaves it (docs/install.md)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(name: str) -> Path:
    """The folder ``name`` in vexpress's cache (not created here). A relative ``XDG_CACHE_HOME`` is ignored, as the
    XDG spec says."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "vexpress" / name
