"""Small wording helpers for what the library, the commands and the web app say."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``, ``0 frames``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
