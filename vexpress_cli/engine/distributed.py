"""One video on several devices: each denoising step's windows split across processes (``devices``).

:class:`MultiDevicePipeline` keeps a pipeline on the first device in this process (rank 0) and starts
one helper process per other device (``spawn``; no ``torchrun`` needed), each with its own copy of the
networks. They meet through ``torch.distributed`` on 127.0.0.1 (NCCL between GPUs, gloo on the CPU).
For a job, every process runs the same call with the same seed: the reference, audio and initial noise
are computed alike everywhere; in each round of windows, process ``r`` predicts its share
(``window_denoiser.WindowDenoiser``), the predictions are gathered, and every process adds all of them
in window order and takes the same DDIM step. So every process holds exactly the latents of a
one-device run (up to the float noise of its device), and only rank 0 decodes and writes the frames.

A helper that fails reports its error and exits; rank 0's next collective then fails, and the job fails
with the helper's message. Any failure closes the helpers; the next job starts them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import torch

from vexpress_cli.errors import InputError, VExpressError, described, parameter
from vexpress_cli.helper_processes import start_helper

# How long a collective waits for a slow or dead process (compiling can take minutes).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# Arguments of iter_frames that only rank 0 uses (it alone decodes and reports).
RANK0_ONLY = ("postprocess", "decode_chunk_size", "progress", "generator")


class MultiDeviceError(VExpressError):
    """A helper process failed."""


def resolve_devices(devices: str | list[str] | tuple[str, ...]) -> list[torch.device]:
    """``cuda:0,cuda:1``, ``all`` (every visible GPU) or ``cpu,cpu`` as devices, checked; or a list of device
    names (or ``torch.device``), as :func:`vexpress_cli.batch` takes it."""
    from vexpress_cli.engine.devices import cuda_missing_reason, resolve_device

    text = _devices_text(devices).strip().lower()  # CPU,CPU as --device takes CPU
    if text == "all":
        if not torch.cuda.is_available():
            raise InputError(f"{parameter('devices', 'all')} found no GPU.", f"The installed {cuda_missing_reason()}.",
                             f"List devices, e.g. {parameter('devices', 'cpu,cpu')}.")
        return [torch.device("cuda", index) for index in range(torch.cuda.device_count())]
    names = [name.strip() for name in text.split(",")]
    if not any(names):
        raise InputError(f"{parameter('devices')} is empty.", "", "Give devices like cuda:0,cuda:1, or all.")
    _check_device_names(names, text)
    devices = [resolve_device(name, "devices") for name in names]
    devices = [torch.device("cuda", 0) if d.type == "cuda" and d.index is None else d for d in devices]
    kinds = {device.type for device in devices}
    if len(kinds) > 1 or kinds - {"cuda", "cpu"}:
        raise InputError(f"{parameter('devices', text)} mixes kinds of device or names one that cannot share work.",
                         "Windows are split between GPUs (NCCL) or between CPU processes (gloo), not a mix.",
                         "List only cuda:N devices, or only cpu.")
    gpus = [device for device in devices if device.type == "cuda"]
    if len(set(gpus)) < len(gpus):
        raise InputError(f"{parameter('devices', text)} names a GPU twice.", "Each process holds its own copy "
                         "of the networks; two on one GPU only compete for it.", "Name each GPU once.")
    return devices


def _check_device_names(names: list[str], text: str) -> None:
    """InputError for a list with an empty item (``cpu,,cpu``), ``auto`` (which device is that?) or a CPU with an
    index (``cpu:1``: there is one CPU; each process is one copy of the networks)."""
    if "" in names:
        problem = "has an empty item (two commas in a row, or one at an end)"
    elif "auto" in names:
        problem = "names auto, which picks one device, not one of several"
    elif any(name.startswith("cpu:") for name in names):
        problem = "gives the CPU an index, which it does not have (cpu,cpu is two processes on it)"
    else:
        return
    raise InputError(f"{parameter('devices', text)} {problem}.",
                     "It lists the devices a video's windows are split across, one process each.",
                     f"List them by name, e.g. {parameter('devices', 'cuda:0,cuda:1')} or "
                     f"{parameter('devices', 'cpu,cpu')}, or use {parameter('devices', 'all')} for every GPU.")


def _devices_text(devices: object) -> str:
    """``devices`` as one text, ``cuda:0,cuda:1``: a list or tuple of names (or torch.device) joined; InputError
    for anything else."""
    if isinstance(devices, torch.device):
        devices = [devices]
    if isinstance(devices, (list, tuple)) and all(isinstance(name, (str, torch.device)) for name in devices):
        return ",".join(str(name) for name in devices)
    if not isinstance(devices, str):
        raise InputError(f"{parameter('devices')} is {described(devices)}.",
                         "It names the devices each video's windows are split across: text or a list of names.",
                         f"Give {parameter('devices', 'cuda:0,cuda:1')}, a list such as [\"cpu\", \"cpu\"], or "
                         f"{parameter('devices', 'all')}; leave it out to run on one {parameter('device')}.")
    return devices


class ProcessGroupSplit:
    """The :class:`~vexpress_cli.engine.window_denoiser.WindowSplit` of a ``torch.distributed`` process group."""

    def __init__(self, rank: int, world_size: int, device: torch.device, backend: str):
        self.rank, self.world_size, self.backend = rank, world_size, backend
        self.device = device if backend == "nccl" else torch.device("cpu")

    def gather(self, predictions: torch.Tensor) -> list[torch.Tensor]:
        import torch.distributed as dist

        predictions = predictions.to(self.device).contiguous()
        gathered = [torch.empty_like(predictions) for _ in range(self.world_size)]
        dist.all_gather(gathered, predictions)
        return gathered

    def agree_min(self, value: int) -> int:
        import torch.distributed as dist

        tensor = torch.tensor([value], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return int(tensor.item())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _join_group(rank: int, world_size: int, port: int, device: torch.device) -> ProcessGroupSplit:
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=COLLECTIVE_TIMEOUT)
    return ProcessGroupSplit(rank, world_size, device, backend)


def _cpu_threads(devices: list[torch.device]) -> int | None:
    """Torch threads per CPU process: the cores shared out ($OMP_NUM_THREADS wins when set)."""
    if os.environ.get("OMP_NUM_THREADS") or devices[0].type != "cpu":
        return None
    return max(1, (os.cpu_count() or 1) // len(devices))


class MultiDevicePipeline:
    """A :class:`~vexpress_cli.engine.pipeline.VExpressPipeline` run across ``devices`` (see the module)."""

    def __init__(self, model_dir: str | Path, devices: list[torch.device], dtype: torch.dtype, offload: str = "none"):
        from vexpress_cli.engine.pipeline import VExpressPipeline

        if len(devices) < 2:
            raise ValueError("A multi-device pipeline needs two devices or more.")
        if offload != "none":
            raise InputError(f"{parameter('offload', offload)} cannot be combined with {parameter('devices')}.",
                             "Offloading saves one device's memory by parking networks on the CPU; several devices "
                             "each hold a whole copy of the networks instead.",
                             f"Use {parameter('offload', 'none')} with {parameter('devices')}, or one device.")
        import torch.distributed as dist

        if dist.is_initialized():
            raise InputError(f"{parameter('devices')} cannot be used here.", "This process already belongs to a "
                             "torch.distributed group.", "Run one multi-device generator per process.")
        self.devices, self.dtype = devices, dtype
        self.window_batch, self.compiled, self.scheduler_name = 1, False, "ddim"
        self.threads = _cpu_threads(devices)
        port = _free_port()
        context = multiprocessing.get_context("spawn")
        self._errors, self._ready = context.Queue(), context.Queue()
        self._jobs = [context.Queue() for _ in devices[1:]]
        self._helpers = [context.Process(target=_helper_main, daemon=True, name=f"vexpress {device}",
                                         args=(rank, len(devices), port, str(model_dir), str(device), dtype,
                                               self.threads, jobs, self._errors, self._ready))
                         for rank, (device, jobs) in enumerate(zip(devices[1:], self._jobs), start=1)]
        for helper in self._helpers:
            start_helper(helper)
        try:
            self.local = VExpressPipeline.from_pretrained(model_dir, device=devices[0], dtype=dtype)
            self._wait_until_loaded()
            self.local.window_options = dataclasses.replace(
                self.local.window_options, split=_join_group(0, len(devices), port, devices[0]))
        except BaseException:
            self.close()
            raise
        self.device = devices[0]

    def use_scheduler(self, name: str) -> None:
        """The sampler every process uses from the next job on (see :meth:`VExpressPipeline.use_scheduler`)."""
        self.local.use_scheduler(name)
        self.scheduler_name = name

    def set_progress_bar_config(self, **config) -> None:
        self.local.set_progress_bar_config(**config)

    def seeded_generator(self, seed: int) -> torch.Generator:
        """The seed's generator (every process draws its noise from ``seed``, as one device would)."""
        return self.local.seeded_generator(seed)

    def iter_frames(self, *, generator: torch.Generator | None = None, **kwargs) -> Iterator:
        """:meth:`VExpressPipeline.iter_frames` on every device; rank 0 yields the frames."""
        with self._job(generator, kwargs) as seed:
            yield from self.local.iter_frames(generator=self.local.seeded_generator(seed), **kwargs)

    def denoise(self, *, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """:meth:`VExpressPipeline.denoise` on every device: the final latents."""
        with self._job(generator, kwargs) as seed:
            return self.local.denoise(generator=self.local.seeded_generator(seed), **kwargs)

    @contextlib.contextmanager
    def _job(self, generator: torch.Generator | None, kwargs: dict):
        """Send the job to the helpers, set this process up like them, and name a helper's failure."""
        from vexpress_cli.engine.compile import set_unet_compiled

        if kwargs.get("callback_on_step_end") is not None:
            raise InputError("callback_on_step_end cannot be used with several devices.",
                             "Every process steps its own copy of the latents; a callback in one process only "
                             "would make the copies differ.", "Run the callback on a one-device pipeline.")
        seed = generator.initial_seed() if generator is not None else torch.initial_seed()
        shared = {name: value for name, value in kwargs.items() if name not in RANK0_ONLY}
        for jobs in self._jobs:
            jobs.put((seed, self.window_batch, self.compiled, self.scheduler_name, shared))
        self.local.window_options = dataclasses.replace(self.local.window_options, window_batch=self.window_batch)
        set_unet_compiled(self.local, self.compiled)
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield seed
        except RuntimeError as error:  # gloo's or NCCL's: a peer is gone
            raise self._helper_error() or self._dead_helper_error("the video was made") or error
        finally:
            torch.set_num_threads(threads)

    def _wait_until_loaded(self) -> None:
        """Every helper has its networks loaded (else its error is raised) before the group is formed."""
        loaded = 0
        while loaded < len(self._helpers):
            try:
                self._ready.get(timeout=1)
                loaded += 1
            except queue.Empty:
                if not all(helper.is_alive() for helper in self._helpers):
                    raise self._helper_error() or self._dead_helper_error("the networks were loaded") from None

    def _dead_helper_error(self, while_doing: str) -> MultiDeviceError | None:
        """The error for helpers that ended without a word (killed: ``kill -9``, the out-of-memory killer), or None
        when every helper still runs."""
        for helper in self._helpers:
            helper.join(timeout=1)  # a peer's connection drops a moment before its process is reaped
            if not helper.is_alive():
                break
        dead = [helper for helper in self._helpers if not helper.is_alive()]
        if not dead:
            return None
        codes = ", ".join(str(helper.exitcode) for helper in dead)
        signalled = any((helper.exitcode or 0) < 0 for helper in dead)
        killed = (" (a negative code is the signal that killed it: -9 is SIGKILL, which the out-of-memory killer "
                  "sends)") if signalled else ""
        return MultiDeviceError(f"A helper process ended while {while_doing}.",
                                f"It ended (exit code {codes}{killed}) before it could report an error, so the video "
                                "cannot be finished.",
                                f"Run `vexpress doctor` for each device of {parameter('devices')}, and check the "
                                "machine's memory (dmesg names processes the kernel killed).")

    def _helper_error(self) -> MultiDeviceError | None:
        try:
            rank, device, message = self._errors.get(timeout=5)
        except queue.Empty:
            return None
        return MultiDeviceError(f"The helper process on {device} (rank {rank}) failed: {message}",
                                "Each device runs its own copy of the networks; one failed, so the video cannot "
                                "be finished.", f"Fix the problem on {device}, or leave it out of "
                                f"{parameter('devices')}.")

    def close(self) -> None:
        """Stop the helpers and leave the process group."""
        import torch.distributed as dist

        for jobs in self._jobs:
            jobs.put(None)
        for helper in self._helpers:
            helper.join(timeout=5)
            if helper.is_alive():
                helper.terminate()
                helper.join(timeout=5)
        self._helpers = []
        if dist.is_initialized():
            dist.destroy_process_group()


def _helper_main(rank: int, world_size: int, port: int, model_dir: str, device_name: str, dtype: torch.dtype,
                 threads: int | None, jobs, errors, ready) -> None:
    """A helper process: load the networks, join the group, run each job's denoising in step with rank 0."""
    from vexpress_cli.engine.compile import set_unet_compiled
    from vexpress_cli.engine.pipeline import VExpressPipeline

    _no_process_locks_for_progress_bars()
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    try:
        pipeline = VExpressPipeline.from_pretrained(model_dir, device=device, dtype=dtype)
        pipeline.set_progress_bar_config(disable=True)
        ready.put(rank)
        pipeline.window_options = dataclasses.replace(pipeline.window_options,
                                                      split=_join_group(rank, world_size, port, device))
        while (job := jobs.get()) is not None:
            seed, window_batch, compiled, scheduler, kwargs = job
            pipeline.use_scheduler(scheduler)
            pipeline.window_options = dataclasses.replace(pipeline.window_options, window_batch=window_batch)
            set_unet_compiled(pipeline, compiled)
            with pipeline.denoise_to_store(generator=pipeline.seeded_generator(seed), **kwargs):
                pass
    except BaseException as error:  # reported to rank 0, whose collective fails when this process exits
        errors.put((rank, device_name, f"{type(error).__name__}: {error}"))
        raise SystemExit(1)


def _no_process_locks_for_progress_bars() -> None:
    """tqdm's lock is a named semaphore by default: a helper stopped mid-step (SIGTERM) would leave it to the
    resource tracker, which warns of a "leaked semaphore". A helper draws no bars; a thread lock does."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def configure_speed(pipeline, window_batch: int, compiled: bool) -> None:
    """Set a job's ``window_batch`` and ``compile`` on a pipeline, or on every process of a multi-device one."""
    from vexpress_cli.engine.compile import set_unet_compiled

    if isinstance(pipeline, MultiDevicePipeline):
        if compiled:  # refused here, before the helpers are asked, when the backend is missing
            set_unet_compiled(pipeline.local, True)
        pipeline.window_batch, pipeline.compiled = window_batch, compiled
        return
    pipeline.window_options = dataclasses.replace(pipeline.window_options, window_batch=window_batch)
    set_unet_compiled(pipeline, compiled)
