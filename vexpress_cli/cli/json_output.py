"""With ``--json``, stdout holds only the JSON: whatever else would write there while the job runs (Ray's
messages about its workers, a library's own print) is sent to stderr, at the file-descriptor level too, since
threads and native code write to descriptor 1 directly."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stdout_kept_for_json(enabled: bool) -> Iterator[None]:
    """While the block runs (when ``enabled``), stdout goes to stderr; the JSON is printed after it."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = _redirected_descriptor()
    original, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = original
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _redirected_descriptor() -> int | None:
    """Descriptor 1 pointed at descriptor 2; its old target, to restore (None where there is no descriptor 1)."""
    try:
        saved = os.dup(1)
    except OSError:
        return None
    os.dup2(2, 1)
    return saved
