"""The V-Express pipeline: reference portrait + speech + V-Kps frames -> video frames.

Stages, each matching the original ``VExpressPipeline`` number for number:

1. the portrait is encoded by the VAE and read once by the reference net, whose transformer
   features every denoising step attends to;
2. speech goes through wav2vec2; its frames are resampled to two per video frame and each
   video frame gets a window of ``2 * (2 * pad + 1)`` of them (zeros past the ends), which the
   audio projection turns into a few tokens;
3. V-Kps images go through the guider;
4. DDIM denoises the video latents window by window (``context.py``), with classifier-free
   guidance against a batch whose audio, V-Kps and reference features are zeros;
5. the VAE decodes the latents in chunks.

Unlike the original it computes V-Kps features per window once per job and keeps them up to a
budget (memory flat in video length, see ``window_denoiser.py``), decodes and yields frames in
chunks, and never truncates the video to whole windows.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor

from vexpress_cli.engine.architecture import Architecture
from vexpress_cli.engine.context_windows import context_windows, windows_per_frame
from vexpress_cli.engine.latent_store import LatentStore
from vexpress_cli.errors import InputError, ModelFolderError, parameter
from vexpress_cli.progress import ProgressCallback, no_progress
from vexpress_cli.engine.model_folder import ModelFolder
from vexpress_cli.engine.checkpoints import check_model_files, load_networks, pretrained_load_errors
from vexpress_cli.engine.networks.denoising_unet import ReferenceConditioning
from vexpress_cli.engine.networks.reference_net import collect_reference_features
from vexpress_cli.engine.networks.speech_encoder import encode_speech
from vexpress_cli.engine.median_filter import median_filter_stream
from vexpress_cli.engine.window_denoiser import WindowDenoiser, WindowOptions

# inference_v2.yaml of the original: DDIM with zero-terminal-SNR v-prediction.
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}
AUDIO_SAMPLE_RATE = 16000
# Audio windows projected in one batch.
AUDIO_PROJECTION_BATCH = 256
# Latents and window-prediction sums of a video stay in memory up to this size each; longer
# videos keep them in a temporary file (see latent_store.py), so memory is flat in video length.
LATENTS_MEMORY_BUDGET = 64 * 2**20
# Frames stepped at once when the latents are in a file.
STEP_CHUNK_FRAMES = 64

# Arguments of the original pipeline's __call__ that do not change its result at their defaults.
ORIGINAL_NO_OP_ARGUMENTS = {"strength", "num_images_per_prompt", "eta", "output_type", "return_dict", "callback",
                            "callback_steps", "context_schedule", "do_multi_devices_inference"}

# progress(stage, done, total) is called with the stages reference, audio, denoise, decode.


@dataclass
class VExpressPipelineOutput:
    frames: torch.Tensor
    """``[1, 3, frames, height, width]`` in [0, 1]."""


class VExpressPipeline:
    """Load with :meth:`from_pretrained`, call like a diffusers pipeline."""

    def __init__(self, vae, reference_net, denoising_unet, v_kps_guider, audio_encoder, audio_processor,
                 audio_projection, scheduler, architecture: Architecture | None = None):
        self.vae = vae
        self.reference_net = reference_net
        self.denoising_unet = denoising_unet
        self.v_kps_guider = v_kps_guider
        self.audio_encoder = audio_encoder
        self.audio_processor = audio_processor
        self.audio_projection = audio_projection
        self.scheduler = scheduler
        self.architecture = architecture
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.reference_image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True)
        self.kps_image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True,
                                                     do_normalize=False)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.latents_memory_budget = LATENTS_MEMORY_BUDGET
        # Window batch, V-Kps cache budget and the split across processes (window_denoiser.py).
        self.window_options = WindowOptions()

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> "VExpressPipeline":
        """Load a model folder in the released layout (see ``vexpress_cli.engine.model_folder``)."""
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

        folder = ModelFolder(Path(model_dir))
        if not folder.root.is_dir():
            raise ModelFolderError(f"The model folder {folder.root} does not exist.",
                                   "V-Express needs its released weights in one folder.",
                                   f"Pass {parameter('model_dir')}, set VEXPRESS_MODEL_DIR, or run `vexpress models download`.")
        check_model_files(folder)  # before reading gigabytes of checkpoints
        architecture = Architecture.from_folder(folder)
        networks = load_networks(folder, architecture)
        with pretrained_load_errors(folder):
            vae = AutoencoderKL.from_pretrained(folder.vae)
            audio_encoder = Wav2Vec2Model.from_pretrained(folder.audio_encoder)
            audio_processor = Wav2Vec2FeatureExtractor.from_pretrained(folder.audio_encoder)
        pipeline = cls(vae=vae, audio_encoder=audio_encoder, audio_processor=audio_processor,
                       scheduler=DDIMScheduler(**SCHEDULER_CONFIG), architecture=architecture, **networks)
        return pipeline.to(device, dtype)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "vae": self.vae, "reference_net": self.reference_net, "denoising_unet": self.denoising_unet,
            "v_kps_guider": self.v_kps_guider, "audio_encoder": self.audio_encoder,
            "audio_projection": self.audio_projection,
        }

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "VExpressPipeline":
        self.device = torch.device(device) if device is not None else self.device
        self.dtype = dtype or self.dtype
        for module in self.modules().values():
            module.to(device=self.device, dtype=self.dtype).eval()
        return self

    # -- stages ----------------------------------------------------------------------------

    @torch.no_grad()
    def encode_reference(self, reference_image: PIL.Image.Image, width: int, height: int) -> torch.Tensor:
        """VAE latent mean of the portrait times the SD scaling factor: ``[1, 4, h, w]``."""
        pixels = self.reference_image_processor.preprocess(reference_image, height=height, width=width)
        pixels = pixels.to(device=self._device_of(self.vae), dtype=self.dtype)
        return self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def reference_conditioning(self, reference_latents: torch.Tensor, do_cfg: bool, reference_attention_weight: float,
                               audio_attention_weight: float) -> ReferenceConditioning:
        features = collect_reference_features(self.reference_net, reference_latents.to(self._device_of(self.reference_net)))
        if do_cfg:
            features = {name: torch.cat([torch.zeros_like(value), value]) for name, value in features.items()}
        features = {name: value.to(self.device, self.dtype) for name, value in features.items()}
        return ReferenceConditioning(features, reference_attention_weight, audio_attention_weight)

    @torch.no_grad()
    def encode_audio(self, audio_waveform: torch.Tensor | np.ndarray, video_length: int,
                     num_pad_audio_frames: int) -> torch.Tensor:
        """Audio tokens of every frame, ``[video_length, tokens, dim]`` (conditional half only)."""
        waveform = torch.as_tensor(audio_waveform, dtype=torch.float32).reshape(-1).numpy()
        inputs = self.audio_processor(waveform, sampling_rate=AUDIO_SAMPLE_RATE, return_tensors="pt").input_values
        encoder_device = self._device_of(self.audio_encoder)
        rng_before = torch.get_rng_state()
        hidden = encode_speech(self.audio_encoder, inputs.to(encoder_device, self.dtype))
        if torch.equal(rng_before, torch.get_rng_state()):
            self._draw_like_original_layerdrop()
        # Two audio features per video frame, linearly resampled in float32 as the original does.
        per_frame = F.interpolate(hidden.float().transpose(1, 2), size=2 * video_length, mode="linear")
        per_frame = per_frame[0].transpose(0, 1).to(hidden.dtype)
        window = 2 * (2 * num_pad_audio_frames + 1)
        padding = per_frame.new_zeros(2 * num_pad_audio_frames, per_frame.shape[1])
        padded = torch.cat([padding, per_frame, padding])
        windows = padded.unfold(0, window, 2).transpose(1, 2)  # [video_length, window, dim]
        projection_device = self._device_of(self.audio_projection)
        tokens = [self.audio_projection(chunk.to(projection_device)) for chunk in windows.split(AUDIO_PROJECTION_BATCH)]
        return torch.cat(tokens)

    def _draw_like_original_layerdrop(self) -> None:
        """Advance torch's global RNG as the original's wav2vec2 did.

        With transformers 4.41 (the original's), wav2vec2's encoder drew one ``torch.rand([])``
        per layer for LayerDrop even in eval mode. The original seeds with
        ``torch.manual_seed(seed)`` and draws the initial noise after the audio encoder, so
        these draws decide its noise. Newer transformers no longer draw; drawing here keeps
        ``seed=N`` giving the original's video for the same seed.
        """
        for _ in range(self.audio_encoder.config.num_hidden_layers):
            torch.rand([])

    @torch.no_grad()
    def kps_features(self, kps_images: torch.Tensor) -> torch.Tensor:
        """Guider features ``[1, C, n, h, w]`` of V-Kps images ``[1, 3, n, H, W]`` in [0, 1]."""
        return self.v_kps_guider(kps_images.to(self._device_of(self.v_kps_guider), self.dtype))

    def kps_image_tensor(self, kps_source, frame_indices: Sequence[int], width: int, height: int) -> torch.Tensor:
        """V-Kps images of the given frames as ``[1, 3, n, H, W]`` in [0, 1]."""
        return torch.stack([self._kps_image(kps_source, index, width, height) for index in frame_indices], dim=1)[None]

    def _kps_image(self, kps_source, index: int, width: int, height: int) -> torch.Tensor:
        item = kps_source[index]
        if isinstance(item, PIL.Image.Image):
            return self.kps_image_processor.preprocess(item, height=height, width=width)[0]
        array = np.asarray(item)
        if array.shape in ((3, 2), (5, 2)):
            from vexpress_cli.kps.drawing import draw_kps_image

            array = draw_kps_image(height, width, array[:3])
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0

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
        latents = latents.to(self.device, self.dtype)
        audio_tokens = audio_tokens.to(self.device, self.dtype)
        kps_features = kps_features.to(self.device, self.dtype)
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

    def __call__(self, reference_image, audio_waveform, video_length: int, width: int = 512, height: int = 512,
                 kps_images=None, num_inference_steps: int = 25, guidance_scale: float = 3.5,
                 context_frames: int = 24, context_overlap: int = 4, reference_attention_weight: float = 1.0,
                 audio_attention_weight: float = 1.0, num_pad_audio_frames: int = 2, generator=None,
                 save_gpu_memory: bool = False, postprocess: bool = False, decode_chunk_size: int = 8,
                 progress: ProgressCallback | None = None, **original_only) -> VExpressPipelineOutput:
        """Generate the whole video as one tensor (see :meth:`iter_frames` to stream it).

        Arguments of the original pipeline that change nothing here (``strength=1``,
        ``output_type``, ``do_multi_devices_inference``, ...) are accepted so its calls work as
        they are; any other name is an error.
        """
        unknown = set(original_only) - ORIGINAL_NO_OP_ARGUMENTS
        if unknown:
            raise TypeError(f"VExpressPipeline() got unexpected arguments: {', '.join(sorted(unknown))}")
        with self.denoise_to_store(reference_image, audio_waveform, video_length, width, height, kps_images,
                                   num_inference_steps, guidance_scale, context_frames, context_overlap,
                                   reference_attention_weight, audio_attention_weight, num_pad_audio_frames,
                                   generator, save_gpu_memory, progress) as latents:
            chunks = self.decode_latents(latents, decode_chunk_size, progress)
            if postprocess:
                chunks = median_filter_stream(chunks)
            frames = torch.cat([chunk.float().cpu() for chunk in chunks], dim=1)[None]
        return VExpressPipelineOutput(frames=frames)

    def iter_frames(self, *args, postprocess: bool = True, decode_chunk_size: int = 8,
                    progress: ProgressCallback | None = None, **kwargs) -> Iterator[np.ndarray]:
        """Generate and yield ``[n, H, W, 3]`` uint8 RGB chunks as they are decoded.

        Takes the arguments of :meth:`denoise`. Unlike ``__call__`` (which returns the raw
        frames, as the original pipeline did), ``postprocess`` defaults to on: the median filter
        runs on the 8-bit frames (exactly the 8-bit image of the float filter, see ``postprocess.py``).
        """
        with self.denoise_to_store(*args, progress=progress, **kwargs) as latents:
            chunks = (to_uint8(chunk) for chunk in self.decode_latents(latents, decode_chunk_size, progress))
            if postprocess:
                chunks = median_filter_stream(chunks)
            for chunk in chunks:
                yield chunk.permute(1, 2, 3, 0).cpu().numpy()

    def denoise(self, *args, **kwargs) -> torch.Tensor:
        """Everything up to the final latents ``[1, 4, frames, h, w]`` (float32, on the CPU).

        Takes the arguments of :meth:`denoise_to_store`; the whole tensor is in memory at the end.
        """
        with self.denoise_to_store(*args, **kwargs) as latents:
            return latents.read_range(0, latents.frames).clone()

    @torch.no_grad()
    def denoise_to_store(self, reference_image, audio_waveform, video_length: int, width: int = 512,
                         height: int = 512, kps_images=None, num_inference_steps: int = 25,
                         guidance_scale: float = 3.5, context_frames: int = 24, context_overlap: int = 4,
                         reference_attention_weight: float = 1.0, audio_attention_weight: float = 1.0,
                         num_pad_audio_frames: int = 2, generator=None, save_gpu_memory: bool = False,
                         progress: ProgressCallback | None = None) -> LatentStore:
        """Everything up to the final latents, kept in a :class:`LatentStore` (a temp file for long videos).

        ``kps_images`` is indexable by frame: PIL images, HxWx3 uint8 arrays, or [3, 2]
        keypoints drawn on the fly (e.g. a ``[frames, 3, 2]`` array); one per frame is required.
        """
        self._check_call(video_length, width, height, kps_images, context_frames, context_overlap,
                         num_pad_audio_frames, num_inference_steps)
        self.to(self.device)  # networks a previous save_gpu_memory call left on the CPU come back
        report = progress or no_progress
        do_cfg = guidance_scale > 1.0

        report("reference", 0, 1)
        reference_latents = self.encode_reference(reference_image, width, height)
        conditioning = self.reference_conditioning(reference_latents, do_cfg, reference_attention_weight,
                                                   audio_attention_weight)
        if save_gpu_memory:
            self._offload(self.reference_net, self.vae)
        report("reference", 1, 1)

        report("audio", 0, 1)
        audio_tokens = self.encode_audio(audio_waveform, video_length, num_pad_audio_frames).cpu()
        if save_gpu_memory:
            self._offload(self.audio_encoder, self.audio_projection)
        report("audio", 1, 1)

        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        latents, noise_sum = self._latent_stores(video_length, width, height)
        latents.fill_random(generator, self.scheduler.init_noise_sigma)
        windows = context_windows(video_length, context_frames, context_overlap)
        counts = torch.tensor(windows_per_frame(windows, video_length), dtype=torch.float32)[None, None, :, None, None]
        total = len(self.scheduler.timesteps) * len(windows)

        # V-Kps features, audio tokens and frame indices are prepared once for the whole job.
        denoiser = WindowDenoiser(self, windows, kps_images, width, height, audio_tokens, conditioning,
                                  guidance_scale, self.window_options, save_gpu_memory)
        with noise_sum:
            for step, timestep in enumerate(self.scheduler.timesteps):
                noise_sum.zero()
                denoiser.accumulate(latents, noise_sum, timestep,
                                    lambda done: report("denoise", step * len(windows) + done, total))
                # DDIM's step is elementwise, so a long video steps chunk by chunk with the same numbers.
                for start, stop in latents.chunks(STEP_CHUNK_FRAMES):
                    mean_noise = noise_sum.read_range(start, stop) / counts[:, :, start:stop]
                    stepped = self.scheduler.step(mean_noise, timestep.cpu(), latents.read_range(start, stop))
                    latents.write_range(start, stop, stepped.prev_sample)
        return latents

    def _latent_stores(self, video_length: int, width: int, height: int) -> tuple[LatentStore, LatentStore]:
        """The latents and the window-prediction sums of the whole video (in a temp file past the budget)."""
        shape = (self.denoising_unet.config.in_channels, video_length, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        return (LatentStore(*shape, budget_bytes=self.latents_memory_budget),
                LatentStore(*shape, budget_bytes=self.latents_memory_budget))

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor | LatentStore, chunk_size: int = 8,
                       progress: ProgressCallback | None = None) -> Iterator[torch.Tensor]:
        """Decode ``[1, 4, frames, h, w]`` latents chunk by chunk into ``[3, n, H, W]`` frames in [0, 1]."""
        self.vae.to(self.device)
        store = latents if isinstance(latents, LatentStore) else LatentStore.holding(latents)
        num_frames = store.frames
        for start in range(0, num_frames, chunk_size):
            chunk = store.read_range(start, min(start + chunk_size, num_frames))[0].transpose(0, 1)
            chunk = chunk.to(self.device, self.dtype) / self.vae.config.scaling_factor
            images = self.vae.decode(chunk).sample
            yield (images / 2 + 0.5).clamp(0, 1).transpose(0, 1)
            if progress:
                progress("decode", min(start + chunk_size, num_frames), num_frames)

    # -- helpers -------------------------------------------------------------------------------

    def _check_call(self, video_length, width, height, kps_images, context_frames, context_overlap,
                    num_pad_audio_frames, num_inference_steps):
        if video_length < 1:
            raise InputError("The video would have no frames.", "The audio is shorter than one frame.",
                             "Use a longer audio clip.")
        if width % self.vae_scale_factor or height % self.vae_scale_factor:
            raise InputError(f"The size {width}x{height} is not a multiple of {self.vae_scale_factor}.",
                             "The VAE works on 8x8 pixel blocks.", "Pick a width and height divisible by 8.")
        if kps_images is None or len(kps_images) < video_length:
            have = 0 if kps_images is None else len(kps_images)
            raise InputError(f"{have} V-Kps frames were given for a {video_length}-frame video.",
                             "Every frame needs a V-Kps image.",
                             "Fit the kps track to the video length first (vexpress_cli.kps.fit).")
        max_context = self.architecture.max_context_frames if self.architecture else 32
        if not 0 < context_frames <= max_context or not 0 <= context_overlap < context_frames:
            raise InputError(f"Context of {context_frames} frames with overlap {context_overlap} is not possible.",
                             f"The motion modules see at most {max_context} frames and the overlap must be smaller.",
                             f"Use {parameter('context_frames')} between 1 and {max_context} and a smaller "
                             f"{parameter('context_overlap')}.")
        if num_inference_steps < 1:
            raise InputError("At least one denoising step is needed.", "", f"Use {parameter('num_inference_steps')} 1 or more.")
        expected_pad = self.architecture.num_pad_audio_frames if self.architecture else num_pad_audio_frames
        if num_pad_audio_frames != expected_pad:
            raise InputError(f"num_pad_audio_frames={num_pad_audio_frames} does not fit the model.",
                             f"The audio projection was trained on windows of {expected_pad} frames per side.",
                             f"Use {expected_pad}.")

    def _device_of(self, module: torch.nn.Module) -> torch.device:
        return next(module.parameters()).device

    def _offload(self, *modules: torch.nn.Module) -> None:
        """Move finished networks to the CPU and release their accelerator memory."""
        if self.device.type == "cpu":
            return
        for module in modules:
            module.to("cpu")
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def last_occurrences(window: Sequence[int]) -> tuple[list[int], list[int]]:
    """Distinct frames of a window and the position of each one's last occurrence.

    A window folded back at the end of the video holds some frames twice; like the original,
    the later occurrence's prediction is the one that counts.
    """
    last = {frame: position for position, frame in enumerate(window)}
    return list(last), list(last.values())


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to 8-bit, truncating like the original's ``(x * 255).astype(uint8)``."""
    return (frames.float() * 255).to(torch.uint8)
