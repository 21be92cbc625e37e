"""The V-Express denoising UNet: Stable Diffusion 1.5's UNet made into a video model.

Differences from the image UNet, all key-compatible with the released ``denoising_unet.bin``
and ``motion_module.bin``:

* frames are folded into the batch (``[batch * frames, c, h, w]``) so every 2D layer of
  diffusers serves unchanged; only the motion modules look across frames;
* each transformer block has a reference attention (``attn1_5``) whose keys and values are
  the reference net's features of the portrait, scaled by ``reference_attention_weight``;
* cross-attention (``attn2``) reads audio tokens, one set per frame, scaled by
  ``audio_attention_weight``;
* V-Kps guider features are added right after ``conv_in``.

The reference features and both weights are per-call values: they travel down ``forward`` as
one :class:`ReferenceConditioning` (as diffusers passes ``cross_attention_kwargs``), so nothing
of one call stays in the modules for the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

from vexpress_cli.engine.networks.motion_module import MotionModule


@dataclass
class ReferenceConditioning:
    """What the transformer blocks attend to besides the frame itself.

    ``features`` maps a transformer block's name (e.g. ``down_blocks.0.attentions.0.transformer_blocks.0``)
    to the reference net's tokens for it, ``[batch, tokens, channels]``, one row per CFG half.
    """

    features: dict[str, torch.Tensor]
    reference_attention_weight: float = 1.0
    audio_attention_weight: float = 1.0

    def tokens_for(self, block_name: str) -> torch.Tensor:
        if block_name not in self.features:
            raise KeyError(f"No reference features for transformer block {block_name}.")
        return self.features[block_name]


class ReferenceTransformerBlock(nn.Module):
    """Self-attention, reference attention, audio cross-attention and feed-forward, each pre-normed."""

    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=dim_head)
        self.norm1_5 = nn.LayerNorm(dim)
        self.attn1_5 = Attention(query_dim=dim, heads=heads, dim_head=dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        # The key of this block's tokens in ReferenceConditioning.features (its module path), set by the UNet.
        self.reference_key = ""

    def forward(self, hidden_states: torch.Tensor, audio_tokens: torch.Tensor, num_frames: int,
                reference: ReferenceConditioning) -> torch.Tensor:
        hidden_states = self.attn1(self.norm1(hidden_states)) + hidden_states
        attended = self._attend_reference(self.norm1_5(hidden_states), num_frames, reference.tokens_for(self.reference_key))
        hidden_states = attended * reference.reference_attention_weight + hidden_states
        audio = self.attn2(self.norm2(hidden_states), encoder_hidden_states=audio_tokens)
        hidden_states = audio * reference.audio_attention_weight + hidden_states
        return self.ff(self.norm3(hidden_states)) + hidden_states

    def _attend_reference(self, queries: torch.Tensor, num_frames: int, reference_tokens: torch.Tensor) -> torch.Tensor:
        folded, tokens, channels = queries.shape
        batch = folded // num_frames
        # Every frame of a batch row attends to the same reference tokens, so the frames are
        # stacked along the token axis instead of copying the reference once per frame.
        stacked = queries.reshape(batch, num_frames * tokens, channels)
        attended = self.attn1_5(stacked, encoder_hidden_states=reference_tokens)
        return attended.reshape(folded, tokens, channels)


class ReferenceTransformer(nn.Module):
    """``attentions.N`` of a block: group norm, 1x1 projections and one transformer block."""

    def __init__(self, channels: int, heads: int, cross_attention_dim: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [ReferenceTransformerBlock(channels, heads, channels // heads, cross_attention_dim)]
        )
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor, audio_tokens: torch.Tensor, num_frames: int,
                reference: ReferenceConditioning) -> torch.Tensor:
        folded, channels, height, width = hidden_states.shape
        residual = hidden_states
        tokens = self.proj_in(self.norm(hidden_states)).permute(0, 2, 3, 1).reshape(folded, height * width, channels)
        for block in self.transformer_blocks:
            tokens = block(tokens, audio_tokens, num_frames, reference)
        tokens = tokens.reshape(folded, height, width, channels).permute(0, 3, 1, 2)
        return self.proj_out(tokens.contiguous()) + residual


@dataclass(frozen=True)
class _BlockSettings:
    temb_channels: int
    norm_groups: int
    norm_eps: float
    cross_attention_dim: int
    motion_module_kwargs: dict

    def resnet(self, in_channels: int, out_channels: int) -> ResnetBlock2D:
        return ResnetBlock2D(in_channels=in_channels, out_channels=out_channels, temb_channels=self.temb_channels,
                             eps=self.norm_eps, groups=self.norm_groups)

    def transformer(self, channels: int, heads: int) -> ReferenceTransformer:
        return ReferenceTransformer(channels, heads, self.cross_attention_dim, self.norm_groups)

    def transformers(self, channels: int, heads: int, count: int) -> nn.ModuleList:
        return nn.ModuleList(self.transformer(channels, heads) for _ in range(count))

    def motion_module(self, channels: int) -> MotionModule:
        return MotionModule(channels, **self.motion_module_kwargs)


class DownBlock(nn.Module):
    """resnet -> (transformer) -> motion module per layer, then an optional strided conv."""

    def __init__(self, settings: _BlockSettings, in_channels: int, out_channels: int, num_layers: int,
                 heads: int, with_attention: bool, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            settings.resnet(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)
        )
        self.attentions = settings.transformers(out_channels, heads, num_layers) if with_attention else None
        self.motion_modules = nn.ModuleList(settings.motion_module(out_channels) for _ in range(num_layers))
        if add_downsample:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=1, name="op")]
            )
        else:
            self.downsamplers = None

    def forward(self, hidden_states, temb, audio_tokens, num_frames, reference):
        skips = []
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states, audio_tokens, num_frames, reference)
            hidden_states = self.motion_modules[i](hidden_states, num_frames)
            skips.append(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
            skips.append(hidden_states)
        return hidden_states, skips


class MidBlock(nn.Module):
    """resnet, then (transformer -> motion module -> resnet)."""

    def __init__(self, settings: _BlockSettings, channels: int, heads: int):
        super().__init__()
        self.resnets = nn.ModuleList([settings.resnet(channels, channels), settings.resnet(channels, channels)])
        self.attentions = nn.ModuleList([settings.transformer(channels, heads)])
        self.motion_modules = nn.ModuleList([settings.motion_module(channels)])

    def forward(self, hidden_states, temb, audio_tokens, num_frames, reference):
        hidden_states = self.resnets[0](hidden_states, temb)
        hidden_states = self.attentions[0](hidden_states, audio_tokens, num_frames, reference)
        hidden_states = self.motion_modules[0](hidden_states, num_frames)
        return self.resnets[1](hidden_states, temb)


class UpBlock(nn.Module):
    """Per layer: concatenate a skip, resnet -> (transformer) -> motion module; then an optional upsampler."""

    def __init__(self, settings: _BlockSettings, skip_channels: list[int], prev_channels: int, out_channels: int,
                 heads: int, with_attention: bool, add_upsample: bool):
        super().__init__()
        num_layers = len(skip_channels)
        self.resnets = nn.ModuleList(
            settings.resnet((prev_channels if i == 0 else out_channels) + skip_channels[i], out_channels)
            for i in range(num_layers)
        )
        self.attentions = settings.transformers(out_channels, heads, num_layers) if with_attention else None
        self.motion_modules = nn.ModuleList(settings.motion_module(out_channels) for _ in range(num_layers))
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
        else:
            self.upsamplers = None

    def forward(self, hidden_states, skips, temb, audio_tokens, num_frames, reference, upsample_size=None):
        for i, resnet in enumerate(self.resnets):
            hidden_states = torch.cat([hidden_states, skips.pop()], dim=1)
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states, audio_tokens, num_frames, reference)
            hidden_states = self.motion_modules[i](hidden_states, num_frames)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states, output_size=upsample_size)
        return hidden_states


class VExpressDenoisingUNet(ModelMixin, ConfigMixin):
    """Predicts the noise (v) of ``[batch, 4, frames, h, w]`` latents of a video window.

    Built from the Stable Diffusion 1.5 UNet config; cross-attention blocks are the ones the
    config names ``CrossAttn*``. ``motion_module_kwargs`` are the AnimateDiff settings of
    ``inference_v2.yaml`` (motion modules sit in every block and in the mid block).
    """

    # The SD 1.5 config's other keys are accepted and dropped; they are no part of this network's config.
    ignore_for_config = ["_ignored_unet_config"]

    @register_to_config
    def __init__(self, in_channels: int = 4, out_channels: int = 4, flip_sin_to_cos: bool = True,
                 freq_shift: int = 0,
                 down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                     "CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                                   "CrossAttnUpBlock2D"),
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280), layers_per_block: int = 2,
                 norm_num_groups: int = 32, norm_eps: float = 1e-5, cross_attention_dim: int = 768,
                 attention_head_dim: int | tuple[int, ...] = 8, motion_module_kwargs: dict | None = None,
                 **_ignored_unet_config):
        super().__init__()
        num_blocks = len(block_out_channels)
        heads = (attention_head_dim,) * num_blocks if isinstance(attention_head_dim, int) else attention_head_dim
        time_embed_dim = block_out_channels[0] * 4
        settings = _BlockSettings(time_embed_dim, norm_num_groups, norm_eps, cross_attention_dim,
                                  dict(motion_module_kwargs or {}))

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)

        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        skip_channels = [block_out_channels[0]]
        for i, block_type in enumerate(down_block_types):
            block_in = block_out_channels[max(i - 1, 0)]
            block_out = block_out_channels[i]
            is_last = i == num_blocks - 1
            self.down_blocks.append(DownBlock(settings, block_in, block_out, layers_per_block, heads[i],
                                              with_attention=block_type.startswith("CrossAttn"),
                                              add_downsample=not is_last))
            skip_channels += [block_out] * (layers_per_block + (0 if is_last else 1))

        self.mid_block = MidBlock(settings, block_out_channels[-1], heads[-1])

        reversed_channels = list(reversed(block_out_channels))
        reversed_heads = list(reversed(heads))
        prev_channels = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            block_skips = [skip_channels.pop() for _ in range(layers_per_block + 1)]
            self.up_blocks.append(UpBlock(settings, block_skips, prev_channels, reversed_channels[i],
                                          reversed_heads[i], with_attention=block_type.startswith("CrossAttn"),
                                          add_upsample=i < num_blocks - 1))
            prev_channels = reversed_channels[i]

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)
        for name, block in self.reference_blocks().items():
            block.reference_key = name

    def reference_blocks(self) -> dict[str, ReferenceTransformerBlock]:
        return {name: module for name, module in self.named_modules() if isinstance(module, ReferenceTransformerBlock)}

    # -- forward --------------------------------------------------------------------------

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, audio_tokens: torch.Tensor,
                kps_features: torch.Tensor | None = None, *, reference: ReferenceConditioning) -> torch.Tensor:
        """``sample`` [b, c, f, h, w]; ``audio_tokens`` [b*f, tokens, dim]; ``kps_features`` [b, C, f, h, w];
        ``reference`` the reference net's features and the two attention weights for this call."""
        batch, channels, num_frames, height, width = sample.shape
        hidden = sample.transpose(1, 2).reshape(batch * num_frames, channels, height, width)

        temb = self._time_embedding(timestep, batch, sample.device).repeat_interleave(num_frames, dim=0)
        hidden = self.conv_in(hidden)
        if kps_features is not None:
            hidden = hidden + kps_features.transpose(1, 2).reshape(hidden.shape)

        skips = [hidden]
        for block in self.down_blocks:
            hidden, block_skips = block(hidden, temb, audio_tokens, num_frames, reference)
            skips += block_skips

        hidden = self.mid_block(hidden, temb, audio_tokens, num_frames, reference)

        for i, block in enumerate(self.up_blocks):
            block_skips = skips[-len(block.resnets):]
            del skips[-len(block.resnets):]
            # Latents whose size is not a multiple of 8 need the exact skip size after upsampling.
            upsample_size = skips[-1].shape[2:] if skips and block.upsamplers is not None else None
            hidden = block(hidden, block_skips, temb, audio_tokens, num_frames, reference, upsample_size)

        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        return hidden.reshape(batch, num_frames, *hidden.shape[1:]).transpose(1, 2)

    def _time_embedding(self, timestep, batch: int, device: torch.device) -> torch.Tensor:
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.int64 if isinstance(timestep, int) else torch.float64)
        timesteps = timestep.reshape(-1).to(device).expand(batch)
        return self.time_embedding(self.time_proj(timesteps).to(dtype=self.dtype))
