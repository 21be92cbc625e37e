"""Post-processing of decoded frames: the original's 3x3x3 median filter, streamed.

The filter needs one frame on each side of the frame it computes, so it runs on small
chunks as they are decoded and never holds the whole video. Borders are reflected in time
and space, as in the original. The median of an odd count commutes with any monotone map,
so filtering 8-bit frames gives exactly the 8-bit image of the filtered float frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def median_filter_3x3x3(frames: torch.Tensor) -> torch.Tensor:
    """Filter ``[C, n + 2, H, W]`` frames (one extra frame on each side) into ``[C, n, H, W]``."""
    _, padded_frames, height, width = frames.shape
    padded = _reflect_space(frames)
    count = padded_frames - 2
    neighbours = [
        padded[:, dt:dt + count, dy:dy + height, dx:dx + width].contiguous()
        for dt in range(3) for dy in range(3) for dx in range(3)
    ]
    return median_of(neighbours)


def median_of(values: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise median of an odd number of same-shape tensors, by forgetful selection.

    Keep ``n // 2 + 2`` values; repeatedly move the smallest and the largest out (they can no
    longer be the median) and take in the next value. Only elementwise min/max are used, which
    is an order of magnitude faster than ``torch.median`` over a stacked axis on the CPU.
    """
    keep = len(values) // 2 + 2
    pool, pending = list(values[:keep]), list(values[keep:])
    while True:
        for i in range(1, len(pool)):
            pool[0], pool[i] = torch.minimum(pool[0], pool[i]), torch.maximum(pool[0], pool[i])
        for i in range(1, len(pool) - 1):
            pool[i], pool[-1] = torch.minimum(pool[i], pool[-1]), torch.maximum(pool[i], pool[-1])
        pool = pool[1:-1]
        if not pending:
            return pool[0]
        pool.append(pending.pop(0))


def _reflect_space(frames: torch.Tensor) -> torch.Tensor:
    # Written out because torch's reflect padding does not accept 8-bit tensors.
    rows = torch.cat([frames[:, :, 1:2], frames, frames[:, :, -2:-1]], dim=2)
    return torch.cat([rows[..., 1:2], rows, rows[..., -2:-1]], dim=3)


def median_filter_stream(chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Filter a stream of ``[C, n, H, W]`` chunks, yielding filtered chunks in order.

    A frame is filtered once the frame after it has arrived, so the output lags the input
    by one frame. Chunks may have any size, including one frame.
    """
    pending: torch.Tensor | None = None  # unfiltered frames, preceded by their left neighbour
    at_start = True
    for chunk in chunks:
        if chunk.shape[1] == 0:
            continue
        pending = chunk if pending is None else torch.cat([pending, chunk], dim=1)
        if at_start:
            if pending.shape[1] < 2:
                continue
            pending = torch.cat([pending[:, 1:2], pending], dim=1)  # reflect before the first frame
            at_start = False
        yield median_filter_3x3x3(pending)
        pending = pending[:, -2:]
    if pending is None:
        return
    if at_start:
        # A one-frame video has nothing to reflect in time; it is filtered against itself.
        yield median_filter_3x3x3(pending.repeat(1, 3, 1, 1))
        return
    yield median_filter_3x3x3(torch.cat([pending, pending[:, -2:-1]], dim=1))  # reflect after the last
