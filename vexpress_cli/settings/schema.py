"""The generation settings: one typed schema for flags, presets, the user config, the Python API and docs.

Each field of :class:`GenerationSettings` states its default once, with its limits and help in the
field's metadata (:class:`Setting`). Everything else is derived from it: the ``generate`` command's
options (names, defaults, help), preset and config validation, ``presets show``, the API's keyword
arguments and the settings table in docs/presets.md.

Values combine as ``defaults < user config < preset < explicit values`` (flags or API arguments);
:func:`resolve_settings` also says where each value came from.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vexpress_cli.errors import (InputError, described, did_you_mean, messages, parameter, short_repr,
                                  shown_number)
from vexpress_cli.settings.values import plain_value
from vexpress_cli.kps.fit import DEFAULT_FIT_MODE, FIT_MODES

# The motion module's temporal position encoding covers 32 frames.
MAX_CONTEXT_FRAMES = 32
# retarget_strategy's default: no_retarget with a driving kps file, fix_face without.
AUTO_STRATEGY = "auto"
FACE_BACKENDS = ("auto", "insightface", "dlib")
# The engine's samplers (vexpress_cli.engine.scheduling.SCHEDULERS; named here so the schema loads no diffusers).
SCHEDULER_NAMES = ("ddim", "dpm++", "euler", "unipc")
DEFAULT_SCHEDULER = "ddim"
OFFLOAD_MODES = ("none", "model", "sequential")
# --codec: auto, then vexpress_cli.media.encoding.ENCODERS' names; --encoder-preset: x264's presets.
CODECS = ("auto", "h264", "h265", "h264_nvenc", "hevc_nvenc")
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
# X,Y,W,H in the photo's pixels, the box at least one pixel wide and high
CROP_BOX_PATTERN = r"\s*\d+\s*,\s*\d+\s*,\s*0*[1-9]\d*\s*,\s*0*[1-9]\d*\s*"


@dataclass(frozen=True)
class Setting:
    """One generation setting as the schema declares it."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    advised: tuple[float, float] | None = None
    multiple_of: int | None = None
    also_matching: str | None = None  # a regular expression for values accepted besides ``choices``
    also_named: str | None = None  # how help and messages spell the values ``also_matching`` accepts
    aliases: tuple[str, ...] = ()  # more kebab-case flags, e.g. --strategy
    short: str | None = None  # a one-letter flag, e.g. -s
    original_flags: tuple[str, ...] = ()  # the original inference.py's spelling

    @property
    def flag(self) -> str:
        """The command-line flag: the kebab-case name."""
        return "--" + self.name.replace("_", "-")

    @property
    def off_flags(self) -> tuple[str, ...]:
        """The flag that turns a switch off (``--no-postprocess``); none for other settings."""
        return (f"--no-{self.flag[2:]}",) if self.kind is bool else ()

    @property
    def allowed(self) -> str:
        """The allowed values in words, for help and docs."""
        if self.choices:
            return ", ".join(self.choices) + (f" or {self.also_named}" if self.also_matching else "")
        if self.kind is bool:
            return "true or false"
        if self.maximum is not None and self.maximum >= 2**31:
            return f"{_number(self.minimum)} or more"
        if self.minimum is not None and self.maximum is not None:
            words = f"{_number(self.minimum)} to {_number(self.maximum)}"
            return words + (f", a multiple of {self.multiple_of}" if self.multiple_of else "")
        return "any non-empty name"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _setting(default: Any, help: str, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": spec, "help": help})


@dataclass(frozen=True)
class GenerationSettings:
    """Every setting of one generation, each checked against its limits (InputError) when built.

    :func:`resolve_settings` builds one from defaults, the config, a preset and explicit values;
    ``GenerationSettings(width=256)`` and :meth:`replace` check what they are given the same way;
    ``generate(..., **settings.to_dict())`` runs a job with them.
    """

    retarget_strategy: str = _setting(
        AUTO_STRATEGY, "How driving keypoints are fitted to the reference face (built-in or plugin strategy); "
        "auto: no_retarget with a driving kps file, fix_face without.",
        aliases=("--strategy",), short="-s", original_flags=("--retarget_strategy",))
    num_inference_steps: int = _setting(25, "Denoising steps.", minimum=1, maximum=1000,
                                        original_flags=("--num_inference_steps",))
    guidance_scale: float = _setting(3.5, "Classifier-free guidance scale.", minimum=0.0, maximum=20.0,
                                     original_flags=("--guidance_scale",))
    context_frames: int = _setting(24, "Frames denoised together in one window (more than context_overlap).", minimum=1,
                                   maximum=MAX_CONTEXT_FRAMES, original_flags=("--context_frames",))
    context_overlap: int = _setting(4, "Frames shared by neighbouring windows (fewer than context_frames).", minimum=0,
                                    maximum=MAX_CONTEXT_FRAMES - 1, original_flags=("--context_overlap",))
    reference_attention_weight: float = _setting(1.0, "Strength of the reference image.", minimum=0.0, maximum=2.0,
                                                 advised=(0.9, 1.0), original_flags=("--reference_attention_weight",))
    audio_attention_weight: float = _setting(1.0, "Strength of the audio (mouth motion).", minimum=0.0, maximum=10.0,
                                             advised=(1.0, 3.0), original_flags=("--audio_attention_weight",))
    save_gpu_memory: bool = _setting(False, "Free each network from the GPU once it is no longer needed "
                                     "(lower peak memory).", original_flags=("--save_gpu_memory",))
    offload: str = _setting("none", "Keep networks in CPU memory until they run: model moves one whole network at a "
                            "time to the GPU (less memory, a little slower); sequential moves layer by layer (least "
                            "memory, much slower); none keeps all on the device.", choices=OFFLOAD_MODES)
    scheduler: str = _setting(DEFAULT_SCHEDULER, "Denoising sampler. Only ddim reproduces the original's videos; "
                              "dpm++, euler and unipc are other diffusers samplers that may need fewer steps "
                              "(see the fast preset).", choices=SCHEDULER_NAMES)
    fps: float = _setting(30.0, "Frames per second of the output video (29.97 means exactly 30000/1001).",
                          minimum=1.0, maximum=120.0)
    width: int = _setting(512, "Output width in pixels.", minimum=64, maximum=2048, multiple_of=8,
                          original_flags=("--image_width",))
    height: int = _setting(512, "Output height in pixels.", minimum=64, maximum=2048, multiple_of=8,
                           original_flags=("--image_height",))
    seed: int = _setting(42, "Random seed (the same seed gives the original's video).", minimum=0, maximum=2**63 - 1)
    dtype: str = _setting("auto", "Compute precision; auto: fp16 on a GPU, fp32 on the CPU.",
                          choices=("auto", "fp16", "bf16", "fp32"))
    device: str = _setting("auto", "Where to run; auto: CUDA, then MPS, then the CPU.",
                           choices=("auto", "cuda", "cpu", "mps"), also_matching=r"cuda:\d+", also_named="cuda:N")
    kps_fit: str = _setting(DEFAULT_FIT_MODE, "How a keypoint track of another length is fitted to the video.",
                            choices=FIT_MODES)
    face_backend: str = _setting("auto", "Face detector for the keypoints (the reference photo's; extract: every "
                                 "frame's); auto: insightface when its model is present, else dlib.",
                                 choices=FACE_BACKENDS)
    crop: str = _setting("auto", "The part of the photo that is animated: auto (a box of the video's shape around "
                         "the face, framed like V-Express's training portraits), none (the whole photo, stretched) "
                         "or X,Y,W,H in the photo's pixels.", choices=("auto", "none"), also_matching=CROP_BOX_PATTERN,
                         also_named="X,Y,W,H")
    face_index: int = _setting(0, "With crop auto and several faces: which one, 0 the largest, 1 the next, ...",
                               minimum=0, maximum=99)
    paste_back: bool = _setting(False, "Blend every generated frame back into the whole photo (soft edges): the "
                                "video has the photo's size.")
    max_size: int = _setting(0, "With paste_back: the video's longest side in pixels, at least 64 (the whole frame "
                             "is scaled down); 0: the photo's own size.", minimum=0, maximum=8192)
    num_pad_audio_frames: int = _setting(2, "Audio frames of context on each side of a video frame; it must "
                                         "match the model (2 for the released weights).",
                                         minimum=0, maximum=16, original_flags=("--num_pad_audio_frames",))
    postprocess: bool = _setting(True, "3x3x3 median filter over the output frames to reduce flicker.")
    codec: str = _setting("auto", "Video codec: h264 (libx264), h265 (libx265, smaller files), h264_nvenc or "
                          "hevc_nvenc (NVIDIA GPU encoders); auto: h264_nvenc where it works, else h264.",
                          choices=CODECS)
    crf: int = _setting(18, "Video quality (constant rate factor; NVENC's -cq): lower is better and larger; "
                        "18 looks lossless, +6 about halves the file.", minimum=0, maximum=51)
    encoder_preset: str = _setting("medium", "Encoder speed (x264 presets; NVENC's p1-p7): slower gives a smaller "
                                   "file at the same quality.", choices=ENCODER_PRESETS)
    audio_bitrate: int = _setting(192, "AAC audio bitrate of the video, in kbit/s; AAC holds at most 6 per kHz of "
                                  "sample rate per channel (96 for 16 kHz mono), and ffmpeg lowers a higher one.",
                                  minimum=32, maximum=512)
    window_batch: int = _setting(0, "Context windows per denoising-UNet call (the same video within float noise); "
                                 "0: auto, up to 4 as the free GPU memory allows on CUDA (1.05-1.07x faster on "
                                 "an H200), 1 on the CPU and MPS, with compile and with save_gpu_memory.",
                                 minimum=0, maximum=64)
    compile: bool = _setting(False, "Compile the denoising UNet with torch.compile (the same video within float "
                             "noise): 1.3x faster per step on an H200 after the first call, which compiles "
                             "(about 90 s the first time per machine, size and precision, about 20 s once "
                             "cached), so there it pays off for videos over about 45 s, or 10 s once cached.")

    def __post_init__(self) -> None:
        for name in SETTINGS:
            value = checked_setting(name, getattr(self, name))
            object.__setattr__(self, name, value)  # normalised: 25 becomes 25.0 for a float setting
        check_consistency(self.to_dict(), describe=parameter)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "GenerationSettings":
        """A copy with ``changes`` validated like explicit values."""
        return resolve_settings(self.to_dict(), changes).settings


def _settings_from_fields() -> dict[str, Setting]:
    table = {}
    for item in dataclasses.fields(GenerationSettings):
        kind = {"str": str, "int": int, "float": float, "bool": bool}[str(item.type)]
        table[item.name] = Setting(item.name, kind, item.default, item.metadata["help"], **item.metadata["spec"])
    return table


SETTINGS: dict[str, Setting] = _settings_from_fields()
_fields_init = GenerationSettings.__init__


def _checked_init(self, *args: Any, **values: Any) -> None:
    """The dataclass's __init__, with an unknown name an InputError (as in replace()) instead of a TypeError."""
    for name in values:
        if name not in SETTINGS:
            raise unknown_setting_error("Generation settings", name, listed=LISTED_FOR_PYTHON)
    _fields_init(self, *args, **values)


_checked_init.__signature__ = inspect.signature(_fields_init)  # help() and IDEs show the settings
GenerationSettings.__init__ = _checked_init
DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}
# The sources a value can come from, weakest first.
SOURCES = ("default", "config", "preset", "explicit")


