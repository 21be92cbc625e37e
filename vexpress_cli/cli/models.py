"""``vexpress models``: download the released weights and show which model folder is used."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from vexpress_cli.engine import model_folder as layout
from vexpress_cli.settings.user_config import MODEL_DIR_ENV, config_file, configured_model_dir, resolve_model_dir
from vexpress_cli.engine.model_folder import REQUIRED_FILES
from vexpress_cli.jobs.download import download_models
from vexpress_cli.cli.progress import stage_progress
from vexpress_cli.errors import VExpressError

LAYOUT_HELP = "\n\n".join(
    ["The model folder holds (one of the listed names each):"]
    + [f"{required.label}: {' | '.join(required.choices)}" for required in REQUIRED_FILES]
)

models_app = typer.Typer(
    help="Download the V-Express weights and show which model folder vexpress uses.",
    no_args_is_help=True,
)


DOWNLOAD_HELP = (
    f"Fetch the weights from the Hugging Face Hub ({layout.HUB_REPO_ID}) into a model folder.\n\n"
    "Only the files vexpress reads are fetched, into the Hugging Face cache (so an interrupted "
    "download resumes), then hard-linked (or copied) into the model folder. Files already there are kept."
)


@models_app.command("download", help=DOWNLOAD_HELP, epilog=LAYOUT_HELP)
def download_command(
    to: Path | None = typer.Option(
        None, "--to", metavar="DIR",
        help=f"Model folder to fill. Default: ${MODEL_DIR_ENV}, else model_dir in the config file, "
        "else ./model_ckpts.",
    ),
    revision: str | None = typer.Option(
        None, "--revision", help="Branch, tag or commit of the model repository (default: main)."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Use only the local Hugging Face cache (like HF_HUB_OFFLINE=1)."
    ),
) -> None:
    console = Console(stderr=True)
    target, how = (to, "--to") if to is not None else configured_model_dir()
    console.print(f"Model folder: [bold]{target}[/] [dim]({how})[/]", highlight=False)
    with stage_progress(console) as progress:
        report = download_models(target, revision=revision, offline=offline, progress=progress)

    if not report.planned:
        console.print(f"[green]Complete already:[/] all {report.already_present} required files are in "
                      f"{report.target}; nothing to download.", highlight=False)
    else:
        table = Table(title="Model folder ready", title_justify="left", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("folder", str(report.target))
        table.add_row("files placed", f"{len(report.planned)} ({decimal(report.bytes_placed)}): "
                      f"{report.linked} hard-linked from the Hugging Face cache, {report.copied} copied")
        table.add_row("already present", str(report.already_present))
        table.add_row("revision", report.revision + (" (from the local cache)" if report.offline else ""))
        console.print(table)
        if report.copied:
            console.print("[dim]Copied files also stay in the Hugging Face cache; `hf cache delete` frees "
                          "that space.[/]")
    _explain_discovery(console, report.target)


def _explain_discovery(console: Console, target: Path) -> None:
    try:
        found = resolve_model_dir(None)
    except VExpressError:
        found = None
    if found is not None and found.path == target.resolve():
        console.print(f"vexpress finds this folder by itself ({found.how}).", highlight=False)
        return
    console.print(
        f"To use it, pass [bold]--model-dir {target}[/], set [bold]{MODEL_DIR_ENV}={target}[/], or add "
        f'[bold]model_dir = "{target}"[/] to {config_file()}.',
        highlight=False,
    )


@models_app.command("path")
def path_command(
    model_dir: Path | None = typer.Option(None, "--model-dir", metavar="DIR", help="Check this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the model folder vexpress would use and how it was found.

    Order: --model-dir, $VEXPRESS_MODEL_DIR, model_dir in the config file, ./model_ckpts.
    """
    found = resolve_model_dir(model_dir)
    if as_json:
        typer.echo(json.dumps({"path": str(found.path), "how": found.how}))
        return
    typer.echo(str(found.path))
    Console(stderr=True).print(f"[dim]found via {found.how}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models", rich_help_panel="Setup")
