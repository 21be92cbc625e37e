"""Options made from the settings schema: every flag readable in an 80-column help, and a setting's other
spellings (an alias, --no-X for a switch, the original's flag) reaching the same setting, in generate and in
the commands that take a few settings (extract, retarget, inspect)."""

from __future__ import annotations

import re

import pytest
import typer
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.cli.options import setting_option, typed_args, with_generation_settings, with_setting_aliases
from vexpress_cli.errors import InputError
from vexpress_cli.settings.schema import SETTINGS


def given_settings(*args: str):
    """The settings a command decorated like generate receives for ``args``, and the run's result."""
    received = {}
    probe = typer.Typer()

    @probe.command()
    @with_generation_settings
    def command(settings, original):
        received.update(settings)

    return CliRunner().invoke(probe, list(args)), received


def test_generate_help_shows_every_setting_flag_whole_at_80_columns():
    result = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    shown = {word.rstrip(",") for line in result.output.splitlines() for word in line.split()}
    assert {setting.flag for setting in SETTINGS.values()} <= shown
    assert "--no-save-gpu-memory." in shown and "--strategy." in shown  # named in the help text


@pytest.mark.parametrize(("args", "expected"), [
    (["--save-gpu-memory"], {"save_gpu_memory": True}),
    (["--no-save-gpu-memory"], {"save_gpu_memory": False}),
    (["--save_gpu_memory"], {"save_gpu_memory": True}),  # the original's spelling
    (["--no-paste-back", "--strategy", "offset_retarget"],
     {"paste_back": False, "retarget_strategy": "offset_retarget"}),
    ([], {}),
])
def test_each_spelling_of_a_setting_reaches_it(args, expected):
    result, received = given_settings(*args)
    assert result.exit_code == 0, result.output
    assert received == expected


TAKEN, REFUSED = "taken as", "refused with"


@pytest.mark.parametrize(("name", "text", "verdict", "expected"), [
    ("scheduler", "DDIM", TAKEN, "ddim"), ("dtype", "float16", TAKEN, "fp16"), ("dtype", "FP16", TAKEN, "fp16"),
    ("device", "CPU", TAKEN, "cpu"), ("crop", "NONE", TAKEN, "none"), ("seed", "8", TAKEN, 8),
    ("fps", "25", TAKEN, 25.0),
    ("seed", "8.0", REFUSED, "must be an integer, not "),
    ("width", "abc", REFUSED, "must be an integer, not 'abc'"),
    ("scheduler", "dpmpp", REFUSED, "Did you mean 'dpm++'?"),
    ("device", "gpu", REFUSED, "Did you mean 'cuda'?"),  # not 'cpu', the closest by its letters
])
def test_a_flag_a_preset_key_and_a_python_argument_take_and_refuse_the_same_values(tmp_path, name, text, verdict,
                                                                                    expected):
    """The CLI took DDIM, float16 and --seed 8.0 that presets and Python refused (or the reverse), with messages
    of its own; the settings schema now reads every source."""
    import tomllib

    from vexpress_cli.settings.presets import load_preset
    from vexpress_cli.settings.schema import resolve_settings

    toml_value = text if text.replace(".", "").isdigit() else f'"{text}"'
    given = tomllib.loads(f"value = {toml_value}")["value"]
    preset = tmp_path / "p.toml"
    preset.write_text(f"[generate]\n{name} = {toml_value}\n")
    outcomes = []
    for source in ("flag", "preset", "python"):
        try:
            if source == "flag":
                result, received = given_settings(SETTINGS[name].flag, text)
                assert result.exit_code == 0, result.output
                settings = resolve_settings({}, received).settings
            elif source == "preset":
                settings = resolve_settings(load_preset(str(preset)).values).settings
            else:
                settings = resolve_settings({}, {name: given}).settings
            outcomes.append((TAKEN, settings.to_dict()[name]))
        except InputError as error:
            outcomes.append((REFUSED, str(error)))
    if verdict == TAKEN:
        assert outcomes == [(TAKEN, expected)] * 3
    else:
        assert all(outcome == REFUSED and expected in message for outcome, message in outcomes), outcomes


