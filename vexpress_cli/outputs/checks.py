"""Checks on output paths, made before any slow work so a bad path fails in the first second."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.file_types import (
    AUDIO_OUTPUT_SUFFIXES,
    FRAME_FOLDER_AUDIO,
    FRAME_SUFFIX,
    KNOWN_SUFFIXES,
    KPS_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    listed,
)
from vexpress_cli.interrupts import signals_deferred
from vexpress_cli.wording import with_article

WRITABLE_FIX = "Choose an output path in a folder you can write to."
OVERWRITE_FIX = f"Allow overwriting ({parameter('overwrite', 'True')}), or choose another name."


# --- what may be written where ------------------------------------------------------------------


@dataclass(frozen=True)
class OutputKind:
    """A kind of output: what it is called in messages and the suffixes that choose its format."""

    noun: str
    suffixes: tuple[str, ...]
    example: str  # a good file name, suggested when a folder is in the way
    formats: str = ""  # said after the list of suffixes, e.g. what each one keeps


OUTPUT_KINDS = {
    "video_file": OutputKind("video", VIDEO_OUTPUT_SUFFIXES, "talk.mp4"),
    "frames": OutputKind("frame folder", (), "talk_frames"),
    "kps": OutputKind(
        "kps file", KPS_SUFFIXES, "talk_kps.safetensors",
        " (.safetensors keeps fps and frame size; .pth and .pt are readable by the original V-Express)",
    ),
    "audio": OutputKind("audio file", AUDIO_OUTPUT_SUFFIXES, "talk.mp3"),
}
# "video" is what `generate -o` takes: a video file, or a path without suffix for a folder of PNG frames.
KIND_NAMES = ("video", *OUTPUT_KINDS)


def output_kind(path: str | Path, kind: str | None) -> str | None:
    """The concrete kind of ``path``: ``"video"`` becomes ``"frames"`` (no suffix) or ``"video_file"``."""
    if kind == "video":
        return "video_file" if Path(path).suffix else "frames"
    if kind is not None and kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(KIND_NAMES)}")
    return kind


def check_output(path: str | Path, overwrite: bool = False, kind: str | None = None, *,
                 create_folder: bool = False, folder_made_later: bool = False) -> Path:
    """Check that ``path`` may be written, before any slow work; return it absolute.

    ``kind`` is ``"video"`` (a video file, or a path without suffix for a folder of PNG
    frames), ``"video_file"``, ``"frames"``, ``"kps"``, ``"audio"``, or None for any file.
    Raises InputError (what, why, fix) for: a name that is only a suffix (``.mp4``); a suffix
    the kind does not know; an existing output when ``overwrite`` is False; a folder in the
    way of a file (or a file, or a folder holding more than frames, in the way of a frame
    folder); a parent folder that is missing, is a file, or is not writable. A missing
    parent folder is created with ``create_folder=True``; otherwise it is an error and
    nothing is created; with ``folder_made_later=True`` a missing folder passes when it could be
    created (its nearest existing parent is a writable folder), for callers that create it when
    the work starts (a batch checks every job before any runs).
    """
    named_folder = os.fspath(path).endswith(("/", os.sep))
    path = Path(path).expanduser().absolute()
    frames_allowed = kind == "video"
    kind = output_kind(path, kind)
    spec = OUTPUT_KINDS.get(kind) if kind else None
    _check_name_characters(path)
    if path.name.lower() in KNOWN_SUFFIXES:
        example = f"talk{path.name}"
        raise InputError(
            f"The output name {path.name!r} ({str(path)!r}) is only a file suffix.",
            "A name that starts with its only dot has no suffix: it would become a hidden file, "
            "or a hidden folder of video frames, and the format could not be chosen from it.",
            f"Put a name before the suffix, e.g. {example!r}.",
        )
    if spec is not None and spec.suffixes and path.suffix.lower() not in spec.suffixes:
        frames = ", or no suffix for a folder of PNG frames" if frames_allowed else ""
        raise InputError(
            f"Cannot write the {spec.noun} {str(path)!r}: unknown file type '{path.suffix or '(none)'}'.",
            f"The file suffix chooses the format; {with_article(spec.noun)} is {listed(spec.suffixes)}{spec.formats}.",
            f"Give it one of those suffixes, e.g. {_renamed(path, spec)!r}{frames}{_into_folder(path, spec)}.",
        )
    _check_name_lengths(path)
    if kind == "frames":
        _check_frame_folder_target(path, overwrite)
    elif named_folder or path.is_dir():
        example = path / (spec.example if spec else "output.mp4")
        raise InputError(
            f"The output path {str(path)!r} is a folder.",
            "A file is written there, and a folder is in the way.",
            f"Name the file, e.g. {str(example)!r}, or remove the folder.",
        )
    elif os.path.lexists(path) and not overwrite:
        raise InputError(
            f"The output file {str(path)!r} already exists.",
            "Existing outputs are never replaced silently.",
            OVERWRITE_FIX,
        )
    if create_folder or folder_made_later:
        ensure_writable_folder(path.parent, create=create_folder)
    else:
        _check_existing_folder(path)
    return path


# File systems allow names of up to 255 bytes; an output is first written as
# .NAME.vexpress-PID-TOKEN-HOST.partial[.TAG].SUFFIX (and gets NAME.json beside it), so its own name keeps
# TEMP_NAME_ROOM bytes free for that.
NAME_MAX = 255
TEMP_NAME_ROOM = 72  # the longest: .NAME.vexpress-4194304-0123abcd-h0123abcd.partial.replaced (+ the suffix, twice)


def input_it_would_replace(output: str | Path, inputs: dict[str, str | Path | None]) -> str | None:
    """The name of the input in ``inputs`` (name: path) that ``output`` is the same file as, if any."""
    output = Path(output).expanduser()
    for name, path in inputs.items():
        if path is None or isinstance(path, str) and not path:
            continue
        path = Path(path).expanduser()
        try:
            if os.path.samefile(output, path):  # links and other spellings of one file too
                return name
        except (OSError, ValueError):  # one of them does not exist (yet), or names no file (a NUL in it)
            if os.path.normcase(os.path.abspath(output)) == os.path.normcase(os.path.abspath(path)):
                return name
    return None


def refuse_replacing_an_input(output: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """InputError when ``output`` is the same file as one of ``inputs`` (name: path), overwrite or not."""
    name = input_it_would_replace(output, inputs)
    if name is not None:
        raise InputError(f"The output {str(output)!r} is also the job's {parameter(name)}.",
                         "Writing the output would replace an input the job reads.",
                         "Choose another output path.")


def _check_name_characters(path: Path) -> None:
    """No control character (a line break, a CR from a Windows line ending) in a name this run creates."""
    created = [path.name, *(folder.name for folder in path.parents if not os.path.lexists(folder))]
    if any(ord(character) < 32 or 0x7F <= ord(character) <= 0x9F for name in created for character in name):
        raise InputError(f"The output path {str(path)!r} holds a control character (such as a line break).",
                         "Such a name breaks progress lines, logs and shell scripts, and is almost always a mistake "
                         "(a Windows line ending in a list of names, for one).", "Remove it from the name.")


def _check_name_lengths(path: Path) -> None:
    longest = NAME_MAX - TEMP_NAME_ROOM
    size = len(os.fsencode(path.name))
    if size > longest:
        raise InputError(f"The output name {path.name[:40]!r}... is {size} bytes long.",
                         f"File systems allow {NAME_MAX} bytes per name, and vexpress first writes under a temporary "
                         f"name {TEMP_NAME_ROOM} bytes longer, so an output name may have {longest}.",
                         "Choose a shorter name.")
    for part in path.parent.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(f"The output folder name {part[:40]!r}... is longer than {NAME_MAX} bytes.",
                             "File systems allow no longer names.", "Choose a shorter folder name.")


def prepare_output_path(path: str | Path, overwrite: bool) -> Path:
    """:func:`check_output` for any file, creating its folder (the name older callers use)."""
    return check_output(path, overwrite, create_folder=True)


def _check_frame_folder_target(path: Path, overwrite: bool) -> None:
    if not os.path.lexists(path):
        return
    if not is_replaceable_frame_folder(path):  # whatever overwrite says: it would be lost
        raise InputError(
            f"Will not replace {str(path)!r} with a frame folder.", _what_is_in_the_way(path),
            "Choose another output folder name; nothing there was changed.",
        )
    if not overwrite:
        raise InputError(
            f"The output folder {str(path)!r} already exists.",
            "Existing outputs are never replaced silently.",
            OVERWRITE_FIX,
        )


def _what_is_in_the_way(path: Path) -> str:
    if path.is_symlink():
        return "It is a link; only a folder of an earlier frame output is replaced."
    if path.is_dir():
        return (f"It is a folder holding other files than the frame_*{FRAME_SUFFIX} and {FRAME_FOLDER_AUDIO} "
                "of an earlier frame output.")
    return "It is a file." if path.is_file() else "It is neither a file nor a folder."


def is_replaceable_frame_folder(path: Path) -> bool:
    """A real folder holding nothing but frame PNGs and audio.wav: an earlier frame output, which may be replaced."""
    return path.is_dir() and not path.is_symlink() and looks_like_frame_folder(path)


def looks_like_frame_folder(path: Path) -> bool:
    """True when ``path`` holds nothing but frame PNGs and audio.wav: an earlier frame output."""
    return all(
        entry.is_file(follow_symlinks=False)
        and (entry.name == FRAME_FOLDER_AUDIO or (entry.name.startswith("frame_") and entry.name.endswith(FRAME_SUFFIX)))
        for entry in os.scandir(path)
    )


def _check_existing_folder(path: Path) -> None:
    folder = path.parent
    if folder.is_dir():
        _try_writing(folder, folder)
        return
    blocker = _nearest_existing(folder)
    if blocker is not None and not blocker.is_dir():
        raise InputError(
            f"Cannot write {str(path)!r}: {str(blocker)!r} is a file, not a folder.",
            "The output must go inside a folder.",
            "Choose an output path inside an existing folder.",
        )
    raise InputError(
        f"The output folder {str(folder)!r} does not exist.",
        "Outputs are written into an existing folder; nothing is created before the work is done.",
        f"Create it first (mkdir -p {folder}), or choose another output path.",
    )


def ensure_writable_folder(folder: Path, create: bool = True) -> None:
    """Create ``folder`` if needed; InputError if that fails or it is not writable.

    With ``create=False`` nothing is created: a missing folder passes when its
    nearest existing parent is a writable folder (so it could be created later).
    """
    folder = Path(folder)
    if not create and not folder.exists():
        existing = _nearest_existing(folder)
        if existing is None or not existing.is_dir():
            raise InputError(
                f"Cannot create the output folder {str(folder)!r}.",
                f"{str(existing)!r} is a file, not a folder." if existing else "None of its parents exists.",
                WRITABLE_FIX,
            )
        _try_writing(existing, folder)
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = _nearest_existing(folder)
        in_the_way = blocker is not None and not blocker.is_dir()
        raise InputError(
            f"Cannot create the output folder {str(folder)!r}.",
            f"{str(blocker)!r} is a file, not a folder." if in_the_way else f"{error.strerror or error}.",
            WRITABLE_FIX,
        ) from None
    _try_writing(folder, folder)


def _nearest_existing(folder: Path) -> Path | None:
    """``folder`` itself or its closest parent that exists (as anything)."""
    return next((path for path in (folder, *folder.parents) if path.exists()), None)


def _try_writing(folder: Path, wanted: Path) -> None:
    try:  # really try: permission bits say nothing about read-only disks or root
        with signals_deferred():  # never leave the probe file behind
            handle, probe_file = tempfile.mkstemp(prefix=".vexpress-write-test-", dir=folder)
            os.close(handle)
            os.unlink(probe_file)
    except OSError as error:
        raise InputError(
            f"The output folder {str(wanted)!r} is not writable."
            if folder == wanted
            else f"The folder {str(wanted)!r} cannot be created: {str(folder)!r} is not writable.",
            f"Creating a file in it failed: {error.strerror or error}.",
            WRITABLE_FIX,
        ) from None


def _into_folder(path: Path, spec: OutputKind) -> str:
    """For a name without suffix, which may have been meant as a folder (a trailing '/' is gone from a Path)."""
    if path.suffix or not path.name or path.name.endswith("."):
        return ""
    return f"; to write into a folder {path.name}/, name the file: {str(path / spec.example)!r}"


def _renamed(path: Path, spec: OutputKind) -> str:
    """``path``'s name with the kind's first suffix (``talk.gif`` -> ``talk.mp4``), else the kind's example."""
    stem = path.stem if path.suffix else path.name
    if not stem.strip(".") or path.name.endswith("."):
        return spec.example
    if Path(stem).suffix.lower() in spec.suffixes:  # talk.mp4.json -> talk.mp4
        return stem
    return f"{stem}{spec.suffixes[0]}"


def next_free_name(path: Path) -> Path:
    """``path`` itself, else ``stem-2``, ``stem-3``, ...: the first name not taken (the demo runs again and again)."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