# --- validation -----------------------------------------------------------------------------


def _type_name(kind: type) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[kind]


def _shown(value: Any) -> str:
    """A wrong value as a message shows it: text as quoted text ('1.5': every flag's value is text), anything
    else with its type (float 8.0)."""
    return short_repr(value) if isinstance(value, str) else described(value)


def _has_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass; true is not a step count
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


LISTED_FOR_FILES = "`vexpress generate --help` and `vexpress docs presets` list every setting."
LISTED_FOR_PYTHON = ("vexpress_cli.SETTINGS lists every setting, and help(vexpress_cli.GenerationSettings) says "
                     "each one.")


def unknown_setting_error(where: str, key: str, known: list[str] | None = None, fix_prefix: str = "",
                          key_prefix: str = "", listed: str = LISTED_FOR_FILES) -> InputError:
    """The error for an unknown key; ``listed`` says where the known ones are listed (for a file, or in Python)."""
    known = list(SETTINGS) if known is None else known
    suggestion = did_you_mean(key, known, key_prefix)
    return InputError(f"{where}: unknown key '{key_prefix}{key}'.", why=f"Known keys: {', '.join(known)}.",
                      fix=f"{suggestion}{fix_prefix}{listed}")


# A value's other name, for the "Did you mean" of a refusal ('gpu' is closest to 'cpu' by its letters).
OTHER_NAMES = {"gpu": "cuda"}


