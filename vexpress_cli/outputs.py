"""Checks on output paths, made before any slow work so a bad path fails in the first second.

Neutral ground for every layer that writes files (media, kps, downloads): nothing here
imports the rest of vexpress_cli except its errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vexpress_cli.errors import InputError

WRITABLE_FIX = "Choose an output path in a folder you can write to."


def prepare_output_path(path: str | Path, overwrite: bool) -> Path:
    """Check that ``path`` may be written (creating its folder) and return it absolute.

    Raises InputError when it exists and ``overwrite`` is False, when it is a
    folder, or when its folder cannot be created or written.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise InputError(
            f"The output path {str(path)!r} is a folder.",
            "A file is written there, and a folder is in the way.",
            "Pass a file name, e.g. out.mp4, or remove the folder.",
        )
    if path.exists() and not overwrite:
        raise InputError(
            f"The output file {str(path)!r} already exists.",
            "Existing outputs are never replaced silently.",
            "Pass --overwrite to replace it, or choose another name.",
        )
    ensure_writable_folder(path.parent)
    return path


def ensure_writable_folder(folder: Path, create: bool = True) -> None:
    """Create ``folder`` if needed; InputError if that fails or it is not writable.

    With ``create=False`` nothing is created: a missing folder passes when its
    nearest existing parent is a writable folder (so it could be created later).
    """
    folder = Path(folder)
    if not create and not folder.exists():
        existing = _nearest_existing(folder)
        if existing is None or not existing.is_dir():
            raise InputError(
                f"Cannot create the folder {str(folder)!r}.",
                f"{str(existing)!r} is a file, not a folder." if existing else "None of its parents exists.",
                WRITABLE_FIX,
            )
        _try_writing(existing, folder)
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = _nearest_existing(folder)
        in_the_way = blocker is not None and not blocker.is_dir()
        raise InputError(
            f"Cannot create the output folder {str(folder)!r}.",
            f"{str(blocker)!r} is a file, not a folder." if in_the_way else f"{error.strerror or error}.",
            WRITABLE_FIX,
        ) from None
    _try_writing(folder, folder)


def _nearest_existing(folder: Path) -> Path | None:
    """``folder`` itself or its closest parent that exists (as anything)."""
    return next((path for path in (folder, *folder.parents) if path.exists()), None)


def _try_writing(folder: Path, wanted: Path) -> None:
    try:  # really try: permission bits say nothing about read-only disks or root
        handle, probe_file = tempfile.mkstemp(prefix=".vexpress-write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe_file)
    except OSError as error:
        raise InputError(
            f"The output folder {str(wanted)!r} is not writable."
            if folder == wanted
            else f"The folder {str(wanted)!r} cannot be created: {str(folder)!r} is not writable.",
            f"{error.strerror or error}.",
            WRITABLE_FIX,
        ) from None
