"""The user configuration folder and its ``config.toml``.

Config folder: ``$VEXPRESS_CONFIG_DIR`` when set, else the platform's per-user config folder
(``~/.config/vexpress`` on Linux, ``~/Library/Application Support/vexpress`` on macOS,
``%APPDATA%\\vexpress`` on Windows). It holds ``config.toml`` and ``presets/*.toml``.

``config.toml`` may name the weights (``model``: a hub id or a folder; ``model_dir``: a folder); the
lookup order is :mod:`vexpress_cli.settings.model_lookup`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click

from vexpress_cli.errors import InputError, did_you_mean
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


def load_user_config(path: Path | None = None) -> dict[str, Any]:
    """The validated contents of ``config.toml``; an empty dict when there is no such file."""
    path = path or config_file()
    if config_absent(path):
        return {}
    if path.is_file() and path.stat().st_size == 0:  # an empty config sets nothing, as an empty TOML document would
        return {}
    text = read_settings_text(path, "config file", f"a TOML config file (docs/presets.md), or remove {path}")
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
                f"not {type(value).__name__} ({value!r}).",
                fix=f'Write it as {key} = "/path/to/model_ckpts".' if expected is str
                else f"Write it as a [{key}] table.",
            )
    if GENERATE_TABLE in data:
        from vexpress_cli.settings.schema import validate_values

        data[GENERATE_TABLE] = validate_values(data[GENERATE_TABLE], f"The config file {path}", within_advice=True,
                                               key_prefix=f"{GENERATE_TABLE}.")
    return data


def configured_settings() -> dict[str, Any]:
    """The generation settings of the user config's [generate] table (your own defaults)."""
    return load_user_config().get(GENERATE_TABLE, {})


def your_default(name: str, value: Any = None) -> Any:
    """``value`` when given, else your own default of generation setting ``name`` (the user config's [generate]
    table), else the built-in default: how extract and retarget take the settings they share with generate."""
    if value is not None:
        return value
    from vexpress_cli.settings.schema import DEFAULTS

    return configured_settings().get(name, DEFAULTS[name])
