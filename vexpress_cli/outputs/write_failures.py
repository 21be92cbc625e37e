"""Writes that fail midway for a reason outside vexpress: a disk that fills up (or a quota reached), an output
folder removed while it is written. One test and one error each, wherever it happens (:func:`write_failure`).

Every output written through :func:`vexpress_cli.outputs.atomic_output` (the frame and video writers too) gets
them when a write fails this way (its temp removed); ffmpeg's failures are told by its words
(:func:`ffmpeg_said_disk_full`), and the latents' temporary files name the temporary folder instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vexpress_cli.errors import VExpressError

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What ffmpeg writes (the OS's words) when its output's disk is full.
FULL_DISK_WORDS = tuple(os.strerror(number).encode() for number in FULL_DISK_ERRNOS)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write failing on a full disk or a reached quota."""
    return isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS


def ffmpeg_said_disk_full(stderr: bytes) -> bool:
    return any(words in stderr for words in FULL_DISK_WORDS)


def disk_full_fix(path: str | Path) -> str:
    return f"The disk holding {path} is full: free space on it, or write to another disk."


class DiskFullError(VExpressError):
    """An output could not be written whole: its disk is full, or the user's quota on it reached."""


def disk_full_error(path: str | Path) -> DiskFullError:
    """The error for an output at ``path`` that could not be written whole because its disk is full."""
    return DiskFullError(f"Could not write {path}: its disk is full (or your quota on it is reached); nothing "
                         "was kept.", fix=disk_full_fix(path))


def folder_removed_error(path: str | Path) -> VExpressError:
    """The error for an output whose folder was removed (or moved away) while it was written."""
    return VExpressError(f"The folder of {path} was removed (or moved) while the output was written; nothing was "
                         "kept.", why="The output and its temporary files went with the folder.",
                         fix="Leave the folder in place until the run ends, then run it again.")


def write_failure(error: BaseException, paths: list[Path]) -> VExpressError | None:
    """What a write of the outputs ``paths`` that failed with ``error`` is: a full disk or a removed folder (the
    error to raise instead), or None for any other failure (Ctrl-C, a full disk elsewhere: a cache's)."""
    if is_disk_full(error) and _in_output_folders(error, paths):
        return disk_full_error(" or ".join(map(str, paths)))
    if isinstance(error, FileNotFoundError) or type(error) is VExpressError:  # a missing path, or ffmpeg's words
        gone = [path for path in paths if not Path(path).parent.is_dir()]
        return folder_removed_error(gone[0]) if gone else None
    return None


def _in_output_folders(error: OSError, paths: list[Path]) -> bool:
    """Whether the failed write was in an output's folder (where its temps are), or names no file (a pipe's)."""
    if not error.filename:
        return True
    failed = Path(os.fsdecode(error.filename)).absolute()
    return any(failed.is_relative_to(Path(path).absolute().parent) for path in paths)
