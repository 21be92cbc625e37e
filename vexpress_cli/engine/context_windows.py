"""Context windows: which frames the denoising UNet sees together.

A video longer than one window is denoised window by window; frames shared by several
windows get the mean of their predictions. The windows are the original's "uniform"
schedule at step 0 with stride 1: starts every ``size - overlap`` frames, and a window that
runs past the end folds back into the video (frame ``n + k`` becomes ``n - 2 - k``).

Every frame is covered for any length (the last start is at least ``n - size``), so no
frame has to be dropped: the original ``inference.py`` cut the video to whole windows and
changed the fps to match instead.
"""

from __future__ import annotations


def context_windows(num_frames: int, size: int, overlap: int) -> list[list[int]]:
    """Frame indices of each window, in processing order."""
    if num_frames < 1:
        raise ValueError("A video needs at least one frame.")
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"Context of {size} frames with overlap {overlap} is not valid: need 0 <= overlap < size.")
    if num_frames <= size:
        return [list(range(num_frames))]
    return [
        [_fold_back(index, num_frames) for index in range(start, start + size)]
        for start in range(0, num_frames - overlap, size - overlap)
    ]


def _fold_back(index: int, num_frames: int) -> int:
    return index if index < num_frames else num_frames - 2 - index % num_frames


def windows_per_frame(windows: list[list[int]], num_frames: int) -> list[int]:
    """How many windows contain each frame (a frame repeated inside one window counts once)."""
    counts = [0] * num_frames
    for window in windows:
        for frame in set(window):
            counts[frame] += 1
    return counts

