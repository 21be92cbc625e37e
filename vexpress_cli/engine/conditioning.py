"""The pipeline's conditioning stages: the portrait through the VAE and the reference net, the speech
through wav2vec2 and the audio projection, the V-Kps images through the guider (a mixin of
``VExpressPipeline``, numbers as the original's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from vexpress_cli.engine.call_checks import KPS_POINT_SHAPES
from vexpress_cli.engine.config_values import AUDIO_SAMPLE_RATE
from vexpress_cli.engine.networks.denoising_unet import ReferenceConditioning
from vexpress_cli.engine.networks.reference_net import collect_reference_features
from vexpress_cli.engine.networks.speech_encoder import PartsDone, encode_speech
from vexpress_cli.progress import ProgressCallback

# Audio windows projected in one batch.
AUDIO_PROJECTION_BATCH = 256


class EncodingStages:
    """Stages 2 and 3 of a call, and the V-Kps features of stage 5; ``save_gpu_memory`` moves each finished
    network to the CPU."""

    @torch.no_grad()
    def encode_reference(self, reference_image: PIL.Image.Image, width: int, height: int) -> torch.Tensor:
        """VAE latent mean of the portrait times the SD scaling factor: ``[1, 4, h, w]``."""
        # diffusers' image processor reads arrays and tensors as floats in [0, 1]: 8-bit ones would be 255x too bright.
        if isinstance(reference_image, np.ndarray) and reference_image.dtype == np.uint8:
            reference_image = PIL.Image.fromarray(reference_image)
        elif isinstance(reference_image, torch.Tensor) and reference_image.dtype == torch.uint8:
            reference_image = reference_image.float() / 255
        pixels = self.reference_image_processor.preprocess(reference_image, height=height, width=width)
        pixels = pixels.to(device=self._execution_device, dtype=self.vae.dtype)
        return self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def reference_conditioning(self, reference_latents: torch.Tensor, do_cfg: bool, reference_attention_weight: float,
                               audio_attention_weight: float) -> ReferenceConditioning:
        device = self._execution_device
        features = collect_reference_features(self.reference_net,
                                              reference_latents.to(device, self.reference_net.dtype))
        if do_cfg:
            features = {name: torch.cat([torch.zeros_like(value), value]) for name, value in features.items()}
        features = {name: value.to(device, self.denoising_unet.dtype) for name, value in features.items()}
        return ReferenceConditioning(features, reference_attention_weight, audio_attention_weight)

    @torch.no_grad()
    def encode_audio(self, audio_waveform: torch.Tensor | np.ndarray, video_length: int,
                     num_pad_audio_frames: int, progress: PartsDone | None = None, *,
                     noise_from_global: bool = True) -> torch.Tensor:
        """Audio tokens of every frame, ``[video_length, tokens, dim]`` (conditional half only);
        ``progress(done, total)`` as wav2vec2's parts are done (:func:`encode_speech`). ``noise_from_global``:
        whether the job's noise comes from torch's global generator, which then gets the original's LayerDrop
        draws (a job's own generator has them already: :meth:`seeded_generator`)."""
        waveform = torch.as_tensor(audio_waveform, dtype=torch.float32).reshape(-1).numpy()
        inputs = self.feature_extractor(waveform, sampling_rate=AUDIO_SAMPLE_RATE, return_tensors="pt").input_values
        device = self._execution_device
        rng_before = torch.get_rng_state()
        _onload_hooked(self.audio_encoder)  # encode_speech runs its parts, not its forward
        hidden = encode_speech(self.audio_encoder, inputs.to(device, self.audio_encoder.dtype), progress=progress)
        if noise_from_global and torch.equal(rng_before, torch.get_rng_state()):
            self._draw_like_original_layerdrop()
        # Two audio features per video frame, linearly resampled in float32 as the original does.
        per_frame = F.interpolate(hidden.float().transpose(1, 2), size=2 * video_length, mode="linear")
        per_frame = per_frame[0].transpose(0, 1).to(hidden.dtype)
        window = 2 * (2 * num_pad_audio_frames + 1)
        padding = per_frame.new_zeros(2 * num_pad_audio_frames, per_frame.shape[1])
        padded = torch.cat([padding, per_frame, padding])
        windows = padded.unfold(0, window, 2).transpose(1, 2)  # [video_length, window, dim]
        tokens = [self.audio_projection(chunk.to(device, self.audio_projection.dtype))
                  for chunk in windows.split(AUDIO_PROJECTION_BATCH)]
        return torch.cat(tokens)

    def _draw_like_original_layerdrop(self) -> None:
        """Advance torch's global RNG as the original's wav2vec2 did.

        With transformers 4.41 (the original's), wav2vec2's encoder drew one ``torch.rand([])``
        per layer for LayerDrop even in eval mode. The original seeds with
        ``torch.manual_seed(seed)`` and draws the initial noise after the audio encoder, so
        these draws decide its noise. Newer transformers no longer draw; drawing here keeps
        ``seed=N`` giving the original's video for the same seed.
        """
        self._advance_past_layerdrop(torch.default_generator)

    def seeded_generator(self, seed: int) -> torch.Generator:
        """A CPU generator of the job's own that draws the noise ``torch.manual_seed(seed)`` gives the original
        (past wav2vec2's LayerDrop draws): nothing else in the process, another job's thread or the caller's
        own seeding, changes the video, and torch's global generator is not reseeded."""
        generator = torch.Generator().manual_seed(seed)
        self._advance_past_layerdrop(generator)
        return generator

    def _advance_past_layerdrop(self, generator: torch.Generator) -> None:
        for _ in range(self.audio_encoder.config.num_hidden_layers):
            torch.rand([], generator=generator)

    def encode_reference_stage(self, reference_image, width: int, height: int, guidance_scale: float,
                               reference_attention_weight: float, audio_attention_weight: float,
                               save_gpu_memory: bool, report: ProgressCallback) -> ReferenceConditioning:
        for name in list(self._moved_to_cpu):  # what a previous save_gpu_memory call left on the CPU comes back
            self._bring_back(name)
        report("reference", 0, 1)
        reference_latents = self.encode_reference(reference_image, width, height)
        conditioning = self.reference_conditioning(reference_latents, guidance_scale > 1.0,
                                                   reference_attention_weight, audio_attention_weight)
        if save_gpu_memory:
            self._offload("reference_net", "vae")
        report("reference", 1, 1)
        return conditioning

    def encode_audio_stage(self, audio_waveform, video_length: int, num_pad_audio_frames: int, save_gpu_memory: bool,
                           report: ProgressCallback, generator=None) -> torch.Tensor:
        report("audio", 0, 1)
        parts = {"total": 1}

        def part_done(done: int, total: int) -> None:
            parts["total"] = total + 1  # and the projection to tokens
            with torch.random.fork_rng(devices=[]):  # a callback that draws must not move the layerdrop check
                report("audio", done, parts["total"])

        audio_tokens = self.encode_audio(audio_waveform, video_length, num_pad_audio_frames, part_done,
                                         noise_from_global=draws_from_global(generator)).cpu()
        if save_gpu_memory:
            self._offload("audio_encoder", "audio_projection")
        report("audio", parts["total"], parts["total"])
        return audio_tokens

    @torch.no_grad()
    def kps_features(self, kps_images: torch.Tensor) -> torch.Tensor:
        """Guider features ``[1, C, n, h, w]`` of V-Kps images ``[1, 3, n, H, W]`` in [0, 1]."""
        return self.v_kps_guider(kps_images.to(self._execution_device, self.v_kps_guider.dtype))

    def kps_image_tensor(self, kps_source, frame_indices: Sequence[int], width: int, height: int) -> torch.Tensor:
        """V-Kps images of the given frames as ``[1, 3, n, H, W]`` in [0, 1]."""
        return torch.stack([self._kps_image(kps_source, index, width, height) for index in frame_indices], dim=1)[None]

    def _kps_image(self, kps_source, index: int, width: int, height: int) -> torch.Tensor:
        item = kps_source[index]
        if isinstance(item, PIL.Image.Image):
            return self.kps_image_processor.preprocess(item, height=height, width=width)[0]
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu()
            item = item.float() if item.is_floating_point() else item
        array = np.asarray(item)
        if array.shape in KPS_POINT_SHAPES:
            from vexpress_cli.kps.drawing import draw_kps_image

            array = draw_kps_image(height, width, array[:3])
        pixels = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float()
        # Floats are in [0, 1] already (call_checks), as a float reference image is.
        return pixels / 255.0 if array.dtype == np.uint8 else pixels


def _onload_hooked(module: torch.nn.Module) -> None:
    """Run an offload hook's onload for a network whose parts are called directly (not its forward)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is not None and hasattr(hook, "pre_forward"):
        hook.pre_forward(module)


def draws_from_global(generator) -> bool:
    """Whether a call's noise comes from torch's global generator: none given, or that generator itself."""
    generators = generator if isinstance(generator, list) else [generator]
    return any(each is None or each is torch.default_generator for each in generators)
