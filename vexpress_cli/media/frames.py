"""Frames shared by the video reader and writers: exact frame rates, frame sizes, frame arrays."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np


def as_fps_fraction(fps: Fraction | float | int | str) -> Fraction:
    """An exact frame rate from a Fraction, int, "30000/1001" string or float.

    A float within 0.005 of an NTSC rate (29.97, 23.976, 59.94, ...) becomes
    that rate, e.g. 30000/1001; other floats use ``limit_denominator(1001)``.
    """
    if isinstance(fps, float):
        ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
        is_ntsc = fps != round(fps) and abs(ntsc - Fraction(fps)) < 0.005
        rate = ntsc if is_ntsc else Fraction(fps).limit_denominator(1001)
    else:
        rate = Fraction(fps)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def check_frame_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` as positive ints; ValueError otherwise."""
    width, height = (int(value) for value in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be (width, height) with positive values, got {size!r}")
    return width, height


def frames_array(frames: Any, width: int | None, height: int | None) -> np.ndarray:
    """``frames`` (HxWx3 or NxHxWx3 uint8, numpy or torch) as a contiguous NxHxWx3 array."""
    if hasattr(frames, "detach"):  # a torch tensor, without importing torch here
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be HxWx3 or NxHxWx3 RGB, got shape {frames.shape}")
    if width is not None and frames.shape[1:3] != (height, width):
        raise ValueError(
            f"frames must be {height}x{width} (HxW) as the writer was opened, got {frames.shape[1:3]}"
        )
    return np.ascontiguousarray(frames)
