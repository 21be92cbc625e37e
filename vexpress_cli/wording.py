"""Small wording helpers for what the library, the commands and the web app say."""

from __future__ import annotations

from pathlib import Path


def plural(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``, ``0 frames``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def first_few(names: list[str], limit: int = 4) -> str:
    """``a, b, c`` or, past ``limit``, ``a, b, c, d and 180 more``: a list that stays one line."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def frame_numbers(frames: list[int], limit: int = 8) -> str:
    """``0, 1, 2`` or, past ``limit``, ``0, 1, ..., 7, ...``: frame numbers that stay one line."""
    return ", ".join(map(str, frames[:limit])) + (", ..." if len(frames) > limit else "")


def frames_that(count: int, singular_verb: str, plural_verb: str) -> str:
    """``1 frame has``, ``3 frames have``: a count of frames as the subject of a sentence."""
    return f"{plural(count, 'frame')} {singular_verb if count == 1 else plural_verb}"


def with_article(noun: str) -> str:
    """``a video file``, ``an audio file``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def extra_install_command(extra: str) -> str:
    """The pip line that adds an optional part (``ray``, ``ui``) to this installation.

    From a clone (the package beside its pyproject.toml, as README's ``pip install -e .`` leaves it) the
    clone's folder is named; an installed wheel gets the package name.
    """
    source = Path(__file__).resolve().parents[1]
    if (source / "pyproject.toml").is_file():
        return f'pip install -e "{source}[{extra}]"'
    return f'pip install "vexpress-cli[{extra}]"'
