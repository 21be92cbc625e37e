"""Generation presets: named TOML files of ``generate`` settings, and how they combine with flags.

A preset file looks like::

    description = "Any voice, face held still: only the mouth moves."

    [generate]
    retarget_strategy = "fix_face"
    audio_attention_weight = 1.0

Presets come from three places: the built-ins shipped in ``vexpress_cli.presets``, user presets in
``<config dir>/presets/*.toml`` (a user preset named like a built-in replaces it), or a path to any
``.toml`` file. Settings combine as ``defaults < preset < explicit command-line flags``.

Presets must stay inside the ranges the V-Express authors advise for the two attention weights;
a command-line flag may go beyond them (up to generous hard limits) and gets a warning instead.
See docs/presets.md.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vexpress_cli.settings.user_config import user_presets_dir
from vexpress_cli.errors import InputError, did_you_mean
from vexpress_cli.kps.fit import DEFAULT_FIT_MODE, FIT_MODES

BUILTIN_PACKAGE = "vexpress_cli.presets"
PRESET_TABLE = "generate"
TOP_LEVEL_KEYS = ("description", PRESET_TABLE)

# The motion module's temporal position encoding covers 32 frames.
MAX_CONTEXT_FRAMES = 32


@dataclass(frozen=True)
class Parameter:
    """One generation setting: its type, default and limits."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    advised: tuple[float, float] | None = None
    multiple_of: int | None = None
    option: str | None = None  # the command-line flag, when it is not the kebab-case name
    also_matching: str | None = None  # a regular expression for values accepted besides ``choices``

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")


def _parameters(*params: Parameter) -> dict[str, Parameter]:
    return {param.name: param for param in params}


PARAMETERS: dict[str, Parameter] = _parameters(
    Parameter("retarget_strategy", str, "fix_face",
              "How driving keypoints are fitted to the reference face (built-in or plugin strategy).",
              option="--strategy"),
    Parameter("num_inference_steps", int, 25, "Denoising steps.", minimum=1, maximum=1000),
    Parameter("guidance_scale", float, 3.5, "Classifier-free guidance scale.", minimum=0.0, maximum=20.0),
    Parameter("context_frames", int, 24, "Frames denoised together in one window.",
              minimum=1, maximum=MAX_CONTEXT_FRAMES),
    Parameter("context_overlap", int, 4, "Frames shared by neighbouring windows.", minimum=0,
              maximum=MAX_CONTEXT_FRAMES - 1),
    Parameter("reference_attention_weight", float, 1.0, "Strength of the reference image.",
              minimum=0.0, maximum=2.0, advised=(0.9, 1.0)),
    Parameter("audio_attention_weight", float, 1.0, "Strength of the audio (mouth motion).",
              minimum=0.0, maximum=10.0, advised=(1.0, 3.0)),
    Parameter("save_gpu_memory", bool, False,
              "Free each network from the GPU once it is no longer needed (lower peak memory)."),
    Parameter("fps", float, 30.0, "Frames per second of the output video.", minimum=1.0, maximum=120.0),
    Parameter("width", int, 512, "Output width in pixels.", minimum=64, maximum=2048, multiple_of=8),
    Parameter("height", int, 512, "Output height in pixels.", minimum=64, maximum=2048, multiple_of=8),
    Parameter("seed", int, 42, "Random seed.", minimum=0, maximum=2**63 - 1),
    Parameter("dtype", str, "auto", "Compute precision.", choices=("auto", "fp16", "bf16", "fp32")),
    Parameter("device", str, "auto", "Where to run (cuda:N picks a GPU).", choices=("auto", "cuda", "cpu", "mps"),
              also_matching=r"cuda:\d+"),
    Parameter("kps_fit", str, DEFAULT_FIT_MODE, "How a keypoint sequence is fitted to the audio length.",
              choices=FIT_MODES),
    Parameter("num_pad_audio_frames", int, 2, "Audio frames of context on each side of a video frame.",
              minimum=0, maximum=16),
    Parameter("postprocess", bool, True, "3x3x3 median filter over the output frames to reduce flicker."),
)

