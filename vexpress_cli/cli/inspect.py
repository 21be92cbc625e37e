"""``vexpress inspect PATH``: what a model folder (or an input file) holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vexpress_cli.errors import InputError

console = Console()

EPILOG = """Examples:

  vexpress inspect model_ckpts          # networks, files and key checks of a model folder

  vexpress inspect model_ckpts --json   # the same as JSON, for scripts
"""


def inspect_command(
    path: Path = typer.Argument(..., help="A model folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show what a V-Express model folder holds and whether its checkpoints fit, in seconds."""
    if not path.exists():
        raise InputError(f"{path} does not exist.", "", "Check the path.")
    if not path.is_dir():
        raise InputError(f"Cannot inspect {path}.", "Only model folders can be inspected so far.",
                         "Pass a model folder such as model_ckpts.")
    report_model_folder(path, as_json)


def report_model_folder(path: Path, as_json: bool) -> None:
    from vexpress_cli.model_report import inspect_model_folder

    report = inspect_model_folder(path)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    console.print(_networks_table(report))
    console.print(_components_table(report))
    for network in report.networks:
        if network.status == "mismatch":
            console.print(f"[red]{network.name}[/]: {len(network.missing)} missing, {len(network.unexpected)} "
                          f"unexpected, {len(network.mismatched)} wrong-shape tensors; first ones:")
            for key in (network.missing + network.unexpected)[:5]:
                console.print(f"  {key}")
            for key, want, got in network.mismatched[:5]:
                console.print(f"  {key}: expects {want}, has {got}")
    verdict = "[green]complete[/]" if report.complete else "[yellow]incomplete[/] (see `vexpress models download`)"
    console.print(f"Model folder {report.root}: {verdict}")


def _networks_table(report) -> Table:
    table = Table(title="V-Express networks")
    for column in ("network", "tensors", "parameters", "files", "status"):
        table.add_column(column)
    colors = {"ok": "green", "absent": "yellow", "mismatch": "red"}
    for network in report.networks:
        table.add_row(network.name, str(network.expected_tensors), f"{network.expected_elements / 1e6:.1f} M",
                      ", ".join(network.files) or "-", f"[{colors[network.status]}]{network.status}[/]")
    return table


def _components_table(report) -> Table:
    table = Table(title="Other components")
    table.add_column("component")
    table.add_column("path")
    table.add_column("present")
    for component in report.components:
        table.add_row(component.name, component.path, "[green]yes[/]" if component.present else "[yellow]no[/]")
    return table


def register(app: typer.Typer) -> None:
    app.command("inspect", epilog=EPILOG)(inspect_command)
