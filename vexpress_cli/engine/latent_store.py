"""A whole video's latents, in memory while small and in a temporary file past a budget.

Denoising keeps two per-frame arrays for the whole video: the latents and the sum of the window
predictions. At 512x512 each costs 64 KB per frame, 14 GB for an hour of video together; past
``budget_bytes`` a store keeps its array in an unnamed temporary file instead and reads and
writes only the frames a window or a chunk needs, so memory stays flat in video length.

The layout is the pipeline's ``[1, channels, frames, h, w]`` (channel-major), in memory and on
disk alike, so seeded noise is written in the order one ``randn`` call draws it and every
number is the same whichever way the store keeps it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vexpress_cli.errors import VExpressError
from vexpress_cli.outputs.write_failures import is_disk_full

FLOAT_BYTES = 4
# Noise is drawn in pieces of this many values: a multiple of 16 keeps torch's CPU normal
# sampler on the same sequence as one call for the whole tensor.
NOISE_PIECE = 16 * 65536

# The on-disk stores open in this process: their files are sparse, so the space they will still
# take is not yet missing from the disk's free space and is counted here instead.
_OPEN_ON_DISK: "weakref.WeakSet[LatentStore]" = weakref.WeakSet()
_OPEN_ON_DISK_LOCK = threading.Lock()  # jobs of several Generators may run in threads


class LatentStore:
    """Float32 latents ``[1, channels, frames, height, width]`` read and written by frames."""

    def __init__(self, channels: int, frames: int, height: int, width: int, budget_bytes: int):
        self.channels, self.frames, self.height, self.width = channels, frames, height, width
        self.frame_values = height * width
        size = self.nbytes
        self._tensor: torch.Tensor | None = None
        self._file = None
        if size <= budget_bytes:
            self._tensor = torch.zeros(1, channels, frames, height, width)
        else:
            with _OPEN_ON_DISK_LOCK:
                promised = sum(store._unwritten_bytes() for store in _OPEN_ON_DISK)
                if shutil.disk_usage(tempfile.gettempdir()).free < size + promised:
                    raise out_of_temp_space(size, promised)
                self._file = tempfile.TemporaryFile(prefix="vexpress-latents-")
                self._file.truncate(size)  # sparse: reads as zeros, takes space as it is written
                _OPEN_ON_DISK.add(self)

    @classmethod
    def holding(cls, latents: torch.Tensor) -> "LatentStore":
        """A store around an existing ``[1, C, F, h, w]`` tensor, kept in memory."""
        store = cls.__new__(cls)
        _, store.channels, store.frames, store.height, store.width = latents.shape
        store.frame_values = store.height * store.width
        store._tensor, store._file = latents.float(), None
        return store

    @property
    def nbytes(self) -> int:
        """The size of the whole array, in memory or on disk."""
        return self.channels * self.frames * self.frame_values * FLOAT_BYTES

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            with _OPEN_ON_DISK_LOCK:
                self._file.close()
                self._file = None
                _OPEN_ON_DISK.discard(self)
        self._tensor = None

    def __enter__(self) -> "LatentStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- whole tensor ---------------------------------------------------------------------------

    def fill_random(self, generator: torch.Generator | None, scale: float) -> None:
        """Seeded standard-normal values times ``scale``, as ``randn([1, C, F, h, w]) * scale`` would give."""
        total = self.channels * self.frames * self.frame_values
        if self._tensor is not None:
            self._tensor = torch.randn(self._tensor.shape, generator=generator, dtype=torch.float32) * scale
            return
        for start in range(0, total, NOISE_PIECE):
            piece = torch.randn(min(NOISE_PIECE, total - start), generator=generator, dtype=torch.float32) * scale
            self._write_flat(start, piece)

    def zero(self) -> None:
        if self._tensor is not None:
            self._tensor.zero_()
            return
        self._file.truncate(0)
        self._file.truncate(self.nbytes)

    def chunks(self, frames_per_chunk: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` frame ranges covering the video: the whole video at once while in memory."""
        step = self.frames if self._tensor is not None else frames_per_chunk
        for start in range(0, self.frames, step):
            yield start, min(start + step, self.frames)

    # -- frames ---------------------------------------------------------------------------------

    def read_range(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``start:stop`` as ``[1, C, n, h, w]`` (a view while in memory)."""
        if self._tensor is not None:
            return self._tensor[:, :, start:stop]
        planes = [self._read_flat(self._offset(channel, start), (stop - start) * self.frame_values)
                  for channel in range(self.channels)]
        return torch.stack(planes).reshape(1, self.channels, stop - start, self.height, self.width)

    def write_range(self, start: int, stop: int, values: torch.Tensor) -> None:
        if self._tensor is not None:
            if start == 0 and stop == self.frames:
                self._tensor = values.float().contiguous()
            else:
                self._tensor[:, :, start:stop] = values
            return
        for channel in range(self.channels):
            self._write_flat(self._offset(channel, start), values[0, channel].reshape(-1))

    def read(self, frames: Sequence[int]) -> torch.Tensor:
        """The listed frames (any order, repeats allowed) as ``[1, C, n, h, w]``."""
        if self._tensor is not None:
            return self._tensor[:, :, list(frames)]
        runs = [self.read_range(start, stop) for start, stop in _runs(frames)]
        return torch.cat(runs, dim=2)

    def add(self, frames: Sequence[int], values: torch.Tensor) -> None:
        """Add ``values`` ``[1, C, n, h, w]`` to the listed (distinct) frames."""
        if self._tensor is not None:
            self._tensor[:, :, list(frames)] += values
            return
        position = 0
        for start, stop in _runs(frames):
            count = stop - start
            self.write_range(start, stop, self.read_range(start, stop) + values[:, :, position:position + count])
            position += count

    # -- file access ----------------------------------------------------------------------------

    def _unwritten_bytes(self) -> int:
        """What this store's sparse file will still take from the disk when all of it is written."""
        if self._file is None:
            return 0
        return max(0, self.nbytes - os.fstat(self._file.fileno()).st_blocks * 512)

    def _offset(self, channel: int, frame: int) -> int:
        return (channel * self.frames + frame) * self.frame_values

    def _read_flat(self, offset: int, count: int) -> torch.Tensor:
        data = os.pread(self._file.fileno(), count * FLOAT_BYTES, offset * FLOAT_BYTES)
        return torch.from_numpy(np.frombuffer(data, dtype=np.float32).copy())

    def _write_flat(self, offset: int, values: torch.Tensor) -> None:
        data = memoryview(values.detach().to(torch.float32).contiguous().numpy().tobytes())
        position = offset * FLOAT_BYTES
        try:
            while data:  # a disk filling up takes what fits and says so only at the next write
                written = os.pwrite(self._file.fileno(), data, position)
                if written == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data, position = data[written:], position + written
        except OSError as error:
            if not is_disk_full(error):
                raise
            raise out_of_temp_space(self.nbytes) from None


def out_of_temp_space(size: int, promised: int = 0) -> VExpressError:
    """The error for a temporary folder without room for a store of ``size`` bytes, beside the ``promised`` bytes
    the stores already open will still write."""
    folder = tempfile.gettempdir()
    open_ones = (f", of which the latents already open in this process (this job's other arrays, or another job's) "
                 f"will still take {promised / 1e6:,.0f} MB" if promised else "")
    return VExpressError(
        f"The temporary folder {folder} has no room for this video's latents ({size / 1e6:,.0f} MB for each of "
        f"the two to four arrays denoising keeps; {shutil.disk_usage(folder).free / 1e6:,.0f} MB free"
        f"{open_ones}).",
        why="A long video's latents are kept in temporary files, so that memory stays flat in its length: at "
        "512x512, 64 KB a frame per array, about 14 GB for an hour at 30 fps.",
        fix="Free space there, or point TMPDIR at a folder on a disk with room (TMPDIR=/data/tmp vexpress ...; "
        "in Python, before the first generation: tempfile.tempdir = '/data/tmp').")


def _runs(frames: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of ``frames`` in their order (a window folds back at the end)."""
    runs: list[tuple[int, int]] = []
    for frame in frames:
        if runs and runs[-1][1] == frame:
            runs[-1] = (runs[-1][0], frame + 1)
        else:
            runs.append((frame, frame + 1))
    return runs
