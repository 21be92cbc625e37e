"""The engine against the original V-Express, stage by stage (tests/fixtures/golden/tiny).

Tolerances (from the engine issue): max abs error <= 1e-3 on frames in [0, 1] and
<= 1e-3 * max|x| on intermediate tensors, fp32 on CPU.
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine.median_filter import median_filter_stream

from conftest import GOLDEN_DIR, TINY_MODEL_DIR


@pytest.fixture(scope="module")
def golden():
    return load_file(str(GOLDEN_DIR / "golden.safetensors"))


@pytest.fixture(scope="module")
def params():
    return json.loads((GOLDEN_DIR / "pipeline_params.json").read_text())


@pytest.fixture(scope="module")
def pipe():
    return VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def reference_image():
    return PIL.Image.open(GOLDEN_DIR / "ref.png").convert("RGB")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, frames: bool = False):
    assert actual.shape == expected.shape
    tolerance = 1e-3 if frames else 1e-3 * expected.abs().max().item()
    error = (actual.float() - expected.float()).abs().max().item()
    assert error <= tolerance, f"max abs error {error:.3g} > {tolerance:.3g}"


def test_guider_matches(pipe, golden):
    assert_close(pipe.kps_features(golden["guider_in"]), golden["guider_out"])


def test_audio_projection_matches(pipe, golden):
    with torch.no_grad():
        assert_close(pipe.audio_projection(golden["audio_proj_in"]), golden["audio_proj_out"])


def test_audio_tokens_match(pipe, golden, params):
    tokens = pipe.encode_audio(golden["audio_waveform"], params["video_length"], params["num_pad_audio_frames"])
    assert_close(torch.stack([torch.zeros_like(tokens), tokens]), golden["audio_embeddings_cfg"])


def test_kps_features_match(pipe, golden, params):
    frames = range(params["video_length"])
    images = pipe.kps_image_tensor(golden["kps_sequence"].numpy(), frames, params["width"], params["height"])
    features = pipe.kps_features(images)
    assert_close(torch.cat([torch.zeros_like(features), features]), golden["kps_feature_cfg"])


def test_reference_latents_match(pipe, golden, reference_image, params):
    assert_close(pipe.encode_reference(reference_image, params["width"], params["height"]), golden["reference_latents"])


def test_one_unet_step_matches(pipe, golden, reference_image, params):
    conditioning = pipe.reference_conditioning(golden["reference_latents"], True,
                                               params["reference_attention_weight"], params["audio_attention_weight"])
    audio = golden["audio_embeddings_cfg"][:, :8].reshape(-1, *golden["audio_embeddings_cfg"].shape[2:])
    with torch.no_grad():
        out = pipe.denoising_unet(golden["step_latents_in"], golden["step_timestep"][0],
                                  audio, golden["kps_feature_cfg"][:, :, :8], reference=conditioning)
    assert_close(out, golden["step_out"])


def test_noise_and_denoising_steps_match(pipe, golden, reference_image, params):
    steps = []

    class Recorder:
        def __init__(self, scheduler):
            self.scheduler = scheduler

        def __getattr__(self, name):
            return getattr(self.scheduler, name)

        def step(self, *args, **kwargs):
            result = self.scheduler.step(*args, **kwargs)
            steps.append(result.prev_sample.clone())
            return result

    original = pipe.scheduler
    pipe.scheduler = Recorder(original)
    try:
        latents = pipe.denoise(reference_image, golden["audio_waveform"], kps_images=golden["kps_sequence"].numpy(),
                               generator=torch.manual_seed(4), **params)
    finally:
        pipe.scheduler = original
    assert len(steps) == params["num_inference_steps"]
    for index, after_step in enumerate(steps):
        assert_close(after_step, golden[f"latents_after_step_{index}"])
    assert_close(latents, golden["latents_after_step_2"])


def test_initial_noise_matches(pipe, golden, params):
    noise = pipe.prepare_latents(params["video_length"], params["width"], params["height"], torch.manual_seed(4))
    assert torch.equal(noise, golden["init_noise"])


def test_whole_call_matches_with_pil_kps_images(pipe, golden, reference_image, params):
    from vexpress_cli.kps.drawing import draw_kps_image

    kps_images = [PIL.Image.fromarray(draw_kps_image(params["height"], params["width"], kps))
                  for kps in golden["kps_sequence"].numpy()]
    video = pipe(reference_image=reference_image, kps_images=kps_images, audio_waveform=golden["audio_waveform"],
                 generator=torch.manual_seed(4), **params).frames
    assert_close(video, golden["video"], frames=True)
    filtered = torch.cat(list(median_filter_stream(video[0].split(5, dim=1))), dim=1)
    assert_close(filtered, golden["video_median"], frames=True)


def test_streamed_uint8_frames_match_filtered_video(pipe, golden, reference_image, params):
    chunks = list(pipe.iter_frames(reference_image=reference_image, kps_images=golden["kps_sequence"].numpy(),
                                   audio_waveform=golden["audio_waveform"], generator=torch.manual_seed(4),
                                   decode_chunk_size=5, **params))
    frames = np.concatenate(chunks)
    assert frames.shape == (params["video_length"], params["height"], params["width"], 3)
    expected = (golden["video_median"].permute(1, 2, 3, 0) * 255).to(torch.uint8).numpy()
    # Truncation to 8 bits can flip a value sitting on an integer boundary by one level.
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_unknown_call_arguments_are_refused(pipe, reference_image, golden, params):
    with pytest.raises(TypeError, match="num_inference_step"):
        pipe(reference_image=reference_image, audio_waveform=golden["audio_waveform"],
             kps_images=golden["kps_sequence"].numpy(), num_inference_step=3,
             **{k: v for k, v in params.items() if k != "num_inference_steps"})


@pytest.mark.slow
def test_latents_kept_in_a_file_give_the_same_numbers(pipe, golden, reference_image, params):
    """Issue 8 item 13: past the memory budget the latents live in a temp file; not one number changes."""
    kwargs = dict(kps_images=golden["kps_sequence"].numpy(), **params)
    in_memory = pipe.denoise(reference_image, golden["audio_waveform"], generator=torch.manual_seed(4), **kwargs)
    budget = pipe.latents_memory_budget
    pipe.latents_memory_budget = 0
    try:
        in_file = pipe.denoise(reference_image, golden["audio_waveform"], generator=torch.manual_seed(4), **kwargs)
    finally:
        pipe.latents_memory_budget = budget
    assert torch.equal(in_file, in_memory)
    assert_close(in_file, golden["latents_after_step_2"])