def test_a_flags_whole_number_longer_than_python_reads_reaches_the_settings_and_is_refused_there_by_its_length():
    """--seed 1 and 5000 zeros was a ValueError traceback: int() reads at most 4300 digits. The flag passes it
    on as it was typed; resolving the settings refuses it, naming its length."""
    from vexpress_cli.settings.schema import resolve_settings

    result, received = given_settings("--seed", "1" + "0" * 5000)
    assert result.exit_code == 0, result.output
    with pytest.raises(InputError) as caught:
        resolve_settings({}, received)
    assert caught.value.what == "seed is a 5001-digit number; it must be from 0 to 9223372036854775807."


def test_a_switch_turned_on_and_off_at_once_is_refused():
    result, received = given_settings("--paste-back", "--no-paste-back")
    assert isinstance(result.exception, InputError) and received == {}
    assert str(result.exception) == ("Both --paste-back and --no-paste-back were given, with different values. They "
                                     "turn one switch on and off. Pass only one of them.")


@pytest.mark.parametrize(("args", "named"), [
    (["--no-save-gpu-memory", "--save_gpu_memory"], "--no-save-gpu-memory and --save_gpu_memory"),
    (["--save_gpu_memory", "--no-save-gpu-memory"], "--save_gpu_memory and --no-save-gpu-memory"),
    (["--no-paste-back", "--paste-back"], "--no-paste-back and --paste-back"),
    (["--strategy", "fix_face", "-s", "offset_retarget"], "--strategy and -s"),
    (["--num_inference_steps=3", "--num-inference-steps", "4"], "--num_inference_steps and --num-inference-steps"),
])
def test_the_refusal_names_the_two_spellings_in_the_order_they_were_typed(args, named):
    with typed_args(args):
        result, _ = given_settings(*args)
    assert str(result.exception).startswith(f"Both {named} were given")


def command_paths(command=None, path=()):
    """Every command of the vexpress app, as the words that name it (the app itself is ``()``)."""
    command = command or get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


COMMANDS = dict(command_paths())


@pytest.mark.parametrize("path", [" ".join(path) for path in COMMANDS])
def test_every_help_at_80_columns_cuts_no_flag_or_word(path):
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "…" in line] == []


@pytest.mark.parametrize("path", [" ".join(path) for path in COMMANDS])
def test_no_help_shows_a_value_type_after_a_switch(path):
    """Typer 0.29 wrote <bool> after --json, --help, ... as if a switch took a value; other types stay."""
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


@pytest.mark.parametrize("path", [" ".join(path) for path in COMMANDS])
def test_every_help_text_line_fits_80_columns_unless_rich_rewraps_it(path):
    """Rich keeps a help text's line breaks: a line past 78 characters (80 less the padding) wraps to the next
    line's start, which only reads well for the last line of an unindented paragraph (prose rich rewraps)."""
    command = COMMANDS[tuple(path.split())]
    too_long = []
    for text in (command.help or "", command.epilog or ""):
        lines = Text.from_markup(text).plain.splitlines() + [""]
        too_long += [line for line, after in zip(lines, lines[1:])
                     if len(line) > 78 and (line.startswith(" ") or after.strip())]
    assert too_long == []


def run_with_aliases(*args: str):
    """The value a command with ``setting_option("face_backend", "--backend")`` receives, and the run's result."""
    received = {}
    probe = typer.Typer()

    @probe.command()
    def command(backend: str = setting_option("face_backend", "--backend", default="auto"), other: int = 0):
        received.update(backend=backend, other=other)

    probe.registered_commands[0].callback = with_setting_aliases(command)
    return CliRunner().invoke(probe, list(args)), received


@pytest.mark.parametrize(("args", "expected"), [
    ([], "auto"),  # the default when no spelling is given
    (["--face-backend", "dlib"], "dlib"),
    (["--backend", "dlib"], "dlib"),
    (["--backend", "dlib", "--face-backend", "dlib"], "dlib"),
])
def test_a_commands_setting_option_takes_its_hidden_spelling(args, expected):
    result, received = run_with_aliases(*args)
    assert result.exit_code == 0, result.output
    assert received == {"backend": expected, "other": 0}


def test_a_commands_setting_option_refuses_two_different_spellings():
    result, received = run_with_aliases("--face-backend", "dlib", "--backend", "insightface")
    assert received == {}
    assert str(result.exception).startswith("Both --face-backend and --backend were given, with different values.")


@pytest.mark.parametrize(("path", "alias"), [("extract", "--backend"), ("retarget", "--strategy"),
                                             ("retarget", "--backend"), ("inspect", "--backend")])
