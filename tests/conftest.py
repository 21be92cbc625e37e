"""Shared test fixtures and paths."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"  # see fixtures/README.md
GOLDEN_DIR = FIXTURES_DIR / "golden" / "tiny"
TINY_MODEL_DIR = GOLDEN_DIR / "model"
SAMPLES_DIR = FIXTURES_DIR / "samples"

sys.path.insert(0, str(Path(__file__).parent))

