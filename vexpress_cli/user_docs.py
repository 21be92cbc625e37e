"""The user documentation by topic: the repository's docs/*.md, installed inside the package (``vexpress_cli.docs``)
so that a wheel install, offline, reads the pages that messages and ``--help`` texts point at."""

from __future__ import annotations

import importlib.resources

from vexpress_cli.errors import InputError, did_you_mean

DOCS_PACKAGE = "vexpress_cli.docs"


def doc_topics() -> dict[str, str]:
    """Each page's topic (its file name without .md) and title (its first heading), in name order."""
    pages = sorted((page for page in importlib.resources.files(DOCS_PACKAGE).iterdir() if page.name.endswith(".md")),
                   key=lambda page: page.name)
    return {page.name.removesuffix(".md"): _title(page.read_text(encoding="utf-8")) for page in pages}


def doc_text(topic: str) -> str:
    """The Markdown text of the page ``topic`` (``presets``; ``docs/presets.md`` and ``presets.md`` work too)."""
    name = topic.strip().removeprefix("docs/").removesuffix(".md").lower()
    topics = doc_topics()
    if name not in topics:
        raise InputError(f"There is no documentation page '{topic}'.",
                         why=f"The pages are: {', '.join(topics)}.",
                         fix=f"{did_you_mean(name, topics)}Run `vexpress docs` to list them with their titles.")
    return (importlib.resources.files(DOCS_PACKAGE) / f"{name}.md").read_text(encoding="utf-8")


def _title(text: str) -> str:
    first = next((line for line in text.splitlines() if line.startswith("# ")), "")
    return first.removeprefix("# ").strip()
