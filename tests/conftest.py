"""Shared test fixtures and paths."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"  # see fixtures/README.md
GOLDEN_DIR = FIXTURES_DIR / "golden" / "tiny"
TINY_MODEL_DIR = GOLDEN_DIR / "model"
SAMPLES_DIR = FIXTURES_DIR / "samples"

sys.path.insert(0, str(Path(__file__).parent))


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def error_paragraph(args: list) -> str:
    """``vexpress ARGS`` refused: exit 2, nothing on stdout, no traceback, and its one error paragraph on one line."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    log = flat(result.stderr)
    assert log.count("Error: ") == 1, log
    return log[log.find("Error: "):]


def free_port() -> int:
    """A local TCP port that was free a moment ago: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def no_user_config(tmp_path, monkeypatch):
    """No user presets, config file, $VEXPRESS_MODEL(_DIR) or cached weights: only what the test passes counts."""
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("VEXPRESS_MODEL_DIR", raising=False)
    monkeypatch.delenv("VEXPRESS_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


@pytest.fixture
def fake_hf_cache(tmp_path, monkeypatch):
    """The tiny model in a fake Hugging Face cache ($HF_HOME/hub) in the hub repository's layout, offline.

    HF_HUB_OFFLINE=1 (also in huggingface_hub's constants, which it reads once at import) and no
    $HF_HUB_CACHE, so the cache is found through $HF_HOME as a user's would be. Returns a
    ``fake_hub.FakeHubCache``.
    """
    import huggingface_hub.constants as hub_constants

    from fake_hub import write_fake_hf_cache

    home = tmp_path / "hf-home"
    monkeypatch.delenv("VEXPRESS_MODEL_DIR", raising=False)
    monkeypatch.delenv("VEXPRESS_MODEL", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return write_fake_hf_cache(home / "hub")


@pytest.fixture(scope="module")
def like_the_real_command():
    """What ``vexpress`` does before running a command, and one torch thread.

    The tiny model's matrices are so small that a second thread only waits, and on a busy
    2-core machine those waits made each run ten times slower.
    """
    import torch

    from vexpress_cli.cli.app import quiet_libraries

    quiet_libraries()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """0.4 s of the AOC sample's speech: 12 frames at 30 fps."""
    from vexpress_cli.media.ffmpeg import ffmpeg_exe

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", "1.0", "-t", "0.4", "-i",
                    str(SAMPLES_DIR / "AOC" / "aud.mp3"), str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def windowed_golden_job():
    """The golden job cut to 2 steps over 4-frame windows overlapping by 1: over its 12 frames, 4 windows,
    the last folded back at the end (arguments of VExpressPipeline.denoise, without the generator)."""
    import json

    import PIL.Image
    from safetensors.torch import load_file

    golden = load_file(str(GOLDEN_DIR / "golden.safetensors"))
    params = json.loads((GOLDEN_DIR / "pipeline_params.json").read_text())
    params.update(num_inference_steps=2, context_frames=4, context_overlap=1)
    reference = PIL.Image.open(GOLDEN_DIR / "ref.png").convert("RGB")
    return dict(reference_image=reference, audio_waveform=golden["audio_waveform"],
                kps_images=golden["kps_sequence"].numpy(), **params)


@pytest.fixture(scope="module")
def tiny_pipe(like_the_real_command):
    """The tiny model's VExpressPipeline on the CPU, one per test module (tests may change its scheduler)."""
    from vexpress_cli import VExpressPipeline

    pipeline = VExpressPipeline.from_pretrained(TINY_MODEL_DIR)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def golden_inputs():
    """The golden fixture's portrait, waveform and kps track: the inputs of a call of the tiny pipeline."""
    import PIL.Image
    from safetensors.torch import load_file

    golden = load_file(str(GOLDEN_DIR / "golden.safetensors"))
    return dict(reference_image=PIL.Image.open(GOLDEN_DIR / "ref.png").convert("RGB"),
                audio_waveform=golden["audio_waveform"], kps_images=golden["kps_sequence"].numpy())


def wav_bytes(seconds_counted: float, seconds_held: float, after: bytes = b"", rate: int = 16000) -> bytes:
    """A 16-bit mono WAV whose data chunk says ``seconds_counted`` and holds ``seconds_held`` of a tone."""
    import struct

    import numpy as np

    held = (np.sin(np.arange(int(rate * seconds_held)) * 0.1) * 8000).astype("<i2").tobytes()
    counted = int(rate * seconds_counted) * 2
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + fmt + b"data" + struct.pack("<I", counted) + held + after
    return b"RIFF" + struct.pack("<I", len(body)) + body
