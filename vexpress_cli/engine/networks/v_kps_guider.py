"""The V-Kps guider: a small conv net turning keypoint images into UNet input features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class VKpsGuider(ModelMixin, ConfigMixin):
    """Maps V-Kps images ``[b, 3, f, H, W]`` in [0, 1] to features ``[b, C, f, H/8, W/8]``.

    Every frame is processed on its own (2D convolutions); ``C`` is the denoising
    UNet's first block width, so the result is added right after its ``conv_in``.
    """

    @register_to_config
    def __init__(self, conditioning_embedding_channels: int = 320, conditioning_channels: int = 3,
                 block_out_channels: tuple[int, ...] = (16, 32, 96, 256)):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for channels_in, channels_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            self.blocks.append(nn.Conv2d(channels_in, channels_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, kernel_size=3, padding=1)

    def forward(self, kps_images: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = kps_images.shape
        hidden = kps_images.transpose(1, 2).reshape(batch * frames, channels, height, width)
        hidden = F.silu(self.conv_in(hidden))
        for conv in self.blocks:
            hidden = F.silu(conv(hidden))
        hidden = self.conv_out(hidden)
        return hidden.reshape(batch, frames, *hidden.shape[1:]).transpose(1, 2)
