"""VExpressPipeline as a diffusers user meets it (issue 13 items 1 and 5): a DiffusionPipeline with
registered components, save_pretrained/from_pretrained, schedulers, offloading, callbacks, output types."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       UniPCMultistepScheduler)

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine.latent_store import LatentStore
from vexpress_cli.engine.scheduling import SCHEDULERS, ChunkedStepper, make_scheduler
from vexpress_cli.errors import InputError

from conftest import REPO_ROOT, TINY_MODEL_DIR

COMPONENTS = ("vae", "reference_net", "denoising_unet", "v_kps_guider", "audio_encoder", "feature_extractor",
              "audio_projection", "scheduler")
FRAMES = 12
CALL = dict(video_length=FRAMES, width=64, height=64, num_inference_steps=3, context_frames=8, context_overlap=2)


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


@pytest.fixture(scope="module")
def inputs(golden_inputs):
    return golden_inputs


def frames(pipe, inputs, seed=4, **overrides):
    return pipe(**inputs, **{**CALL, **overrides}, generator=torch.manual_seed(seed)).frames


@pytest.fixture(scope="module")
def ddim_frames(pipe, inputs):
    return frames(pipe, inputs)


@pytest.fixture
def scheduler_restored(pipe):
    original = pipe.scheduler
    yield
    pipe.scheduler = original


def test_is_a_diffusion_pipeline_with_its_components_registered(pipe):
    assert isinstance(pipe, DiffusionPipeline)
    assert set(pipe.components) == set(COMPONENTS)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.config["denoising_unet"] == ("vexpress_cli.engine.networks.denoising_unet", "VExpressDenoisingUNet")


@pytest.mark.slow
def test_loading_casting_saving_and_loading_the_saved_pipeline_print_nothing(tmp_path):
    """One process (each costs seconds of imports) for the steps that printed: transformers' wav2vec2 printed a
    "Writing model shards" bar on every save_pretrained; loading a saved pipeline with torch_dtype also casts."""
    saved = str(tmp_path / "saved")
    script = ("import torch\nfrom vexpress_cli import VExpressPipeline\n"
              f"pipe = VExpressPipeline.from_pretrained({str(TINY_MODEL_DIR)!r}, torch_dtype=torch.float32)\n"
              "pipe.to('cpu', torch.bfloat16)\npipe.to(dtype=torch.float32)\n"
              f"pipe.save_pretrained({saved!r})\n"
              f"again = VExpressPipeline.from_pretrained({saved!r}, torch_dtype=torch.float16)\n"
              "print({network.dtype for network in again.networks().values()})\n"
              # .bin weights: diffusers logged an "error" per component before falling back to them.
              f"pipe.save_pretrained({saved + '-bin'!r}, safe_serialization=False)\n"
              f"VExpressPipeline.from_pretrained({saved + '-bin'!r})\n")
    # Every warning shown, but ResourceWarning: torch 2.6's torch.distributed.nn.jit leaves a TemporaryDirectory
    # from its import that only warns at exit, and only under -W always.
    result = subprocess.run([sys.executable, "-W", "always", "-W", "ignore::ResourceWarning", "-c", script],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("{torch.float16}\n", "")
    assert (tmp_path / "saved" / "audio_encoder" / "model.safetensors").is_file()


def test_torch_dtype_casts_every_network():
    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, torch_dtype=torch.bfloat16)
    assert {network.dtype for network in pipe.networks().values()} == {torch.bfloat16}


def test_a_component_given_by_name_replaces_the_released_folders_and_other_keywords_are_refused(pipe):
    """diffusers replaces a component passed to from_pretrained; the released layout dropped every keyword."""
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    assert VExpressPipeline.from_pretrained(TINY_MODEL_DIR, scheduler=euler).scheduler is euler
    with pytest.raises(TypeError, match="unexpected keyword arguments for a folder in the released layout: foo_bar, "
                                        "variant. It takes the components by name"):
        VExpressPipeline.from_pretrained(TINY_MODEL_DIR, foo_bar=1, variant="fp16")


@pytest.mark.parametrize(("torch_dtype", "expected"), [
    ("float16", dict.fromkeys(COMPONENTS, torch.float16)),
    ("auto", dict.fromkeys(COMPONENTS, torch.float32)),
    ({"default": torch.bfloat16, "vae": "float32"}, {**dict.fromkeys(COMPONENTS, torch.bfloat16), "vae": torch.float32}),
])
def test_torch_dtype_takes_diffusers_forms(torch_dtype, expected):
    loaded = VExpressPipeline.from_pretrained(TINY_MODEL_DIR, torch_dtype=torch_dtype)
    assert {name: network.dtype for name, network in loaded.networks().items()} == {
        name: expected[name] for name in loaded.networks()}


def test_a_torch_dtype_that_is_no_float_type_is_an_input_error():
    with pytest.raises(InputError, match=r"torch_dtype is dtype torch.int8\. The networks compute in a floating"):
        VExpressPipeline.from_pretrained(TINY_MODEL_DIR, torch_dtype=torch.int8)


def test_save_pretrained_refuses_an_empty_path_or_a_file_before_writing(pipe, tmp_path, monkeypatch):
    """"" saved every component folder into the current folder and then failed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(InputError, match="save_directory is str ''. An empty text would save into the current"):
        pipe.save_pretrained("")
    with pytest.raises(InputError, match="Cannot save the pipeline in afile: it is a file, not a folder"):
        pipe.save_pretrained("afile")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile"]