DEFAULTS: dict[str, Any] = {name: param.default for name, param in PARAMETERS.items()}

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


# --- validation -----------------------------------------------------------------------------


def _type_name(kind: type) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[kind]


def _has_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass; true is not a step count
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _unknown_key_error(where: str, key: str, known: list[str], fix_prefix: str = "",
                       key_prefix: str = "") -> InputError:
    suggestion = did_you_mean(key, known, key_prefix)
    return InputError(
        f"{where}: unknown key '{key_prefix}{key}'.",
        why=f"Known keys: {', '.join(known)}.",
        fix=f"{suggestion}{fix_prefix}See docs/presets.md for every setting.",
    )


def validate_value(name: str, value: Any, where: str, *, within_advice: bool) -> Any:
    """Check one setting and return it normalised (ints become floats for float settings).

    ``where`` names the source in messages, e.g. "Preset file x.toml: key 'generate.seed'".
    ``within_advice`` makes the advised range a hard limit (presets) instead of a warning (flags).
    """
    param = PARAMETERS[name]
    if not _has_kind(value, param.kind):
        raise InputError(
            f"{where} must be {_type_name(param.kind)}, not {type(value).__name__} ({value!r}).",
            why=f"'{name}': {param.help}",
            fix=f"Use a value like {param.default!r}." if param.kind is not bool else "Use true or false.",
        )
    if param.kind is float:
        value = float(value)
    if param.choices and value not in param.choices and not (
            param.also_matching and re.fullmatch(param.also_matching, value)):
        options = ", ".join(param.choices) + (" or cuda:N" if param.also_matching else "")
        raise InputError(f"{where} is {value!r}, which is not one of: {options}.", fix=f"Pick one of {options}.")
    if param.kind is str and not param.choices and not value.strip():
        raise InputError(f"{where} is empty.", fix=f"Give a name such as {param.default!r}.")
    if param.kind in (int, float):
        _check_range(param, value, where, within_advice=within_advice)
    return value


def _check_range(param: Parameter, value: float, where: str, *, within_advice: bool) -> None:
    low, high = param.minimum, param.maximum
    if within_advice and param.advised:
        low, high = param.advised
        if not low <= value <= high:
            raise InputError(
                f"{where} is {value}, outside the advised range "
                f"{low}-{high}.",
                why="Presets stay within the range the V-Express authors recommend.",
                fix=f"Use a value from {low} to {high}, or pass "
                f"{param.flag} {value} on the command line to go beyond it (with a warning).",
            )
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"at least {low}" if high is None
            else f"from {low} to {high}" if low is not None
            else f"at most {high}"
        )
        why = f"'{param.name}': {param.help}"
        if param.name == "context_frames":
            why += f" The motion module's position encoding covers {MAX_CONTEXT_FRAMES} frames."
        raise InputError(f"{where} is {value}; it must be {bounds}.", why=why,
                         fix=f"Use a value {bounds}.")
    if param.multiple_of and value % param.multiple_of:
        nearest = max(param.multiple_of, round(value / param.multiple_of) * param.multiple_of)
        raise InputError(
            f"{where} is {value}; it must be a multiple of {param.multiple_of}.",
            why="The VAE downsamples images by 8 in each direction.",
            fix=f"Use {nearest}.",
        )


