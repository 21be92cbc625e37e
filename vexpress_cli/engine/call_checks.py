"""The pipeline's input checks and the network moves of ``save_gpu_memory`` (a mixin of ``VExpressPipeline``)."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable

import numpy as np
import PIL.Image
import torch

from vexpress_cli.engine.pipeline_output import OUTPUT_TYPES
from vexpress_cli.errors import InputError, described, did_you_mean, parameter, short_repr

# The largest width or height a call takes: 8 times the trained 512 (generate's settings allow 2048).
MAX_SIDE = 4096
# What a frame's keypoints given as numbers look like: the three of V-Kps, or insightface's five.
KPS_POINT_SHAPES = ((3, 2), (5, 2))
# Arguments of the original pipeline's __call__ this one takes so that its calls work as they are, with the
# only value each may have here: the original's default, which changes nothing (ANY_VALUE: no value does).
ANY_VALUE = object()
ORIGINAL_ONLY_ARGUMENTS = {"strength": 1.0, "num_images_per_prompt": 1, "eta": 0.0, "callback": None,
                           "callback_steps": ANY_VALUE, "context_schedule": "uniform",
                           "do_multi_devices_inference": ANY_VALUE}


class CallChecks:
    """``check_inputs`` (diffusers' name) and where the networks are between the stages of a call."""

    @property
    def max_context_frames(self) -> int:
        """Longest window the motion modules' position encoding covers."""
        return self.denoising_unet.config.motion_module_kwargs.get("temporal_position_encoding_max_len", 32)

    def check_inputs(self, video_length, width, height, kps_images, context_frames, context_overlap,
                     num_pad_audio_frames, num_inference_steps, output_type="pt",
                     callback_on_step_end_tensor_inputs=("latents",), *, reference_image=None,
                     audio_waveform=None, latents=None, guidance_scale=3.5, reference_attention_weight=1.0,
                     audio_attention_weight=1.0, generator=None, callback_on_step_end=None):
        """Every argument of a call, before any network runs."""
        for name, value in {"video_length": video_length, "width": width, "height": height,
                            "num_inference_steps": num_inference_steps, "context_frames": context_frames,
                            "context_overlap": context_overlap}.items():
            _check_whole_number(name, value)
        for name, value in {"guidance_scale": guidance_scale, "reference_attention_weight": reference_attention_weight,
                            "audio_attention_weight": audio_attention_weight}.items():
            _check_finite_number(name, value)
        _check_guidance_scale(guidance_scale)
        if width < self.vae_scale_factor or height < self.vae_scale_factor:
            raise InputError(f"The size {width}x{height} is too small.", "", f"Use a {parameter('width')} and "
                             f"{parameter('height')} of at least {self.vae_scale_factor} (512 as trained).")
        if max(width, height) > MAX_SIDE:  # 100000x64 took 7.8 GB before its first step
            raise InputError(f"The size {width}x{height} is too large.", f"The model was trained at 512x512; a side "
                             f"may be at most {MAX_SIDE} pixels, since memory grows with the square of the size.",
                             f"Use a {parameter('width')} and {parameter('height')} of at most {MAX_SIDE}.")
        _check_reference_image(reference_image)
        check_generator(generator)
        self._check_waveform(audio_waveform)
        _check_finite_kps(kps_images)
        if video_length < 1:
            raise InputError(f"{parameter('video_length')} is {video_length}.", "A video has at least one frame.",
                             f"Pass the frames the speech lasts: {parameter('video_length')} = seconds x fps.")
        if width % self.vae_scale_factor or height % self.vae_scale_factor:
            raise InputError(f"The size {width}x{height} is not a multiple of {self.vae_scale_factor}.",
                             "The VAE works on 8x8 pixel blocks.", "Pick a width and height divisible by 8.")
        if kps_images is None or len(kps_images) < video_length:
            have = 0 if kps_images is None else len(kps_images)
            raise InputError(f"{have} V-Kps frames were given for a {video_length}-frame video.",
                             "Every frame needs a V-Kps image.",
                             "Fit the kps track to the video length first (vexpress_cli.kps.fit.fit_track).")
        _check_kps_images(kps_images, video_length, width, height)
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
        check_output_type(output_type)
        _check_step_end_callback(callback_on_step_end)
        self._check_callback_tensor_inputs(callback_on_step_end_tensor_inputs)
        if latents is not None:  # after the sizes: the shape they must have follows from them
            self._check_latents(latents, video_length, width, height)

    def _check_callback_tensor_inputs(self, names) -> None:
        """The values a step-end callback is given: a list of names among ``_callback_tensor_inputs``."""
        known, name = self._callback_tensor_inputs, parameter("callback_on_step_end_tensor_inputs")
        if isinstance(names, str):
            raise InputError(f"{name} is the text {names!r}; it must be a list of names.",
                             "Each name is a value the step-end callback is given by name.",
                             f"Pass a list such as {known}.")
        unknown = [each for each in names if each not in known]
        if unknown:
            raise InputError(f"{name} names {unknown}, which this pipeline does not hand to the callback.",
                             f"It may hold {known}.", f"Pass {name} as a list of those, such as {known}.")

    def _check_waveform(self, audio_waveform) -> None:
        """A mono 16 kHz waveform at least as long as wav2vec2's first feature (400 samples: 25 ms)."""
        try:  # as encode_audio reads it
            waveform = torch.as_tensor(_detached(audio_waveform), dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"{parameter('audio_waveform')} is {described(audio_waveform)}.",
                             "It must be the speech's samples: a 1-D array of numbers at 16 kHz.",
                             "Read the audio with vexpress_cli.media.audio.load_audio(path).") from None
        config = self.audio_encoder.config
        needed = 1 + sum((kernel - 1) * math.prod(config.conv_stride[:index])
                         for index, kernel in enumerate(config.conv_kernel))
        if waveform.ndim > 1 and max(waveform.shape) != waveform.numel():
            raise InputError(f"{parameter('audio_waveform')} has shape {tuple(waveform.shape)}: several channels.",
                             "The speech encoder reads one channel; channels would be joined end to end.",
                             "Mix it to mono first, e.g. waveform.mean(axis=0).")
        if waveform.numel() < needed:
            raise InputError(f"{parameter('audio_waveform')} holds {waveform.numel()} samples.",
                             f"The speech encoder needs at least {needed} (its first feature, at 16 kHz).",
                             "Pass a longer speech clip.")
        if not torch.isfinite(waveform).all():
            raise InputError(f"{parameter('audio_waveform')} holds NaN or infinite samples.",
                             "Samples are sound pressure: finite numbers, about -1 to 1.",
                             "Check how the audio was read or computed.")

    def _check_latents(self, latents, video_length: int, width: int, height: int) -> None:
        expected = self._latent_shape(video_length, width, height)
        if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != expected:
            raise InputError(f"{parameter('latents')} is {described(latents)}.",
                             f"For {video_length} frames at {width}x{height} they must have the shape {expected}.",
                             "Leave them out for seeded noise, or make them with pipe.prepare_latents(frames, width, "
                             "height, pipe.seeded_generator(seed)): the noise of vexpress generate --seed, from a "
                             "generator of their own.")
        if not torch.isfinite(latents).all():
            raise InputError(f"{parameter('latents')} hold NaN or infinite values.", "",
                             "Pass finite latents, or leave them out for seeded noise.")

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


def check_output_type(output_type) -> None:
    if output_type not in OUTPUT_TYPES:
        forms = f"{', '.join(OUTPUT_TYPES[:-1])} or {OUTPUT_TYPES[-1]}"
        raise InputError(f"{parameter('output_type')} is {short_repr(output_type)}.",
                         f"It is the form of the frames returned: {forms}.",
                         f"Pass one of them, e.g. {parameter('output_type', 'np')} for a numpy array.")


def _check_whole_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{parameter(name)} is {described(value)}.", "It must be a whole number.",
                         f"Pass {parameter(name)} as an int.")


