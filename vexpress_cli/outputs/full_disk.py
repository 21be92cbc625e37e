"""A disk that fills up (or a quota reached) while vexpress writes: one test and one error, wherever it happens.

Every output written through :func:`vexpress_cli.outputs.atomic_output` gets :func:`disk_full_error` when a
write fails this way (its temp removed); ffmpeg's failures are told by its words (:func:`ffmpeg_said_disk_full`),
and the latents' temporary files name the temporary folder instead.
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
