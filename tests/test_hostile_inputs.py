"""Inputs built to hang, exhaust memory or mislead (issue 8): each is refused at once, or read right.

Memory is measured in a fresh interpreter (``ru_maxrss`` only grows, and this test process has
already held much more), as the growth of the peak across the one call under test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

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