def _check_finite_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise InputError(f"{parameter(name)} is {described(value)}.", "It must be a finite number.",
                         f"Pass {parameter(name)} as a finite number.")


def _check_guidance_scale(guidance_scale) -> None:
    if guidance_scale < 0:
        raise InputError(f"{parameter('guidance_scale', guidance_scale)} is negative.",
                         "It is how far each step moves from the prediction without speech, kps and portrait towards "
                         "the one with them; a negative scale moves away from them. Up to 1 turns guidance off.",
                         f"Use {parameter('guidance_scale', 3.5)} (the default), or 0 to 1 for no guidance.")


def _check_step_end_callback(callback) -> None:
    if callback is not None and not callable(callback):
        raise InputError(f"{parameter('callback_on_step_end')} is {described(callback)}.",
                         "It is called after every denoising step, as callback(pipe, step, timestep, "
                         "callback_kwargs).",
                         "Pass a function (or a diffusers PipelineCallback), or leave it out.")


def _check_reference_image(reference_image) -> None:
    """A PIL image, an HxWx3 array (uint8, or floats in [0, 1]) or a 3xHxW / 1x3xHxW tensor in [0, 1]."""
    if isinstance(reference_image, PIL.Image.Image):
        problem = "an empty image" if 0 in reference_image.size else None
    elif isinstance(reference_image, np.ndarray):
        problem = _array_image_problem(reference_image, reference_image.ndim == 3 and reference_image.shape[2] == 3)
    elif isinstance(reference_image, torch.Tensor):
        shape = tuple(reference_image.shape)
        problem = _array_image_problem(reference_image, len(shape) in (3, 4) and shape[-3] == 3 and
                                       (len(shape) == 3 or shape[0] == 1))
    else:
        problem = described(reference_image)
    if problem:
        raise InputError(f"{parameter('reference_image')} is {problem}.",
                         "The pipeline takes the portrait itself: a PIL image, an HxWx3 array (uint8, or floats in "
                         "[0, 1]) or a 3xHxW tensor in [0, 1].",
                         "Open the file first: PIL.Image.open(path).convert('RGB').")


