"""Generation presets: named TOML files of ``generate`` settings (validated by ``settings.schema``).

A preset file looks like::

    description = "Any voice, face held still: only the mouth moves."

    [generate]
    retarget_strategy = "fix_face"
    audio_attention_weight = 1.0

Presets come from three places: the built-ins shipped in ``vexpress_cli.presets``, user presets in
``<config dir>/presets/*.toml`` (a user preset named like a built-in replaces it), or a path to any
``.toml`` file. Settings combine as ``defaults < user config < preset < explicit values``.

Presets must stay inside the ranges the V-Express authors advise for the two attention weights;
a command-line flag may go beyond them (up to generous hard limits) and gets a warning instead.
See docs/presets.md.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vexpress_cli.settings.user_config import user_presets_dir
from vexpress_cli.errors import InputError, described, did_you_mean, parameter
from vexpress_cli.input_files import BeyondParser, parsed_text, read_settings_text
from vexpress_cli.settings.schema import check_consistency, unknown_setting_error, validate_values

BUILTIN_PACKAGE = "vexpress_cli.presets"
PRESET_TABLE = "generate"
TOP_LEVEL_KEYS = ("description", PRESET_TABLE)

Source = Literal["builtin", "user", "file"]


@dataclass(frozen=True)
class PresetInfo:
    """A preset as listed: where it lives and, when it loads, what it sets."""

    name: str
    description: str
    source: Source
    path: str
    values: dict[str, Any] = field(default_factory=dict)
    shadows_builtin: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Preset:
    """A loaded, validated preset."""

    name: str
    description: str
    values: dict[str, Any]
    source: Source
    path: str
    text: str
    shadows_builtin: bool = False


# --- loading --------------------------------------------------------------------------------


def parse_preset_text(text: str, path: str) -> tuple[str, dict[str, Any]]:
    """Parse and validate the text of a preset file: (description, values)."""
    label = f"Preset file {path}"
    try:
        data = parsed_text(tomllib.loads, text)
    except (tomllib.TOMLDecodeError, BeyondParser) as error:
        raise InputError(
            f"{label} is not valid TOML: {error}.",
            fix="Fix the syntax at that line (strings need double quotes; see `vexpress docs presets`).",
        ) from None
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise unknown_setting_error(label, key, list(TOP_LEVEL_KEYS),
                                     fix_prefix=f"Settings go in the '{PRESET_TABLE}' table. ")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise InputError(f"{label}: 'description' must be a string, not {type(description).__name__}.",
                         fix='Write it as description = "What this preset is for".')
    table = data.get(PRESET_TABLE, {})
    if not isinstance(table, dict):
        raise InputError(f"{label}: '{PRESET_TABLE}' must be a table.",
                         fix=f"Put the settings in a '{PRESET_TABLE}' table (see `vexpress docs presets`).")
    values = validate_values(table, label, within_advice=True, key_prefix=f"{PRESET_TABLE}.")
    check_consistency(values, f"{label}: ", describe=lambda key: f"'{PRESET_TABLE}.{key}'")
    return description, values


def _builtin_files() -> dict[str, Any]:
    root = importlib.resources.files(BUILTIN_PACKAGE)
    return {entry.name[: -len(".toml")]: entry for entry in root.iterdir()
            if entry.name.endswith(".toml") and entry.is_file()}


def _user_files() -> dict[str, Path]:
    folder = user_presets_dir()
    if not folder.is_dir():
        return {}
    # Anything but a folder: a link that leads nowhere is listed, and named, as a preset that fails to load.
    # Hidden names are not presets: an editor's lock or swap file (.#mine.toml, .mine.toml.swp) beside mine.toml.
    return {path.stem: path for path in sorted(folder.glob("*.toml"))
            if not path.name.startswith(".") and not path.is_dir()}


def _read(location) -> str:
    if not isinstance(location, Path):  # a built-in preset, maybe inside a zipped install
        return location.read_text(encoding="utf-8")
    missing = not location.exists() and not location.is_symlink()
    return read_settings_text(location, "preset file", "a .toml preset file",
                              missing_fix=_missing_preset_fix(location) if missing else "")


def preset_names() -> set[str]:
    """The name of every preset, built-in or the user's, without reading them."""
    return {*_builtin_files(), *_user_files()}


def _missing_preset_fix(path: Path) -> str:
    if len(path.parts) == 1 and path.stem in preset_names():
        return f"There is a preset named '{path.stem}': pass its name, {path.stem}, without '.toml'."
    return "Check the path, or run `vexpress presets list` to see preset names."


def looks_like_preset_path(name_or_path: str | Path) -> bool:
    """A preset given as a file (a Path, a .toml name, or text with a folder separator), not a name."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (user presets shadow built-ins) or from a ``.toml`` path."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputError(f"{parameter('preset')} is {described(name_or_path)}.",
                         why="A preset is chosen by its name or the path of its file.",
                         fix="Give a preset name as a string (`vexpress presets list` shows them) or a .toml path.")
    if not str(name_or_path).strip():
        raise InputError("The preset name is empty.", why="A preset is chosen by its name or the path of its file.",
                         fix="Give a preset name (`vexpress presets list` shows them) or a .toml path, or leave "
                         "the preset out.")
    if looks_like_preset_path(name_or_path):
        path = Path(name_or_path).expanduser()
        text = _read(path)
        description, values = parse_preset_text(text, str(path))
        return Preset(path.stem, description, values, "file", str(path), text)

    name = str(name_or_path)
    builtins, users = _builtin_files(), _user_files()
    if name in users:
        location, source = users[name], "user"
    elif name in builtins:
        location, source = builtins[name], "builtin"
    else:
        known = sorted(set(builtins) | set(users))
        suggestion = did_you_mean(name, known)
        raise InputError(
            f"There is no preset named '{name}'.",
            why=f"Known presets: {', '.join(known) or 'none'}.",
            fix=f"{suggestion}Run `vexpress presets list`, or pass a path to a .toml file.",
        )
    text = _read(location)
    description, values = parse_preset_text(text, str(location))
    return Preset(name, description, values, source, str(location), text,
                  shadows_builtin=source == "user" and name in builtins)


def list_presets() -> list[PresetInfo]:
    """Every preset by name (user presets replace built-ins of the same name), sorted by name.

    A preset that fails to load is still listed, with its error, so one broken user file does not
    hide the others.
    """
    builtins, users = _builtin_files(), _user_files()
    infos = []
    for name in sorted(set(builtins) | set(users)):
        source: Source = "user" if name in users else "builtin"
        location = users[name] if source == "user" else builtins[name]
        shadows = source == "user" and name in builtins
        try:
            description, values = parse_preset_text(_read(location), str(location))
        except InputError as error:
            infos.append(PresetInfo(name, "", source, str(location), shadows_builtin=shadows, error=str(error)))
            continue
        infos.append(PresetInfo(name, description, source, str(location), values, shadows))
    return infos
