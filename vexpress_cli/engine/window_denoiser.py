"""One denoising step's window predictions, summed per frame, without repeating work from step to step.

Every step the pipeline asks each context window for its guided noise prediction and sums them per
frame (``noise_sum``); frames shared by windows are averaged afterwards. This module does that loop:

* **V-Kps features once per job.** A window's V-Kps images are drawn and encoded by the guider the
  first time the window is denoised and kept on the device in the compute dtype
  (:class:`KpsFeatureCache`), up to a byte budget; windows past the budget are recomputed each step
  (same numbers, more work). The windows are visited in the same order every step, so a fixed set of
  cached windows is kept (an LRU cache would evict each window just before it is needed again).
* **Audio tokens on the device** in the compute dtype when they fit a budget (``AUDIO_RESIDENT_BYTES``).
* **Few host<->device copies.** Windows are taken in groups spanning at most ``group_bytes`` of
  latents: a group's latents and running sums are copied to the device once, its windows read and
  add on the device, and the sums go back once. A video whose latents fit (about 2000 frames at
  512x512) costs three copies per step instead of two per window. The sums are added in the same
  window order as one at a time, so not one number changes.
* **Several windows per UNet call** (``window_batch``): the CFG halves of ``B`` windows in one batch.
* **Windows split across processes** (``split``, see ``distributed.py``): each process predicts its
  share of every round of windows, the predictions are gathered, and every process adds all of them
  in window order, so every process holds the latents of one device's run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from vexpress_cli.engine.compile import is_compiled
from vexpress_cli.engine.latent_store import FLOAT_BYTES, LatentStore
from vexpress_cli.engine.networks.denoising_unet import ReferenceConditioning

# Latents and sums of one group of windows kept on the device (float32, both together).
GROUP_BYTES = 256 * 2**20
# Audio tokens of the whole video stay on the device up to this size (7.7 KB per frame at full size).
AUDIO_RESIDENT_BYTES = 256 * 2**20
# V-Kps feature cache: this share of the free GPU memory, at most KPS_CACHE_MAX_BYTES.
KPS_CACHE_FREE_SHARE = 0.25
KPS_CACHE_MAX_BYTES = 16 * 2**30
KPS_CACHE_CPU_BYTES = 2 * 2**30
KPS_CACHE_SAVE_MEMORY_BYTES = 512 * 2**20
# Window batch chosen from free memory: estimated activation bytes per (CFG row x frame x latent pixel)
# in half precision: 3.75 GiB per 2 x 24-frame window at 64x64 latents, against 3.25 GiB allocated and
# 3.6-3.7 GiB reserved per added window on an H200 (benchmarks/README.md); at most MAX_AUTO_WINDOW_BATCH
# windows, 70 % of free memory.
ACTIVATION_BYTES_PER_ROW_PIXEL = 20 * 1024
MAX_AUTO_WINDOW_BATCH = 4
AUTO_FREE_SHARE = 0.7


class WindowSplit(Protocol):
    """How the windows of a step are shared among processes (``distributed.ProcessGroupSplit``)."""

    rank: int
    world_size: int

    def gather(self, predictions: torch.Tensor) -> list[torch.Tensor]:
        """Every process's ``predictions`` (same shape on all), in rank order."""

    def agree_min(self, value: int) -> int:
        """The smallest ``value`` over all processes."""


@dataclass
class WindowOptions:
    """How the window loop runs; none of these changes a number beyond float noise."""

    window_batch: int = 0
    """Windows per UNet call; 0 chooses from free memory (see ``choose_window_batch``)."""
    kps_cache_bytes: int | None = None
    """Budget of the V-Kps feature cache; None chooses by device (see ``kps_cache_budget``)."""
    group_bytes: int = GROUP_BYTES
    split: WindowSplit | None = None


@dataclass
class WindowGroup:
    """Consecutive windows whose frames lie in ``start:stop``."""

    start: int
    stop: int
    numbers: list[int]


