"""What the input reports share: the path check, JSON-ready ``to_dict()``, rounding, the fps check, defaults."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vexpress_cli.errors import InputError, python_name, spell_parameters
from vexpress_cli.settings.schema import DEFAULTS

DEFAULT_FPS = float(DEFAULTS["fps"])
MODEL_SIZE = 512  # V-Express was trained on 512 x 512 frames


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def plain(value: Any, spell: Callable[[str], str] = python_name) -> Any:
    """``value`` with Paths, Fractions and numpy scalars turned into JSON types, settings in text spelled by ``spell``."""
    if isinstance(value, dict):
        return {key: plain(item, spell) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item, spell) for item in value]
    if isinstance(value, str):
        return spell_parameters(value, spell)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, np.generic):
        return value.item()
    return value


class Report:
    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict[str, Any]:
        """Plain JSON types; a setting named in a warning reads as ``spell`` says (Python names, or the CLI's flags)."""
        return plain(asdict(self), spell)


def check_fps(fps: float) -> None:
    """The frame rate a video would be generated at: generate's own limits (1e308 overflowed into a traceback)."""
    from vexpress_cli.settings.schema import checked_setting

    checked_setting("fps", fps)


def check_input_path(path: str | Path) -> Path:
    """``path`` as a Path, or an InputError when it is empty, missing or unreadable."""
    if not str(path).strip():  # Path("") is the current folder: an empty variable must not inspect that
        raise InputError(
            "The path to inspect is empty.",
            why="An empty path ('') usually comes from an unset variable or from a command such as "
            "$(vexpress models path) that printed nothing because it found no weights.",
            fix="Pass a model folder or an input file, e.g. `vexpress inspect model_ckpts`; `vexpress models path` "
            "says where the weights are, or how to download them.",
        )
    path = Path(path).expanduser()
    try:
        path.stat()
    except FileNotFoundError:
        pass  # said below
    except OSError as error:  # a loop of links, a name too long: exists() would call it missing
        raise InputError(f"Cannot read {path}.", why=f"{error.strerror or error}.",
                         fix="Pass a model folder or an input file.") from None
    if not path.exists():
        raise InputError(
            f"{path} does not exist.",
            why="Nothing is at that path.",
            fix=_name_hint(str(path)) or "Check the spelling, or pass the full path to the file or model folder.",
        )
    if not _is_readable(path):
        raise InputError(f"{path} cannot be read.", why="Permission denied.",
                         fix=f"Fix its permissions, e.g. chmod u+r {path}.")
    return path


def _name_hint(name: str) -> str | None:
    """What a missing path may have meant instead: a preset's name, or a hub id."""
    from vexpress_cli.engine.model_source import looks_like_hub_id
    from vexpress_cli.file_types import KNOWN_SUFFIXES
    from vexpress_cli.settings.presets import preset_names

    if name in preset_names():
        return f"There is a preset named '{name}': inspect it with `vexpress inspect --preset {name}`."
    if looks_like_hub_id(name) and Path(name).suffix.lower() not in KNOWN_SUFFIXES:
        return (f"{name} looks like a hub id, and inspect reads folders: inspect its cached snapshot with "
                f"`vexpress inspect \"$(vexpress models path --model {name})\"`.")
    return None


def _is_readable(path: Path) -> bool:
    return os.access(path, os.R_OK)
