"""Print ``name==floor`` for the dependencies whose lowest declared version .ci/run tests.

The floors are read from pyproject.toml (the one place they are declared), so raising a floor there
moves the lowest-versions stage with it. torch is printed only with ``--torch`` (for .ci/torch_floor):
.ci/run keeps torch 2.13.0, the CPU build on this machine's disk, because a PyPI torch is a multi-GB
CUDA build (see docs/install.md).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

TESTED_AT_THEIR_FLOOR = ("diffusers", "transformers", "huggingface_hub", "insightface", "accelerate")
TORCH = "torch"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(pyproject: Path) -> dict[str, str]:
    found = {}
    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", requirement)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def main() -> int:
    declared = floors(Path(__file__).resolve().parent.parent / "pyproject.toml")
    names = (*TESTED_AT_THEIR_FLOOR, *((TORCH,) if sys.argv[1:] == ["--torch"] else ()))
    missing = [name for name in names if canonical(name) not in declared]
    if missing:
        print(f"pyproject.toml declares no '>=' floor for {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in names:
        print(f"{name}=={declared[canonical(name)]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
