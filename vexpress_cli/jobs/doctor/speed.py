"""What makes generation faster here, and what is on: compile, the window batch, several devices."""

from __future__ import annotations

from vexpress_cli.errors import parameter
from vexpress_cli.jobs.devices import CPU_COMPILE_WARNING
from vexpress_cli.jobs.doctor.report import OK, WARNING, Check, DoctorContext


def speed_checks(context: DoctorContext) -> list[Check]:
    device = context.device
    if device is None:
        return [Check("speed options", WARNING, "not checked: no usable compute device",
                      "Fix the device check first.")]
    compiled, window_batch = context.setting("compile")[0], context.setting("window_batch")[0]
    saving = context.setting("save_gpu_memory")[0]
    return [_compile_check(device, compiled),
            _window_batch_check(device, window_batch, compiled, saving, context.dtype), _devices_check()]


def _compile_check(device, on: bool) -> Check:
    from vexpress_cli.engine.compile import compile_cache_dir, compile_unavailable

    reason = compile_unavailable(device)
    state = "on (user config)" if on else f"off ({parameter('compile')} turns it on)"
    if reason:
        status = WARNING if on else OK
        return Check("compile", status, f"{state}; not available on {device}: {reason}",
                     "Set compile = false in config.toml's [generate]." if on else "",
                     data={"on": on, "available": False})
    detail = (f"{state}; available on {device}, compiled kernels kept in {compile_cache_dir()} (changes numbers by "
              "float noise only)")
    data = {"on": on, "available": True, "cache": str(compile_cache_dir())}
    if on and device.type == "cpu":  # what generate warns before every run
        return Check("compile", WARNING, f"{detail}. {CPU_COMPILE_WARNING}",
                     "Set compile = false in config.toml's [generate].", data=data)
    return Check("compile", OK, detail, data=data)


def _window_batch_check(device, configured: int, compiled: bool, saving: bool, dtype) -> Check:
    from vexpress_cli.engine.devices import resolve_dtype
    from vexpress_cli.engine.window_denoiser import choose_window_batch

    dtype = dtype or resolve_dtype("auto", device)
    chosen = choose_window_batch(configured, device, dtype, compiled=compiled, save_gpu_memory=saving)
    how = "as configured" if configured else (
        "auto: 1 with compile" if compiled and device.type == "cuda" else
        "auto: 1 with save_gpu_memory" if saving and device.type == "cuda" else
        "auto, from the free GPU memory for 512x512" if device.type == "cuda" else "auto: 1 on this device")
    detail = (f"{chosen} window(s) per UNet call ({how}); V-Kps features are computed once per job and kept "
              f"on the device")
    return Check("window batch", OK, detail, data={"window_batch": chosen, "configured": configured})


def _devices_check() -> Check:
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return Check("devices", OK, f"one device per video: this torch has no torch.distributed, so "
                     f"{parameter('devices')} cannot split a video", data={"gpus": 0})
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1:
        nccl = dist.is_nccl_available()
        detail = (f"{gpus} GPUs: {parameter('devices', 'all')} splits each video across them"
                  + ("" if nccl else " (no NCCL in this torch build: not possible)"))
        return Check("devices", OK if nccl else WARNING, detail, "" if nccl else "Install a CUDA build of torch.",
                     data={"gpus": gpus, "nccl": nccl})
    where = "1 GPU" if gpus == 1 else "no GPU"
    return Check("devices", OK, f"{where}: one device per video ({parameter('devices', 'cpu,cpu')} splits one "
                 f"across CPU processes, for testing)", data={"gpus": gpus, "gloo": dist.is_gloo_available()})
