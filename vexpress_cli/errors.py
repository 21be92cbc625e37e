"""Errors a user can fix, reported as one paragraph without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VExpressError(Exception):
    """Bad input or a broken environment: what went wrong, why, and how to fix it.

    The CLI prints the message as one paragraph and exits with code 2. Library
    callers get a normal exception they can catch.
    """

    exit_code = 2

    def __init__(self, what: str, why: str = "", fix: str = ""):
        self.what, self.why, self.fix = what, why, fix
        super().__init__(" ".join(part for part in (what, why, fix) if part))


class ModelFolderError(VExpressError):
    """The model folder is missing files or holds weights that do not fit the architecture."""


class InputError(VExpressError):
    """An input file (image, audio, kps, preset, video) cannot be used."""


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """``"Did you mean 'x'? "`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"Did you mean '{prefix}{close[0]}'? " if close else ""
