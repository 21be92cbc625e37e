"""AnimateDiff-style motion module: self-attention across the frames of each pixel.

Tensors arrive with frames folded into the batch, ``[batch * frames, channels, h, w]``.
Every layer here but the attention works per token, so the block unfolds frames once,
``[(batch * h * w), frames, channels]``, runs all its layers and folds them back.
Parameter names follow the released ``motion_module.bin``.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

# The released motion modules normalise with 32 groups whatever the UNet's own setting.
MOTION_MODULE_NORM_GROUPS = 32


def sinusoid_table(dim: int, max_len: int) -> torch.Tensor:
    position = torch.arange(max_len).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, max_len, dim)
    table[0, :, 0::2] = torch.sin(position * frequencies)
    table[0, :, 1::2] = torch.cos(position * frequencies)
    return table


class SinusoidalPositionEncoding(nn.Module):
    """Adds a fixed sine/cosine code of the frame index (stored as the ``pe`` buffer)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(dim, max_len))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.pe.copy_(sinusoid_table(self.pe.shape[2], self.pe.shape[1]))

    @property
    def max_len(self) -> int:
        return self.pe.shape[1]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.pe[:, : hidden_states.shape[1]]


class TemporalSelfAttention(Attention):
    """Self-attention over the frame axis with a position encoding of the frame index."""

    def __init__(self, dim: int, heads: int, dim_head: int, max_frames: int | None):
        super().__init__(query_dim=dim, heads=heads, dim_head=dim_head, bias=False)
        self.pos_encoder = SinusoidalPositionEncoding(dim, max_frames) if max_frames else None

    def forward(self, hidden_states: torch.Tensor, **_) -> torch.Tensor:
        if self.pos_encoder is not None:
            hidden_states = self.pos_encoder(hidden_states)
        return super().forward(hidden_states)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, num_attention_blocks: int, max_frames: int | None):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(dim, heads, dim_head, max_frames) for _ in range(num_attention_blocks)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_attention_blocks))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            hidden_states = attention(norm(hidden_states)) + hidden_states
        return self.ff(self.ff_norm(hidden_states)) + hidden_states


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, dim_head: int, num_layers: int, num_attention_blocks: int,
                 max_frames: int | None):
        super().__init__()
        inner_dim = heads * dim_head
        self.norm = nn.GroupNorm(MOTION_MODULE_NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, inner_dim)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(inner_dim, heads, dim_head, num_attention_blocks, max_frames)
            for _ in range(num_layers)
        )
        self.proj_out = nn.Linear(inner_dim, channels)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        folded, channels, height, width = hidden_states.shape
        batch = folded // num_frames
        residual = hidden_states

        tokens = self.norm(hidden_states)
        # [(b f), c, h, w] -> [(b h w), f, c]: one sequence of frames per pixel.
        tokens = tokens.reshape(batch, num_frames, channels, height * width).permute(0, 3, 1, 2)
        tokens = tokens.reshape(batch * height * width, num_frames, channels)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = self.proj_out(tokens)

        tokens = tokens.reshape(batch, height * width, num_frames, channels).permute(0, 2, 3, 1)
        return tokens.reshape(folded, channels, height, width) + residual


class MotionModule(nn.Module):
    """One ``motion_modules.N`` entry of the denoising UNet."""

    def __init__(self, channels: int, num_attention_heads: int = 8, num_transformer_block: int = 1,
                 attention_block_types: tuple[str, ...] = ("Temporal_Self", "Temporal_Self"),
                 temporal_position_encoding: bool = True, temporal_position_encoding_max_len: int = 32,
                 temporal_attention_dim_div: int = 1):
        super().__init__()
        unsupported = [kind for kind in attention_block_types if kind != "Temporal_Self"]
        if unsupported:
            raise ValueError(f"Unsupported motion-module attention blocks {unsupported}; only Temporal_Self exists.")
        self.temporal_transformer = TemporalTransformer(
            channels,
            heads=num_attention_heads,
            dim_head=channels // num_attention_heads // temporal_attention_dim_div,
            num_layers=num_transformer_block,
            num_attention_blocks=len(attention_block_types),
            max_frames=temporal_position_encoding_max_len if temporal_position_encoding else None,
        )

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.temporal_transformer(hidden_states, num_frames)
