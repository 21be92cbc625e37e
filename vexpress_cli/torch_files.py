"""A ``torch.save`` file checked before ``torch.load`` reads it: its zip entries must be stored, not compressed.

``torch.save`` writes a zip whose entries are stored as they are (never compressed), so a real file's entries
together are no larger than the file. torch inflates a compressed ``data.pkl`` whole into memory before anything
else is read, so a 3 MB file whose pickle was deflated from 3 GB of padding takes 3 GB (a zip bomb); the
frame-count and shape checks that follow come too late. Kps files and model checkpoints both pass through
:func:`zip_bomb_reason`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


def zip_bomb_reason(path: Path) -> str | None:
    """Why the torch zip at ``path`` must not be loaded (an entry compressed, or larger than the file), in one
    clause; None for a stored zip, a legacy torch file or anything that is no zip (torch says what it is)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
        file_size = path.stat().st_size
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            return (f"its part {entry.filename} is compressed, which torch.save never does: unpacked, it would "
                    f"take {entry.file_size / 1e6:,.0f} MB of memory, whatever the file's size")
        if entry.file_size > file_size:
            return f"its part {entry.filename} declares {entry.file_size:,} bytes, more than the whole file holds"
    return None
