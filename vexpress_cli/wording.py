"""Small wording helpers for what the library, the commands and the web app say."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``, ``0 frames``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def frames_that(count: int, singular_verb: str, plural_verb: str) -> str:
    """``1 frame has``, ``3 frames have``: a count of frames as the subject of a sentence."""
    return f"{plural(count, 'frame')} {singular_verb if count == 1 else plural_verb}"


def with_article(noun: str) -> str:
    """``a video file``, ``an audio file``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
