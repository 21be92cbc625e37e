"""How every command prints a job's warnings and notes, and user text (a path, a plugin's name) inside rich
markup: one form, each setting spelled as its flag, escaped (a path like ``a[/x]b.mp4`` is shown, not parsed)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from vexpress_cli.cli.options import flag_of
from vexpress_cli.errors import spell_parameters


def print_warning(console: Console, text: str, *, about: str = "") -> None:
    """``Warning: text`` in yellow; ``about`` names what it is about (a batch's job: ``line 3 (talk.mp4)``)."""
    label = f"Warning {escape(about)}:" if about else "Warning:"
    console.print(f"[yellow]{label}[/] {shown(text)}", highlight=False)


def print_note(console: Console, text: str) -> None:
    """``Note: text``, dimmed: what a job did that the user may want to know."""
    console.print(f"[dim]Note: {shown(text)}[/]", highlight=False)


def shown(value: object) -> str:
    """``value`` (a path, a name, a message) as text inside rich markup: brackets in it are shown, not read as
    markup. A text is kept as it is: ``str()`` of a library :class:`~vexpress_cli.errors.Message` would lose the
    settings it names, which are spelled here as flags."""
    return escape(spell_parameters(value if isinstance(value, str) else str(value), flag_of))
