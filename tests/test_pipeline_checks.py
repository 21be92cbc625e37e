"""VExpressPipeline.__call__ checks every argument before a network runs: one InputError naming it, not a
traceback from deep inside torch, PIL or diffusers, and nothing silently wrong (NaN, stereo, bad latents)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vexpress_cli.errors import InputError

CALL = dict(video_length=12, width=64, height=64, num_inference_steps=1, context_frames=8, context_overlap=2,
            output_type="latent")


def nan_points(inputs):
    points = inputs["kps_images"].astype(np.float32).copy()
    points[3, 1, 0] = np.nan
    return points


BAD_CALLS = [
    ({"audio_waveform": lambda inputs: np.full(16000, np.nan, np.float32)}, "audio_waveform holds NaN"),
    ({"audio_waveform": lambda inputs: np.zeros(0, np.float32)}, "audio_waveform holds 0 samples"),
    ({"audio_waveform": lambda inputs: np.stack([inputs["audio_waveform"]] * 2)}, "several channels"),
    ({"audio_waveform": lambda inputs: "speech.wav"}, "audio_waveform is str 'speech.wav'"),
    ({"reference_image": lambda inputs: "ref.jpg"}, "reference_image is str 'ref.jpg'"),
    ({"reference_image": lambda inputs: None}, "reference_image is NoneType None"),
    ({"kps_images": nan_points}, "kps_images hold NaN or infinite keypoints"),
    ({"width": 0}, "The size 0x64 is too small"),
    ({"video_length": "45"}, "video_length is str '45'"),
    ({"guidance_scale": float("nan")}, "guidance_scale is float nan"),
    ({"audio_attention_weight": None}, "audio_attention_weight is NoneType None"),
    ({"latents": lambda inputs: torch.zeros(1, 4, 12, 9, 9)}, "latents is Tensor of shape (1, 4, 12, 9, 9)"),
    ({"latents": lambda inputs: torch.zeros(1, 4, 17, 8, 8)}, "latents is Tensor of shape (1, 4, 17, 8, 8)"),
    ({"latents": lambda inputs: torch.full((1, 4, 12, 8, 8), float("inf"))}, "latents hold NaN or infinite values"),
    ({"audio_waveform": lambda inputs: torch.full((16000,), float("nan"), requires_grad=True)},
     "audio_waveform holds NaN"),
    ({"audio_waveform": lambda inputs: None}, "audio_waveform is NoneType None"),
    ({"kps_images": lambda inputs: torch.as_tensor(nan_points(inputs), dtype=torch.bfloat16)},
     "kps_images hold NaN or infinite keypoints"),
    # One [3, 2] item per frame, as documented: only stacked arrays were checked, and these ran.
    ({"kps_images": lambda inputs: list(nan_points(inputs))}, "kps_images hold NaN or infinite keypoints"),
    ({"kps_images": lambda inputs: nan_points(inputs).tolist()}, "kps_images hold NaN or infinite keypoints"),
    ({"kps_images": lambda inputs: [torch.as_tensor(item) for item in nan_points(inputs)]},
     "kps_images hold NaN or infinite keypoints"),
    ({"video_length": -1}, "video_length is -1. A video has at least one frame"),  # was "the audio is shorter"
    ({"width": 100000}, "The size 100000x64 is too large. The model was trained at 512x512; a side may be at most "
                        "4096 pixels"),  # it took 7.8 GB before its first step
    # These went on into the networks: a torch RuntimeError about channels, or a video of an empty photo.
    ({"reference_image": lambda inputs: torch.zeros(64, 64, 3)}, "reference_image is an array of shape (64, 64, 3)"),
    ({"reference_image": lambda inputs: np.zeros((64, 64), np.uint8)}, "reference_image is an array of shape (64, 64)"),
    ({"reference_image": lambda inputs: inputs["reference_image"].crop((0, 0, 0, 0))},
     "reference_image is an empty image"),
    ({"reference_image": lambda inputs: np.full((64, 64, 3), 2.0)},
     "reference_image is an array of floats outside [0, 1]"),
    ({"kps_images": lambda inputs: np.zeros((12, 4, 2)) + 32}, "kps_images is an array of shape (12, 4, 2)"),
    ({"generator": 42}, "generator is int 42. It must be a torch.Generator (or a list of one)"),
    # A negative chunk decoded no frame at all (an empty video), 0 was range()'s ValueError.
    ({"decode_chunk_size": -1}, "decode_chunk_size=-1 decodes no frame at a time"),
    ({"decode_chunk_size": 2.5}, "decode_chunk_size is float 2.5"),
    # The original pipeline's arguments at values that change its result there were silently ignored.
    ({"eta": 1.0}, "eta=1.0 is not supported. The original pipeline took eta, but only its default, 0.0"),
    ({"strength": 0.3}, "strength=0.3 is not supported"),
    ({"num_images_per_prompt": 2}, "num_images_per_prompt=2 is not supported"),
    ({"context_schedule": "ordered"}, 'context_schedule="ordered" is not supported'),
    ({"callback": lambda inputs: (lambda step, timestep, latents: None)},
     "callback is not supported. The original pipeline took callback, but only its default, None, has the same "
     "meaning here. Pass callback_on_step_end(pipe, step, timestep, callback_kwargs) instead"),
    # These two were ValueErrors, although docs/pipeline.md promises one InputError naming the argument.
    ({"output_type": "video"}, "output_type is 'video'. It is the form of the frames returned: pt, np, pil or latent"),
    ({"callback_on_step_end_tensor_inputs": ["prompt_embeds"]},
     "callback_on_step_end_tensor_inputs names ['prompt_embeds'], which this pipeline does not hand to the callback"),
    # V-Kps images not of the call's size went through the reference and audio networks, then failed in the UNet's
    # reshape; a 2-D one in conditioning.py's permute.
    ({"kps_images": lambda inputs: [np.zeros((32, 32, 3), np.uint8)] * 12},
     "kps_images[0] is an array of shape (32, 32, 3). A frame's V-Kps is its keypoints ([3, 2]), a PIL image "
     "(resized to the video's size) or an image of the video's size, of shape (64, 64, 3) here"),
    ({"kps_images": lambda inputs: [np.zeros((64, 64, 3), np.uint8)] * 5 + [np.zeros((64, 64), np.uint8)] * 7},
     "kps_images[5] is an array of shape (64, 64)."),
    ({"kps_images": lambda inputs: np.zeros((12, 32, 32, 3), np.uint8)}, "kps_images is an array of shape (12, 32, 32"),
    ({"kps_images": lambda inputs: torch.zeros(12, 3, 64, 64)}, "kps_images is an array of shape (12, 3, 64, 64)"),
    # 0-255 floats were divided by 255 again; floats are in [0, 1], as for the reference image.
    ({"kps_images": lambda inputs: [np.full((64, 64, 3), 255.0)] * 12},
     "kps_images[0] is an array of floats outside [0, 1]"),
    ({"kps_images": lambda inputs: [np.zeros((64, 64, 3), np.int64)] * 12}, "kps_images[0] is an array of int64"),
    ({"kps_images": lambda inputs: np.full((12, 64, 64, 3), np.nan, np.float32)},
     "kps_images is an array of floats outside [0, 1] (or NaN)"),
    ({"kps_images": lambda inputs: ["kps.png"] * 12}, "kps_images[0] is str 'kps.png'"),
    # Ran a whole step, then "'int' object is not callable".
    ({"callback_on_step_end": 5}, "callback_on_step_end is int 5. It is called after every denoising step"),
    ({"guidance_scale": -1.0}, "guidance_scale=-1.0 is negative."),
    # torch.Generator().manual_seed(seed) misses wav2vec2's draws: not the noise of vexpress generate --seed.
    ({"generator": 42}, "Pass pipe.seeded_generator(seed) (the noise of vexpress generate --seed), or leave it out"),
    ({"latents": lambda inputs: torch.zeros(1, 4, 12, 9, 9)},
     "make them with pipe.prepare_latents(frames, width, height, pipe.seeded_generator(seed))"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_CALLS, ids=[message for _, message in BAD_CALLS])
def test_a_bad_argument_is_one_input_error_naming_it_before_any_network_runs(tiny_pipe, golden_inputs, bad, message,
                                                                            monkeypatch):
    pipe, inputs = tiny_pipe, golden_inputs
    def no_network(*args, **kwargs):
        raise AssertionError("a network ran before the arguments were checked")

    monkeypatch.setattr(pipe, "encode_reference_stage", no_network)
    arguments = {**inputs, **CALL, "generator": torch.manual_seed(0),
                 **{name: value(inputs) if callable(value) else value for name, value in bad.items()}}
    with pytest.raises(InputError) as raised:
        pipe(**arguments)
    assert str(raised.value).startswith(message) or message in str(raised.value)


def test_a_mono_waveform_as_one_row_or_in_bf16_is_read_as_the_flat_one(tiny_pipe, golden_inputs):
    pipe, inputs = tiny_pipe, golden_inputs
    flat = pipe(**inputs, **CALL, generator=torch.manual_seed(0)).frames
    row = pipe(**{**inputs, "audio_waveform": inputs["audio_waveform"][None]}, **CALL, generator=torch.manual_seed(0))
    torch.testing.assert_close(row.frames, flat, rtol=0, atol=0)
    half = torch.as_tensor(inputs["audio_waveform"]).to(torch.bfloat16)
    from_half = pipe(**{**inputs, "audio_waveform": half}, **CALL, generator=torch.manual_seed(0)).frames
    as_float = pipe(**{**inputs, "audio_waveform": half.float()}, **CALL, generator=torch.manual_seed(0)).frames
    torch.testing.assert_close(from_half, as_float, rtol=0, atol=0)


@pytest.mark.parametrize(("returned", "message"), [
    ({"latents": torch.zeros(1)}, r"callback_on_step_end returned latents of Tensor of shape \(1,\)\. Return latents "
                                  r"of the shape \(1, 4, 12, 8, 8\), or return nothing to keep them"),
    # NaN latents were caught after decoding, as "the model's files are damaged: download them again".
    ({"latents": torch.full((1, 4, 12, 8, 8), float("nan"))}, "callback_on_step_end returned latents holding NaN"),
    ([1], r"callback_on_step_end returned list \[1\]\. diffusers' step-end callbacks return a dict"),  # was .get
])
def test_what_a_step_end_callback_returns_is_checked(tiny_pipe, golden_inputs, returned, message):
    with pytest.raises(InputError, match=message):
        tiny_pipe(**golden_inputs, **CALL, generator=torch.manual_seed(0),
                  callback_on_step_end=lambda pipeline, step, timestep, values: returned)


def test_step_end_tensor_inputs_as_one_text_is_refused_not_spelt_out(tiny_pipe, golden_inputs):
    with pytest.raises(InputError, match="callback_on_step_end_tensor_inputs is the text 'latents'; it must be a list"):
        tiny_pipe(**golden_inputs, **CALL, callback_on_step_end=lambda *args: None,
                  callback_on_step_end_tensor_inputs="latents")


def test_the_original_pipelines_arguments_at_their_defaults_and_a_list_of_one_generator_change_nothing(
        tiny_pipe, golden_inputs):
    plain = tiny_pipe(**golden_inputs, **CALL, generator=torch.manual_seed(0)).frames
    original = tiny_pipe(**golden_inputs, **CALL, generator=[torch.manual_seed(0)], eta=0, strength=1.0,
                         num_images_per_prompt=1, callback=None, callback_steps=5, context_schedule="uniform",
                         do_multi_devices_inference=True).frames
    torch.testing.assert_close(original, plain, rtol=0, atol=0)


@pytest.mark.slow
def test_an_8_bit_array_or_tensor_portrait_gives_the_frames_of_the_pil_image(tiny_pipe, golden_inputs):
    """diffusers' image processor reads arrays as floats in [0, 1]: a uint8 array was 255 times too bright."""
    call = {**golden_inputs, **CALL, "output_type": "pt"}
    from_pil = tiny_pipe(**call, generator=torch.manual_seed(0)).frames
    pixels = np.array(golden_inputs["reference_image"])
    for portrait in (pixels, torch.from_numpy(pixels).permute(2, 0, 1), pixels.astype(np.float32) / 255):
        frames = tiny_pipe(**{**call, "reference_image": portrait}, generator=torch.manual_seed(0)).frames
        torch.testing.assert_close(frames, from_pil, rtol=0, atol=1e-4)


