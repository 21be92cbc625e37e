"""The V-Express pipeline, a ``diffusers.DiffusionPipeline``: portrait + speech + V-Kps frames -> video frames.

A call runs, each stage matching the original ``VExpressPipeline`` number for number:

1. check the inputs;
2. the portrait is encoded by the VAE and read once by the reference net, whose transformer
   features every denoising step attends to (``conditioning.py``);
3. speech goes through wav2vec2; its frames are resampled to two per video frame and each
   video frame gets a window of ``2 * (2 * pad + 1)`` of them (zeros past the ends), which the
   audio projection turns into a few tokens (``conditioning.py``);
4. the seeded noise is drawn (in float32 on the CPU, after wav2vec2's LayerDrop draws);
5. the scheduler (DDIM by default) denoises the video latents window by window
   (``context_windows.py``), with the V-Kps guider's features and classifier-free guidance against a
   batch whose audio, V-Kps and reference features are zeros; progress bar and step-end callback;
6. the VAE decodes the latents in chunks;
7. offload hooks put every network back (``enable_model_cpu_offload``).

Unlike the original it computes V-Kps features per window once per job and keeps them up to a
budget (``window_denoiser.py``), keeps long videos' latents in a temp file (memory flat in video
length), decodes and yields frames in chunks, and never truncates the video to whole windows.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

with warnings.catch_warnings():  # diffusers 0.29 warns about its own deprecated import path as its models load
    warnings.filterwarnings("ignore", message=".*Transformer2DModelOutput.*", category=FutureWarning)
    from diffusers import DiffusionPipeline
    from diffusers import __version__ as diffusers_version
    from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.utils.torch_utils import randn_tensor

from vexpress_cli.engine.call_checks import (CallChecks, check_decode_chunk_size, check_output_type,
                                             check_scheduler_name, check_step_end_returned, checked_step_end_latents,
                                             refuse_call_only_arguments, refuse_unknown_arguments)
from vexpress_cli.engine.compile import is_compiled
from vexpress_cli.engine.conditioning import EncodingStages
from vexpress_cli.engine.context_windows import context_windows, windows_per_frame
from vexpress_cli.engine.latent_store import LatentStore
from vexpress_cli.engine.loading import (check_saved_layout_files, import_network_modules, install_log_filters,
                                         is_saved_layout, load_released_components, quiet_loading)
from vexpress_cli.engine.pretrained_options import (align_cpu_weights, cast_and_move, check_saved_layout_keywords,
                                                    checked_save_directory, checked_torch_dtype,
                                                    released_layout_overrides, saved_layout_errors)
from vexpress_cli.engine.median_filter import median_filter_stream
from vexpress_cli.engine.model_source import resolve_model_folder
from vexpress_cli.engine.networks.denoising_unet import ReferenceConditioning
from vexpress_cli.engine.pipeline_output import VExpressPipelineOutput, frames_as, not_finite_error, to_uint8
from vexpress_cli.engine.scheduling import ChunkedStepper, make_scheduler, scheduler_name
from vexpress_cli.engine.window_denoiser import WindowDenoiser, WindowOptions
from vexpress_cli.errors import InputError, parameter
from vexpress_cli.progress import ProgressCallback, no_progress

# Latents and window-prediction sums of a video stay in memory up to this size each; longer
# videos keep them in a temporary file (see latent_store.py), so memory is flat in video length.
LATENTS_MEMORY_BUDGET = 64 * 2**20
# Frames stepped at once when the latents are in a file.
STEP_CHUNK_FRAMES = 64

# progress(stage, done, total) is called with the stages reference, audio, denoise, decode.
install_log_filters()


class VExpressPipeline(EncodingStages, CallChecks, DiffusionPipeline):
    """A ``diffusers.DiffusionPipeline``: load with :meth:`from_pretrained`, call like any diffusers pipeline.

    ``pipe.scheduler`` may be any diffusers scheduler (``DPMSolverMultistepScheduler.from_config(
    pipe.scheduler.config)``); DDIM, the default, is the one that reproduces the original.
    """

    # The order the networks run in; the denoising UNet and the guider alternate within each step.
    model_cpu_offload_seq = "vae->reference_net->audio_encoder->audio_projection->v_kps_guider->denoising_unet"
    # What callback_on_step_end may read and replace (the whole video's latents, read into memory).
    _callback_tensor_inputs = ["latents"]

    def __init__(self, vae, reference_net, denoising_unet, v_kps_guider, audio_encoder, feature_extractor,
                 audio_projection, scheduler):
        super().__init__()
        self.register_modules(vae=vae, reference_net=reference_net, denoising_unet=denoising_unet,
                              v_kps_guider=v_kps_guider, audio_encoder=audio_encoder,
                              feature_extractor=feature_extractor, audio_projection=audio_projection,
                              scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.reference_image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True)
        self.kps_image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True,
                                                     do_normalize=False)
        self.latents_memory_budget = LATENTS_MEMORY_BUDGET
        self.step_chunk_frames = STEP_CHUNK_FRAMES
        self._moved_to_cpu: dict[str, torch.device] = {}  # by save_gpu_memory: network name -> its device
        self._interrupt = False
        # Window batch, V-Kps cache budget and the split across processes (window_denoiser.py).
        self.window_options = WindowOptions()

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, torch_dtype: torch.dtype | None = None,
                        revision: str | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool | None = None, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, **kwargs) -> "VExpressPipeline":
        """Load a hub id (``tk93/V-Express``, ``owner/name@revision``) through the Hugging Face cache, or a
        folder in the released layout (the original's ``model_ckpts``) or the :meth:`save_pretrained` layout.

        ``revision``, ``cache_dir`` and ``local_files_only`` (None: follow ``HF_HUB_OFFLINE``) are those
        of huggingface_hub. ``torch_dtype`` (or ``dtype``) casts every network: a dtype, its name, "auto", or
        diffusers' dict of a dtype per component with "default"; ``device`` moves them there (the same as
        ``.to(device)`` afterwards). Components given by name (``scheduler=...``) replace the folder's.
        Loading prints nothing.
        """
        folder = resolve_model_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir,
                                      local_files_only=local_files_only)
        torch_dtype = checked_torch_dtype(torch_dtype or dtype)
        with quiet_loading():
            if is_saved_layout(folder):
                check_saved_layout_keywords(cls, kwargs)
                check_saved_layout_files(folder)
                import_network_modules()
                # Cast below, not here: diffusers renamed torch_dtype (dtype, 0.36+) and warns on the old name.
                with saved_layout_errors(folder):
                    pipeline = super().from_pretrained(folder, **kwargs)
            else:
                overrides = released_layout_overrides(cls, kwargs)
                pipeline = cls(**{**load_released_components(folder), **overrides})
                pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
            cast_and_move(pipeline, torch_dtype, device)
            align_cpu_weights(pipeline)
        return pipeline

    def save_pretrained(self, save_directory: str | Path, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``, printing nothing (transformers' "Writing model shards" bar is off)."""
        save_directory = checked_save_directory(save_directory)
        with quiet_loading():
            super().save_pretrained(save_directory, *args, **kwargs)

    def use_scheduler(self, name: str) -> None:
        """The sampler called ``name`` (ddim, dpm++, euler, unipc) on the model's noise schedule."""
        check_scheduler_name(name)
        if scheduler_name(self.scheduler) != name:
            self.scheduler = make_scheduler(name, self.scheduler.config)

    def enable_offload(self, mode: str, device: str | torch.device) -> None:
        """``none``: every network on ``device``; ``model``: :meth:`enable_model_cpu_offload`; ``sequential``:
        diffusers' leaf-level group offload (layer by layer, the least memory)."""
        if mode == "model":
            self.enable_model_cpu_offload(device=device)
        elif mode == "sequential":
            if not hasattr(self, "enable_group_offload"):
                raise InputError("Sequential offloading needs a newer diffusers.",
                                 f"It uses diffusers' group offload, which diffusers {diffusers_version} lacks.",
                                 f"Use {parameter('offload', 'model')}, or `pip install -U diffusers`.")
            self.enable_group_offload(onload_device=torch.device(device), offload_type="leaf_level")
        else:
            self.to(device, silence_dtype_warnings=True)

    @property
    def audio_processor(self):
        """The wav2vec2 feature extractor (this pipeline's earlier name for ``feature_extractor``)."""
        return self.feature_extractor

    def networks(self) -> dict[str, torch.nn.Module]:
        """The torch networks among the components, by name."""
        return {name: module for name, module in self.components.items() if isinstance(module, torch.nn.Module)}

    modules = networks  # the earlier pipeline's name for it

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # -- stages ----------------------------------------------------------------------------

    def prepare_latents(self, video_length: int, width: int, height: int, generator) -> torch.Tensor:
        """Seeded initial noise, drawn in float32 on the CPU: the same noise on every device and dtype.

        The original drew it in the pipeline's dtype; in half precision some torch versions then
        produce other numbers for the same seed, so the seed would not mean the same video.
        """
        channels = self.denoising_unet.config.in_channels
        shape = (1, channels, video_length, height // self.vae_scale_factor, width // self.vae_scale_factor)
        noise = randn_tensor(shape, generator=generator, device=torch.device("cpu"), dtype=torch.float32)
        return noise * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def predict_window_noise(self, latents: torch.Tensor, timestep, audio_tokens: torch.Tensor,
                             kps_features: torch.Tensor, reference: ReferenceConditioning,
                             guidance_scale: float) -> torch.Tensor:
        """Guided noise prediction for one window: latents ``[1, 4, n, h, w]``, audio ``[n, tokens, dim]``."""
        do_cfg = guidance_scale > 1.0
        device, dtype = self._execution_device, self.denoising_unet.dtype
        latents = latents.to(device, dtype)
        audio_tokens = audio_tokens.to(device, dtype)
        kps_features = kps_features.to(device, dtype)
        if do_cfg:
            latents = torch.cat([latents, latents])
            audio_tokens = torch.cat([torch.zeros_like(audio_tokens), audio_tokens])
            kps_features = torch.cat([torch.zeros_like(kps_features), kps_features])
        model_input = self.scheduler.scale_model_input(latents, timestep)
        noise = self.denoising_unet(model_input, timestep, audio_tokens, kps_features, reference=reference)
        if do_cfg:
            unconditional, conditional = noise.chunk(2)
            noise = unconditional + guidance_scale * (conditional - unconditional)
        return noise

    # -- the whole call ----------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, reference_image, audio_waveform, video_length: int, width: int = 512, height: int = 512,
                 kps_images=None, num_inference_steps: int = 25, guidance_scale: float = 3.5,
                 context_frames: int = 24, context_overlap: int = 4, reference_attention_weight: float = 1.0,
                 audio_attention_weight: float = 1.0, num_pad_audio_frames: int = 2, generator=None,
                 save_gpu_memory: bool = False, postprocess: bool = False, decode_chunk_size: int = 8,
                 progress: ProgressCallback | None = None, *, latents: torch.Tensor | None = None,
                 output_type: str = "pt", return_dict: bool = True, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 **original_only) -> VExpressPipelineOutput | tuple:
        """Generate the whole video (see :meth:`iter_frames` to stream it chunk by chunk).

        ``output_type``: "pt" (``[1, 3, frames, H, W]`` in [0, 1]), "np", "pil" or "latent" (see
        ``pipeline_output.py``). ``callback_on_step_end(pipe, step, timestep, {"latents": ...})``
        runs after every step and may return replaced latents. Arguments of the original pipeline
        that change nothing here at their defaults (``strength=1``, ``eta=0``, ``do_multi_devices_inference``,
        ...) are accepted so its calls work as they are; another value, or any other name, is an error.
        """
        refuse_unknown_arguments(original_only, CALL_ARGUMENTS)
        check_decode_chunk_size(decode_chunk_size)
        check_output_type(output_type)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        # 1-5. Check the inputs, encode the portrait and the speech, draw the seeded latents and denoise them
        # (denoise_to_store; the store is closed when the block ends, or by denoise_to_store if it raises)
        with self.denoise_to_store(reference_image, audio_waveform, video_length, width, height, kps_images,
                                   num_inference_steps, guidance_scale, context_frames, context_overlap,
                                   reference_attention_weight, audio_attention_weight, num_pad_audio_frames,
                                   generator, save_gpu_memory, progress, latents=latents,
                                   callback_on_step_end=callback_on_step_end,
                                   callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                                   ) as latent_store:
            # 6. Decode
            if output_type == "latent":
                frames = latent_store.read_range(0, latent_store.frames).clone()
            else:
                chunks = self.decode_latents(latent_store, decode_chunk_size, progress)
                chunks = median_filter_stream(chunks) if postprocess else chunks
                frames = frames_as(torch.cat([chunk.float().cpu() for chunk in chunks], dim=1)[None], output_type)
        # 7. Offload every network again (enable_model_cpu_offload)
        self.maybe_free_model_hooks()
        return VExpressPipelineOutput(frames=frames) if return_dict else (frames,)

    def iter_frames(self, *args, postprocess: bool = True, decode_chunk_size: int = 8,
                    progress: ProgressCallback | None = None, **kwargs) -> Iterator[np.ndarray]:
        """Generate and yield ``[n, H, W, 3]`` uint8 RGB chunks as they are decoded (memory flat in length).

        Takes the arguments of :meth:`denoise_to_store` (``__call__``'s but ``output_type``, ``return_dict`` and the
        original pipeline's: a TypeError). Unlike ``__call__`` (which returns the raw frames, as the original
        pipeline did), ``postprocess`` defaults to on: the median filter runs on the 8-bit frames (exactly the
        8-bit image of the float filter).
        """
        refuse_call_only_arguments("iter_frames", kwargs, "yields [n, H, W, 3] uint8 arrays "
                                   "(PIL.Image.fromarray(frame) makes a PIL image of one)")
        check_decode_chunk_size(decode_chunk_size)
        with self.denoise_to_store(*args, progress=progress, **kwargs) as latents:
            chunks = (to_uint8(chunk) for chunk in self.decode_latents(latents, decode_chunk_size, progress))
            if postprocess:
                chunks = median_filter_stream(chunks)
            for chunk in chunks:
                yield chunk.permute(1, 2, 3, 0).cpu().numpy()
        self.maybe_free_model_hooks()

    def denoise(self, *args, **kwargs) -> torch.Tensor:
        """Everything up to the final latents ``[1, 4, frames, h, w]`` (float32, on the CPU).

        Takes the arguments of :meth:`denoise_to_store`; the whole tensor is in memory at the end.
        """
        refuse_call_only_arguments("denoise", kwargs, "returns the final latents (decode them with decode_latents)")
        with self.denoise_to_store(*args, **kwargs) as latents:
            return latents.read_range(0, latents.frames).clone()

    @torch.no_grad()
    def denoise_to_store(self, reference_image, audio_waveform, video_length: int, width: int = 512,
                         height: int = 512, kps_images=None, num_inference_steps: int = 25,
                         guidance_scale: float = 3.5, context_frames: int = 24, context_overlap: int = 4,
                         reference_attention_weight: float = 1.0, audio_attention_weight: float = 1.0,
                         num_pad_audio_frames: int = 2, generator=None, save_gpu_memory: bool = False,
                         progress: ProgressCallback | None = None, *, latents: torch.Tensor | None = None,
                         callback_on_step_end=None,
                         callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",)) -> LatentStore:
        """Stages 1-5 of ``__call__``: the final latents in a :class:`LatentStore` (a temp file for long videos),
        to use in a ``with`` block (which closes it; it is closed already if this raises).

        ``kps_images`` is indexable by frame: PIL images (resized), HxWx3 arrays of the call's size (uint8, or
        floats in [0, 1]), or [3, 2] keypoints drawn on the fly (e.g. a ``[frames, 3, 2]`` array); one per frame.
        """
        # 1. Check inputs
        self.check_inputs(video_length, width, height, kps_images, context_frames, context_overlap,
                          num_pad_audio_frames, num_inference_steps, "pt", callback_on_step_end_tensor_inputs,
                          reference_image=reference_image, audio_waveform=audio_waveform, latents=latents,
                          guidance_scale=guidance_scale, reference_attention_weight=reference_attention_weight,
                          audio_attention_weight=audio_attention_weight, generator=generator,
                          callback_on_step_end=callback_on_step_end)
        report = progress or no_progress
        # 2. Encode the reference portrait (VAE, then the reference net's features)
        conditioning = self.encode_reference_stage(reference_image, width, height, guidance_scale,
                                                   reference_attention_weight, audio_attention_weight,
                                                   save_gpu_memory, report)
        # 3. Encode the speech (wav2vec2, then the audio projection)
        audio_tokens = self.encode_audio_stage(audio_waveform, video_length, num_pad_audio_frames, save_gpu_memory,
                                               report, generator)
        # 4. Prepare the timesteps and the seeded initial latents
        self.scheduler.set_timesteps(num_inference_steps, device="cpu")
        latent_store = self.prepare_latent_store(video_length, width, height, generator, latents)
        try:
            # 5. Denoise, window by window, with the progress bar and the step-end callback
            self.denoising_loop(latent_store, audio_tokens, conditioning, kps_images, guidance_scale, context_frames,
                                context_overlap, width, height, report, callback_on_step_end,
                                callback_on_step_end_tensor_inputs, save_gpu_memory)
        except BaseException:
            latent_store.close()
            raise
        return latent_store

    # -- the stages of a call -------------------------------------------------------------------

    def prepare_latent_store(self, video_length: int, width: int, height: int, generator,
                             latents: torch.Tensor | None = None) -> LatentStore:
        """The seeded initial noise (see :meth:`prepare_latents`) or the given ``latents``, in a store."""
        store = LatentStore(*self._latent_shape(video_length, width, height)[1:],
                            budget_bytes=self.latents_memory_budget)
        if latents is None:
            one_video = isinstance(generator, list)  # diffusers' list of a generator per video: here, one
            store.fill_random(generator[0] if one_video else generator, self.scheduler.init_noise_sigma)
        else:
            store.write_range(0, video_length, latents.float().cpu())
        return store

    def denoising_loop(self, latents: LatentStore, audio_tokens: torch.Tensor, conditioning: ReferenceConditioning,
                       kps_images, guidance_scale: float, context_frames: int, context_overlap: int, width: int,
                       height: int, report: ProgressCallback, callback_on_step_end=None,
                       callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                       save_gpu_memory: bool = False) -> None:
        """Every denoising step over the whole video's latents, kept in ``latents``."""
        timesteps = self.scheduler.timesteps
        self._guidance_scale, self._num_timesteps, self._interrupt = guidance_scale, len(timesteps), False
        windows = context_windows(latents.frames, context_frames, context_overlap)
        counts = torch.tensor(windows_per_frame(windows, latents.frames), dtype=torch.float32)
        counts = counts[None, None, :, None, None]
        noise_sum = LatentStore(*self._latent_shape(latents.frames, width, height)[1:],
                                budget_bytes=self.latents_memory_budget)
        # V-Kps features, audio tokens and frame indices are prepared once for the whole job.
        denoiser = WindowDenoiser(self, windows, kps_images, width, height, audio_tokens, conditioning,
                                  guidance_scale, self.window_options, save_gpu_memory)
        stepper = ChunkedStepper(self.scheduler, latents, self.step_chunk_frames, self.latents_memory_budget)
        window_done = windows_progress(report, len(timesteps) * len(windows), compiling=is_compiled(self))
        with noise_sum, stepper, self.progress_bar(total=len(timesteps)) as progress_bar:
            for step, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                noise_sum.zero()
                denoiser.accumulate(latents, noise_sum, timestep, lambda done: window_done(step * len(windows) + done))
                stepper.step(timestep, noise_sum, counts)
                if callback_on_step_end is not None:
                    self._step_end_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, step, timestep,
                                            latents)
                progress_bar.update()

    def _step_end_callback(self, callback, tensor_inputs: Sequence[str], step: int, timestep, latents: LatentStore):
        """diffusers' callback_on_step_end: it sees the whole video's latents and may return new ones."""
        values = {"latents": latents.read_range(0, latents.frames)} if "latents" in tensor_inputs else {}
        returned = callback(self, step, timestep, dict(values))
        check_step_end_returned(returned)
        returned = returned or {}
        if "latents" in values:  # returned, or changed in place
            new = checked_step_end_latents(returned.get("latents", values["latents"]), values["latents"])
            latents.write_range(0, latents.frames, new.float().cpu())

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor | LatentStore, chunk_size: int = 8,
                       progress: ProgressCallback | None = None) -> Iterator[torch.Tensor]:
        """Decode ``[1, 4, frames, h, w]`` latents chunk by chunk into ``[3, n, H, W]`` frames in [0, 1]."""
        self._bring_back("vae")
        for hook in getattr(self, "_all_hooks", []):  # model offload: the UNet leaves before the VAE decodes
            hook.offload()
        device, dtype = self._execution_device, self.vae.dtype
        store = latents if isinstance(latents, LatentStore) else LatentStore.holding(latents)
        num_frames = store.frames
        for start in range(0, num_frames, chunk_size):
            chunk = store.read_range(start, min(start + chunk_size, num_frames))[0].transpose(0, 1)
            chunk = chunk.to(device, dtype) / self.vae.config.scaling_factor
            images = self.vae.decode(chunk).sample
            if not torch.isfinite(images).all():  # would be written as black frames, and exit 0
                raise not_finite_error(start, min(start + chunk_size, num_frames))
            yield (images / 2 + 0.5).clamp(0, 1).transpose(0, 1)
            if progress:
                progress("decode", min(start + chunk_size, num_frames), num_frames)

    # -- helpers -------------------------------------------------------------------------------

    def _latent_shape(self, video_length: int, width: int, height: int) -> tuple[int, ...]:
        return (1, self.denoising_unet.config.in_channels, video_length, height // self.vae_scale_factor,
                width // self.vae_scale_factor)


def windows_progress(report: ProgressCallback, total: int, compiling: bool) -> Callable[[int], None]:
    """``window_done(windows done in all)`` reporting "denoise"; a compiled UNet's first call is a "compile" stage
    of its own (minutes with a cold compile cache), so the bar does not seem stuck at 0."""
    pending = [compiling]
    if compiling:
        report("compile", 0, 1)

    def window_done(done: int) -> None:
        if pending[0]:
            pending[0] = False
            report("compile", 1, 1)
        report("denoise", done, total)

    return window_done


# What a caller may pass to __call__ by name (for the "Did you mean" of a misspelt one).
CALL_ARGUMENTS = tuple(name for name, argument in inspect.signature(VExpressPipeline.__call__).parameters.items()
                       if argument.kind in (argument.POSITIONAL_OR_KEYWORD, argument.KEYWORD_ONLY) and name != "self")
