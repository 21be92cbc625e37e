"""Command-line options made from the settings schema: names, help, choices and defaults come from it.

:func:`with_generation_settings` gives a command one option per generation setting (its kebab-case
flag and aliases) plus the original ``inference.py`` spellings in a "compatibility" panel; the
command receives only the values that were given, as ``settings``. :func:`setting_option` makes
one such option for commands that take a few settings (extract, retarget).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Optional

import typer

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.settings.schema import AUTO_STRATEGY, SETTINGS, Setting
from vexpress_cli.settings.values import value_from_text

SETTINGS_PANEL = "Generation settings (defaults < user config < preset < flags)"
BATCH_SETTINGS_PANEL = "Generation settings (defaults < config < --preset < flags < a job's own)"
COMPATIBILITY_PANEL = "Compatibility: the original inference.py's flags"


def quiet_option(shown: str = "errors") -> Any:
    """Every command's ``--quiet``: no progress, only ``shown``."""
    return typer.Option(False, "--quiet", "-q", help=f"No progress; print only {shown}.")


def json_option(what: str = "the result") -> Any:
    """Every command's ``--json``: ``what`` as JSON on stdout, and nothing else there."""
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout (and nothing else there).")


def model_option() -> Any:
    """``--model``: the weights as a hub id or a folder, for every command that generates."""
    return typer.Option(None, "--model", metavar="HUB_ID|DIR", show_default=False,
                        help="Hub id (tk93/V-Express, @revision allowed) or model folder. Default: $VEXPRESS_MODEL, "
                        "$VEXPRESS_MODEL_DIR, config, ./model_ckpts, else tk93/V-Express from the Hugging Face "
                        "cache (`vexpress models path` shows which).")


def model_dir_option() -> Any:
    """``--model-dir``: the weights as a folder (``--model`` takes one too)."""
    return typer.Option(None, "--model-dir", metavar="DIR", show_default=False,
                        help="Model folder in the released layout (like --model with a folder).")


_TYPED_ARGS: ContextVar[tuple[str, ...]] = ContextVar("vexpress_typed_args", default=())


@contextlib.contextmanager
def typed_args(args):
    """While a command line is parsed and run, :func:`flag_of` names a setting as it is typed in ``args``."""
    token = _TYPED_ARGS.set(tuple(args))
    try:
        yield
    finally:
        _TYPED_ARGS.reset(token)


# The original scripts' flags for job parameters that are no setting (a setting's are in the schema).
ORIGINAL_PARAMETER_FLAGS = {
    "video": ("--video_path",), "kps_out": ("--kps_sequence_save_path",), "audio_out": ("--audio_save_path",),
    "model_root": ("--insightface_model_path",), "reference_image": ("--reference_image_path",),
    "audio": ("--audio_path",), "output": ("--output_path",), "kps": ("--kps_path",),
}


def flag_of(name: str) -> str:
    """How the CLI spells a job parameter or setting in messages: its flag (``context_frames`` ->
    ``--context-frames``), or the other spelling of it typed on this command line instead
    (``--num_inference_steps``, ``--insightface_model_path``), so that a message names what the user wrote."""
    canonical = "--" + name.replace("_", "-")
    setting, typed = SETTINGS.get(name), _typed_flags()
    if setting is None:
        others, own = ORIGINAL_PARAMETER_FLAGS.get(name, ()), {canonical}
    else:
        others, own = (*setting.aliases, *setting.original_flags), {setting.flag, setting.short}
    if not typed or typed & own:
        return canonical
    return next((flag for flag in others if flag in typed), canonical)


def _typed_names() -> list[str]:
    """This command line's arguments, each option without its ``=value``."""
    return [arg.partition("=")[0] for arg in _TYPED_ARGS.get()]


def _typed_flags() -> set[str]:
    return {name for name in _typed_names() if name.startswith("-")}


def _canonical_as_typed(setting: Setting) -> str:
    """A setting's flag, or its short flag when only that was typed (``-s``)."""
    typed = _typed_flags()
    return setting.short if setting.short in typed and setting.flag not in typed else setting.flag


def _typed_position(flag: str) -> int:
    """Where ``flag`` first comes on this command line (after it when it is not there)."""
    typed = _typed_names()
    return typed.index(flag) if flag in typed else len(typed)


def _help(setting: Setting, meaning: str | None = None, default_words: str | None = None) -> str:
    text = f"{meaning or setting.help} Default: {default_words or _shown(setting.default)}."
    if setting.advised:
        text += f" Advised {setting.advised[0]}-{setting.advised[1]}; allowed {setting.allowed}."
    elif setting.kind in (int, float):
        text += f" Allowed {setting.allowed}."
    elif setting.choices:
        text += f" One of {setting.allowed}."
    return text


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def value_type(name: str) -> Any:
    """The annotation of a setting's option: text, which the settings schema reads and checks as it does a
    preset's or a Python argument's (the same values, the same messages); a switch is a bool."""
    return bool if SETTINGS[name].kind is bool else str


