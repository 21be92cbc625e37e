"""Every command prints a job's warnings and notes one way (cli/messages.py), and user text inside rich markup is
shown as written: a path like ``a[/x]b`` made retarget crash with a MarkupError after it had written its file."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.cli.messages import print_note, print_warning, shown
from vexpress_cli.errors import parameter

BRACKETS = "a[/x]b[bold]"
NAME_BRACKETS = "odd[red]name[bold]"  # a file name cannot hold the slash of a closing tag; these would colour it


def printed(write) -> str:
    buffer = io.StringIO()
    write(Console(file=buffer, width=300, color_system=None))
    return buffer.getvalue()


def test_a_warning_and_a_note_spell_settings_as_flags_and_show_brackets_and_controls_as_written():
    text = f"Lower {parameter('context_frames')} for {BRACKETS}\x1b[2J."
    assert printed(lambda console: print_warning(console, text)) == (
        "Warning: Lower --context-frames for a[/x]b[bold]\\x1b[2J.\n")
    assert printed(lambda console: print_note(console, text)) == (
        "Note: Lower --context-frames for a[/x]b[bold]\\x1b[2J.\n")
    assert printed(lambda console: print_warning(console, "it is late", about=f"line 3 ({BRACKETS}.mp4)")) == (
        "Warning line 3 (a[/x]b[bold].mp4): it is late\n")
    assert printed(lambda console: console.print(f"to [bold]{shown(BRACKETS)}[/]")) == "to a[/x]b[bold]\n"


def test_a_library_message_is_spelled_with_flags_not_its_python_names():
    """A job's warnings are Messages: a str reading max_size, keeping the reference for the CLI to spell."""
    from vexpress_cli.errors import Message

    message = Message(f"{parameter('max_size')} only scales a pasted-back video.")
    assert str(message) == "max_size only scales a pasted-back video."
    assert printed(lambda console: print_warning(console, message)) == (
        "Warning: --max-size only scales a pasted-back video.\n")
    assert shown(message) == "--max-size only scales a pasted-back video."


def test_retarget_to_a_path_with_brackets_names_it_as_written(tmp_path):
    output = tmp_path / f"{BRACKETS}.safetensors"
    result = CliRunner().invoke(app, ["retarget", "--reference-kps", "200,200;300,200;250,260", "--strategy",
                                      "fix_face", "--num-frames", "2", "--output", str(output)],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert output.is_file() and f"to {output}" in result.output


@pytest.mark.usefixtures("no_user_config")
def test_presets_list_and_show_a_user_preset_whose_name_and_text_hold_brackets():
    from vexpress_cli.settings.user_config import user_presets_dir

    user_presets_dir().mkdir(parents=True)
    (user_presets_dir() / f"{NAME_BRACKETS}.toml").write_text(
        f'description = "Says {BRACKETS}"\n[generate]\nretarget_strategy = "{BRACKETS}"\n')
    listed = CliRunner().invoke(app, ["presets", "list"], env={"COLUMNS": "400"})
    assert listed.exit_code == 0, listed.output
    assert NAME_BRACKETS in listed.output and f"Says {BRACKETS}" in listed.output
    assert f"{BRACKETS} (not installed)" in listed.output
    shown_preset = CliRunner().invoke(app, ["presets", "show", NAME_BRACKETS], env={"COLUMNS": "400"})
    assert shown_preset.exit_code == 0, shown_preset.output
    assert f"{NAME_BRACKETS}.toml" in shown_preset.output
