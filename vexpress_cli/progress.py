"""The one progress protocol of every job and of the engine: ``progress(stage, done, total)``.

Jobs never print; a front end passes a callback and renders it (the CLI as rich bars, a web app
as a progress bar). ``total`` is ``None`` while unknown (e.g. frames of a video being read).
"""

from __future__ import annotations

from typing import Protocol

# The stages jobs and the engine report, as every front end names them.
STAGE_LABELS = {
    "inputs": "Reading inputs",
    "model": "Loading model",
    "reference": "Encoding the portrait",
    "audio": "Encoding the audio",
    "compile": "Compiling the denoising UNet (cached for the next run)",
    "denoise": "Denoising (steps x windows)",
    "decode": "Decoding and writing frames",
    "tracking": "Tracking the face for the crop",
    "faces": "Finding faces",
    "preview": "Writing preview",
    "listing": "Listing the model repository",
    "download": "Downloading",
    "place": "Placing files in the model folder",
}
# Stages whose speed is worth showing, with their unit ("bytes" are shown as kB, MB, GB).
STAGE_UNITS = {"tracking": "frames", "faces": "frames", "decode": "frames", "preview": "frames", "download": "bytes", "place": "bytes"}


class ProgressCallback(Protocol):
    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The callback used when the caller passes none."""
