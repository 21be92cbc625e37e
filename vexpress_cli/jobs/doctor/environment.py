"""Checks of the Python environment: the interpreter, vexpress-cli's requirements, torch, CUDA and MPS."""

from __future__ import annotations

import platform
import sys

from vexpress_cli.errors import parameter
from vexpress_cli.jobs.doctor.report import FAILURE, OK, TORCH_INSTALL_URL, WARNING, Check, DoctorContext, gib

MIN_PYTHON = (3, 11)


def python_checks(context: DoctorContext) -> list[Check]:
    return [_python_version(), _dependencies()]


def _python_version() -> Check:
    version = platform.python_version()
    where = f"Python {version} ({sys.executable})"
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", OK, where)
    needed = ".".join(map(str, MIN_PYTHON))
    return Check("python", FAILURE, f"{where} is older than {needed}.",
                 f"Install Python {needed} or newer and reinstall vexpress-cli in it.")


def _dependencies() -> Check:
    """Every requirement of the vexpress-cli distribution is installed at a fitting version."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        requirements = metadata.requires("vexpress-cli") or []
    except metadata.PackageNotFoundError:
        return Check("dependencies", WARNING, "vexpress-cli is not installed as a package, so its "
                     "requirements cannot be checked.", "Install it: pip install -e . (from the repository).")
    problems, checked = [], 0
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        checked += 1
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement.name} {installed} does not satisfy {requirement.specifier}")
    if problems:
        wanted = " ".join(f"'{line.split(';')[0].strip()}'" for line in requirements
                          if any(problem.startswith(Requirement(line).name + " ") for problem in problems))
        return Check("dependencies", FAILURE, "; ".join(problems) + ".", f"pip install --upgrade {wanted}")
    return Check("dependencies", OK, f"all {checked} requirements of vexpress-cli "
                 f"{metadata.version('vexpress-cli')} are installed")


# --- torch and accelerators ---------------------------------------------------------------


def torch_checks(context: DoctorContext) -> list[Check]:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    checks = [Check("torch", OK, f"torch {torch.__version__} ({build})")]
    checks.append(_cuda_check())
    checks.append(_mps_check())
    return checks


def _cuda_check() -> Check:
    import torch

    from vexpress_cli.engine.devices import cuda_missing_reason

    if torch.cuda.is_available():
        gpus = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append({"index": index, "name": torch.cuda.get_device_name(index), "total_bytes": total,
                         "free_bytes": free})
        detail = "; ".join(f"cuda:{gpu['index']} {gpu['name']}, {gib(gpu['total_bytes'])} total, "
                           f"{gib(gpu['free_bytes'])} free" for gpu in gpus)
        return Check("cuda", OK, detail, data={"gpus": gpus})
    apple = torch.backends.mps.is_available()
    status = OK if apple else WARNING
    detail = f"not available: {cuda_missing_reason()}"
    if torch.version.cuda is None:
        fix = f"Install a CUDA build of torch ({TORCH_INSTALL_URL}); on the CPU generation is very slow."
    else:
        fix = "Check the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES."
    if apple:
        detail += " (Apple's MPS is used instead)"
        fix = ""
    return Check("cuda", status, detail, fix)


def _mps_check() -> Check:
    import torch

    if torch.backends.mps.is_available():
        return Check("mps", OK, "available (Apple silicon GPU)")
    if sys.platform != "darwin":
        return Check("mps", OK, f"not applicable on {platform.system()} (Apple-silicon Macs only)")
    if not torch.backends.mps.is_built():
        return Check("mps", WARNING, "not available: this torch build has no MPS support",
                     f"Install the standard macOS build of torch ({TORCH_INSTALL_URL}).")
    return Check("mps", WARNING, "not available: needs an Apple-silicon Mac with macOS 12.3 or newer",
                 f"Use {parameter('device', 'cpu')} on this Mac.")