def validate_values(raw: Mapping[str, Any], where: str, *, within_advice: bool,
                    key_prefix: str = "") -> dict[str, Any]:
    """Validate a mapping of settings; ``where`` is a prefix such as "Preset file x.toml"."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in PARAMETERS:
            raise _unknown_key_error(where, name, list(PARAMETERS), key_prefix=key_prefix)
        values[name] = validate_value(name, value, f"{where}: '{key_prefix}{name}'",
                                      within_advice=within_advice)
    return values


def check_consistency(values: Mapping[str, Any], where: str = "",
                      describe: Callable[[str], str] = lambda name: f"'{name}'") -> None:
    """Checks that involve two settings, on an already merged set of values."""
    frames = values.get("context_frames", DEFAULTS["context_frames"])
    overlap = values.get("context_overlap", DEFAULTS["context_overlap"])
    if overlap >= frames:
        what = (f"{where}{describe('context_overlap')} ({overlap}) must be smaller than "
                f"{describe('context_frames')} ({frames}).")
        raise InputError(
            what[0].upper() + what[1:],
            why="Neighbouring windows share 'context_overlap' frames, so each window must also have new ones.",
            fix=f"Lower {describe('context_overlap')} to at most {frames - 1}, "
            f"or raise {describe('context_frames')}.",
        )


def range_warnings(values: Mapping[str, Any]) -> list[str]:
    """Human-readable warnings for settings outside the advised ranges (allowed for flags)."""
    warnings = []
    for name, value in values.items():
        advised = PARAMETERS[name].advised if name in PARAMETERS else None
        if advised and not advised[0] <= value <= advised[1]:
            warnings.append(
                f"{name} = {value} is outside the advised range "
                f"{advised[0]}-{advised[1]}; expect a weaker identity or odd motion."
            )
    return warnings


# --- loading --------------------------------------------------------------------------------


def parse_preset_text(text: str, path: str) -> tuple[str, dict[str, Any]]:
    """Parse and validate the text of a preset file: (description, values)."""
    label = f"Preset file {path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"{label} is not valid TOML: {error}.",
            fix="Fix the syntax at that line (strings need double quotes; see docs/presets.md).",
        ) from None
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key_error(label, key, list(TOP_LEVEL_KEYS),
                                     fix_prefix=f"Settings go in the '{PRESET_TABLE}' table. ")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise InputError(f"{label}: 'description' must be a string, not {type(description).__name__}.",
                         fix='Write it as description = "What this preset is for".')
    table = data.get(PRESET_TABLE, {})
    if not isinstance(table, dict):
        raise InputError(f"{label}: '{PRESET_TABLE}' must be a table.",
                         fix=f"Put the settings in a '{PRESET_TABLE}' table (see docs/presets.md).")
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
    return {path.stem: path for path in sorted(folder.glob("*.toml")) if path.is_file()}


def _read(location) -> str:
    try:
        return location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"Preset file {location} does not exist.",
                         fix="Check the path, or run `vexpress presets list` to see preset names.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Cannot read preset file {location}: {error}.") from None


def _looks_like_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (user presets shadow built-ins) or from a ``.toml`` path."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            raise InputError(f"Preset {path} is a folder, not a .toml file.")
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


# --- combining with flags -------------------------------------------------------------------


def merge_preset(preset_values: Mapping[str, Any], explicit_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Preset values with the explicitly passed options on top.

    ``explicit_overrides`` must hold only the options the user actually passed (a ``None`` value
    counts as not passed). They are checked against the hard limits, not the advised ranges; use
    ``range_warnings`` to tell the user about values outside the advice.
    """
    overrides = {name: value for name, value in explicit_overrides.items() if value is not None}
    for name, value in overrides.items():
        if name not in PARAMETERS:
            raise _unknown_key_error("Command-line options", name, list(PARAMETERS))
        overrides[name] = validate_value(name, value, f"Option {PARAMETERS[name].flag}", within_advice=False)
    merged = {**preset_values, **overrides}

    def describe(name: str) -> str:
        return PARAMETERS[name].flag if name in overrides else (
            f"the preset's '{name}'" if name in preset_values else f"the default '{name}'")

    check_consistency(merged, describe=describe)
    return merged


def generation_settings(preset: Preset | None, explicit_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every generation setting: ``defaults < preset < explicit flags``."""
    merged = merge_preset(preset.values if preset else {}, explicit_overrides)
    return {**DEFAULTS, **merged}
