"""wav2vec2 over long speech in bounded memory, with the numbers of one whole pass.

wav2vec2's convolutional feature encoder keeps 512 channels at 3.2 kHz in its first layers, so
one pass over four minutes of speech holds gigabytes of activations. Its convolutions are
local (no padding), so the encoder can run on overlapping slices of the waveform and give the
very same frames. The one global operation is the first layer's GroupNorm (one group per
channel, over the whole time axis): its statistics are gathered in a first pass, then applied
in the second. The transformer then runs once over all frames, as in the original.

An hour of speech takes minutes on a CPU, so the work is reported as it goes: each slice of the
feature encoder, then each transformer layer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

PartsDone = Callable[[int, int], None]  # (parts done, parts in all)

# Output frames (50 per second of speech) computed per slice: 20 s of audio.
FRAMES_PER_SLICE = 1000


@torch.no_grad()
def encode_speech(model, input_values: torch.Tensor, frames_per_slice: int = FRAMES_PER_SLICE,
                  progress: PartsDone | None = None) -> torch.Tensor:
    """``last_hidden_state`` of a transformers ``Wav2Vec2Model`` in eval mode for ``[1, samples]`` input;
    ``progress(done, total)`` after each slice of the feature encoder and each transformer layer."""
    transformer_layers = list(getattr(model.encoder, "layers", ()))
    counted = {"slices": 1}

    def slice_done(done: int, slices: int) -> None:
        counted["slices"] = slices
        if progress:
            progress(done, slices + len(transformer_layers))

    def layer_done(number: int) -> Callable:
        return lambda *_: progress(counted["slices"] + number, counted["slices"] + len(transformer_layers))

    features = sliced_feature_encoder(model.feature_extractor, input_values, frames_per_slice, slice_done)
    hidden, _ = model.feature_projection(features.transpose(1, 2))
    hooks = [layer.register_forward_hook(layer_done(number))
             for number, layer in enumerate(transformer_layers, 1)] if progress else []
    try:
        hidden = model.encoder(hidden).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
    if getattr(model, "adapter", None) is not None:
        hidden = model.adapter(hidden)
    return hidden


def sliced_feature_encoder(encoder, input_values: torch.Tensor, frames_per_slice: int,
                           slice_done: PartsDone = lambda done, total: None) -> torch.Tensor:
    """The convolutional feature encoder's output for ``[1, samples]`` input, computed in slices of
    ``frames_per_slice`` output frames (``slice_done(done, total)`` after each): the numbers of one pass."""
    layers = list(encoder.conv_layers)
    first_norm = getattr(layers[0], "layer_norm", None)
    if any(isinstance(getattr(layer, "layer_norm", None), nn.GroupNorm) for layer in layers[1:]):
        return _in_one_pass(encoder, input_values, slice_done)  # not the wav2vec2 layout this module knows
    kernels = [layer.conv.kernel_size[0] for layer in layers]
    strides = [layer.conv.stride[0] for layer in layers]
    hop, field = _hop_and_receptive_field(kernels, strides)
    num_samples = input_values.shape[-1]
    if num_samples < field:
        return _in_one_pass(encoder, input_values, slice_done)
    num_frames = (num_samples - field) // hop + 1
    num_slices = -(-num_frames // frames_per_slice)

    normalize = None
    if isinstance(first_norm, nn.GroupNorm):
        normalize = _group_norm_over_whole_input(layers[0], input_values, frames_per_slice * hop // strides[0])

    slices = []
    for start in range(0, num_frames, frames_per_slice):
        count = min(frames_per_slice, num_frames - start)
        samples = input_values[:, start * hop: start * hop + (count - 1) * hop + field]
        hidden = layers[0].conv(samples[:, None])
        hidden = normalize(hidden) if normalize else _local_norm(layers[0], hidden)
        hidden = layers[0].activation(hidden)
        for layer in layers[1:]:
            hidden = layer(hidden)
        slices.append(hidden)
        slice_done(len(slices), num_slices)
    return torch.cat(slices, dim=2)


def _in_one_pass(encoder, input_values: torch.Tensor, slice_done: PartsDone) -> torch.Tensor:
    features = encoder(input_values)
    slice_done(1, 1)
    return features


def _hop_and_receptive_field(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    field, hop = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * hop
        hop *= stride
    return hop, field


def _local_norm(layer, hidden: torch.Tensor) -> torch.Tensor:
    # Layers normed per time step (feat_extract_norm="layer") or not normed at all.
    norm = getattr(layer, "layer_norm", None)
    if norm is None:
        return hidden
    return norm(hidden.transpose(-2, -1)).transpose(-2, -1)


def _group_norm_over_whole_input(layer, input_values: torch.Tensor, conv_frames_per_slice: int):
    """The first layer's per-channel GroupNorm with statistics over the whole input, in slices.

    Each slice's mean and variance are merged with Chan et al.'s parallel formula in float64 on
    the CPU (MPS has no float64), so the statistics are those of one pass over everything.
    """
    kernel, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
    total = (input_values.shape[-1] - kernel) // stride + 1
    count, mean, m2 = 0, None, None
    for start in range(0, total, conv_frames_per_slice):
        frames = min(conv_frames_per_slice, total - start)
        samples = input_values[:, start * stride: (start + frames - 1) * stride + kernel]
        hidden = layer.conv(samples[:, None]).float()
        variance, slice_mean = torch.var_mean(hidden, dim=2, unbiased=False)
        slice_mean, slice_m2 = slice_mean.double().cpu(), variance.double().cpu() * frames
        if mean is None:
            count, mean, m2 = frames, slice_mean, slice_m2
            continue
        delta = slice_mean - mean
        merged = count + frames
        mean = mean + delta * frames / merged
        m2 = m2 + slice_m2 + delta * delta * count * frames / merged
        count = merged
    variance = m2 / count
    norm = layer.layer_norm
    scale = norm.weight.detach().double().cpu() / torch.sqrt(variance + norm.eps)
    shift = norm.bias.detach().double().cpu() - mean * scale
    device = input_values.device
    scale, shift = scale.float().to(device)[..., None], shift.float().to(device)[..., None]

    def apply(hidden: torch.Tensor) -> torch.Tensor:
        return (hidden.float() * scale + shift).to(hidden.dtype)

    return apply
