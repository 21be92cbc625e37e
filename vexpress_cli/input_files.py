"""The one check every input file passes before it is opened: it exists, is a regular, non-empty file,
and can be read.

A named pipe (FIFO), a device or a socket is refused at once: opening a FIFO waits for a writer
that may never come, and ``/dev/zero`` or ``/dev/urandom`` never end. Every loader of an input
(reference image, audio, kps file, driving video, preset file) calls :func:`require_regular_file`
first, so each kind of input is refused the same way with the same message. An empty (0-byte) file
is refused here too, in words, instead of by the decoder ("Invalid data found when processing input").
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from vexpress_cli.errors import InputError, described, parameter

SPECIAL_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str:
    """What a file of ``mode`` (``os.stat``'s ``st_mode``) that is neither a regular file nor a folder is."""
    return next((name for test, name in SPECIAL_FILE_KINDS if test(mode)), "a special file")


def as_path(value, name: str) -> Path:
    """A path argument of a library call (``str`` or ``os.PathLike``) as a Path, ``~`` expanded as a shell would,
    else an InputError naming it."""
    if isinstance(value, str) and not value.strip():  # Path("") would be the current folder
        raise InputError(f"{parameter(name)} is an empty text, not a path.", "", f"Pass the file's path as "
                         f"{parameter(name)}.")
    if isinstance(value, (str, os.PathLike)):
        refuse_nul(value, parameter(name))
        return Path(value).expanduser()
    held = " (an image or array in memory)" if hasattr(value, "shape") or hasattr(value, "getpixel") else ""
    raise InputError(f"{parameter(name)} is {described(value)}{held}, not a path.",
                     why="It names a file, so it must be a str or an os.PathLike such as pathlib.Path.",
                     fix=f"Pass the file's path as {parameter(name)}" + (
                         "; save what you hold to a file first (cv2.imwrite, PIL's Image.save, soundfile.write)."
                         if held else "."))


def refuse_nul(value: str | os.PathLike, named: str) -> None:
    """InputError when the path ``value`` holds a NUL character (which the OS refuses in any file name, with a
    ValueError that says nothing of where it came from); ``named`` says which path it is, e.g. a parameter."""
    text = os.fsdecode(value)
    if "\0" in text:
        raise InputError(f"{named} holds a NUL character (\\x00): {text}.",
                         why="No file name can contain one; the text was cut or pasted from binary data.",
                         fix="Remove the character, or type the path again.")


def optional_path(value, name: str) -> Path | None:
    """:func:`as_path` for an argument that may be left out (``None``)."""
    return None if value is None else as_path(value, name)


def optional_folder(value, name: str, file_suffix: str | None = None) -> Path | None:
    """:func:`optional_path` for a folder named on purpose (e.g. ``model_root``): when given, it must exist.
    A regular file with ``file_suffix`` stands in for the folder (the detector's ``.onnx`` for ``model_root``)."""
    path = optional_path(value, name)
    if path is None or path.expanduser().is_dir():
        return path
    if file_suffix and path.suffix.lower() == file_suffix and path.expanduser().is_file():
        return path
    also = f" or a {file_suffix} file" if file_suffix else ""
    what = f" is a file, not a folder{also}" if path.expanduser().exists() else ": no such folder"
    raise InputError(f"{parameter(name, str(path))}{what}.",
                     why="A folder named on purpose is used as given; vexpress does not look elsewhere instead.",
                     fix=f"Check the spelling, or leave {parameter(name)} out to use the default place.")


def require_regular_file(path: str | Path, label: str, expected: str, missing_fix: str = "") -> Path:
    """``path`` (with ``~`` expanded) when it is a readable, non-empty regular file, else an InputError.

    ``label`` names the input in messages ("reference image", "kps file"); ``expected`` says
    what to pass instead ("a JPEG or PNG photo"); ``missing_fix`` replaces the advice given
    when nothing is at ``path``. Symbolic links are followed: a link to a regular file is fine.
    """
    refuse_nul(path, f"The {label} path")
    path = Path(path).expanduser()
    try:
        facts = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"The {label} {path} is a link to {os.readlink(path)}, which does not exist.",
                             why="The link leads nowhere: what it pointed to was moved or deleted.",
                             fix=f"Point the link at {expected}, or pass that file's path instead.") from None
        raise InputError(f"The {label} {path} does not exist.", why="Nothing is at that path.",
                         fix=missing_fix or f"Check the spelling, or pass the full path to {expected}.") from None
    except OSError as error:  # a loop of links, a name too long, a folder on the way without x permission
        raise InputError(f"Cannot read the {label} {path}.", why=f"{error.strerror or error}.",
                         fix=f"Pass {expected}.") from None
    mode = facts.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(f"Cannot read the {label} {path}: it is not a file but a folder.",
                         fix=f"Pass the path of {expected} in it.")
    if not stat.S_ISREG(mode):
        kind = special_file_kind(mode)
        raise InputError(
            f"The {label} {path} is not a regular file but {kind}.",
            why="Reading from a pipe, device or socket can wait forever or never end, so inputs must be "
            "regular files.",
            fix=f"Save the {label} to a file first and pass that file: {expected}.",
        )
    if facts.st_size == 0:
        raise InputError(f"The {label} {path} is empty (0 bytes).",
                         why="It holds no data at all: a copy, download or export that failed or has not finished.",
                         fix=f"Copy or export it again, then pass the finished file: {expected}.")
    if not os.access(path, os.R_OK):
        raise InputError(f"The {label} {path} cannot be read.", why="Permission denied.",
                         fix=f"Fix its permissions, e.g. chmod u+r {path}.")
    return path