def test_an_unknown_scheduler_name_is_an_input_error_with_the_closest_one(tiny_pipe):
    pipe = tiny_pipe
    with pytest.raises(InputError, match=r"There is no scheduler 'dpm'.*Did you mean 'dpm\+\+'\? Use one of"):
        pipe.use_scheduler("dpm")


def kps_drawn(inputs, height=64, width=64):
    from vexpress_cli.kps import draw_kps_image

    return [draw_kps_image(height, width, points[:3]) for points in inputs["kps_images"]]


def test_kps_images_as_uint8_or_float_images_give_the_frames_of_the_keypoints(tiny_pipe, golden_inputs):
    """A float image (floats in [0, 1], as the reference image) was divided by 255: almost black V-Kps."""
    drawn = kps_drawn(golden_inputs)
    from_points = tiny_pipe(**golden_inputs, **CALL, generator=torch.manual_seed(0)).frames
    for kps in (drawn, [image.astype(np.float32) / 255 for image in drawn],
                torch.from_numpy(np.stack(drawn)).float() / 255):
        frames = tiny_pipe(**{**golden_inputs, "kps_images": kps}, **CALL, generator=torch.manual_seed(0)).frames
        torch.testing.assert_close(frames, from_points, rtol=0, atol=0)


def test_a_pil_kps_image_of_another_size_is_resized(tiny_pipe, golden_inputs):
    import PIL.Image

    large = [PIL.Image.fromarray(image).resize((128, 128), PIL.Image.NEAREST) for image in kps_drawn(golden_inputs)]
    frames = tiny_pipe(**{**golden_inputs, "kps_images": large}, **CALL, generator=torch.manual_seed(0)).frames
    assert frames.shape == (1, 4, 12, 8, 8)