def setting_option(name: str, *extra_flags: str, default: Any = None, panel: str | None = None,
                   meaning: str | None = None, default_words: str | None = None) -> Any:
    """A typer.Option for one setting of a command wrapped in :func:`with_setting_aliases`.

    The option is shown under the setting's flag and any one-letter ``extra_flags``; its other
    spellings (aliases, long ``extra_flags``, ``--no-X`` of a switch) become hidden options that the
    help names. The command receives ``default`` when none of them is given. ``meaning`` and
    ``default_words`` tell what the setting is to this command when generate's words don't fit (retarget's
    fps is the track's); the values allowed always come from the schema.
    """
    setting = SETTINGS[name]
    short = [flag for flag in extra_flags if not flag.startswith("--")]
    others = (*_other_flags(setting), *(flag for flag in extra_flags if flag.startswith("--")))
    option = _shown_option(setting, others, *short, panel=panel, help=_help(setting, meaning, default_words))
    option.vexpress_spellings = (setting, others, default)
    return option


def _shown_option(setting: Setting, others: tuple[str, ...], *short: str, panel: str | None,
                  help: str | None = None) -> Any:
    """A setting's option under its flag (and one-letter flags); its help (generate's unless given) names the
    ``others`` spellings."""
    short = (*short, *((setting.short,) if setting.short else ()))
    return typer.Option(None, setting.flag, *short, help=(help or _help(setting)) + _also(others), show_default=False,
                        case_sensitive=False, metavar=_metavar(setting), rich_help_panel=panel,
                        autocompletion=_completion(setting))


def _completion(setting: Setting) -> Callable[[str], list[str]] | None:
    """What the shell's completion offers for a setting's value: its choices, or the installed strategies."""
    if setting.name == "retarget_strategy":
        return complete_strategy
    if setting.choices:
        return lambda incomplete: [choice for choice in setting.choices if choice.startswith(incomplete)]
    return None


def complete_strategy(incomplete: str) -> list[str]:
    from vexpress_cli.plugins import get_retarget_strategy_infos

    return _completed(incomplete, lambda: [AUTO_STRATEGY, *get_retarget_strategy_infos()])


def complete_preset(incomplete: str) -> list[str]:
    from vexpress_cli.settings.presets import preset_names

    return _completed(incomplete, lambda: sorted(preset_names()))


def _completed(incomplete: str, names: Callable[[], list[str]]) -> list[str]:
    """The ``names`` that start with ``incomplete``; none where they cannot be listed (a broken config folder
    is reported when the command runs, not in the middle of typing it)."""
    try:
        return [name for name in names() if name.startswith(incomplete)]
    except VExpressError:
        return []


def with_setting_aliases(command):
    """Give each :func:`setting_option` of ``command`` its hidden spellings; the command receives one value."""
    signature = inspect.signature(command, eval_str=True)
    own, hidden, spelled = [], [], {}
    for parameter in signature.parameters.values():
        spellings = getattr(parameter.default, "vexpress_spellings", None)
        if spellings is not None:  # Typer reads the setting's text; the command receives its value
            parameter = parameter.replace(annotation=value_type(spellings[0].name))
        own.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        if spellings is not None:
            setting, others, default = spellings
            hidden += _hidden_parameters(setting, others, parameter.annotation)
            spelled[parameter.name] = (setting, others, default)

    @functools.wraps(command)
    def wrapper(**values: Any):
        for name, (setting, others, default) in spelled.items():
            value = _given_value(values, name, setting, others)
            values[name] = default if value is None else value
        return command(**values)

    _give_signature(wrapper, signature.replace(parameters=own + hidden))
    return wrapper


def _give_signature(wrapper, signature: inspect.Signature) -> None:
    """Make Typer read ``signature`` (names, options, annotations) as the wrapped command's."""
    wrapper.__signature__ = signature
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in signature.parameters.values()}


def _also(others: tuple[str, ...]) -> str:
    return f" Also {', '.join(others)}." if others else ""


def _metavar(setting: Setting) -> str | None:
    """CHOICE for a setting with choices (its help lists them): a list of them would squeeze the flags."""
    if setting.choices:
        return "CHOICE"
    return {int: "<int>", float: "<float>"}.get(setting.kind)


def _other_flags(setting: Setting) -> tuple[str, ...]:
    """A setting's spellings besides its flag: its aliases and, for a switch, the flag that turns it off."""
    return (*setting.aliases, *setting.off_flags)


def _alias_parameter(flag: str) -> str:
    return "original_" + flag.lstrip("-").replace("-", "_")


