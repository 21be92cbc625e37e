"""The reference net: Stock Stable Diffusion 1.5 UNet that encodes the portrait once.

V-Express reads, in every transformer block of the reference net, the normalised hidden
states right before cross-attention (the output of ``norm2``) and hands them to the block
of the same name in the denoising UNet, whose ``attn1_5`` attends to them.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock


def build_reference_net(unet_config: dict) -> UNet2DConditionModel:
    return UNet2DConditionModel.from_config(unet_config)


@torch.no_grad()
def collect_reference_features(reference_net: UNet2DConditionModel, reference_latents: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run the reference net on the portrait latents (timestep 0, empty text) and return its
    per-block features, ``{block name: [batch, tokens, channels]}``."""
    features: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in reference_net.named_modules():
        if isinstance(module, BasicTransformerBlock) and module.norm2 is not None:
            hooks.append(module.norm2.register_forward_hook(_recorder(features, name)))
    empty_text = torch.zeros(
        (reference_latents.shape[0], 1, reference_net.config.cross_attention_dim),
        dtype=reference_latents.dtype, device=reference_latents.device,
    )
    try:
        reference_net(reference_latents, timestep=0, encoder_hidden_states=empty_text, return_dict=False)
    finally:
        for hook in hooks:
            hook.remove()
    return features


def _recorder(features: dict[str, torch.Tensor], name: str):
    def record(_module, _inputs, output):
        features[name] = output.detach()

    return record
