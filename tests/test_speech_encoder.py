"""wav2vec2 over slices of the waveform gives the numbers of one whole pass."""

from __future__ import annotations

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from vexpress_cli.engine.networks.speech_encoder import encode_speech


def tiny_wav2vec2(**overrides) -> Wav2Vec2Model:
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            **overrides)
    return Wav2Vec2Model(config).eval()


@pytest.mark.parametrize("frames_per_slice", [1, 7, 50, 1000])
@pytest.mark.parametrize("norm", ["group", "layer"])
def test_slices_match_one_pass(frames_per_slice, norm):
    model = tiny_wav2vec2(feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    speech = torch.randn(1, 16000 * 3 + 123, generator=torch.manual_seed(1)) * 0.2
    with torch.no_grad():
        whole = model(speech).last_hidden_state
    sliced = encode_speech(model, speech, frames_per_slice)
    assert sliced.shape == whole.shape
    assert (sliced - whole).abs().max() <= 1e-4 * whole.abs().max()


def test_shorter_than_one_frame_falls_back_to_one_pass_which_wav2vec2_itself_refuses():
    model = tiny_wav2vec2()
    speech = torch.randn(1, 300)
    # wav2vec2's own convolution error: without the fallback, no slice is made and torch.cat([]) fails instead.
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        encode_speech(model, speech)