def validate_value(name: str, value: Any, where: str, *, within_advice: bool) -> Any:
    """Check one setting and return it normalised (ints become floats for float settings).

    ``where`` names the source in messages, e.g. "Preset file x.toml: key 'generate.seed'".
    ``within_advice`` makes the advised range a hard limit (presets) instead of a warning (flags).
    """
    setting = SETTINGS[name]
    value = plain_value(SETTINGS.get(name), name, value)
    if not _has_kind(value, setting.kind):
        raise InputError(
            f"{where} must be {_type_name(setting.kind)}, not {_shown(value)}.",
            why=f"{parameter(name)}: {setting.help}",
            fix=f"Use a value like {setting.default!r}." if setting.kind is not bool else "Use true or false.",
        )
    if setting.kind is float:
        value = _as_float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{where} is {value}, not a finite number.", why=f"{parameter(name)}: {setting.help}",
                             fix=f"Use a number from {_number(setting.minimum)} to {_number(setting.maximum)}.")
    if setting.choices and value not in setting.choices:
        problem = _why_not_allowed(name, value)
        if problem or not (setting.also_matching and re.fullmatch(setting.also_matching, value)):
            fix = (f"Use {parameter('crop', 'auto')}, or a box such as 320,40,640,640." if problem and name == "crop"
                   else f"{did_you_mean(OTHER_NAMES.get(value, value), setting.choices)}Pick one of {setting.allowed}.")
            raise InputError(f"{where} is {short_repr(value)}, which is not one of: {setting.allowed}.",
                             why=problem, fix=fix)
    if setting.kind is str and not setting.choices and not value.strip():
        raise InputError(f"{where} is empty.", fix=f"Give a name such as {setting.default!r}.")
    if setting.kind in (int, float):
        _check_range(setting, value, where, within_advice=within_advice)
    return value


