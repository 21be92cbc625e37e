"""``vexpress doctor``: is this installation ready to generate, and if not, what to do."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vexpress_cli.cli.options import json_option, model_option
from vexpress_cli.errors import spell_parameters

console = Console()
status_console = Console(stderr=True)

EPILOG = """\
[bold]Examples[/]

  The environment, ffmpeg, face detection, model folder, plugins and presets:

    [cyan]vexpress doctor[/]

  Also every checkpoint tensor, and a 1 s generation with a tiny model:

    [cyan]vexpress doctor --deep --smoke[/]

  A JSON list of {name, status, detail, fix, data}:

    [cyan]vexpress doctor --json[/]

Exit code 2 when any check fails, 0 otherwise (warnings included).
"""

STATUS_STYLES = {"ok": "green", "warning": "yellow", "failure": "bold red"}


def doctor_command(
    as_json: bool = json_option("the checks (a list)"),
    deep: bool = typer.Option(False, "--deep", help="Compare every checkpoint tensor with the architecture."),
    smoke: bool = typer.Option(False, "--smoke",
                               help="Generate 1 s of video with a built-in tiny model to prove the whole stack."),
    model: str = model_option(),
    model_dir: Path = typer.Option(None, "--model-dir", metavar="DIR",
                                   help="Model folder (default: the lookup of `vexpress models path`, the Hugging Face "
                                   "cache last)."),
    device: str = typer.Option(None, "--device", show_default=False,
                               help="Device to check (and run --smoke on): auto, cuda, cuda:N, mps or cpu "
                               "(default: the user config's, as generate takes it, else auto)."),
) -> None:
    """Check that everything vexpress needs is installed and working, with a fix for each problem."""
    from vexpress_cli.cli.app import quiet_libraries
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.jobs.doctor import DoctorOptions, has_failures, run_checks

    quiet_libraries()
    options = DoctorOptions(model_dir=model_dir, model=model, device=device, deep=deep, smoke=smoke)
    with status_console.status("Checking", spinner="dots") as spinner:
        checks = run_checks(options, on_section=lambda title: spinner.update(f"Checking {title}"))
    checks = [dataclasses.replace(check, detail=spell_parameters(check.detail, flag_of),
                                  fix=spell_parameters(check.fix, flag_of), data=_spelled(check.data, flag_of))
              for check in checks]
    if as_json:
        print(json.dumps([check.to_dict() for check in checks], indent=2))
    else:
        console.print(_table(checks))
        console.print(_summary(checks))
    if has_failures(checks):
        raise typer.Exit(2)


def _spelled(data: dict, spell) -> dict:
    return {key: spell_parameters(value, spell) if isinstance(value, str) else value for key, value in data.items()}


def _table(checks) -> Table:
    table = Table(title="vexpress doctor", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in checks:
        # Text objects, not markup: paths and messages may hold square brackets.
        table.add_row(check.name, Text(check.status, style=STATUS_STYLES[check.status]), Text(check.detail),
                      Text(check.fix))
    return table


def _summary(checks) -> Text:
    from vexpress_cli.jobs.doctor import counted, status_counts  # not at start-up: it imports every check

    counts = status_counts(checks)
    summary = Text()
    for status, words in counted(counts).items():
        if summary:
            summary.append(", ")
        summary.append(words, style=STATUS_STYLES[status] if counts[status] else "")
    if counts["failure"]:
        summary.append(": fix the failures above before generating.")
    elif counts["warning"]:
        summary.append(": vexpress works; the warnings say what would make it better.")
    else:
        summary.append(": all good.")
    return summary


def register(app: typer.Typer) -> None:
    app.command("doctor", epilog=EPILOG, rich_help_panel="Setup")(doctor_command)