def _array_image_problem(image, shape_fits: bool) -> str | None:
    if not shape_fits or 0 in image.shape:
        return f"an array of shape {tuple(image.shape)}"
    if image.dtype in (np.uint8, torch.uint8):
        return None
    is_tensor = isinstance(image, torch.Tensor)
    if not (image.dtype.is_floating_point if is_tensor else np.issubdtype(image.dtype, np.floating)):
        return f"an array of {image.dtype}"
    values = _detached(image)  # min and max, not a float64 copy: a stack of V-Kps images may be gigabytes
    if not bool(values.min() >= 0 and values.max() <= 1):  # NaN is the min and max, and fails both
        return "an array of floats outside [0, 1] (or NaN)"
    return None


def _check_finite_kps(kps_images) -> None:
    """Keypoints given as numbers (``[frames, 3, 2]``, or one ``[3, 2]`` item per frame) must be finite (images:
    ``_check_kps_images``)."""
    if isinstance(kps_images, (np.ndarray, torch.Tensor)):
        if kps_images.ndim != 4 and tuple(kps_images.shape[1:]) not in KPS_POINT_SHAPES:
            raise InputError(f"{parameter('kps_images')} is an array of shape {tuple(kps_images.shape)}.",
                             "Keypoints as numbers are [frames, 3, 2] (left eye, right eye, nose) or insightface's "
                             "[frames, 5, 2]; images are [frames, H, W, 3].",
                             "Pass a track from vexpress_cli.kps.load_kps(path).points, or drawn V-Kps images.")
        numbers = [kps_images] if kps_images.ndim == 3 else []
    else:
        numbers = [item for item in kps_images or () if not isinstance(item, PIL.Image.Image)
                   and np.shape(item) in KPS_POINT_SHAPES]
    for points in numbers:
        finite = (torch.isfinite(points.detach().float()).all() if isinstance(points, torch.Tensor)
                  else np.isfinite(np.asarray(points, dtype=np.float64)).all())
        if not finite:
            raise InputError(f"{parameter('kps_images')} hold NaN or infinite keypoints.", "",
                             "Pass finite (x, y) pixels; a track from a file is checked by vexpress_cli.kps.load_kps.")


def _check_kps_images(kps_images, video_length: int, width: int, height: int) -> None:
    """Each frame's V-Kps: keypoints (checked by ``_check_finite_kps``), a PIL image (resized to the video's size)
    or an HxWx3 image of the video's size, uint8 or floats in [0, 1] as the reference image."""
    image_shape = (height, width, 3)
    if isinstance(kps_images, (np.ndarray, torch.Tensor)) and kps_images.ndim == 4:
        fits = tuple(kps_images.shape[1:]) == image_shape
        problems = [(parameter("kps_images"), _array_image_problem(kps_images, fits))]
    else:
        problems = ((f"{parameter('kps_images')}[{index}]", _kps_item_problem(kps_images[index], image_shape))
                    for index in range(video_length))
    for name, problem in problems:
        if problem:
            raise InputError(f"{name} is {problem}.",
                             "A frame's V-Kps is its keypoints ([3, 2]), a PIL image (resized to the video's size) "
                             f"or an image of the video's size, of shape {image_shape} here: uint8, or floats in "
                             "[0, 1] as for the reference image.",
                             f"Draw the images at the call's size, draw_kps_image({height}, {width}, points) "
                             "(vexpress_cli.kps), or pass the keypoints themselves: they are drawn at that size.")


def _kps_item_problem(item, image_shape: tuple) -> str | None:
    if isinstance(item, PIL.Image.Image):
        return "an empty image" if 0 in item.size else None
    if not isinstance(item, (np.ndarray, torch.Tensor)):
        try:
            array = np.asarray(item)
        except (TypeError, ValueError):
            return described(item)
        if array.dtype.kind not in "iuf":
            return described(item)
        item = array
    if tuple(item.shape) in KPS_POINT_SHAPES:
        return None
    return _array_image_problem(item, tuple(item.shape) == image_shape)


