"""``vexpress docs [TOPIC]``: the user documentation in the terminal (it is installed with the package)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from vexpress_cli.user_docs import doc_text, doc_topics

EPILOG = ("[bold]vexpress docs[/] lists the pages, [bold]vexpress docs presets[/] shows one. Piped or redirected, "
          "a page is printed as its Markdown text ([bold]vexpress docs batch > batch.md[/]).")


def docs_command(
    topic: str | None = typer.Argument(None, help="A page, e.g. presets (without it: the list of pages).",
                                       show_default=False),
) -> None:
    """Read the documentation pages (installed with vexpress): the list, or one page."""
    if topic is None:
        table = Table(title="Documentation pages (vexpress docs TOPIC)", title_justify="left")
        table.add_column("topic", style="bold cyan", no_wrap=True)
        table.add_column("title")
        for name, title in doc_topics().items():
            table.add_row(name, title)
        Console().print(table)
        return
    text = doc_text(topic)
    if sys.stdout.isatty():
        Console().print(Markdown(text))
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command("docs", epilog=EPILOG, rich_help_panel="Setup")(docs_command)
