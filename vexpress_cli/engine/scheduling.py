"""The schedulers the pipeline offers by name, and stepping any scheduler over latents kept in chunks.

A long video's latents live in a :class:`LatentStore` (a temp file past a budget) and are stepped
chunk by chunk. DDIM's step is elementwise and stateless, but multistep schedulers (DPM-Solver++,
UniPC) keep the previous model outputs, and every scheduler counts its steps (``step_index``), so
calling one scheduler's ``step()`` once per chunk would advance it once per chunk and mix the
chunks' histories. :class:`ChunkedStepper` instead gives every chunk the same scheduler state
before its step (all chunks take the same steps in the same order, so that state is identical
for them) and keeps each chunk's own sample-shaped tensors (``model_outputs``, ``last_sample``, ...)
in stores of their own, on disk like the latents past the budget: memory stays flat in length and
every number equals one step over the whole tensor.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

from vexpress_cli.engine.latent_store import LatentStore

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

# The names of --scheduler. Only ddim reproduces the original; the others allow fewer steps.
SCHEDULERS = {
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}
DEFAULT_SCHEDULER = "ddim"


def default_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def make_scheduler(name: str, config=None):
    """The scheduler called ``name`` with the model's noise schedule (``config``: another scheduler's config)."""
    scheduler_class = SCHEDULERS[name]
    # The model's schedule fills what another sampler's config lacks (DPM-Solver++ keeps no clip_sample, whose
    # DDIM default is True), so switching samplers and back gives back the same numbers.
    base = {**SCHEDULER_CONFIG, **(dict(config) if config is not None else {})}
    if name == "dpm++":
        base["algorithm_type"] = "dpmsolver++"
    known = inspect.signature(scheduler_class.__init__).parameters
    return scheduler_class.from_config({key: value for key, value in base.items() if key in known})


def scheduler_name(scheduler) -> str | None:
    """The --scheduler name of a scheduler instance, or None for any other class."""
    return next((name for name, cls in SCHEDULERS.items() if type(scheduler) is cls), None)


class ChunkedStepper:
    """Steps ``scheduler`` over a :class:`LatentStore`, one call per chunk, with the numbers of one call."""

    def __init__(self, scheduler, latents: LatentStore, chunk_frames: int, budget_bytes: int):
        self.scheduler, self.latents = scheduler, latents
        self.chunks = list(latents.chunks(chunk_frames))
        self.budget_bytes = budget_bytes
        self.slots: dict[str, LatentStore | list[LatentStore]] = {}
        # Which per-chunk tensors the scheduler holds after the last step (a list slot: per item).
        self.present: dict[str, bool | list[bool]] = {}
        self.restorable: dict[str, bool | list[bool]] = {}

    def __enter__(self) -> "ChunkedStepper":
        return self

    def __exit__(self, *exc_info) -> None:
        for store in self._stores():
            store.close()
        self.slots.clear()
        self.present.clear()

    def step(self, timestep: torch.Tensor, noise_sum: LatentStore, counts: torch.Tensor) -> None:
        """``latents = scheduler.step(noise_sum / counts, timestep, latents)``, chunk by chunk."""
        if len(self.chunks) == 1:  # the whole video in one call, as any diffusers pipeline
            self._step_range(timestep, noise_sum, counts, *self.chunks[0])
            return
        before = self._shared_state()
        for start, stop in self.chunks:
            self._restore(before, start, stop)
            self._step_range(timestep, noise_sum, counts, start, stop)
            self._save(start, stop)

    def _step_range(self, timestep, noise_sum: LatentStore, counts: torch.Tensor, start: int, stop: int) -> None:
        mean_noise = noise_sum.read_range(start, stop) / counts[:, :, start:stop]
        stepped = self.scheduler.step(mean_noise, timestep.cpu(), self.latents.read_range(start, stop))
        self.latents.write_range(start, stop, stepped.prev_sample)

    # -- the scheduler's state ------------------------------------------------------------------

    def _shared_state(self) -> dict:
        """Everything of the scheduler but the per-chunk tensors, as it is before this step."""
        self.restorable = copy.deepcopy(self.present)
        return copy.deepcopy({key: value for key, value in vars(self.scheduler).items() if key not in self.restorable})

    def _restore(self, shared: dict, start: int, stop: int) -> None:
        """The state before this step, with this chunk's own tensors."""
        vars(self.scheduler).update(copy.deepcopy(shared))
        for name, present in self.restorable.items():
            stores = self.slots[name]
            if isinstance(present, list):
                value = [store.read_range(start, stop) if here else None for store, here in zip(stores, present)]
            else:
                value = stores.read_range(start, stop) if present else None
            setattr(self.scheduler, name, value)

    def _save(self, start: int, stop: int) -> None:
        """Keep this chunk's sample-shaped tensors (found by shape: any scheduler's history works)."""
        shape = (1, self.latents.channels, stop - start, self.latents.height, self.latents.width)
        for name, value in vars(self.scheduler).items():
            if _is_sample(value, shape) or (name in self.present and value is None):
                if name not in self.slots:
                    self.slots[name] = self._new_store()
                if value is not None:
                    self.slots[name].write_range(start, stop, value)
                self.present[name] = value is not None
            elif isinstance(value, (list, tuple)) and (name in self.present or any(_is_sample(v, shape) for v in value)):
                if name not in self.slots:
                    self.slots[name] = [self._new_store() for _ in value]
                for store, item in zip(self.slots[name], value):
                    if item is not None:
                        store.write_range(start, stop, item)
                self.present[name] = [item is not None for item in value]

    def _new_store(self) -> LatentStore:
        return LatentStore(self.latents.channels, self.latents.frames, self.latents.height, self.latents.width,
                           budget_bytes=self.budget_bytes)

    def _stores(self) -> Iterator[LatentStore]:
        for slot in self.slots.values():
            yield from (slot if isinstance(slot, list) else [slot])


def _is_sample(value, shape: tuple[int, ...]) -> bool:
    return isinstance(value, torch.Tensor) and tuple(value.shape) == shape
