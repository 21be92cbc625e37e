"""The report on a preset: its validated values and every setting ``generate`` would use with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.jobs.inspect.report import Report


@dataclass
class PresetReport(Report):
    name: str
    description: str
    source: str  # builtin, user or file
    path: str
    shadows_builtin: bool
    values: dict[str, Any]  # what the preset sets, validated
    settings: dict[str, Any]  # every generate setting with this preset: defaults < user config < preset
    sources: dict[str, str]  # where each setting comes from: default, config or preset
    kind: str = "preset"
    warnings: list[str] = field(default_factory=list)


def inspect_preset(name_or_path: str | Path) -> PresetReport:
    """A preset's validated values and every setting ``generate`` would use with it."""
    from vexpress_cli.settings.presets import load_preset
    from vexpress_cli.settings.schema import resolve_settings
    from vexpress_cli.settings.user_config import configured_settings

    preset = load_preset(name_or_path)
    resolved = resolve_settings(preset.values, config_values=configured_settings())  # as generate resolves them
    report = PresetReport(
        name=preset.name, description=preset.description, source=preset.source, path=preset.path,
        shadows_builtin=preset.shadows_builtin, values=dict(preset.values),
        settings=resolved.settings.to_dict(), sources=dict(resolved.sources),
    )
    if preset.shadows_builtin:
        report.warnings.append(f"This user preset replaces the built-in preset '{preset.name}'.")
    return report
