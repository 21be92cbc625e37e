"""generate's options made from the settings schema: every flag readable in an 80-column help, and a
setting's other spellings (an alias, --no-X for a switch, the original's flag) reaching the same setting."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.cli.options import with_generation_settings
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


def test_a_switch_turned_on_and_off_at_once_is_refused():
    result, received = given_settings("--paste-back", "--no-paste-back")
    assert isinstance(result.exception, InputError) and received == {}
    assert str(result.exception).startswith("Both --paste-back and --no-paste-back were given, with different values.")


def test_the_refusal_names_the_two_spellings_that_were_typed():
    result, _ = given_settings("--no-save-gpu-memory", "--save_gpu_memory")
    assert str(result.exception).startswith("Both --no-save-gpu-memory and --save_gpu_memory were given")
