"""The install: one version string, one OpenCV, floors the lowest-versions CI stage reads."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest

from conftest import REPO_ROOT
from typer.testing import CliRunner

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_version_option_prints_the_installed_distributions_version():
    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == f"vexpress {metadata.version('vexpress-cli')}"


def test_the_version_string_is_written_only_in_pyproject():
    version = PYPROJECT["project"]["version"]
    literal = re.compile(rf"""["']{re.escape(version)}["']""")
    holders = [path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "vexpress_cli").rglob("*.py")
               if literal.search(path.read_text(encoding="utf-8"))]
    assert holders == []


def test_exactly_one_opencv_distribution_is_installed():
    opencv = {dist.metadata["Name"].lower() for dist in metadata.distributions()
              if (dist.metadata["Name"] or "").lower().startswith("opencv")}
    assert len(opencv) == 1, opencv


def test_we_declare_the_opencv_that_insightface_requires():
    declared = {requirement_name(item) for item in PYPROJECT["project"]["dependencies"]}
    insightface_needs = {requirement_name(item) for item in metadata.requires("insightface") or []
                         if "extra ==" not in item}
    declared_opencv = {name for name in declared if name.startswith("opencv")}
    assert declared_opencv == {name for name in insightface_needs if name.startswith("opencv")}


@pytest.mark.parametrize(("arguments", "extra"), [([], ()), (["--torch"], ("torch",))])
def test_lowest_pins_are_the_floors_declared_in_pyproject(arguments, extra):
    pins = subprocess.run([sys.executable, str(REPO_ROOT / ".ci" / "lowest_pins.py"), *arguments],
                          capture_output=True, text=True, check=True).stdout.split()
    floors = {requirement_name(item): item.split(">=")[1].split(",")[0].split(";")[0].strip().strip('"')
              for item in PYPROJECT["project"]["dependencies"] if ">=" in item}
    assert pins == [f"{name}=={floors[requirement_name(name)]}"
                    for name in ("diffusers", "transformers", "huggingface_hub", "insightface", "accelerate", *extra)]
