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


def test_progress_counts_each_slice_then_each_transformer_layer_and_changes_no_number():
    """An hour of speech was one silent "Encoding the audio" stage (0/1, then 1/1 minutes later)."""
    model = tiny_wav2vec2()
    speech = torch.randn(1, 16000 * 3 + 123, generator=torch.manual_seed(1)) * 0.2  # 149 frames: 3 slices of 50
    reports = []
    reported = encode_speech(model, speech, 50, progress=lambda done, total: reports.append((done, total)))
    assert reports == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]  # 3 slices, then the 2 transformer layers
    assert torch.equal(reported, encode_speech(model, speech, 50))
    assert all(not layer._forward_hooks for layer in model.encoder.layers)  # the counting hooks are gone


def test_the_audio_stage_reports_wav2vec2s_parts_and_a_callback_drawing_random_numbers_changes_nothing(
        windowed_golden_job):
    """The stage reported 0/1 and 1/1 only. Its reports now come from inside wav2vec2's pass, where the pipeline
    tells by torch's random state whether wav2vec2 drew (as the original's did): a callback's draws must not count."""
    from vexpress_cli import VExpressPipeline
    from conftest import TINY_MODEL_DIR

    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)
    job = windowed_golden_job
    reports = []

    def drawing(stage, done, total):
        if stage == "audio":
            reports.append((done, total))
            if 0 < done < total:  # inside the pass
                torch.rand(3)

    def encoded(progress) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        tokens = pipe.encode_audio_stage(job["audio_waveform"], job["video_length"], 2, False, progress)
        return tokens, torch.get_rng_state()

    (tokens, state), (quiet_tokens, quiet_state) = encoded(drawing), encoded(lambda *_: None)
    layers = len(pipe.audio_encoder.encoder.layers)
    assert reports[0] == (0, 1) and reports[-1] == (2 + layers, 2 + layers)  # 1 slice, the layers, the tokens
    assert [done for done, _ in reports] == list(range(len(reports)))
    assert torch.equal(tokens, quiet_tokens) and torch.equal(state, quiet_state)