def checked_step_end_latents(returned, given: torch.Tensor) -> torch.Tensor:
    """What a step-end callback returned as the latents: finite numbers of their shape."""
    if not isinstance(returned, torch.Tensor) or returned.shape != given.shape:
        raise InputError(f"callback_on_step_end returned latents of {described(returned)}.", "",
                         f"Return latents of the shape {tuple(given.shape)}, or return nothing to keep them.")
    if not torch.isfinite(returned).all():
        raise InputError("callback_on_step_end returned latents holding NaN or infinite values.",
                         "The next step would turn every frame black.", "Check what the callback computes.")
    return returned


def check_step_end_returned(returned) -> None:
    if returned is not None and not isinstance(returned, dict):
        raise InputError(f"callback_on_step_end returned {described(returned)}.",
                         "diffusers' step-end callbacks return a dict of the tensors they replace.",
                         "Return callback_kwargs (a dict), or None to change nothing.")


def check_decode_chunk_size(decode_chunk_size) -> None:
    _check_whole_number("decode_chunk_size", decode_chunk_size)
    if decode_chunk_size < 1:
        raise InputError(f"{parameter('decode_chunk_size', decode_chunk_size)} decodes no frame at a time.", "",
                         f"Use {parameter('decode_chunk_size', 8)} (the default) or another number from 1 up.")


def check_generator(generator) -> None:
    """diffusers' forms: None, a torch.Generator, or a list of them, one per video (here: one)."""
    one = generator[0] if isinstance(generator, list) and len(generator) == 1 else generator
    if one is not None and not isinstance(one, torch.Generator):
        raise InputError(f"{parameter('generator')} is {described(generator)}.",
                         "It must be a torch.Generator (or a list of one), the source of the starting noise.",
                         "Pass pipe.seeded_generator(seed) (the noise of vexpress generate --seed), or leave it out.")


def check_scheduler_name(name) -> None:
    from vexpress_cli.engine.scheduling import SCHEDULERS

    if name not in SCHEDULERS:
        raise InputError(f"There is no scheduler {name!r}.", "",
                         f"{did_you_mean(str(name), SCHEDULERS)}Use one of {', '.join(SCHEDULERS)}.")


def _detached(value):
    """A tensor off the autograd graph (as_tensor refuses one that requires grad); anything else as it is."""
    return value.detach() if isinstance(value, torch.Tensor) else value


def refuse_unknown_arguments(arguments: dict, own: Iterable[str]) -> None:
    """TypeError for a keyword the call takes neither as its own (``own``) nor as one of the original's, with the
    closest name; InputError for an original one at a value that would change the result there (this pipeline
    would ignore it)."""
    unknown = sorted(set(arguments) - set(ORIGINAL_ONLY_ARGUMENTS))
    if unknown:
        hint = did_you_mean(unknown[0], [*own, *ORIGINAL_ONLY_ARGUMENTS])
        raise TypeError(f"VExpressPipeline.__call__() got unexpected keyword arguments: {', '.join(unknown)}. "
                        f"{hint}".rstrip())
    for name, value in arguments.items():
        allowed = ORIGINAL_ONLY_ARGUMENTS[name]
        if allowed is ANY_VALUE or value is allowed or (allowed is not None and _same(value, allowed)):
            continue
        fix = ("Pass callback_on_step_end(pipe, step, timestep, callback_kwargs) instead: it runs after every step."
               if name == "callback" else f"Leave {name} out: this pipeline always runs as the original did "
               f"with {name}={allowed!r}.")
        raise InputError(f"{parameter(name) if callable(value) else parameter(name, value)} is not supported.",
                         f"The original pipeline took {name}, but only its default, {allowed!r}, has the same "
                         "meaning here.", fix)


def refuse_call_only_arguments(method: str, arguments: dict, gives: str) -> None:
    """TypeError for what only ``__call__`` takes (its output's form, the original pipeline's arguments), given to
    ``iter_frames`` or ``denoise`` (denoise_to_store's TypeError would name a method the caller never called)."""
    given = sorted(set(arguments) & {"output_type", "return_dict", *ORIGINAL_ONLY_ARGUMENTS})
    if given:
        raise TypeError(f"{method}() got {', '.join(given)}, which only __call__ takes: {method} {gives}.")


def _same(value, allowed) -> bool:
    try:
        return bool(value == allowed) and type(value) is not bool
    except (TypeError, ValueError, RuntimeError):
        return False
