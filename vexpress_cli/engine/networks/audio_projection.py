"""Audio projection: a Perceiver resampler from wav2vec2 frames to a few audio tokens per video frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class PerceiverAttention(nn.Module):
    """Learned queries attend to the inputs and to themselves."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads = heads
        inner_dim = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, _ = tokens.shape
        return tokens.view(batch, length, self.heads, -1).transpose(1, 2)

    def forward(self, inputs: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        inputs = self.norm1(inputs)
        latents = self.norm2(latents)
        query = self._split_heads(self.to_q(latents))
        key, value = self.to_kv(torch.cat((inputs, latents), dim=-2)).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(query, self._split_heads(key), self._split_heads(value))
        batch, _, length, _ = attended.shape
        return self.to_out(attended.transpose(1, 2).reshape(batch, length, -1))


def perceiver_feed_forward(dim: int, mult: int) -> nn.Sequential:
    inner_dim = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, inner_dim, bias=False),
        nn.GELU(),
        nn.Linear(inner_dim, dim, bias=False),
    )


class AudioProjection(ModelMixin, ConfigMixin):
    """Maps ``[n, max_seq_len, embedding_dim]`` audio windows to ``[n, num_queries, output_dim]`` tokens."""

    @register_to_config
    def __init__(self, dim: int = 768, depth: int = 4, dim_head: int = 64, heads: int = 12, num_queries: int = 5,
                 embedding_dim: int = 768, output_dim: int = 768, ff_mult: int = 4, max_seq_len: int = 10):
        super().__init__()
        self.pos_emb = nn.Embedding(max_seq_len, embedding_dim)
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), perceiver_feed_forward(dim, ff_mult)])
            for _ in range(depth)
        )

    def forward(self, audio_windows: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(audio_windows.shape[1], device=audio_windows.device)
        inputs = self.proj_in(audio_windows + self.pos_emb(positions))
        latents = self.latents.repeat(audio_windows.shape[0], 1, 1)
        for attention, feed_forward in self.layers:
            latents = attention(inputs, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))
