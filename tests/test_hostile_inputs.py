"""Inputs built to hang, exhaust memory or mislead (issue 8): each is refused at once, or read right.

Memory is measured in a fresh interpreter (``ru_maxrss`` only grows, and this test process has
already held much more), as the growth of the peak across the one call under test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from vexpress_cli.errors import InputError
from vexpress_cli.kps import load_kps
from vexpress_cli.media import load_audio, video_info
from vexpress_cli.media.images import open_rgb_image
from vexpress_cli.settings.presets import load_preset

HANG_SECONDS = 20  # far longer than any refusal takes


def returns_within(call, fifo: Path) -> BaseException | None:
    """Run ``call()``; fail if it is still blocked after HANG_SECONDS, else return what it raised."""
    outcome: dict[str, BaseException] = {}

    def target():
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        try:  # let the blocked reader go: a writer that opens and closes gives it end-of-file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(HANG_SECONDS)
        pytest.fail(f"reading the FIFO {fifo.name} blocked for {HANG_SECONDS} s")
    return outcome.get("error")


LOADERS = {
    "reference image": ("ref.png", lambda path: open_rgb_image(path, "reference image")),
    "audio": ("speech.mp3", load_audio),
    "kps file": ("kps.pth", load_kps),
    "driving video": ("driving.mp4", video_info),
    "preset file": ("mine.toml", load_preset),
}


@pytest.mark.parametrize("kind", LOADERS)
def test_a_fifo_is_refused_at_once(tmp_path, kind):
    """Issue 8 item 10: a FIFO given as any input is refused at once with a clear message, never read."""
    name, loader = LOADERS[kind]
    fifo = tmp_path / name
    os.mkfifo(fifo)
    error = returns_within(lambda: loader(fifo), fifo)
    assert isinstance(error, InputError), repr(error)
    message = str(error)
    assert "is not a regular file but a named pipe (FIFO)" in message and str(fifo) in message
    assert error.fix


def test_a_character_device_is_refused_too():
    """Issue 8 item 10: /dev/zero (endless) is not read either."""
    with pytest.raises(InputError, match="not a regular file but a character device"):
        load_kps(Path("/dev/zero"))


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    """Issue 8 item 12b: a small 13000x13000 PNG decoded to 1.65 GB; now its header size is refused."""
    path = tmp_path / "huge.png"
    PIL.Image.new("1", (13000, 13000)).save(path)  # 1 bit per pixel: a small file
    assert path.stat().st_size < 2_000_000
    with pytest.raises(InputError) as error:
        open_rgb_image(path, "reference image")
    message = str(error.value)
    assert "13000 x 13000 pixels (169 megapixels)" in message and "up to 64 megapixels" in message
    assert "Downscale" in error.value.fix


def test_the_huge_png_through_the_cli_is_an_error_paragraph(tmp_path):
    """Issue 8 item 12b: `vexpress inspect` on it exits 2 with the message, no traceback."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    path = tmp_path / "huge.png"
    PIL.Image.new("1", (9000, 9000)).save(path)
    result = CliRunner().invoke(app, ["inspect", str(path), "--backend", "dlib"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "9000 x 9000 pixels" in " ".join(result.output.split())


def test_a_16_bit_png_keeps_its_grey_levels(tmp_path):
    """Issue 8 item 14: a 16-bit grayscale PNG was read as white (clipped); it is scaled to 8 bits."""
    ramp = (np.arange(64 * 32).reshape(32, 64) * 32).astype(np.uint16)  # 0 .. 65504
    path = tmp_path / "deep.png"
    PIL.Image.fromarray(ramp).save(path)
    assert PIL.Image.open(path).mode.startswith("I;16")
    rgb = np.asarray(open_rgb_image(path))
    expected = np.round(ramp / 257).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 64, 3)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb.mean() < 140  # not white


def test_inspect_reads_a_16_bit_png_the_same_way(tmp_path):
    """Issue 8 item 14: `inspect` decodes through the same reader (its image is what generate sees)."""
    from vexpress_cli.jobs.inspect.image import _read_image

    path = tmp_path / "deep.png"
    PIL.Image.fromarray(np.full((16, 16), 32896, np.uint16)).save(path)  # 32896 / 257 = 128
    assert (_read_image(path)[4] == 128).all()
