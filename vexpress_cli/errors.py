"""Errors a user can fix, reported as one paragraph without a traceback."""

from __future__ import annotations

import difflib
import math
import re
import reprlib
import shlex
from collections.abc import Callable, Iterable

# C0 and C1 control characters but line breaks, tabs and the separators parameter references are made of (a
# caller may spell a reference as one again, to place it later).
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1d\x7f-\x9f]")
_PARAMETER_REFERENCE = re.compile("\x1e(\\w+)(?:\x1f([^\x1e]*))?\x1e")
# A value shown bare in Python: a number, True/False/None, or a placeholder in capitals (N, PHOTO).
_BARE_PYTHON_VALUE = re.compile(r"-?\d+(\.\d+)?|True|False|None|[A-Z]+")


def parameter(name: str, value: object = None) -> str:
    """A job parameter or setting named in a message, spelled by whoever shows the message.

    The library writes ``f"Lower {parameter('context_frames')}"``; Python callers read
    ``context_frames``, the CLI shows its flag ``--context-frames`` (:meth:`VExpressError.render`).
    With a ``value``, ``parameter('devices', 'all')`` reads ``devices="all"`` in Python and
    ``--devices all`` in the CLI; ``parameter('workers', 'N')`` reads ``workers=N`` and ``--workers N``.
    """
    return f"\x1e{name}\x1e" if value is None else f"\x1e{name}\x1f{value}\x1e"


def python_name(name: str) -> str:
    return name


def python_value(value: str) -> str:
    """How a value given in a message reads as a Python argument: ``"all"``, ``N``, ``30``."""
    return value if _BARE_PYTHON_VALUE.fullmatch(value) else f'"{value}"'


class Message(str):
    """A warning or note for a library caller: it reads with Python names (``max_size``), and keeps the
    :func:`parameter` references in ``raw`` so that the CLI and the web app can spell them their way."""

    raw: str

    def __new__(cls, text: str) -> "Message":
        raw = getattr(text, "raw", text)
        message = super().__new__(cls, spell_parameters(raw))
        message.raw = raw
        return message


def messages(texts) -> list[Message]:
    return [Message(text) for text in texts]


def join_messages(*parts: str, separator: str = " ") -> Message:
    """The non-blank ``parts`` joined, keeping their :func:`parameter` references (an f-string or
    ``str.join`` of :class:`Message` parts would keep only their Python spelling)."""
    # Only spaces: a part may end its lines with a line break (a list), and a bare strip() would also take
    # the references' \x1e and \x1f, which Python counts as white space.
    text = ""
    for raw in (getattr(part, "raw", part).strip(" ") for part in parts if part):
        if raw:
            text += (separator if text and not text.endswith("\n") else "") + raw
    return Message(text)


def spell_parameters(text: str, spell: Callable[[str], str] = python_name) -> str:
    """``text`` with each :func:`parameter` reference spelled by ``spell`` (for text taken apart from an error), and
    its control characters written as escapes (:func:`escaped_controls`): every message, note and warning is
    spelled here before it is shown.

    A reference with a value reads ``name="value"`` when spelled for Python (:func:`python_name`),
    else the spelled name, a space and the value (``--devices all``); ``True`` is a switch turned on
    (``overwrite=True``, ``--overwrite``).
    """
    def spelled(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if value is None:
            return spell(name)
        if spell is python_name:
            return f"{name}={python_value(value)}"
        # A switch turned on is just its flag; a value the shell would split (a ;) is quoted, as typed.
        return spell(name) if value == "True" else f"{spell(name)} {shlex.quote(value)}"

    return escaped_controls(_PARAMETER_REFERENCE.sub(spelled, getattr(text, "raw", text)))


def escaped_controls(text: str) -> str:
    """``text`` with its control characters (of a file name or a file's text: ESC sequences would recolour or clear
    a terminal, a NUL cut the line) written as Python escapes (``\\x1b``); line breaks and tabs stay."""
    return _CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], text)


class VExpressError(Exception):
    """Bad input or a broken environment: what went wrong, why, and how to fix it.

    The CLI prints the message as one paragraph and exits with code 2. Library
    callers get a normal exception they can catch.
    """

    exit_code = 2

    def __init__(self, what: str, why: str = "", fix: str = ""):
        # Each part reads with Python names; its ``raw`` keeps the references for render().
        self.what, self.why, self.fix = Message(what), Message(why), Message(fix)
        super().__init__(self.render())

    def render(self, spell: Callable[[str], str] = python_name) -> str:
        """The one-paragraph message, with each :func:`parameter` spelled by ``spell``."""
        return spell_parameters(join_messages(self.what, self.why, self.fix), spell)


class ModelFolderError(VExpressError):
    """The model folder is missing files or holds weights that do not fit the architecture."""


class InputError(VExpressError):
    """An input file (image, audio, kps, preset, video) cannot be used."""


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """``"Did you mean 'x'? "`` for the closest known name (or the only one ``name`` begins, as ``offset`` does
    ``offset_retarget``), or ``""`` when none is close."""
    known = list(known)
    begun = [candidate for candidate in known if name and candidate.startswith(name)]
    same_letters = [candidate for candidate in known if candidate.lower() == name.lower()]  # LIP-SYNC
    close = same_letters or difflib.get_close_matches(name, known, n=1) or (begun if len(begun) == 1 else [])
    return f"Did you mean '{prefix}{close[0]}'? " if close else ""


def checked_switch(name: str, value: object) -> bool:
    """``value`` of an on/off argument (``overwrite``, ``force``, ...) as a bool; InputError for anything else:
    ``overwrite="no"`` is a true string, and would replace the output."""
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):  # numpy 2, numpy 1
        value = bool(value)
    if not isinstance(value, bool):
        raise InputError(f"{parameter(name)} is {described(value)}.", f"It is a switch: {parameter(name)} must be "
                         "True or False.", f"Pass {parameter(name, True)} or leave it out.")
    return value


def described(value: object) -> str:
    """``"int 5"``, ``"ndarray of shape (512, 512, 3)"``: a value named in a message, never pages of repr."""
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(shape, (str, bytes)) and len(tuple(shape)) > 0:
        return f"{kind} of shape {tuple(shape)}"
    text = short_repr(value)
    if text.startswith(f"{kind}(") or text.startswith("a "):  # Fraction(30000, 1001), a 5001-digit number
        return text
    return f"{kind} {text}"


class _ShortRepr(reprlib.Repr):
    def repr_int(self, value: int, level: int) -> str:
        return shown_number(value)


def short_repr(value: object) -> str:
    """``repr(value)`` of at most about 60 characters: a text of 5000 digits as its start and end."""
    shorter = _ShortRepr()
    shorter.maxstring = shorter.maxother = 60
    return shorter.repr(value)


# A whole number longer than this is shown by its length: no limit of vexpress has as many digits.
SHOWN_DIGITS = 20


def shown_number(value: object) -> str:
    """A number as a message shows it: as it is, or a whole number of more than :data:`SHOWN_DIGITS` digits by
    its length ("a 5001-digit number"); Python writes no whole number of more than 4300 digits."""
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) < 10**SHOWN_DIGITS:
        return str(value)
    return f"a {digit_count(abs(value))}-digit {'negative ' if value < 0 else ''}number"


def digit_count(number: int) -> int:
    """How many decimal digits a positive whole number of any size has."""
    count = max(1, int(math.log10(number)))  # within one of the answer, for a number of any size
    while number >= 10**count:
        count += 1
    return count
