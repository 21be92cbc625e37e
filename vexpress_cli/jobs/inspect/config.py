"""The report on the user config (``config.toml``): validated as generate reads it, and what it sets."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.jobs.inspect.report import Report

MODEL_KEYS = ("model", "model_dir")  # keys of the user config that no preset has


@dataclass
class ConfigReport(Report):
    path: str
    in_use: bool  # the config file vexpress reads ($VEXPRESS_CONFIG_DIR or the user config folder)
    model: str | None  # what it names as the weights, if anything
    model_dir: str | None
    values: dict[str, Any]  # its [generate] table, validated
    settings: dict[str, Any]  # every generate setting with it: defaults < this config
    sources: dict[str, str]  # where each setting comes from: default or config
    checked_with: str = "`vexpress doctor` (with the rest of the installation); `vexpress models path` (the weights)"
    kind: str = "config"
    warnings: list[str] = field(default_factory=list)


def is_user_config(path: Path) -> bool:
    """Whether a .toml file is a user config rather than a preset: named config.toml, or setting model or
    model_dir (keys only the user config has)."""
    from vexpress_cli.errors import VExpressError
    from vexpress_cli.input_files import parsed_text, read_settings_text
    from vexpress_cli.settings.user_config import CONFIG_FILE_NAME

    if path.name.lower() == CONFIG_FILE_NAME:
        return True
    try:
        data = parsed_text(tomllib.loads, read_settings_text(path, "TOML file", "a preset or config.toml"))
    except (VExpressError, tomllib.TOMLDecodeError, ValueError):
        return False  # the preset reader says what is wrong with it
    return any(key in data for key in MODEL_KEYS)


def inspect_config(path: str | Path) -> ConfigReport:
    """The user config at ``path`` validated by the loader generate uses, and every setting it gives."""
    from vexpress_cli.settings.schema import resolve_settings
    from vexpress_cli.settings.user_config import GENERATE_TABLE, config_file, load_user_config

    path = Path(path).expanduser()
    data = load_user_config(path)
    values = data.get(GENERATE_TABLE, {})
    resolved = resolve_settings(config_values=values)
    in_use = path.resolve() == config_file().resolve()
    report = ConfigReport(path=str(path), in_use=in_use, model=data.get("model"), model_dir=data.get("model_dir"),
                          values=dict(values), settings=resolved.settings.to_dict(), sources=dict(resolved.sources))
    if not in_use:
        report.warnings.append(f"This is not the config file vexpress reads, which is {config_file()} (set "
                               "$VEXPRESS_CONFIG_DIR to the folder of this one to use it).")
    return report