def test_guidance_up_to_1_is_no_guidance(tiny_pipe, golden_inputs):
    """diffusers' meaning: up to 1 the conditional prediction alone (0 and 1 give the same frames), and above it
    guidance (3.5 gives other frames: the scale is not ignored)."""
    none, one, guided = (tiny_pipe(**golden_inputs, **CALL, guidance_scale=scale,
                                   generator=torch.manual_seed(0)).frames for scale in (0.0, 1.0, 3.5))
    torch.testing.assert_close(none, one, rtol=0, atol=0)
    assert (guided - one).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["iter_frames", "denoise"])
def test_iter_frames_and_denoise_refuse_the_output_form_of_call_naming_themselves(tiny_pipe, golden_inputs, method):
    """iter_frames(output_type="pil") was "denoise_to_store() got an unexpected keyword argument 'output_type'"."""
    with pytest.raises(TypeError, match=rf"^{method}\(\) got output_type, which only __call__ takes: {method} "):
        result = getattr(tiny_pipe, method)(**golden_inputs, **{**CALL, "output_type": "pil"})
        next(iter(result))


def test_a_misspelt_call_argument_is_a_type_error_naming_the_call_and_the_closest_name(tiny_pipe, golden_inputs):
    with pytest.raises(TypeError, match=r"^VExpressPipeline\.__call__\(\) got unexpected keyword arguments: "
                       r"num_inference_step\. Did you mean 'num_inference_steps'\?$"):
        tiny_pipe(**golden_inputs, **CALL, num_inference_step=2)