def test_a_commands_alias_is_hidden_and_named_in_the_help(path, alias):
    result = CliRunner().invoke(app, [path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    rows = [line.strip("│ ").split() for line in result.output.splitlines() if line.startswith("│")]
    flag_column = {flag for row in rows if row for flag in row[0].split(",")}
    help_words = {word for row in rows for word in row}
    assert f"{alias}." in help_words and alias not in flag_column


STYLE_TAGS = {"bold", "cyan", "/", "/bold", "/cyan"}


@pytest.mark.parametrize("path", [" ".join(path) for path in COMMANDS])
def test_every_bracket_in_a_help_text_is_a_style_or_escaped(path):
    """Rich reads "[ui]" as a style and drops it: a literal bracket, as in pip's "vexpress-cli[ui]", needs "\\["."""
    command = COMMANDS[tuple(path.split())]
    options = [getattr(param, "help", None) or "" for param in command.params]
    texts = [command.help or "", command.epilog or "", *options]
    tags = {tag for text in texts for tag in re.findall(r"(?<!\\)\[([^\[\]]*)\]", text)}
    assert tags <= STYLE_TAGS


def completions(line: str) -> list[str]:
    """What bash completion offers after ``line`` (typer's completion protocol, as the installed script runs it)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    environment = {"_VEXPRESS_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(app, [], prog_name="vexpress", env=environment)
    return result.output.split()


@pytest.mark.parametrize(("line", "offered"), [
    ("vexpress generate --scheduler ", ["ddim", "dpm++", "euler", "unipc"]),
    ("vexpress generate --scheduler d", ["ddim", "dpm++"]),
    ("vexpress retarget --kps-fit ", ["pingpong", "loop", "stretch"]),
    ("vexpress generate --device c", ["cuda", "cpu"]),
    ("vexpress batch --preset lip", ["lip-sync"]),
    ("vexpress generate -s no", ["no_retarget"]),
])
def test_shell_completion_offers_a_settings_choices_the_presets_and_the_installed_strategies(line, offered,
                                                                                               no_user_config):
    """Completion offered no value at all: nothing defined one."""
    assert completions(line) == offered


@pytest.mark.parametrize(("args", "expected"), [
    (["presets", "show"], "Error: No preset given. vexpress presets show shows one preset: a name (built-in or yours) "
                          "or the path of a .toml preset file. Run `vexpress presets show NAME`; `vexpress presets "
                          "list` lists the names."),
    (["strategies", "lst"], "Error: vexpress strategies has no subcommand 'lst'."),
    (["plugins"], "Error: There is no `vexpress plugins` command. `vexpress strategies` lists the installed retarget "
                  "strategies and the plugin each comes from"),
    (["plugins", "list"], "Run `vexpress strategies` (`vexpress -h` lists the commands)."),
])
def test_usage_errors_of_the_less_used_commands_are_one_paragraph_not_clicks_box(args, expected):
    """Audit item 13: these were click's boxed "Missing argument" / "No such command", with no hint."""
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert "╭" not in result.output and "Traceback" not in result.output


def test_strategies_list_lists_the_strategies_as_presets_list_and_models_list_do():
    result = CliRunner().invoke(app, ["strategies", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert "fix_face" in result.stdout


def test_retarget_is_in_the_keypoints_panel_of_the_help_with_extract():
    """Audit item 16: `vexpress -h` listed retarget under Commands, extract and strategies under Keypoints."""
    result = CliRunner().invoke(app, ["-h"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    keypoints = result.output[result.output.index("Keypoints"):]
    keypoints = keypoints[:keypoints.index("╰")]
    commands = [line.split()[1] for line in keypoints.splitlines() if line.startswith("│ ") and line[2] != " "]
    assert sorted(commands) == ["extract", "retarget", "strategies"], keypoints


@pytest.mark.parametrize("command", ["retarget", "inspect"])
def test_width_height_and_fps_of_retarget_and_inspect_state_the_schemas_limits(command):
    """Their help texts had the limits typed in by hand; a changed limit would have left them stale."""
    from vexpress_cli.settings.schema import SETTINGS

    shown = " ".join(CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output.split())
    for name in ("width", "height", "fps"):
        assert f"Allowed {SETTINGS[name].allowed}." in shown, name
