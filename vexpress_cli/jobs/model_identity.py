"""What identifies the weights a job ran with, for its run record: each checkpoint file's name, size and a
fingerprint sampled from its bytes, so that a resumed batch redoes the jobs of other weights (a copy of the
test model swapped for the real one, another hub revision) even when the files keep their names and sizes."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from vexpress_cli.file_types import CHECKPOINT_SUFFIXES

# Hashing gigabytes whole would cost each worker seconds to minutes; 64 pieces of 16 KiB spread over a file
# differ for any other weights (trained, converted, scaled), though not for an edit of a few bytes.
FINGERPRINT_PIECES, FINGERPRINT_PIECE_BYTES = 64, 16 * 1024


def file_fingerprint(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for piece in range(FINGERPRINT_PIECES):
            handle.seek(max(size - FINGERPRINT_PIECE_BYTES, 0) * piece // (FINGERPRINT_PIECES - 1))
            digest.update(handle.read(FINGERPRINT_PIECE_BYTES))
    return digest.hexdigest()[:32]


def list_model_files(model_dir: Path) -> tuple[tuple[str, int, str], ...]:
    """The checkpoint files of a model folder: (name relative to the folder, size, fingerprint), sorted. Linked
    folders are followed (model_ckpts/v-express -> /data/...), each real folder once."""
    paths, seen = [], set()
    for folder, folders, files in os.walk(model_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            folders.clear()
            continue
        seen.add(real)
        paths += [Path(folder, name) for name in files if Path(name).suffix.lower() in CHECKPOINT_SUFFIXES]
    paths = sorted((path for path in paths if path.is_file()), key=lambda path: path.relative_to(model_dir).as_posix())
    return tuple((path.relative_to(model_dir).as_posix(), size, file_fingerprint(path, size))
                 for path in paths for size in (path.stat().st_size,))


# Listed once per process for the records of its jobs (a model folder does not change under a running batch).
model_files = functools.cache(list_model_files)


def model_of(generator: Any) -> dict[str, Any]:
    """A run record's ``model``: the folder and its files."""
    folder = Path(generator.model_dir).absolute()
    return {"folder": str(folder), "files": [{"name": name, "size": size, "fingerprint": fingerprint}
                                             for name, size, fingerprint in model_files(folder)]}


def same_model_files(recorded: dict[str, Any], now: tuple[tuple[str, int, str], ...]) -> bool:
    """Whether a record's ``model`` lists the files ``now`` (by name, size and fingerprint; a record written
    before fingerprints were kept is compared by name and size)."""
    files = [item for item in recorded.get("files", []) if isinstance(item, dict)]
    if not all("fingerprint" in item for item in files):
        return [(item.get("name"), item.get("size")) for item in files] == [(name, size) for name, size, _ in now]
    return [(item.get("name"), item.get("size"), item.get("fingerprint")) for item in files] == list(now)
