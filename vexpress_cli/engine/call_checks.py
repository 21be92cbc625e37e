"""The pipeline's input checks and the network moves of ``save_gpu_memory`` (a mixin of ``VExpressPipeline``)."""

from __future__ import annotations

import gc

import torch

from vexpress_cli.engine.pipeline_output import OUTPUT_TYPES
from vexpress_cli.errors import InputError, parameter


class CallChecks:
    """``check_inputs`` (diffusers' name) and where the networks are between the stages of a call."""

    @property
    def max_context_frames(self) -> int:
        """Longest window the motion modules' position encoding covers."""
        return self.denoising_unet.config.motion_module_kwargs.get("temporal_position_encoding_max_len", 32)

    def check_inputs(self, video_length, width, height, kps_images, context_frames, context_overlap,
                     num_pad_audio_frames, num_inference_steps, output_type="pt",
                     callback_on_step_end_tensor_inputs=("latents",)):
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
                             "Fit the kps track to the video length first (vexpress_cli.kps.fit.fit_track).")
        max_context = self.max_context_frames
        if not 0 < context_frames <= max_context or not 0 <= context_overlap < context_frames:
            raise InputError(f"Context of {context_frames} frames with overlap {context_overlap} is not possible.",
                             f"The motion modules see at most {max_context} frames and the overlap must be smaller.",
                             f"Use {parameter('context_frames')} between 1 and {max_context} and a smaller "
                             f"{parameter('context_overlap')}.")
        if num_inference_steps < 1:
            raise InputError("At least one denoising step is needed.", "", f"Use {parameter('num_inference_steps', '1')} or more.")
        expected_pad = (self.audio_projection.config.num_queries - 1) // 2
        if num_pad_audio_frames != expected_pad:
            raise InputError(f"{parameter('num_pad_audio_frames', num_pad_audio_frames)} does not fit the model.",
                             f"The audio projection was trained on windows of {expected_pad} frames per side.",
                             f"Use {parameter('num_pad_audio_frames', expected_pad)}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, not {output_type!r}.")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs may hold {self._callback_tensor_inputs}, "
                             f"not {unknown}.")

    def _offload(self, *names: str) -> None:
        """save_gpu_memory: move finished networks to the CPU (offload hooks, when enabled, do it instead)."""
        device = self._execution_device
        if device.type == "cpu" or _has_offload_hooks(self):
            return
        for name in names:
            self._moved_to_cpu[name] = device
            getattr(self, name).to("cpu")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def _bring_back(self, name: str) -> None:
        if name in self._moved_to_cpu:
            getattr(self, name).to(self._moved_to_cpu.pop(name))



def _has_offload_hooks(pipeline) -> bool:
    return any(hasattr(module, "_hf_hook") or hasattr(module, "_diffusers_hook")
               for module in pipeline.networks().values())