def _setting_parameters(panel: str) -> list[inspect.Parameter]:
    """One option per setting, under its flag only; its other spellings are hidden options that the help
    text names, so that Typer's flag column stays wide enough for every flag (none is cut off)."""
    parameters = []
    for setting in SETTINGS.values():
        annotation = Optional[value_type(setting.name)]  # noqa: UP045 (typer reads the annotation at run time)
        others = _other_flags(setting)
        parameters.append(inspect.Parameter(setting.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                            default=_shown_option(setting, others, panel=panel)))
        parameters += _hidden_parameters(setting, others, annotation)
        parameters += [_spelling_parameter(flag, annotation, help=f"Same as {setting.flag}.", metavar=_metavar(setting),
                                           rich_help_panel=COMPATIBILITY_PANEL) for flag in setting.original_flags]
    return parameters


def _hidden_parameters(setting: Setting, others: tuple[str, ...], annotation: Any) -> list[inspect.Parameter]:
    return [_spelling_parameter(flag, Optional[annotation], help=f"Same as {setting.flag}.", hidden=True)
            for flag in others]


def _spelling_parameter(flag: str, annotation: Any, **option: Any) -> inspect.Parameter:
    """A keyword parameter for one more spelling of a setting: ``None`` unless that spelling is given."""
    return inspect.Parameter(_alias_parameter(flag), inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(None, flag, show_default=False, case_sensitive=False, **option))


def one_of(value, alias_value, name: str, alias: str):
    """A value given under its flag or under another spelling (the original's, an alias; not both, differently)."""
    if value is not None and alias_value is not None and value != alias_value:
        on_and_off = isinstance(value, bool) and isinstance(alias_value, bool)
        raise InputError(f"Both {name} and {alias} were given, with different values.",
                         why="They turn one switch on and off." if on_and_off else "They are two spellings of one "
                         "option.", fix="Pass only one of them.")
    return value if value is not None else alias_value


def _given_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line, each under one name; pops them from ``values``."""
    given = {}
    for setting in SETTINGS.values():
        value = _given_value(values, setting.name, setting, (*_other_flags(setting), *setting.original_flags))
        if value is not None:
            given[setting.name] = value
    return given


def _given_value(values: dict[str, Any], name: str, setting: Setting, others: tuple[str, ...]) -> Any:
    """The value given for a setting under parameter ``name`` or any of ``others`` (popped from ``values``);
    ``None`` when none was given, refused when two spellings were given different values."""
    spellings = [(_canonical_as_typed(setting), values.pop(name))]
    for flag in others:
        value = values.pop(_alias_parameter(flag))
        if flag in setting.off_flags and value:
            value = False  # --no-paste-back: the flag is given (True), so the setting is off
        spellings.append((flag, value))
    spellings.sort(key=lambda spelling: _typed_position(spelling[0]))  # a refusal names them as typed
    value, first_flag = None, ""
    for flag, flag_value in spellings:
        if isinstance(flag_value, str):
            flag_value = value_from_text(setting, flag_value)
        if flag_value is not None:
            value = one_of(value, flag_value, first_flag, flag)
            first_flag = first_flag or flag
    return value


def _original_parameters() -> list[inspect.Parameter]:
    from vexpress_cli.cli.original_flags import OPTIONS

    return [_spelling_parameter(flag, Optional[kind], help=help, rich_help_panel=COMPATIBILITY_PANEL)
            for flag, (kind, help) in OPTIONS.items()]


def with_generation_settings(command=None, *, panel: str = SETTINGS_PANEL):
    """Give a Typer command one option per generation setting (under the help ``panel``) and the original's
    other flags; ``@with_generation_settings(panel=...)`` names the panel.

    The command is called with ``settings=`` (the settings given, by name) and ``original=`` (the
    original's other flags that were given, by flag).
    """
    if command is None:
        return functools.partial(with_generation_settings, panel=panel)
    signature = inspect.signature(command, eval_str=True)
    own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for name, parameter in signature.parameters.items() if name not in ("settings", "original")]

    from vexpress_cli.cli.original_flags import OPTIONS

    @functools.wraps(command)
    def wrapper(**values: Any):
        settings = _given_settings(values)
        original = {flag: value for flag in OPTIONS if (value := values.pop(_alias_parameter(flag))) is not None}
        return command(**values, settings=settings, original=original)

    settings = _setting_parameters(panel) + _original_parameters()

    def compatibility(parameter: inspect.Parameter) -> bool:
        return getattr(parameter.default, "rich_help_panel", None) == COMPATIBILITY_PANEL

    # Panels in this order: the command's own options, the settings, then every compatibility flag.
    ordered = ([p for p in own if not compatibility(p)] + [p for p in settings if not compatibility(p)]
               + [p for p in own + settings if compatibility(p)])
    _give_signature(wrapper, signature.replace(parameters=ordered))
    return wrapper
