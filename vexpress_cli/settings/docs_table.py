"""The settings table of docs/presets.md, written from the schema.

``python -m vexpress_cli.settings.docs_table docs/presets.md`` rewrites the table between its
markers; a test checks that the file holds exactly what the schema says.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vexpress_cli.settings.schema import SETTINGS, Setting

START = "<!-- settings-table:start (written by python -m vexpress_cli.settings.docs_table docs/presets.md) -->"
END = "<!-- settings-table:end -->"
TYPE_WORDS = {bool: "true/false", int: "integer", float: "number", str: "string"}


def _allowed(setting: Setting) -> str:
    text = setting.allowed
    if setting.advised:
        text += f"; a preset: **{setting.advised[0]} to {setting.advised[1]}** (advised range)"
    return text


def _default(setting: Setting) -> str:
    return str(setting.default).lower() if setting.kind is bool else f"`{setting.default}`"


def settings_table() -> str:
    """A Markdown table: key, flag, type, default, allowed values, meaning."""
    rows = ["| key | flag | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for setting in SETTINGS.values():
        shorts = (setting.short,) if setting.short else ()
        flags = ", ".join(f"`{flag}`" for flag in (setting.flag, *setting.off_flags, *shorts, *setting.aliases,
                                                   *setting.original_flags))
        rows.append(f"| `{setting.name}` | {flags} | {TYPE_WORDS[setting.kind]} | {_default(setting)} | "
                    f"{_allowed(setting)} | {setting.help} |")
    return "\n".join(rows)


def with_table(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{settings_table()}\n{END}{tail}"


def main(argv: list[str]) -> None:
    path = Path(argv[0])
    path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
