"""``vexpress models``: fetch the weights into the Hugging Face cache, show where they resolve and what is cached."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from vexpress_cli.cli.messages import print_note, print_warning, shown
from vexpress_cli.cli.options import flag_of, json_option
from vexpress_cli.cli.progress import stage_progress
from vexpress_cli.engine.model_folder import REQUIRED_FILES
from vexpress_cli.engine.model_source import DEFAULT_HUB_ID
from vexpress_cli.errors import ModelFolderError, VExpressError, spell_parameters
from vexpress_cli.jobs.download import download_models
from vexpress_cli.jobs.model_cache import cached_models, download_command_for, download_to_cache, hub_source
from vexpress_cli.settings.model_lookup import DEFAULT_MODEL_DIR, resolve_model_dir

LAYOUT_HELP = "\n\n".join(
    ["A model folder (--model-dir, or --to here) holds (one of the listed names each):"]
    + [f"{required.label}: {' | '.join(required.choices)}" for required in REQUIRED_FILES]
)

models_app = typer.Typer(
    help="Fetch the V-Express weights into the Hugging Face cache; show where vexpress finds them.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@models_app.callback()
def models_callback(ctx: typer.Context) -> None:
    """List the V-Express weights in the Hugging Face cache (same as `vexpress models list`), as `vexpress presets`
    lists the presets."""
    if ctx.invoked_subcommand is None:
        list_command(as_json=False)
        Console(stderr=True).print("[dim]`vexpress models path`: the weights vexpress would use; "
                                   "`vexpress models download`: fetch them; `vexpress models --help`: more.[/]",
                                   highlight=False)


DOWNLOAD_HELP = (
    f"Fetch the weights from the Hugging Face Hub ({DEFAULT_HUB_ID}) into the Hugging Face cache.\n\n"
    "Only the files vexpress reads are fetched (not the repository's full Stable Diffusion weights); an "
    "interrupted download resumes; a damaged cached file (cut short, or not the size the Hub lists) is fetched "
    "again; nothing is copied: vexpress reads them in the cache, from any folder. "
    "The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. "
    "--to DIR also places them into a model folder (hard links, or copies across file systems)."
)


@models_app.command("download", help=DOWNLOAD_HELP, epilog=LAYOUT_HELP)
def download_command(
    model: str | None = typer.Option(None, "--model", metavar="HUB_ID", show_default=False,
                                     help=f"Hub repository, @revision allowed (default: {DEFAULT_HUB_ID})."),
    revision: str | None = typer.Option(
        None, "--revision", help="Branch, tag or commit of the model repository (default: main)."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Use only the local Hugging Face cache (like HF_HUB_OFFLINE=1)."
    ),
    to: Path | None = typer.Option(
        None, "--to", metavar="DIR", help="Also place the files into this model folder (for a machine without "
        "the cache). Default: nothing is placed.",
    ),
) -> None:
    console = Console(stderr=True)
    if to is not None:
        _download_into_folder(console, to, hub_source(model, revision), offline)
        return
    with stage_progress(console) as progress:
        report = download_to_cache(model, revision=revision, offline=offline, progress=progress)
    table = Table(title="Weights in the Hugging Face cache", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", shown(report.hub))
    table.add_row("revision", report.commit + (" (from the local cache)" if report.offline else ""))
    table.add_row("fetched", f"{len(report.fetched)} files ({decimal(report.bytes_fetched)})")
    if report.replaced:
        table.add_row("replaced", "damaged in the cache, fetched again: " + shown("; ".join(report.replaced)))
    table.add_row("files used", f"{len(report.chosen)} ({decimal(report.bytes_total)})"
                  if report.bytes_total else str(len(report.chosen)))
    table.add_row("cache", shown(report.cache))
    table.add_row("read from", shown(report.folder))
    console.print(table)
    _lacking_note(console, report.lacking)
    _explain_discovery(console, report.folder)


def _download_into_folder(console: Console, to: Path, hub, offline: bool) -> None:
    with stage_progress(console) as progress:
        report = download_models(to, repo_id=hub.repo_id, revision=hub.revision, offline=offline, progress=progress)
    console.print(f"Model folder: [bold]{shown(to)}[/] [dim](--to, from {shown(hub)})[/]", highlight=False)
    if not report.planned:
        console.print(f"[green]Complete already:[/] all {report.already_present} required files are in "
                      f"{shown(report.target)}; nothing to download.", highlight=False)
    else:
        console.print(f"Placed {len(report.planned)} files ({decimal(report.bytes_placed)}) into "
                      f"{shown(report.target)}: {report.linked} hard-linked from the Hugging Face cache, "
                      f"{report.copied} copied. Use it with [bold]--model-dir {shown(report.target)}[/].",
                      highlight=False)
    _lacking_note(console, report.lacking)


def _explain_discovery(console: Console, folder: Path) -> None:
    try:
        found = resolve_model_dir(None)
    except VExpressError:
        found = None
    if found is not None and found.path == folder.resolve():
        console.print(f"vexpress finds these weights from any folder ({shown(_how(found))}).", highlight=False)
    elif found is not None:
        print_note(console, f"vexpress uses {found.path} first ({_how(found)}); unset that to use the cached "
                   "weights.")


def _how(found) -> str:
    return spell_parameters(found.how, flag_of)


def _skipped(found) -> list[str]:
    return [spell_parameters(skipped, flag_of) for skipped in found.skipped]


@models_app.command("path")
def path_command(
    model: str | None = typer.Option(None, "--model", metavar="HUB_ID|DIR", help="Check this hub id or folder."),
    model_dir: Path | None = typer.Option(None, "--model-dir", metavar="DIR", help="Check this folder."),
    as_json: bool = json_option("what was found"),
) -> None:
    """Print the model folder vexpress would use, and why.

    Order: --model/--model-dir, $VEXPRESS_MODEL, $VEXPRESS_MODEL_DIR,
    model/model_dir in the config file, ./model_ckpts when present, then
    tk93/V-Express in the Hugging Face cache.
    """
    from vexpress_cli.engine.checkpoints import missing_model_files
    from vexpress_cli.engine.model_folder import ModelFolder

    found = resolve_model_dir(model_dir, model=model)
    try:
        lacks = missing_model_files(ModelFolder(found.path))
    except VExpressError:  # a checkpoint too damaged to tell: `vexpress inspect` on the folder says which
        lacks = None
    if as_json:
        typer.echo(json.dumps({"path": str(found.path), "how": _how(found), "source": found.source,
                               "skipped": _skipped(found), "lacks": lacks}))
    else:
        typer.echo(str(found.path))
        console = Console(stderr=True)
        console.print(f"[dim]found via {shown(_how(found))}: {shown(found.source)}[/]", highlight=False)
        if found.skipped:
            console.print(f"[dim]before it: {shown('; '.join(_skipped(found)))}[/]", highlight=False)
    if lacks or lacks is None:  # exit 2: a script checking the exit code must not take it for usable weights
        raise _incomplete_folder(found, lacks)


def _incomplete_folder(found, lacks: list[str] | None) -> ModelFolderError:
    from vexpress_cli.engine.model_source import resolve_model_folder

    if lacks is None:
        return ModelFolderError(f"A checkpoint in the model folder {found.path} cannot be read.",
                                fix=f"`vexpress inspect {found.path}` says which; delete it and run "
                                f"`{download_command_for(found.path)}`.")
    why = f"It lacks {', '.join(lacks)}, so generate would stop there."
    fix = f"`{download_command_for(found.path)}` fetches them."
    if found.how.startswith(f"./{DEFAULT_MODEL_DIR}"):
        try:
            cached = resolve_model_folder(DEFAULT_HUB_ID, local_files_only=True)
        except VExpressError:
            cached = None
        hidden = f"the complete weights in the Hugging Face cache ({cached})" if cached else "the Hugging Face cache"
        why += f" ./{DEFAULT_MODEL_DIR} is looked at before the cache, so it hides {hidden}."
        fix += f" Or remove (or rename) the folder ./{DEFAULT_MODEL_DIR}, or run vexpress from another folder."
    return ModelFolderError(f"The model folder {found.path} ({_how(found)}) is incomplete.", why, fix)


@models_app.command("list")
def list_command(as_json: bool = json_option("the cache's models")) -> None:
    """List the V-Express weights in the Hugging Face cache, with their sizes."""
    cache, models, problems = cached_models()
    for problem in problems:  # on stderr, so --json stays parseable
        print_warning(Console(stderr=True), f"a cached repository was skipped: {problem}. Delete that entry (or the "
                      "whole repository folder) and run `vexpress models download` to fetch it again.")
    if as_json:
        typer.echo(json.dumps({"cache": str(cache), "models": [
            {"repo_id": model.repo_id, "size_on_disk": model.size_on_disk, "revisions": [
                {"commit": revision.commit, "refs": list(revision.refs), "size_on_disk": revision.size_on_disk,
                 "folder": str(revision.folder), "missing": list(revision.missing),
                 "lacking_optional": list(revision.lacking)}
                for revision in model.revisions]}
            for model in models], "skipped": problems}))
        return
    console = Console()
    if not models:
        console.print(f"No V-Express weights in the Hugging Face cache at {shown(cache)}. "
                      "`vexpress models download` fetches them.", highlight=False)
        return
    table = Table(title=f"Hugging Face cache: {shown(cache)}", title_justify="left")
    for column in ("model", "revision", "refs", "size", "complete"):
        table.add_column(column)
    for model in models:
        for revision in model.revisions:
            table.add_row(shown(model.repo_id), revision.commit[:12], shown(", ".join(revision.refs)) or "-",
                          decimal(revision.size_on_disk),
                          _completeness(revision.missing, revision.lacking))
    console.print(table)


def _completeness(missing, lacking) -> str:
    if missing:
        return "no: lacks " + ", ".join(missing)
    return f"yes (no {', '.join(lacking)}: optional)" if lacking else "yes"


def _lacking_note(console: Console, lacking: list[str]) -> None:
    if lacking:
        print_note(console, f"no {', '.join(lacking)} here (optional): extract and auto-crop use dlib instead; "
                   "run `vexpress models download` with network access to fetch it.")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models", rich_help_panel="Setup")
