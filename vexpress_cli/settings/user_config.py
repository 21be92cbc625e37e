"""The user configuration folder, its ``config.toml``, and finding the model folder.

Config folder: ``$VEXPRESS_CONFIG_DIR`` when set, else the platform's per-user config folder
(``~/.config/vexpress`` on Linux, ``~/Library/Application Support/vexpress`` on macOS,
``%APPDATA%\\vexpress`` on Windows). It holds ``config.toml`` and ``presets/*.toml``.

The model folder is the first *configured* source, in this order:

1. ``--model-dir`` (the ``explicit`` argument),
2. the ``VEXPRESS_MODEL_DIR`` environment variable,
3. ``model_dir`` in ``config.toml``,
4. ``./model_ckpts`` (the original repository's layout).

A configured source that points at a missing folder is an error rather than a silent fall-through
to the next one: a stale setting should be fixed, not quietly ignored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import click

from vexpress_cli.errors import InputError, ModelFolderError, did_you_mean, parameter

CONFIG_DIR_ENV = "VEXPRESS_CONFIG_DIR"
MODEL_DIR_ENV = "VEXPRESS_MODEL_DIR"
CONFIG_FILE_NAME = "config.toml"
DEFAULT_MODEL_DIR = Path("model_ckpts")

# Keys config.toml may hold, with their expected TOML type. [generate] holds your own defaults of
# generation settings (the keys of a preset's [generate] table).
GENERATE_TABLE = "generate"
CONFIG_KEYS: dict[str, type] = {"model_dir": str, GENERATE_TABLE: dict}


def config_dir() -> Path:
    """The folder holding ``config.toml`` and user presets (it may not exist yet)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(click.get_app_dir("vexpress"))


def config_file() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def user_presets_dir() -> Path:
    return config_dir() / "presets"


def load_user_config(path: Path | None = None) -> dict[str, Any]:
    """The validated contents of ``config.toml``; an empty dict when there is no such file."""
    path = path or config_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"The config file {path} is not valid TOML: {error}.",
            fix="Fix the line named above (strings need quotes, e.g. model_dir = \"/data/model_ckpts\").",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Cannot read the config file {path}: {error}.") from None
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


class ResolvedModelDir(NamedTuple):
    """The model folder and a short phrase saying how it was found."""

    path: Path
    how: str


def _model_dir_sources(explicit: Path | None):
    """Yield (how, path or None, why it is unset) for each source, in order of precedence."""
    yield "--model-dir", (Path(explicit).expanduser() if explicit is not None else None), "not given"
    from_env = os.environ.get(MODEL_DIR_ENV)
    yield f"${MODEL_DIR_ENV}", (Path(from_env).expanduser() if from_env else None), "not set"
    path = config_file()
    configured = load_user_config(path).get("model_dir")
    # A relative model_dir is relative to the config file, not to wherever vexpress runs.
    yield (f"model_dir in {path}", (path.parent / Path(configured).expanduser()) if configured else None,
           "not set" if path.is_file() else "no such file")
    yield f"default ./{DEFAULT_MODEL_DIR}", Path.cwd() / DEFAULT_MODEL_DIR, ""


def configured_model_dir(explicit: Path | None = None) -> ResolvedModelDir:
    """The model folder the settings point to, whether or not it exists yet (e.g. to download into)."""
    for how, path, _ in _model_dir_sources(explicit):
        if path is not None:
            return ResolvedModelDir(path, how)
    raise AssertionError("the default source always has a path")


def resolve_model_dir(explicit: Path | None = None) -> ResolvedModelDir:
    """Find the model folder (see the module docstring for the order).

    Raises ModelFolderError when the chosen folder does not exist; the message lists every
    source that was consulted and points to ``vexpress models download``.
    """
    tried: list[str] = []
    for how, path, unset in _model_dir_sources(explicit):
        if path is None:
            tried.append(f"{how}: {unset}")
            continue
        if path.is_dir():
            return ResolvedModelDir(path.resolve(), how)
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise ModelFolderError(
            f"No model folder: {path} ({how}) {problem}.",
            why="Looked in this order: " + "; ".join([*tried, how]) + ".",
            fix=(
                "Run `vexpress models download` to fetch the weights (into ./model_ckpts, or --to DIR), "
                f"then pass {parameter('model_dir')} DIR, set {MODEL_DIR_ENV}, or put model_dir = \"DIR\" in "
                f"{config_file()}."
            ),
        )
    raise AssertionError("the default source always has a path")
