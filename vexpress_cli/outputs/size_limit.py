"""Writes stopped by the file-size limit (``ulimit -f``, RLIMIT_FSIZE), told apart from other failures."""

from __future__ import annotations

import errno
from pathlib import Path

from vexpress_cli.errors import VExpressError


def file_size_limit() -> int | None:
    """The process's file-size limit in bytes (``ulimit -f``), or None when there is none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def hit_file_size_limit(returncode: int | None = None, error: BaseException | None = None) -> bool:
    """Whether a write failed on the file-size limit: a child killed by SIGXFSZ, or EFBIG."""
    import signal

    xfsz = getattr(signal, "SIGXFSZ", None)
    if returncode is not None and xfsz is not None and returncode == -xfsz:
        return True
    return isinstance(error, OSError) and error.errno == errno.EFBIG


def file_size_limit_error(path: str | Path) -> VExpressError:
    limit = file_size_limit()
    size = f" of {limit} bytes" if limit is not None else ""
    return VExpressError(
        f"Writing {str(path)!r} stopped at the file-size limit{size}.",
        "The shell or service that started vexpress limits how large a file a process may write "
        "(ulimit -f, RLIMIT_FSIZE); nothing was kept.",
        "Raise the limit (e.g. `ulimit -f unlimited`) or write a smaller output, then run again.",
    )