@pytest.fixture(scope="module")
def saved_folder(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "pipeline"
    pipe.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda folder: (folder / "model_index.json").write_text("{bad"), "is not a valid JSON file"),
    (lambda folder: (folder / "vae" / "config.json").unlink(), "no file named config.json"),
    (lambda folder: (folder / "denoising_unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64),
     "Unable to load weights"),
])
def test_a_damaged_saved_folder_is_a_model_folder_error(saved_folder, tmp_path, damage, reason):
    """diffusers' OSError and ValueError came through raw; the released layout's damage was already named."""
    import shutil

    from vexpress_cli.errors import ModelFolderError

    damaged = shutil.copytree(saved_folder, tmp_path / "damaged")
    damage(damaged)
    expected = f"Cannot load the pipeline saved in {re.escape(str(damaged))}\\. diffusers could not read it: .*{reason}"
    with pytest.raises(ModelFolderError, match=expected + ".*Save it again"):
        VExpressPipeline.from_pretrained(damaged)


def test_save_pretrained_then_from_pretrained_gives_identical_frames(pipe, inputs, ddim_frames, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model_index.json").is_file()
    reloaded = VExpressPipeline.from_pretrained(tmp_path / "saved")
    reloaded.set_progress_bar_config(disable=True)
    assert set(reloaded.components) == set(COMPONENTS)
    assert torch.equal(frames(reloaded, inputs), ddim_frames)


def test_every_weight_sits_at_a_64_byte_aligned_address_from_either_layout(pipe, saved_folder):
    """A .bin keeps each tensor at a multiple of 64 bytes, a .safetensors (the saved layout) at 8 past its header,
    and MKL's float32 kernels add in another order for weights off 16-byte alignment: the same weights reloaded
    gave frames 4e-5 apart. Checked here as addresses, which do not depend on the CPU's kernels."""
    reloaded = VExpressPipeline.from_pretrained(saved_folder)
    for pipeline in (pipe, reloaded):
        misaligned = [f"{name}.{key}" for name, network in pipeline.networks().items()
                      for key, tensor in [*network.named_parameters(), *network.named_buffers()]
                      if tensor.data_ptr() % 64]
        assert misaligned == []


@pytest.mark.parametrize("scheduler_class", [DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                                             UniPCMultistepScheduler, DDIMScheduler])
def test_any_diffusers_scheduler_can_be_set_and_runs(pipe, inputs, ddim_frames, scheduler_class, scheduler_restored):
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    video = frames(pipe, inputs)
    assert video.shape == ddim_frames.shape and torch.isfinite(video).all()
    assert torch.equal(video, ddim_frames) == (scheduler_class is DDIMScheduler)


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.slow
def test_latents_in_a_file_stepped_in_chunks_match_one_step_in_memory(pipe, inputs, name, scheduler_restored):
    """Multistep schedulers keep state across steps: chunked stepping keeps each chunk's own history."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    kwargs = {**inputs, **CALL}
    kwargs.pop("video_length")
    in_memory = pipe.denoise(video_length=FRAMES, generator=torch.manual_seed(4), **kwargs)
    budget, chunk = pipe.latents_memory_budget, pipe.step_chunk_frames
    pipe.latents_memory_budget, pipe.step_chunk_frames = 0, 5  # chunks of 5, 5 and 2 frames, in a temp file
    try:
        in_file = pipe.denoise(video_length=FRAMES, generator=torch.manual_seed(4), **kwargs)
    finally:
        pipe.latents_memory_budget, pipe.step_chunk_frames = budget, chunk
    assert torch.equal(in_file, in_memory)


def fake_denoise(scheduler, store_budget: int, chunk_frames: int, naive: bool = False) -> torch.Tensor:
    """A scheduler run over 10 frames with a fixed stand-in for the UNet."""
    scheduler.set_timesteps(6)
    latents = LatentStore(4, 10, 4, 4, budget_bytes=store_budget)
    latents.fill_random(torch.manual_seed(0), scheduler.init_noise_sigma)
    noise_sum, counts = LatentStore(4, 10, 4, 4, budget_bytes=store_budget), torch.ones(1, 1, 10, 1, 1)
    with ChunkedStepper(scheduler, latents, chunk_frames, store_budget) as stepper:
        for timestep in scheduler.timesteps:
            noise_sum.write_range(0, 10, torch.sin(latents.read_range(0, 10) * 1e-3 + timestep.float() * 1e-2))
            if naive:  # one scheduler stepped once per chunk: what the chunked stepper must avoid
                for start, stop in latents.chunks(chunk_frames):
                    stepped = scheduler.step(noise_sum.read_range(start, stop), timestep, latents.read_range(start, stop))
                    latents.write_range(start, stop, stepped.prev_sample)
            else:
                stepper.step(timestep, noise_sum, counts)
    return latents.read_range(0, 10).clone()


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_chunked_stepper_gives_the_numbers_of_one_call(name):
    whole = fake_denoise(make_scheduler(name), store_budget=2**30, chunk_frames=64)
    assert torch.equal(fake_denoise(make_scheduler(name), store_budget=0, chunk_frames=3), whole)


def test_stepping_a_multistep_scheduler_once_per_chunk_breaks_it():
    """Its step counter advances once per chunk: it runs past its last step (what the stepper prevents)."""
    with pytest.raises(IndexError):
        fake_denoise(make_scheduler("dpm++"), store_budget=0, chunk_frames=3, naive=True)


@pytest.mark.slow
def test_model_cpu_offload_on_cpu_gives_the_same_frames(inputs, ddim_frames, like_the_real_command):
    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_model_cpu_offload(device="cpu")
    assert len(pipe._all_hooks) == len(pipe.networks())
    assert torch.equal(frames(pipe, inputs), ddim_frames)


@pytest.mark.skipif(not hasattr(DiffusionPipeline, "enable_group_offload"), reason="diffusers before group offload")
def test_sequential_offload_is_leaf_level_group_offload_and_gives_the_same_frames(inputs, ddim_frames,
                                                                                  like_the_real_command):
    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_offload("sequential", "cpu")
    assert hasattr(pipe.denoising_unet.conv_in, "_diffusers_hook")
    assert torch.equal(frames(pipe, inputs), ddim_frames)


@pytest.mark.slow
def test_step_end_callback_sees_every_step_and_can_change_the_latents(pipe, inputs, ddim_frames):
    seen = []

    def record(pipeline, step, timestep, values):
        seen.append((step, int(timestep), tuple(values["latents"].shape)))
        return values

    assert torch.equal(frames(pipe, inputs, callback_on_step_end=record), ddim_frames)
    assert [step for step, _, _ in seen] == [0, 1, 2]
    assert [timestep for _, timestep, _ in seen] == pipe.scheduler.timesteps.tolist()
    assert {shape for _, _, shape in seen} == {(1, 4, FRAMES, 8, 8)}

    def brighten(pipeline, step, timestep, values):
        return {"latents": values["latents"] + 0.5}

    assert not torch.allclose(frames(pipe, inputs, callback_on_step_end=brighten), ddim_frames, atol=1e-3)


def test_unknown_callback_tensor_input_is_an_input_error(pipe, inputs):
    with pytest.raises(InputError, match="noise_pred"):
        frames(pipe, inputs, callback_on_step_end=lambda *args: {}, callback_on_step_end_tensor_inputs=["noise_pred"])


@pytest.mark.slow
def test_output_types_are_what_diffusers_video_pipelines_return(pipe, inputs, ddim_frames):
    as_np = frames(pipe, inputs, output_type="np")
    assert isinstance(as_np, np.ndarray) and as_np.shape == (1, FRAMES, 64, 64, 3)
    np.testing.assert_array_equal(as_np, ddim_frames.permute(0, 2, 3, 4, 1).numpy())
    as_pil = frames(pipe, inputs, output_type="pil")
    assert len(as_pil) == 1 and len(as_pil[0]) == FRAMES
    assert all(isinstance(image, PIL.Image.Image) and image.size == (64, 64) for image in as_pil[0])
    expected_first = (ddim_frames[0, :, 0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(as_pil[0][0]), expected_first)
    latents = frames(pipe, inputs, output_type="latent")
    assert latents.shape == (1, 4, FRAMES, 8, 8)
    as_tuple = pipe(**inputs, **CALL, generator=torch.manual_seed(4), return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], ddim_frames)


@pytest.mark.parametrize("postprocess, sizes", [(True, [3, 4, 1]), (False, [4, 4])])
def test_iter_frames_chunk_sizes_lag_one_frame_behind_the_decoder_with_the_median_filter(pipe, inputs, postprocess,
                                                                                     sizes):
    """docs/pipeline.md, Streaming: the filter needs each frame's successor, so it yields one frame later."""
    call = {**CALL, "video_length": 8, "num_inference_steps": 1}
    chunks = list(pipe.iter_frames(**inputs, **call, decode_chunk_size=4, postprocess=postprocess,
                                   generator=torch.manual_seed(1)))
    assert [len(chunk) for chunk in chunks] == sizes
    assert {chunk.shape[1:] for chunk in chunks} == {(64, 64, 3)}


def test_unknown_output_type_is_an_input_error(pipe, inputs):
    with pytest.raises(InputError, match="output_type"):
        frames(pipe, inputs, output_type="gif")


@pytest.mark.slow
def test_generator_decides_the_noise(pipe, inputs):
    def with_generator(seed):
        return pipe(**inputs, **CALL, generator=torch.Generator().manual_seed(seed)).frames

    assert torch.equal(with_generator(1), with_generator(1))
    assert not torch.equal(with_generator(1), with_generator(2))


@pytest.mark.slow
def test_progress_bar_shows_unless_disabled(inputs, capfd, like_the_real_command):
    pipe = VExpressPipeline.from_pretrained(TINY_MODEL_DIR)
    frames(pipe, inputs, num_inference_steps=2)
    assert "2/2" in capfd.readouterr().err
    pipe.set_progress_bar_config(disable=True)
    frames(pipe, inputs, num_inference_steps=2)
    assert "2/2" not in capfd.readouterr().err


@pytest.mark.slow
def test_loads_by_hub_id_from_the_hugging_face_cache(fake_hf_cache, inputs, ddim_frames, like_the_real_command):
    pipe = VExpressPipeline.from_pretrained("tk93/V-Express")
    pipe.set_progress_bar_config(disable=True)
    assert torch.equal(frames(pipe, inputs), ddim_frames)
    pinned = VExpressPipeline.from_pretrained("tk93/V-Express", revision=fake_hf_cache.commit, local_files_only=True)
    assert set(pinned.components) == set(COMPONENTS)


def test_sequential_offload_without_group_offload_says_to_upgrade_diffusers(pipe, monkeypatch):
    monkeypatch.delattr(DiffusionPipeline, "enable_group_offload", raising=False)
    with pytest.raises(InputError, match="needs a newer diffusers.*offload=\"model\""):
        pipe.enable_offload("sequential", "cpu")


@pytest.mark.parametrize("layout", ["saved", "released"])
def test_a_misspelt_component_keyword_is_a_type_error_in_either_layout(pipe, saved_folder, layout):
    """The saved layout ignored schedular= silently (diffusers logs that it ignores it, and loading is quiet)."""
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    folder = saved_folder if layout == "saved" else TINY_MODEL_DIR
    with pytest.raises(TypeError, match=r"from_pretrained\(\) got unexpected keyword arguments.*: schedular\. Did "
                                        r"you mean 'scheduler'\? It takes the components by name"):
        VExpressPipeline.from_pretrained(folder, schedular=euler)


def test_diffusers_loading_options_and_components_still_load_a_saved_folder(pipe, saved_folder):
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    loaded = VExpressPipeline.from_pretrained(saved_folder, scheduler=euler, use_safetensors=True)
    assert loaded.scheduler is euler
