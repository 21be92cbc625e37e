"""What ``VExpressPipeline.__call__`` returns, in the ``output_type`` asked for, and the check that it is finite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput

from vexpress_cli.errors import VExpressError, parameter

# "pt": the raw [1, 3, frames, H, W] frames in [0, 1] (the original's layout, what the golden fixtures hold);
# "np": [1, frames, H, W, 3] float32 in [0, 1] and "pil": one list of frames, as diffusers' video pipelines;
# "latent": the final latents [1, 4, frames, h, w], not decoded.
OUTPUT_TYPES = ("pt", "np", "pil", "latent")


@dataclass
class VExpressPipelineOutput(BaseOutput):
    frames: Any
    """``output_type`` "pt": ``[1, 3, frames, height, width]`` in [0, 1]; see ``OUTPUT_TYPES`` for the others."""


def frames_as(frames: torch.Tensor, output_type: str):
    """Decoded ``[1, 3, frames, H, W]`` frames in [0, 1] as ``output_type``."""
    if output_type == "pt":
        return frames
    video = frames.permute(0, 2, 3, 4, 1).float().numpy()  # [1, frames, H, W, 3]
    if output_type == "np":
        return video
    return [[PIL.Image.fromarray(image) for image in (video[0] * 255).round().astype(np.uint8)]]


def not_finite_error(start: int, end: int) -> VExpressError:
    return VExpressError(
        f"The generated frames {start}-{end - 1} hold NaN or infinite values.",
        "The model's weights or configs hold NaN or infinite numbers, or the precision overflowed on this device.",
        f"Try {parameter('dtype', 'fp32')} (or {parameter('dtype', 'bf16')} on a GPU); if the frames still hold "
        "NaN, the model's files are damaged: download them again (`vexpress models download`).",
    )


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to 8-bit, truncating like the original's ``(x * 255).astype(uint8)``."""
    return (frames.float() * 255).to(torch.uint8)