class WindowDenoiser:
    """The per-step window loop of one job (build once per job, call :meth:`accumulate` each step)."""

    def __init__(self, pipeline, windows: list[list[int]], kps_source, width: int, height: int,
                 audio_tokens: torch.Tensor, reference: ReferenceConditioning, guidance_scale: float,
                 options: WindowOptions | None = None, save_gpu_memory: bool = False):
        self.pipeline, self.windows, self.guidance_scale = pipeline, windows, guidance_scale
        self.options = options or WindowOptions()
        self.device, self.dtype = pipeline.device, pipeline.dtype
        self.reference = reference
        self.split = self.options.split
        self.window_batch = self._agreed(choose_window_batch(
            self.options.window_batch, self.device, self.dtype, len(windows[0]), width, height,
            compiled=is_compiled(pipeline), save_gpu_memory=save_gpu_memory))
        self.audio_tokens = keep_on_device(audio_tokens, self.device, self.dtype, AUDIO_RESIDENT_BYTES)
        budget = self.options.kps_cache_bytes
        if budget is None:
            budget = kps_cache_budget(self.device, save_gpu_memory)
        self.kps = KpsFeatureCache(pipeline, kps_source, width, height, budget)
        frame_bytes = 2 * FLOAT_BYTES * pipeline.denoising_unet.config.in_channels * (height // 8) * (width // 8)
        self.groups = window_groups(windows, max(1, self.options.group_bytes // frame_bytes))
        self._batched_reference: dict[int, ReferenceConditioning] = {}
        self._index_cache: dict[tuple, object] = {}  # window frame indices on the device, made once

    def _agreed(self, batch: int) -> int:
        return self.split.agree_min(batch) if self.split else batch

    def accumulate(self, latents: LatentStore, noise_sum: LatentStore, timestep,
                   window_done: Callable[[int], None] = lambda done: None) -> None:
        """Add every window's guided prediction at ``timestep`` to ``noise_sum`` (the later of a repeated frame)."""
        done = 0
        for group in self.groups:
            group_latents = latents.read_range(group.start, group.stop).to(self.device, self.dtype)
            group_sum = noise_sum.read_range(group.start, group.stop).to(self.device)
            for round_numbers, predictions in self._rounds(group, group_latents, timestep):
                for number, prediction in zip(round_numbers, predictions):
                    frames, positions = self._last_occurrences(number, group.start)
                    group_sum.index_add_(2, frames, prediction[None].index_select(2, positions).float())
                    done += 1
                    window_done(done)
            noise_sum.write_range(group.start, group.stop, group_sum.cpu())

    def _rounds(self, group: WindowGroup, group_latents: torch.Tensor, timestep):
        """``(window numbers, their predictions)`` for each round of ``world_size x window_batch`` windows."""
        world, rank = (self.split.world_size, self.split.rank) if self.split else (1, 0)
        per_round = world * self.window_batch
        for first in range(0, len(group.numbers), per_round):
            numbers = group.numbers[first:first + per_round]
            mine = numbers[rank * self.window_batch:(rank + 1) * self.window_batch]
            if self.split is None:
                yield numbers, self.predict(mine, group_latents, group.start, timestep)
                continue
            predictions = self.predict(mine, group_latents, group.start, timestep) if mine else None
            gathered = self.split.gather(self._padded(predictions, group_latents))
            ordered = []
            for rank_of, shard in enumerate(gathered):
                count = len(numbers[rank_of * self.window_batch:(rank_of + 1) * self.window_batch])
                ordered.extend(prediction.to(self.device) for prediction in shard[:count])
            yield numbers, ordered

    def _padded(self, predictions: torch.Tensor | None, group_latents: torch.Tensor) -> torch.Tensor:
        """``[window_batch, 4, n, h, w]``: every process sends the same shape; empty rows are zeros."""
        shape = (self.window_batch, group_latents.shape[1], len(self.windows[0]), *group_latents.shape[3:])
        padded = torch.zeros(shape, device=self.device, dtype=self.dtype)
        if predictions is not None:
            padded[:len(predictions)] = predictions
        return padded

    # -- the prediction of one batch of windows ----------------------------------------------------

    def predict(self, numbers: Sequence[int], group_latents: torch.Tensor, group_start: int,
                timestep) -> torch.Tensor:
        """Guided noise ``[B, 4, n, h, w]`` of the windows ``numbers`` (latents read from the group's copy)."""
        window_latents = [group_latents.index_select(2, self._window_index(number, group_start)) for number in numbers]
        tokens = [self.audio_tokens.index_select(0, self._window_index(number, 0, self.audio_tokens.device))
                  for number in numbers]
        kps = [self.kps.features(number, self.windows[number]) for number in numbers]
        if len(numbers) == 1:
            # One window: the pipeline's own prediction, exactly today's numbers.
            return self.pipeline.predict_window_noise(window_latents[0], timestep, tokens[0], kps[0], self.reference,
                                                      self.guidance_scale)
        return self._predict_batch(torch.cat(window_latents), timestep, torch.stack(tokens), torch.cat(kps))

    def _predict_batch(self, latents: torch.Tensor, timestep, audio_tokens: torch.Tensor,
                       kps_features: torch.Tensor) -> torch.Tensor:
        """``predict_window_noise`` for ``B`` windows: latents ``[B, 4, n, h, w]``, tokens ``[B, n, t, d]``."""
        batch, frames = latents.shape[0], latents.shape[2]
        audio_tokens = audio_tokens.to(self.device, self.dtype).reshape(batch * frames, *audio_tokens.shape[2:])
        kps_features = kps_features.to(self.device, self.dtype)
        do_cfg = self.guidance_scale > 1.0
        if do_cfg:  # rows: B unconditional, then B conditional (the reference features are repeated to match)
            latents = torch.cat([latents, latents])
            audio_tokens = torch.cat([torch.zeros_like(audio_tokens), audio_tokens])
            kps_features = torch.cat([torch.zeros_like(kps_features), kps_features])
        model_input = self.pipeline.scheduler.scale_model_input(latents, timestep)
        noise = self.pipeline.denoising_unet(model_input, timestep, audio_tokens, kps_features,
                                             reference=self._reference_for(batch))
        if do_cfg:
            unconditional, conditional = noise.chunk(2)
            noise = unconditional + self.guidance_scale * (conditional - unconditional)
        return noise

    def _reference_for(self, batch: int) -> ReferenceConditioning:
        if batch not in self._batched_reference:
            reference = self.reference
            features = {name: value.repeat_interleave(batch, dim=0) for name, value in reference.features.items()}
            self._batched_reference[batch] = ReferenceConditioning(features, reference.reference_attention_weight,
                                                                   reference.audio_attention_weight)
        return self._batched_reference[batch]

    # -- frame indices, made once per job so no list becomes a tensor in the step loop ---------------

    def _window_index(self, number: int, offset: int, device: torch.device | None = None) -> torch.Tensor:
        device = device or self.device
        key = (number, offset, str(device))
        if key not in self._index_cache:
            self._index_cache[key] = torch.tensor([frame - offset for frame in self.windows[number]], device=device)
        return self._index_cache[key]

    def _last_occurrences(self, number: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (number, offset, "last")
        if key not in self._index_cache:
            frames, positions = last_occurrences(self.windows[number])
            self._index_cache[key] = (torch.tensor([frame - offset for frame in frames], device=self.device),
                                      torch.tensor(positions, device=self.device))
        return self._index_cache[key]


class KpsFeatureCache:
    """Guider features of each window, computed on first use and kept on the device up to ``budget_bytes``."""

    def __init__(self, pipeline, kps_source, width: int, height: int, budget_bytes: int):
        self.pipeline, self.kps_source, self.width, self.height = pipeline, kps_source, width, height
        self.budget_bytes = budget_bytes
        self.cached: dict[int, torch.Tensor] = {}
        self.cached_bytes = 0
        self.computed = 0  # guider runs, for tests and the benchmark

    def features(self, number: int, window: Sequence[int]) -> torch.Tensor:
        if number in self.cached:
            return self.cached[number]
        images = self.pipeline.kps_image_tensor(self.kps_source, window, self.width, self.height)
        features = self.pipeline.kps_features(images).to(self.pipeline.device, self.pipeline.dtype)
        self.computed += 1
        size = features.numel() * features.element_size()
        if self.cached_bytes + size <= self.budget_bytes:
            self.cached[number] = features
            self.cached_bytes += size
        return features


def window_groups(windows: list[list[int]], max_frames: int) -> list[WindowGroup]:
    """Consecutive windows in groups spanning at most ``max_frames`` frames (a window alone may span more)."""
    groups: list[WindowGroup] = []
    for number, window in enumerate(windows):
        low, high = min(window), max(window) + 1
        if groups:
            group = groups[-1]
            start, stop = min(group.start, low), max(group.stop, high)
            if stop - start <= max_frames:
                group.start, group.stop = start, stop
                group.numbers.append(number)
                continue
        groups.append(WindowGroup(low, high, [number]))
    return groups


def keep_on_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype, budget_bytes: int) -> torch.Tensor:
    """``tensor`` in the compute dtype, on the device when it fits ``budget_bytes`` (else on the CPU)."""
    size = tensor.numel() * torch.finfo(dtype).bits // 8
    return tensor.to(device if size <= budget_bytes else torch.device("cpu"), dtype)


def kps_cache_budget(device: torch.device, save_gpu_memory: bool = False) -> int:
    """Bytes of V-Kps features kept per job: a share of the free GPU memory, or a fixed budget."""
    if device.type == "cuda":
        if save_gpu_memory:
            return KPS_CACHE_SAVE_MEMORY_BYTES
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(KPS_CACHE_MAX_BYTES, free * KPS_CACHE_FREE_SHARE))
    return KPS_CACHE_CPU_BYTES


def choose_window_batch(requested: int, device: torch.device, dtype: torch.dtype, frames: int = 24,
                        width: int = 512, height: int = 512, compiled: bool = False,
                        save_gpu_memory: bool = False) -> int:
    """``requested`` windows per UNet call, or (0) as many as 70 % of the free GPU memory holds, up to 4.

    Measured (benchmarks/README.md): 1.05x-1.07x per window-step on an H200 in eager mode, no faster on the
    CPU, and only 1.02x with a compiled UNet, which would also compile once more for a last, smaller batch.
    So the choice is 1 on the CPU and MPS and when ``compiled``; with ``save_gpu_memory`` too, which puts
    memory first.
    """
    if requested > 0:
        return requested
    if device.type != "cuda" or compiled or save_gpu_memory:
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    half_bytes = torch.finfo(dtype).bits // 16
    per_window = ACTIVATION_BYTES_PER_ROW_PIXEL * 2 * frames * (height // 8) * (width // 8) * half_bytes
    return max(1, min(MAX_AUTO_WINDOW_BATCH, int(free * AUTO_FREE_SHARE // per_window)))


def last_occurrences(window: Sequence[int]) -> tuple[list[int], list[int]]:
    """Distinct frames of a window and the position of each one's last occurrence.

    A window folded back at the end of the video holds some frames twice; like the original,
    the later occurrence's prediction is the one that counts.
    """
    last = {frame: position for position, frame in enumerate(window)}
    return list(last), list(last.values())
