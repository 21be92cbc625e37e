"""``vexpress strategies``: list the installed retarget strategies and the plugins they come from."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from vexpress_cli.cli.messages import print_warning
from vexpress_cli.cli.options import json_option
from vexpress_cli.errors import InputError
from vexpress_cli.kps.retargeting import needs_driving_kps
from vexpress_cli.plugins import get_plugin_load_failures, get_retarget_strategy_infos, plugin_fix

EPILOG = (
    "Strategies come from plugins (Python packages with a [bold]vexpress[/] entry point); "
    "the four built-in ones follow the original V-Express retargeting (one deliberate difference: "
    "[bold]vexpress docs plugins[/]). "
    "Use one with [bold]vexpress retarget --strategy NAME[/] or [bold]vexpress generate --strategy NAME[/]. "
    "Writing a plugin: [bold]vexpress docs plugins[/]."
)


def strategies_command(
    action: str | None = typer.Argument(None, metavar="list", show_default=False,
                                        help="Optional: `list` lists them too, as `vexpress presets list` does."),
    as_json: bool = json_option("the strategies (a list)"),
) -> None:
    """List the installed retarget strategies: how each moves the face, and which plugin provides it."""
    if action not in (None, "list"):
        raise InputError(f"vexpress strategies has no subcommand '{action}'.",
                         why="It only lists the installed retarget strategies (`vexpress strategies list` is the "
                         "same); a strategy is chosen with --strategy of retarget or generate.",
                         fix="Run `vexpress strategies` (add --json for scripts).")
    infos = get_retarget_strategy_infos()
    _warn_about_broken_plugins(Console(stderr=True))
    if as_json:
        rows = [
            {
                "name": name,
                "description": info.strategy.description,
                "requires_driving_kps": needs_driving_kps(info.strategy),
                "plugin": info.plugin,
                "distribution": info.distribution,
            }
            for name, info in infos.items()
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Retarget strategies", title_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("needs --kps", justify="center")
    table.add_column("from", style="dim")
    for name, info in infos.items():
        needs_kps = "yes" if needs_driving_kps(info.strategy) else "no"
        table.add_row(name, info.strategy.description, needs_kps, info.source)
    Console().print(table)


def _warn_about_broken_plugins(console: Console) -> None:
    """One warning (on stderr, so --json stays parseable) per plugin that failed to load."""
    for failure in get_plugin_load_failures():
        print_warning(console, f"{failure.message} {plugin_fix([failure])}")


def register(app: typer.Typer) -> None:
    app.command("strategies", epilog=EPILOG, rich_help_panel="Keypoints")(strategies_command)
