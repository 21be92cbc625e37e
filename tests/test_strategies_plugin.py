"""The example plugin distribution plugins/vexpress-smooth, installed for real and found through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vexpress_cli.kps import load_kps

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SOURCE = REPO / "plugins" / "vexpress-smooth"
# Runs the real `vexpress` entry function in a fresh interpreter, so entry points are rediscovered.
VEXPRESS = [sys.executable, "-c", "import sys; sys.argv[0] = 'vexpress'; from vexpress_cli.cli.app import main; main()"]


@pytest.fixture(scope="session")
def smooth_site(tmp_path_factory) -> Path:
    """vexpress-smooth pip-installed into a private folder (not into the venv)."""
    pytest.importorskip("setuptools", reason="building the example plugin needs setuptools")
    work = tmp_path_factory.mktemp("smooth")
    source = work / "source"
    # Build from a copy so the repo does not collect build/ and *.egg-info folders.
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert (site / "vexpress_smooth-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


def run_vexpress(*arguments, site: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run([*VEXPRESS, *arguments], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_installed_plugin_is_listed(smooth_site):
    result = run_vexpress("strategies", "--json", site=smooth_site)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["smooth"]["distribution"] == "vexpress-smooth 0.1.0"
    assert rows["smooth"]["plugin"] == "smooth"
    assert rows["smooth"]["requires_driving_kps"] is True
    assert {"fix_face", "no_retarget", "offset_retarget", "naive_retarget"} <= rows.keys()
    table = run_vexpress("strategies", site=smooth_site)
    assert "smooth" in table.stdout and "vexpress-smooth 0.1.0" in table.stdout


def test_without_the_plugin_it_is_not_listed():
    result = run_vexpress("strategies", "--json")
    assert result.returncode == 0, result.stderr
    assert "smooth" not in {row["name"] for row in json.loads(result.stdout)}
    unknown = run_vexpress(
        "retarget", "--reference-kps", "1,2;3,4;5,6", "--kps", "x.pth", "--strategy", "smooth", "--output", "o.pth"
    )
    assert unknown.returncode == 2
    assert "Unknown retarget strategy 'smooth'" in unknown.stderr


def test_installed_plugin_retargets(smooth_site, tmp_path):
    rng = np.random.default_rng(5)
    steady = np.linspace(0, 40, 30)[:, None, None] + np.array([[200, 200], [300, 200], [250, 260]], float)
    jittery = (steady + rng.normal(scale=3.0, size=steady.shape)).astype(np.float32)
    import torch

    torch.save(torch.from_numpy(jittery), tmp_path / "jittery.pth")
    result = run_vexpress(
        "retarget", "--reference-kps", "200,200;300,200;250,260", "--kps", str(tmp_path / "jittery.pth"),
        "--strategy", "smooth", "--output", str(tmp_path / "smooth.safetensors"), site=smooth_site,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    smoothed = load_kps(tmp_path / "smooth.safetensors").points
    assert smoothed.shape == jittery.shape
    np.testing.assert_allclose(smoothed[[0, -1]], jittery[[0, -1]])  # ends kept
    interior = slice(2, -2)
    error_before = np.abs(jittery[interior] - steady[interior]).mean()
    error_after = np.abs(smoothed[interior] - steady[interior]).mean()
    assert error_after < 0.6 * error_before
    np.testing.assert_allclose(smoothed[10], jittery[8:13].mean(axis=0), rtol=1e-5)


def test_a_broken_plugin_beside_it_does_not_hide_it(smooth_site, tmp_path):
    """pluggy's load_setuptools_entrypoints stops at the first failure; vexpress loads each entry point alone."""
    broken = tmp_path / "broken_site"
    dist_info = broken / "aaa_broken-1.0.dist-info"  # sorts first, so it is met before the others
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: aaa-broken\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[vexpress]\nbroken = aaa_missing_module\n")
    site = Path(os.pathsep.join([str(broken), str(smooth_site)]))
    result = run_vexpress("strategies", "--json", site=site)
    assert result.returncode == 0, result.stderr
    assert {"smooth", "fix_face", "no_retarget"} <= {row["name"] for row in json.loads(result.stdout)}
    assert "'broken' (aaa_missing_module, from aaa-broken) failed to load" in " ".join(result.stderr.split())