def read_settings_text(path: str | Path, label: str, expected: str, missing_fix: str = "",
                       max_bytes: int = 1 << 20, text_format: str = "TOML", usual_size: str = "a few kB") -> str:
    """The text of a small UTF-8 file (a preset, the user config, a run record, a batch manifest), checked as
    every input is; a byte-order mark, as some editors write, is dropped. Refused beyond ``max_bytes`` (such a
    file is ``usual_size``) before it is read."""
    path = require_regular_file(path, label, expected, missing_fix)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputError(f"Cannot read the {label} {path}.", why=f"{error.strerror or error}.",
                         fix=f"Pass {expected}.") from None
    if len(data) > max_bytes:
        raise InputError(f"The {label} {path} is larger than {max_bytes / (1 << 20):g} MiB.",
                         why=f"A {label} is {usual_size} of text, so a file this large is another file.",
                         fix=f"Check the path: pass {expected}.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"Cannot read the {label} {path}: it is not UTF-8 text (at byte offset {error.start}).",
                         why=f"A {label} is a {text_format} text file, and {text_format} is UTF-8.",
                         fix="Save it as UTF-8 text (an editor's \"Save as\" offers the encoding), "
                         f"or check the path: pass {expected}.") from None


class BeyondParser(ValueError):
    """A JSON or TOML text beyond what Python's parsers read: nested deeper than they recurse (a file of
    5000 '['), or holding a whole number of more digits than Python converts (see :func:`whole_number`)."""


def parsed_text(loads, text: str, **options):
    """``loads(text, **options)`` (``json.loads``, ``tomllib.loads``), with a RecursionError, which the parsers
    raise for deep nesting, and the ValueError of a whole number past Python's digit limit, as the
    :class:`BeyondParser` ValueError its readers report as bad text. ``json.loads(..., parse_int=whole_number)``
    reads such a number instead, for a range check to refuse by name."""
    try:
        return loads(text, **options)
    except RecursionError:
        raise BeyondParser("its brackets or tables nest deeper than can be read") from None
    except ValueError as error:
        if "int_max_str_digits" not in str(error):  # CPython's words for its limit on digits
            raise
        raise BeyondParser(f"the whole number at line {_line_of_long_number(text)} has more than "
                           f"{sys.get_int_max_str_digits()} digits, more than Python reads") from None


def _line_of_long_number(text: str) -> int:
    """The line of the first run of more digits than Python reads, not counting one that opens a quoted text."""
    limit = sys.get_int_max_str_digits()
    runs = (run.start() for run in re.finditer(r"[0-9_]+", text)
            if len(run.group().replace("_", "")) > limit and text[run.start() - 1:run.start()] not in ("\"", "'"))
    return text.count("\n", 0, next(runs, 0)) + 1


_WHOLE_NUMBER = re.compile(r"\s*+([+-]?)(0*+)([0-9]*+)\s*+")


def whole_number(text: str) -> int:
    """``int(text)`` of a decimal whole number of any length. Python reads at most 4300 digits
    (``sys.get_int_max_str_digits()``: more take quadratic time), so a longer number is read as the first of
    its length, 10**(n-1) with its sign: every range check refuses it, and messages show its length
    (:func:`vexpress_cli.errors.shown_number`), never its digits."""
    limit = sys.get_int_max_str_digits()
    parts = _WHOLE_NUMBER.fullmatch(text) if limit and len(text) > limit else None
    if parts is None or not (parts[2] or parts[3]):
        return int(text)
    sign, digits = (-1 if parts[1] == "-" else 1), parts[3]
    return sign * (int(digits or "0") if len(digits) <= limit else 10 ** (len(digits) - 1))
