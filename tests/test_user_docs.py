"""`vexpress docs`: the documentation pages (docs/*.md) are installed with the package, so a wheel user reads
offline the pages that messages and --help texts point at."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from vexpress_cli.cli.app import app

DOCS = REPO_ROOT / "docs"


def test_docs_lists_every_page_of_the_docs_folder_with_its_first_heading():
    result = CliRunner().invoke(app, ["docs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    pages = sorted(DOCS.glob("*.md"))
    assert len(pages) > 10
    for page in pages:
        title = page.read_text(encoding="utf-8").splitlines()[0].removeprefix("# ")
        assert re.search(rf"│ {re.escape(page.stem)} +│ {re.escape(title)} +│", result.output), page.stem


@pytest.mark.parametrize("spelled", ["presets", "docs/presets.md", "presets.md", "PRESETS"])
def test_a_page_piped_is_printed_as_its_markdown_text(spelled):
    result = CliRunner().invoke(app, ["docs", spelled])
    assert result.exit_code == 0, result.output
    assert result.stdout == (DOCS / "presets.md").read_text(encoding="utf-8")


def test_an_unknown_page_is_one_paragraph_naming_the_closest_and_the_list():
    result = CliRunner().invoke(app, ["docs", "preset"], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert message.startswith("Error: There is no documentation page 'preset'. The pages are: architecture, batch,")
    assert "Did you mean 'presets'? Run `vexpress docs` to list them" in message and "Traceback" not in message


def test_every_page_a_message_or_help_text_points_at_exists():
    """Messages say `vexpress docs TOPIC`; a renamed page or a typo would send a user to an error."""
    named = set()
    for module in (REPO_ROOT / "vexpress_cli").rglob("*.py"):
        named |= set(re.findall(r"vexpress docs ([a-z][a-z-]*)", module.read_text(encoding="utf-8")))
    assert {"presets", "batch", "plugins", "inspect"} <= named
    assert named <= {page.stem for page in DOCS.glob("*.md")}, named


@pytest.mark.slow
def test_a_wheel_carries_the_pages_and_vexpress_docs_reads_them_from_its_install(tmp_path):
    """Built from a copy of the tree (a build inside the clone leaves build/ there), installed into a folder of its
    own, run from elsewhere: the page comes from the installed package."""
    import shutil

    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "MANIFEST.in"):
        shutil.copy2(REPO_ROOT / name, source / name if source.exists() else (source.mkdir() or source / name))
    for folder in ("vexpress_cli", "strategies", "presets", "docs"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vexpress_cli-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"vexpress_cli/docs/{page.name}" for page in DOCS.glob("*.md")} <= names
    assert not any(name.startswith(("vexpress_cli/docs/images/", "vexpress_cli/docs/ui/")) for name in names)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    shown = subprocess.run(
        [sys.executable, "-c", "import vexpress_cli, sys; from vexpress_cli.cli.app import main; "
         "print(vexpress_cli.__file__, file=sys.stderr); sys.argv = ['vexpress', 'docs', 'batch']; main()"],
        cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True, text=True, check=True)
    assert shown.stderr.startswith(str(tmp_path / "site" / "vexpress_cli"))
    assert shown.stdout == (DOCS / "batch.md").read_text(encoding="utf-8")