def _as_float(value: int | float) -> int | float:
    """A float setting's number as a float; a whole number past a float's range stays whole, for the range check
    to refuse (``1`` and 400 zeros)."""
    try:
        return float(value)
    except OverflowError:
        return value


def checked_setting(name: str, value: Any) -> Any:
    """One setting given to a job or a call (a keyword argument, a flag), validated and normalised."""
    return validate_value(name, value, parameter(name), within_advice=False)


def _why_not_allowed(name: str, value: str) -> str:
    """What is wrong with a value that looks like the pattern kind (a crop box, even one the pattern matches:
    a number of 5000 digits), else nothing to add."""
    if name == "crop" and "," in value:
        from vexpress_cli.face.framing import crop_box_problem  # only for a box: the face package is heavier

        return crop_box_problem(value) or ""
    return ""


def _check_range(setting: Setting, value: float, where: str, *, within_advice: bool) -> None:
    low, high = setting.minimum, setting.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}"
        why = f"{parameter(setting.name)}: {setting.help}"
        if setting.name == "context_frames":
            why += f" The motion module's position encoding covers {MAX_CONTEXT_FRAMES} frames."
        raise InputError(f"{where} is {shown_number(value)}; it must be {bounds}.", why=why,
                         fix=f"Use a value {bounds}.")
    if within_advice and setting.advised and not setting.advised[0] <= value <= setting.advised[1]:
        low, high = setting.advised
        raise InputError(
            f"{where} is {value}, outside the advised range {low}-{high}.",
            why="Presets and config files stay within the range the V-Express authors recommend.",
            fix=f"Use a value from {low} to {high}, or give {parameter(setting.name, value)} explicitly "
            "to go beyond it (with a warning).",
        )
    if setting.multiple_of and value % setting.multiple_of:
        nearest = max(setting.multiple_of, round(value / setting.multiple_of) * setting.multiple_of)
        raise InputError(
            f"{where} is {value}; it must be a multiple of {setting.multiple_of}.",
            why="The VAE downsamples images by 8 in each direction.",
            fix=f"Use {nearest}.",
        )


