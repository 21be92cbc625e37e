"""``vexpress presets``: list the generation presets and show what one sets."""

from __future__ import annotations

import json
import re
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from vexpress_cli.cli.messages import print_warning, shown
from vexpress_cli.cli.options import json_option
from vexpress_cli.errors import InputError
from vexpress_cli.plugins import uninstalled_strategy
from vexpress_cli.settings.user_config import user_presets_dir
from vexpress_cli.settings.presets import PresetInfo, list_presets, load_preset
from vexpress_cli.settings.schema import DEFAULTS, SETTINGS, resolve_settings
from vexpress_cli.settings.user_config import configured_settings

EPILOG = (
    "Use one with [bold]vexpress generate --preset NAME[/] (or a path to a .toml file); flags you pass "
    "win over the preset. Your own presets go in the user presets folder "
    "([bold]$VEXPRESS_CONFIG_DIR/presets[/], else your config folder's presets: [bold]vexpress presets list[/] "
    "prints it); one named like a built-in "
    "replaces it. Format: vexpress docs presets."
)

presets_app = typer.Typer(
    help="List the generation presets (one per scenario of the V-Express guide) and show their settings.",
    epilog=EPILOG,
    invoke_without_command=True,
    no_args_is_help=False,
)

JSON_OPTION = json_option("the presets")


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _source_label(info: PresetInfo) -> str:
    if info.source == "builtin":
        return "built-in"
    return "user*" if info.shadows_builtin else "user"


def _info_as_dict(info: PresetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "source": info.source,
        "path": info.path,
        "shadows_builtin": info.shadows_builtin,
        "values": info.values,
        "error": info.error,
        "uninstalled_strategy": None if info.error else uninstalled_strategy(info.values),
    }


def _summary(description: str) -> str:
    """A description's first clause ("Stronger mouth motion"): the list stays one line a preset on a terminal."""
    return re.split(r"[.:;](?:\s|$)", description, maxsplit=1)[0]


def _print_list(as_json: bool) -> None:
    infos = list_presets()
    if as_json:
        typer.echo(json.dumps([_info_as_dict(info) for info in infos], indent=2))
        return
    table = Table(title="Generation presets", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("strategy", no_wrap=True)
    table.add_column("weights", justify="center", no_wrap=True)
    table.add_column("source", style="dim", no_wrap=True)
    for info in infos:
        if info.error:
            table.add_row(shown(info.name), f"[red]invalid:[/] {shown(info.error)}", "", "", _source_label(info))
            continue
        values = info.values
        default_strategy = f"[dim]{DEFAULTS['retarget_strategy']}[/]"
        strategy = shown(values["retarget_strategy"]) if "retarget_strategy" in values else default_strategy
        if uninstalled_strategy(values):
            strategy = f"[red]{strategy} (not installed)[/]"
        weights = "/".join(
            _format_value(values[name]) if name in values else f"[dim]{_format_value(DEFAULTS[name])}[/]"
            for name in ("reference_attention_weight", "audio_attention_weight")
        )
        table.add_row(shown(info.name), shown(_summary(info.description)), strategy, weights, _source_label(info))
    console = Console()
    console.print(table)
    notes = ["weights: reference/audio attention weight; dim values are defaults the preset leaves alone",
             "`vexpress presets show NAME`: the whole description and every setting"]
    if any(info.shadows_builtin for info in infos):
        notes.append("user*: a user preset that replaces the built-in one of the same name")
    notes.append(f"user presets folder: {shown(user_presets_dir())}")
    console.print("[dim]" + "\n".join(notes) + "[/]", highlight=False)


@presets_app.callback()
def presets_callback(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List the generation presets (same as `vexpress presets list`)."""
    if ctx.invoked_subcommand is None:
        _print_list(as_json)


def _json_wanted(ctx: typer.Context, as_json: bool) -> bool:
    """--json after the subcommand, or before it (`vexpress presets --json show X`): the group's flag counts too."""
    return as_json or bool(ctx.parent is not None and ctx.parent.params.get("as_json"))


@presets_app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List every preset: what it is for, its strategy and attention weights, and where it comes from."""
    _print_list(_json_wanted(ctx, as_json))


@presets_app.command("show")
def show_command(
    ctx: typer.Context,
    preset: str | None = typer.Argument(None, metavar="NAME|PATH", help="A preset name or a path to a .toml file.",
                                        show_default=False),
    as_json: bool = json_option("the preset"),
) -> None:
    """Show a preset's file and the full settings `generate` would use with it."""
    if preset is None:  # said as extract and generate say a missing input, not in click's box
        raise InputError("No preset given.", why="vexpress presets show shows one preset: a name (built-in or "
                         "yours) or the path of a .toml preset file.",
                         fix="Run `vexpress presets show NAME`; `vexpress presets list` lists the names.")
    loaded = load_preset(preset)
    resolved = resolve_settings(loaded.values, config_values=configured_settings())
    effective = resolved.settings.to_dict()
    missing = uninstalled_strategy(loaded.values)
    if _json_wanted(ctx, as_json):
        typer.echo(json.dumps({
            "name": loaded.name,
            "description": loaded.description,
            "source": loaded.source,
            "path": loaded.path,
            "shadows_builtin": loaded.shadows_builtin,
            "values": loaded.values,
            "effective": effective,
            "uninstalled_strategy": missing,
        }, indent=2))
        return
    console = Console()
    note = " [yellow](replaces the built-in preset of the same name)[/]" if loaded.shadows_builtin else ""
    console.print(f"[bold cyan]{shown(loaded.name)}[/] [dim]{shown(loaded.path)}[/]{note}", highlight=False)
    # Not wrapped: a long line wrapped mid-string would no longer be valid TOML when copied.
    console.print(Syntax(loaded.text.rstrip(), "toml", theme="ansi_dark", word_wrap=False), soft_wrap=True)
    table = Table(title="Settings with this preset (flags you pass still win)", title_justify="left",
                  caption="A setting is spelled as in a preset file; its flag is the same name with dashes "
                  "(num_inference_steps: --num-inference-steps).", caption_justify="left")
    table.add_column("setting", style="bold", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_column("from", style="dim")
    table.add_column("meaning")
    for name, value in effective.items():
        source = {"preset": "[cyan]preset[/]", "config": "user config"}.get(resolved.sources[name], "default")
        text = _format_value(value)
        if name == "retarget_strategy" and value == missing:  # as `presets list` marks it
            text = f"[red]{escape(text)} (not installed)[/]"
        table.add_row(name, text, source, SETTINGS[name].help)
    console.print(table)
    if missing:
        print_warning(Console(stderr=True), _uninstalled_warning(missing))


def _uninstalled_warning(strategy: str) -> str:
    return (f"This preset names the retarget strategy '{strategy}', which is not installed, so generate would refuse "
            "it. Install the plugin that provides it (`vexpress strategies` lists the installed ones), or change "
            "the preset's retarget_strategy.")


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets", rich_help_panel="Setup")
