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
    """What a job's ``progress`` argument is: any function called as ``progress(stage, done, total)``.

    ``stage`` names the work (``"inputs"``, ``"model"``, ``"denoise"``, ``"decode"``, ...; :data:`STAGE_LABELS`
    has every one), ``done`` counts its units finished so far out of ``total``, which is ``None`` while
    unknown. Its return value is ignored; an exception it raises stops the job.
    """

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """Report that ``done`` of ``total`` units (None: not known yet) of ``stage`` are finished."""


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The callback used when the caller passes none."""


def checked_callback(callback, name: str = "progress", arguments: str = "stage, done, total"):
    """``callback`` when it can be called, :func:`no_progress` for None, else an InputError naming the argument."""
    from vexpress_cli.errors import InputError, described, parameter

    if callback is None:
        return no_progress
    if not callable(callback):
        raise InputError(f"{parameter(name)} is {described(callback)}, which cannot be called.",
                         why=f"It is called as {name}({arguments}) while the job runs.",
                         fix=f"Pass a function, or leave {parameter(name)} out.")
    return callback