def validate_values(raw: Mapping[str, Any], where: str, *, within_advice: bool,
                    key_prefix: str = "") -> dict[str, Any]:
    """Validate a mapping of settings; ``where`` is a prefix such as "Preset file x.toml"."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in SETTINGS:
            raise unknown_setting_error(where, name, key_prefix=key_prefix)
        values[name] = validate_value(name, value, f"{where}: '{key_prefix}{name}'", within_advice=within_advice)
    return values


def check_consistency(values: Mapping[str, Any], where: str = "",
                      describe: Callable[[str], str] = lambda name: f"'{name}'",
                      name_in_fix: Callable[[str], str] | None = None) -> None:
    """Checks that involve two settings, on an already merged set of values. ``describe`` names a setting
    with where its value came from ("the default context_overlap"), ``name_in_fix`` as the user sets it."""
    name_in_fix = name_in_fix or describe
    frames = values.get("context_frames", DEFAULTS["context_frames"])
    overlap = values.get("context_overlap", DEFAULTS["context_overlap"])
    if overlap >= frames:
        what = (f"{where}{describe('context_overlap')} ({overlap}) must be smaller than "
                f"{describe('context_frames')} ({frames}).")
        raise InputError(
            what[0].upper() + what[1:],
            why=f"Neighbouring windows share {parameter('context_overlap')} frames, so each window must also have "
            "new ones.",
            fix=f"Lower {name_in_fix('context_overlap')} to at most {frames - 1}, "
            f"or raise {name_in_fix('context_frames')}.",
        )


def range_warnings(values: Mapping[str, Any]) -> list[str]:
    """Human-readable warnings for settings outside the advised ranges (allowed for explicit values)."""
    warnings = []
    for name, value in values.items():
        advised = SETTINGS[name].advised if name in SETTINGS else None
        if advised and not advised[0] <= value <= advised[1]:
            warnings.append(f"{parameter(name, value)} is outside the advised range {advised[0]}-{advised[1]}; "
                            "expect a weaker identity or odd motion.")
    return warnings


# --- combining ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedSettings:
    """Validated settings, where each value came from, and warnings about explicit values."""

    settings: GenerationSettings
    sources: dict[str, str]
    warnings: list[str]

    def chosen(self, name: str) -> bool:
        """Whether a value was set on purpose (config, preset or explicitly) rather than defaulted."""
        return self.sources[name] != "default"


def source_name(source: str) -> str:
    """How a message names one of :data:`SOURCES`: the config is the user config."""
    return "user config" if source == "config" else source


def resolve_settings(preset_values: Mapping[str, Any] | None = None, explicit: Mapping[str, Any] | None = None,
                     *, config_values: Mapping[str, Any] | None = None) -> ResolvedSettings:
    """Every setting: ``defaults < config < preset < explicit``.

    ``preset_values`` and ``config_values`` were validated when their files were read; ``explicit``
    values (flags, API keyword arguments; ``None`` means not given) are validated here against the
    hard limits, and those outside the advised ranges produce warnings.
    """
    layers = {"config": dict(config_values or {}), "preset": dict(preset_values or {})}
    given = {name: value for name, value in (explicit or {}).items() if value is not None}
    for name, value in given.items():
        if name not in SETTINGS:
            raise unknown_setting_error("Generation settings", name, listed=LISTED_FOR_PYTHON)
        given[name] = checked_setting(name, value)
    layers["explicit"] = given
    merged, sources = dict(DEFAULTS), dict.fromkeys(DEFAULTS, "default")
    for source, values in layers.items():
        merged.update(values)
        sources.update(dict.fromkeys(values, source))

    def describe_any(name: str) -> str:
        source = sources[name]
        if source == "explicit":
            return parameter(name)
        owner = "default" if source == "default" else f"{source_name(source)}'s"
        return f"the {owner} {parameter(name)}"

    check_consistency(merged, describe=describe_any, name_in_fix=parameter)
    return ResolvedSettings(GenerationSettings(**merged), sources, messages(range_warnings(given)))
