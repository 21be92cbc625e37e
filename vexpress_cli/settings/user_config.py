"""The user configuration folder and its ``config.toml``.

Config folder: ``$VEXPRESS_CONFIG_DIR`` when set, else the platform's per-user config folder
(``~/.config/vexpress`` on Linux, ``~/Library/Application Support/vexpress`` on macOS,
``%APPDATA%\\vexpress`` on Windows). It holds ``config.toml`` and ``presets/*.toml``.

``config.toml`` may name the weights (``model``: a hub id or a folder; ``model_dir``: a folder); the
lookup order is :mod:`vexpress_cli.settings.model_lookup`.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import click

from vexpress_cli.errors import InputError, VExpressError, did_you_mean, join_messages, short_repr
from vexpress_cli.input_files import BeyondParser, parsed_text, read_settings_text

CONFIG_DIR_ENV = "VEXPRESS_CONFIG_DIR"
CONFIG_FILE_NAME = "config.toml"

# Keys config.toml may hold, with their expected TOML type. [generate] holds your own defaults of
# generation settings (the keys of a preset's [generate] table).
GENERATE_TABLE = "generate"
CONFIG_KEYS: dict[str, type] = {"model": str, "model_dir": str, GENERATE_TABLE: dict}


def config_dir() -> Path:
    """The folder holding ``config.toml`` and user presets (it may not exist yet)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return _check_config_dir(Path(override).expanduser())
    return Path(click.get_app_dir("vexpress"))


def _check_config_dir(folder: Path) -> Path:
    """InputError when ``$VEXPRESS_CONFIG_DIR`` is, or is under, something that is not a folder: its config and
    presets would be silently not read."""
    existing = next((path for path in (folder, *folder.parents) if os.path.lexists(path)), None)
    if existing is None or existing.is_dir():
        return folder  # a missing folder has no config yet, and a preset saved there creates it
    where = "is not a folder" if existing == folder else f"is under {existing}, which is not a folder"
    raise InputError(f"${CONFIG_DIR_ENV} ({folder}) {where}.",
                     "It names the folder of config.toml and your presets; none of them can be read there.",
                     f"Point {CONFIG_DIR_ENV} at a folder, or unset it for the default "
                     f"({click.get_app_dir('vexpress')}).")


def config_file() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def user_presets_dir() -> Path:
    return config_dir() / "presets"


def config_absent(path: Path) -> bool:
    """Whether nothing is at ``path``: a link that leads nowhere, or to itself, is there (and refused)."""
    return not path.exists() and not path.is_symlink()


def load_user_config(path: Path | None = None, generate: bool = True) -> dict[str, Any]:
    """The validated contents of ``config.toml``; an empty dict when there is no such file.

    ``generate=False`` leaves the [generate] table unchecked, for a reader of the model keys only (the model
    lookup): a typo among the generation settings is not its business."""
    path = path or config_file()
    if config_absent(path):
        return {}
    if path.is_file() and path.stat().st_size == 0:  # an empty config sets nothing, as an empty TOML document would
        return {}
    text = _config_text(path)
    try:
        data = parsed_text(tomllib.loads, text)
    except (tomllib.TOMLDecodeError, BeyondParser) as error:
        raise InputError(
            f"The config file {path} is not valid TOML: {error}.",
            fix="Fix the line named above (strings need quotes, e.g. model_dir = \"/data/model_ckpts\").",
        ) from None
    for key, value in data.items():
        expected = CONFIG_KEYS.get(key)
        if expected is None:
            hint = did_you_mean(key, CONFIG_KEYS)
            raise InputError(
                f"The config file {path} has an unknown key '{key}'.",
                why=f"Known keys: {', '.join(sorted(CONFIG_KEYS))}.",
                fix=f"{hint}Remove or rename the key.",
            )
        if not isinstance(value, expected):
            raise InputError(
                f"The config file {path}: key '{key}' must be a {expected.__name__}, "
                f"not {type(value).__name__} ({short_repr(value)}).",
                fix=f'Write it as {key} = "/path/to/model_ckpts".' if expected is str
                else f"Write it as a [{key}] table.",
            )
        if expected is str and not value.strip():
            raise InputError(f"The config file {path}: key '{key}' is empty ({short_repr(value)}).",
                             why="It would name the config folder itself as the model, which holds no weights.",
                             fix=f'Write the weights\' folder or hub id, e.g. {key} = "/data/model_ckpts", or remove '
                             "the line to use the usual lookup (`vexpress models path` shows it).")
    if GENERATE_TABLE in data and generate:
        from vexpress_cli.settings.schema import validate_values

        data[GENERATE_TABLE] = validate_values(data[GENERATE_TABLE], f"The config file {path}", within_advice=True,
                                               key_prefix=f"{GENERATE_TABLE}.")
    return data


def _config_text(path: Path) -> str:
    """The text of config.toml; the fixes of the usual file checks say "pass a file", which no flag takes here."""
    try:
        return read_settings_text(path, "config file", "a TOML config file (`vexpress docs presets`)")
    except InputError as error:
        if "pass" not in error.fix.lower():  # e.g. fix its permissions
            raise
        raise InputError(error.what, error.why, f"Make {path} a UTF-8 TOML text file (`vexpress docs presets`), or "
                         "remove it: the config file is optional.") from None


def configured_settings() -> dict[str, Any]:
    """The generation settings of the user config's [generate] table (your own defaults)."""
    return load_user_config().get(GENERATE_TABLE, {})


def your_defaults(**values: Any) -> dict[str, Any]:
    """Each generation setting's value when given, else your own default of it (the user config's [generate]
    table, read once and only when a value is left out), else the built-in default: how extract, retarget and
    inspect take the settings they share with generate."""
    configured = configured_settings() if any(value is None for value in values.values()) else {}
    return {name: value if value is not None else your_setting(name, None, configured)[0]
            for name, value in values.items()}


def your_setting(name: str, value: Any = None, configured: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``value`` checked when given, else your own default of setting ``name``, else the built-in one, with where
    it came from, as the resolved settings' sources
    say it: explicit, config or default. ``configured``: the [generate] settings when already read."""
    from vexpress_cli.settings.schema import DEFAULTS, checked_setting

    if value is not None:
        return checked_setting(name, value), "explicit"
    configured = configured_settings() if configured is None else configured
    return (configured[name], "config") if name in configured else (DEFAULTS[name], "default")


def where_set(error: VExpressError, name: str, value: Any, source: str) -> VExpressError:
    """``error`` about setting ``name`` (``value``) said where the value was set, one of the resolved settings'
    sources: a value from config.toml or a preset was typed as no flag, so the message names where it was."""
    if source == "config":
        where = (f"It was set in the user config: {name} = {json.dumps(value)} under [{GENERATE_TABLE}] in "
                 f"{config_file()}.")
        fix = "Change or remove that line (every run reads it)."
    elif source == "preset":
        where, fix = "It was set from the preset.", ""
    else:
        return error
    worded = type(error)(error.what, join_messages(where, error.why), join_messages(fix, error.fix))
    worded.__dict__.update({key: value for key, value in vars(error).items() if key not in vars(worded)})
    return worded
