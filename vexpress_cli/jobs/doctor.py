"""Health checks of a vexpress installation: what ``vexpress doctor`` runs.

Each check reports a :class:`Check` (``ok``, ``warning`` or ``failure``, a one-line detail and a
one-line fix). :func:`run_checks` runs them all and never raises: a check that crashes becomes a
failure row naming the crash, so one broken part never hides the others.

Checks, in order: Python, installed dependencies, torch, CUDA, MPS, the chosen device, dtypes
and scaled-dot-product attention on it, the bundled ffmpeg and its encoders, the config file,
the model folder and its files (``deep``: every checkpoint tensor against the architecture),
the face backends, retarget-strategy plugins, presets and (``smoke``) a one-second generation
with the built-in tiny random model through the same code path as ``vexpress generate``.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vexpress_cli.errors import ModelFolderError, VExpressError

Status = Literal["ok", "warning", "failure"]
OK: Status = "ok"
WARNING: Status = "warning"
FAILURE: Status = "failure"
SEVERITY = {OK: 0, WARNING: 1, FAILURE: 2}

MIN_PYTHON = (3, 11)
REQUIRED_ENCODERS = ("libx264", "aac")  # what the video writer asks ffmpeg for
DOWNLOAD_FIX = "Run `vexpress models download` (it fetches only the missing files)."
TORCH_INSTALL_URL = "https://pytorch.org/get-started/locally/"

# The smoke generation: small enough for a CPU, long enough for two context windows.
SMOKE_SECONDS = 1.0
SMOKE_SIZE = 64
SMOKE_SETTINGS = {"width": SMOKE_SIZE, "height": SMOKE_SIZE, "num_inference_steps": 2, "fps": 30.0}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable extras for --json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorOptions:
    model_dir: Path | None = None  # as --model-dir; None: the usual lookup
    device: str = "auto"
    deep: bool = False  # compare every checkpoint tensor with the architecture
    smoke: bool = False  # run a one-second generation with the tiny model
    tiny_model_dir: Path | None = None  # where the smoke test keeps its tiny model (default: user cache)


def has_failures(checks: Iterable[Check]) -> bool:
    return any(check.status == FAILURE for check in checks)


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=SEVERITY.__getitem__, default=OK)


def run_checks(options: DoctorOptions | None = None,
               on_section: Callable[[str], None] | None = None) -> list[Check]:
    """Run every check; ``on_section(title)`` is called before each group (for a spinner)."""
    options = options or DoctorOptions()
    context = _Context(options)
    sections: list[tuple[str, str, Callable[[_Context], list[Check]]]] = [
        ("Python and packages", "python", _python_checks),
        ("torch and accelerators", "torch", _torch_checks),
        ("the compute device", "device", _device_checks),
        ("ffmpeg", "ffmpeg", _ffmpeg_checks),
        ("configuration and model folder", "model folder", _model_checks),
        ("face detection", "face detection", _face_checks),
        ("plugins and presets", "plugins", _plugin_checks),
    ]
    if options.smoke:
        sections.append(("a one-second generation with the tiny model", "smoke test", _smoke_checks))
    checks: list[Check] = []
    for title, name, section in sections:
        if on_section is not None:
            on_section(title)
        checks.extend(_guarded(name, section, context))
    return checks


def _guarded(name: str, section: Callable[[_Context], list[Check]], context: _Context) -> list[Check]:
    try:
        return section(context)
    except VExpressError as error:
        return [Check(name, FAILURE, _join(error.what, error.why), error.fix)]
    except Exception as error:  # the doctor reports; it never crashes
        return [Check(name, FAILURE, f"The check itself failed: {_describe(error)}.",
                      "Run with a fresh virtual environment; if it persists, report it with this message.")]


class _Context:
    """What several checks share: the options, the chosen device, the model folder."""

    def __init__(self, options: DoctorOptions):
        self.options = options
        self.device = None  # torch.device once the device check ran and succeeded
        self.model_root: Path | None = None  # once the model folder check found it


# --- helpers ------------------------------------------------------------------------------


def _join(*parts: str) -> str:
    return " ".join(part.strip() for part in parts if part and part.strip())


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _size(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f} GiB"


# --- Python and packages ------------------------------------------------------------------


def _python_checks(context: _Context) -> list[Check]:
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


def _torch_checks(context: _Context) -> list[Check]:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    checks = [Check("torch", OK, f"torch {torch.__version__} ({build})")]
    checks.append(_cuda_check())
    checks.append(_mps_check())
    return checks


def _cuda_check() -> Check:
    import torch

    if torch.cuda.is_available():
        gpus = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append({"index": index, "name": torch.cuda.get_device_name(index), "total_bytes": total,
                         "free_bytes": free})
        detail = "; ".join(f"cuda:{gpu['index']} {gpu['name']}, {_gib(gpu['total_bytes'])} total, "
                           f"{_gib(gpu['free_bytes'])} free" for gpu in gpus)
        return Check("cuda", OK, detail, data={"gpus": gpus})
    apple = torch.backends.mps.is_available()
    status = OK if apple else WARNING
    if torch.version.cuda is None:
        detail = "not available: this torch build has no CUDA support"
        fix = f"Install a CUDA build of torch ({TORCH_INSTALL_URL}); on the CPU generation is very slow."
    else:
        detail = f"not available: torch is built for CUDA {torch.version.cuda} but sees no GPU"
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
                 "Use --device cpu on this Mac.")


# --- the chosen device ----------------------------------------------------------------------


def _device_checks(context: _Context) -> list[Check]:
    from vexpress_cli.engine.devices import resolve_device

    requested = context.options.device
    try:
        device = resolve_device(requested)
    except VExpressError as error:
        return [Check("device", FAILURE, _join(error.what, error.why), error.fix)]
    context.device = device
    label = str(device) + (" (chosen by --device auto)" if requested == "auto" else "")
    return [Check("device", OK, label), _dtype_check(device), _sdpa_check(device)]


def _matmul_error(device, dtype) -> str | None:
    """None when a small matrix product in ``dtype`` on ``device`` is right, else what went wrong."""
    import torch

    generator = torch.Generator().manual_seed(0)
    left = torch.randn(16, 32, generator=generator)
    right = torch.randn(32, 8, generator=generator)
    expected = left @ right
    try:
        got = (left.to(device, dtype) @ right.to(device, dtype)).float().cpu()
    except Exception as error:  # unsupported dtypes raise RuntimeError, TypeError, ...
        return _describe(error)
    tolerance = 0.05 * float(expected.abs().max())  # generous: fp16/bf16 keep ~3 digits
    if not torch.isfinite(got).all() or float((got - expected).abs().max()) > tolerance:
        return "wrong results"
    return None


def _dtype_check(device) -> Check:
    import torch

    from vexpress_cli.engine.devices import resolve_dtype

    results: dict[str, Status] = {}
    words: dict[str, str] = {}  # ok, slow or fails, for the detail line
    notes: list[str] = []
    fixes: list[str] = []
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        error = _matmul_error(device, dtype)
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            error = error or "not supported by this GPU"
        if error is None:
            results[name], words[name] = OK, "ok"
            if name == "fp16" and device.type == "cpu":
                results[name], words[name] = WARNING, "slow"
                notes.append("fp16 works but is slow on the CPU")
                fixes.append("Keep --dtype auto (fp32 on the CPU) or run on a GPU.")
            continue
        auto_dtype = resolve_dtype("auto", device)
        essential = dtype == auto_dtype or name == "fp32"
        results[name] = FAILURE if essential else WARNING
        words[name] = "fails"
        notes.append(f"{name} fails ({error})")
        fixes.append(f"Use --dtype {'fp16' if name == 'bf16' else 'fp32'}." if not essential else
                     f"Update the GPU driver and torch ({TORCH_INSTALL_URL}), or use --dtype fp32.")
    auto_name = {torch.float32: "fp32", torch.float16: "fp16"}.get(resolve_dtype("auto", device), "?")
    summary = ", ".join(f"{name} {word}" for name, word in words.items())
    detail = f"{summary} on {device}; --dtype auto uses {auto_name} here"
    if notes:
        detail += f" ({'; '.join(notes)})"
    return Check("dtypes", worst(results.values()), detail, " ".join(dict.fromkeys(fixes)),
                 data={"dtypes": results, "auto": auto_name})


def _sdpa_check(device) -> Check:
    """torch's fused attention runs on the device, and which of its kernels do (on CUDA)."""
    import torch
    import torch.nn.functional as F

    from vexpress_cli.engine.devices import resolve_dtype

    if not hasattr(F, "scaled_dot_product_attention"):
        return Check("attention (SDPA)", FAILURE, f"torch {torch.__version__} has no scaled_dot_product_attention",
                     f"Upgrade torch to 2.2 or newer ({TORCH_INSTALL_URL}).")
    dtype = resolve_dtype("auto", device)
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, 2, 64, 64, generator=generator) for _ in range(3))
    expected = torch.softmax(query @ key.transpose(-1, -2) / 8.0, dim=-1) @ value

    def attention_error() -> str | None:
        try:
            got = F.scaled_dot_product_attention(*(t.to(device, dtype) for t in (query, key, value)))
        except Exception as error:
            return _describe(error)
        if float((got.float().cpu() - expected).abs().max()) > 0.05:
            return "wrong results"
        return None

    if device.type != "cuda":
        error = attention_error()
        if error:
            return Check("attention (SDPA)", FAILURE, f"scaled_dot_product_attention fails on {device}: {error}",
                         f"Reinstall torch ({TORCH_INSTALL_URL}).")
        return Check("attention (SDPA)", OK, f"scaled_dot_product_attention works on {device}")

    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "memory-efficient": SDPBackend.EFFICIENT_ATTENTION,
               "math": SDPBackend.MATH}
    working = []
    for label, backend in kernels.items():
        with sdpa_kernel([backend]):
            if attention_error() is None:
                working.append(label)
    detail = f"kernels that run on {device} in {str(dtype).removeprefix('torch.')}: {', '.join(working) or 'none'}"
    if not working:
        return Check("attention (SDPA)", FAILURE, detail, f"Update the GPU driver and torch ({TORCH_INSTALL_URL}).")
    if working == ["math"]:
        return Check("attention (SDPA)", WARNING, detail + " (no fused kernel: slower, more memory)",
                     f"Install a torch build with fused attention for this GPU ({TORCH_INSTALL_URL}).",
                     data={"kernels": working})
    return Check("attention (SDPA)", OK, detail, data={"kernels": working})


# --- ffmpeg --------------------------------------------------------------------------------


def _ffmpeg_checks(context: _Context) -> list[Check]:
    from vexpress_cli.media.ffmpeg import ffmpeg_exe, run_ffmpeg

    reinstall = "Reinstall it: pip install --force-reinstall imageio-ffmpeg"
    try:
        exe = ffmpeg_exe()
        version = run_ffmpeg(["-version"], what="The bundled ffmpeg does not run.", fix=reinstall)
    except VExpressError as error:
        return [Check("ffmpeg", FAILURE, _join(error.what, error.why), error.fix or reinstall)]
    except OSError as error:
        return [Check("ffmpeg", FAILURE, f"The bundled ffmpeg cannot be started: {_describe(error)}.", reinstall)]
    first_line = version.decode("utf-8", "replace").splitlines()[0] if version else "unknown version"
    release = first_line.split()[2] if first_line.startswith("ffmpeg version ") else first_line
    checks = [Check("ffmpeg", OK, f"{exe} (version {release})", data={"path": exe, "version": release})]

    listing = run_ffmpeg(["-encoders"], what="The bundled ffmpeg cannot list its encoders.", fix=reinstall)
    encoders = {line.split()[1] for line in listing.decode("utf-8", "replace").splitlines()
                if len(line.split()) > 1 and len(line.split()[0]) == 6 and line.split()[0][0] in "VAS"}
    missing = [name for name in REQUIRED_ENCODERS if name not in encoders]
    if missing:
        checks.append(Check("ffmpeg encoders", FAILURE,
                            f"the bundled ffmpeg lacks {', '.join(missing)} (needed for H.264 video and AAC audio)",
                            reinstall))
    else:
        checks.append(Check("ffmpeg encoders", OK, ", ".join(REQUIRED_ENCODERS) + " present"))
    return checks


# --- configuration and the model folder -----------------------------------------------------


def _model_checks(context: _Context) -> list[Check]:
    checks = [_config_check(), _model_folder_check(context)]
    if context.model_root is None:
        return checks
    checks.append(_model_files_check(context.model_root))
    if _configs_present(context.model_root):
        checks.append(_model_config_check(context.model_root))
    if context.options.deep:
        checks.append(_checkpoints_check(context.model_root))
    return checks


def _config_check() -> Check:
    from vexpress_cli.settings.user_config import config_file, load_user_config

    path = config_file()
    if not path.is_file():
        return Check("config file", OK, f"none at {path} (optional)")
    try:
        settings = load_user_config(path)
    except VExpressError as error:
        return Check("config file", FAILURE, _join(error.what, error.why), error.fix)
    keys = ", ".join(f"{key} = {value!r}" for key, value in settings.items()) or "no settings"
    return Check("config file", OK, f"{path} ({keys})")


def _model_folder_check(context: _Context) -> Check:
    from vexpress_cli.settings.user_config import resolve_model_dir

    try:
        resolved = resolve_model_dir(context.options.model_dir)
    except ModelFolderError as error:
        fix = error.fix if "models download" in error.fix else _join(DOWNLOAD_FIX, error.fix)
        return Check("model folder", FAILURE, _join(error.what, error.why), fix)
    except VExpressError as error:  # a broken config.toml: the config row says how to fix it
        return Check("model folder", FAILURE, _join(error.what, error.why), error.fix)
    context.model_root = resolved.path
    return Check("model folder", OK, f"{resolved.path} (from {resolved.how})",
                 data={"path": str(resolved.path), "found_by": resolved.how})


def _model_files_check(root: Path) -> Check:
    from vexpress_cli.engine import model_folder as layout
    from vexpress_cli.engine.model_folder import REQUIRED_FILES, missing_required_files

    optional = {layout.INSIGHTFACE_DETECTOR.as_posix()}  # checked with face detection: dlib stands in
    required = [entry for entry in REQUIRED_FILES if not optional.issuperset(entry.choices)]
    missing = [entry for entry in missing_required_files(root) if entry in required]
    sizes = {}
    for entry in required:
        present = entry.present_in(root)
        if present is not None:
            sizes[present] = (root / present).stat().st_size
    empty = [path for path, size in sizes.items() if size == 0]
    data = {"files": sizes, "missing": [entry.label for entry in missing]}
    if missing or empty:
        problems = [f"{entry.label} ({' or '.join(entry.choices)})" for entry in missing]
        problems += [f"{path} is empty" for path in empty]
        what = f"{len(missing)} of {len(required)} required files missing" if missing else "broken files"
        fix = f"run `vexpress models download --to {root}` (it fetches only the missing files)."
        fix = f"Delete the empty files, then {fix}" if empty else fix[0].upper() + fix[1:]
        return Check("model files", FAILURE, f"{what}: {'; '.join(problems)}", fix, data=data)
    total = sum(sizes.values())
    largest = max(sizes, key=sizes.get)
    return Check("model files", OK, f"all {len(required)} required files present, {_size(total)} "
                 f"(largest: {largest}, {_size(sizes[largest])})", data=data)


def _configs_present(root: Path) -> bool:
    from vexpress_cli.engine.model_folder import ModelFolder

    folder = ModelFolder(root)
    return folder.unet_config.is_file() and (folder.audio_encoder / "config.json").is_file()


def _model_config_check(root: Path) -> Check:
    from vexpress_cli.engine.architecture import Architecture
    from vexpress_cli.engine.model_folder import ModelFolder

    folder = ModelFolder(root)
    Architecture.from_folder(folder)  # a broken JSON file raises a ModelFolderError, reported by _guarded
    kind = ("overridden by v-express/config.json (a test-size model)" if folder.architecture_overrides.is_file()
            else "the released V-Express architecture")
    return Check("model configs", OK, f"UNet and wav2vec2 configs read; {kind}")


def _checkpoints_check(root: Path) -> Check:
    from vexpress_cli.jobs.inspect_model import inspect_model_folder

    report = inspect_model_folder(root)
    problems = []
    for network in report.networks:
        if network.status == "absent":
            problems.append(f"{network.name}: no checkpoint file")
        elif network.status == "mismatch":
            parts = []
            if network.missing:
                parts.append(f"{len(network.missing)} missing (e.g. {network.missing[0]})")
            if network.unexpected:
                parts.append(f"{len(network.unexpected)} unexpected (e.g. {network.unexpected[0]})")
            if network.mismatched:
                key, want, got = network.mismatched[0]
                parts.append(f"{len(network.mismatched)} wrong-shape (e.g. {key} expects {want}, has {got})")
            problems.append(f"{network.name} ({', '.join(network.files)}): {', '.join(parts)}")
    data = {"networks": {network.name: network.status for network in report.networks}}
    if problems:
        return Check("checkpoints", FAILURE, "; ".join(problems),
                     "These files do not fit this model: delete them and run `vexpress models download`; "
                     "`vexpress inspect MODEL_DIR` lists every difference.", data=data)
    tensors = sum(network.expected_tensors for network in report.networks)
    parameters = sum(network.expected_elements for network in report.networks)
    return Check("checkpoints", OK, f"{len(report.networks)} networks match the architecture key for key "
                 f"({tensors} tensors, {parameters / 1e6:.1f} M parameters)", data=data)


# --- face detection ---------------------------------------------------------------------------


def _face_checks(context: _Context) -> list[Check]:
    insightface_check = _insightface_check()
    providers_check = _onnxruntime_check()
    detector_check, detector_usable = _detector_check(context, insightface_check.status == OK)
    dlib_check = _dlib_check(fallback_available=detector_usable)
    return [insightface_check, providers_check, detector_check, dlib_check]


def _insightface_check() -> Check:
    try:
        import insightface
    except Exception as error:  # ImportError, or a broken native dependency
        return Check("insightface", WARNING, f"cannot be imported ({_describe(error)}); the dlib backend is used",
                     "pip install insightface")
    return Check("insightface", OK, f"insightface {getattr(insightface, '__version__', '?')}")


def _onnxruntime_check() -> Check:
    import torch

    try:
        import onnxruntime
    except Exception as error:
        return Check("onnxruntime", WARNING, f"cannot be imported ({_describe(error)}); the dlib backend is used",
                     "pip install onnxruntime (or onnxruntime-gpu on NVIDIA machines)")
    providers = onnxruntime.get_available_providers()
    detail = f"onnxruntime {onnxruntime.__version__}, providers: {', '.join(providers)}"
    data = {"providers": providers}
    if "CUDAExecutionProvider" in providers:
        return Check("onnxruntime", OK, detail, data=data)
    if torch.cuda.is_available():
        return Check("onnxruntime", WARNING, detail + " (no CUDAExecutionProvider: face detection runs on the CPU)",
                     "pip uninstall onnxruntime && pip install onnxruntime-gpu", data=data)
    return Check("onnxruntime", OK, detail + " (CPU is all this machine has)", data=data)


def _detector_check(context: _Context, insightface_ok: bool) -> tuple[Check, bool]:
    """The SCRFD detector file, loaded; also whether the insightface backend is usable."""
    from vexpress_cli.face import default_model_root, find_detector

    root = context.model_root if context.model_root is not None else default_model_root()
    detector = find_detector(root)
    if detector is None:
        from vexpress_cli.engine import model_folder as layout

        expected = (context.model_root / layout.INSIGHTFACE_DETECTOR) if context.model_root else root
        return Check("face detector", WARNING,
                     f"det_10g.onnx not found at {expected}; the dlib backend stands in (about 2-4 px from "
                     "the reference keypoints)",
                     "Run `vexpress models download` (it fetches det_10g.onnx with the other missing files)."), False
    size = _size(detector.stat().st_size)
    if not insightface_ok:
        return Check("face detector", WARNING, f"{detector} ({size}) is present but insightface is not usable",
                     "pip install insightface"), False
    from vexpress_cli.face.insightface_backend import InsightFaceBackend

    try:
        InsightFaceBackend(detector, input_size=(512, 512))
    except VExpressError as error:
        return Check("face detector", FAILURE, _join(error.what, error.why), error.fix), False
    return Check("face detector", OK, f"{detector} ({size}) loads as SCRFD"), True


def _dlib_check(fallback_available: bool) -> Check:
    """The offline dlib backend loads (the detector and the 68-point predictor file)."""
    from vexpress_cli.face.dlib_backend import DlibBackend, predictor_path

    status = WARNING if fallback_available else FAILURE
    consequence = "" if fallback_available else "; with no insightface detector either, faces cannot be found"
    try:
        import dlib

        path = predictor_path()
        DlibBackend()
    except VExpressError as error:
        return Check("dlib backend", status, _join(error.what, error.why).rstrip(".") + consequence, error.fix)
    except Exception as error:
        return Check("dlib backend", status, f"dlib cannot be loaded ({_describe(error)}){consequence}",
                     "pip install --force-reinstall dlib-bin face_recognition_models")
    return Check("dlib backend", OK, f"dlib {getattr(dlib, '__version__', '?')}, predictor {path} "
                 f"({_size(path.stat().st_size)})")


# --- plugins and presets ----------------------------------------------------------------------


def _plugin_checks(context: _Context) -> list[Check]:
    checks: list[Check] = []
    for name, check in (("strategies", _strategies_check), ("presets", _presets_check)):
        checks += _guarded(name, lambda _, check=check: [check()], context)
    return checks


def _strategies_check() -> Check:
    from vexpress_cli.plugins import get_plugin_load_failures, get_retarget_strategy_infos

    try:
        infos = get_retarget_strategy_infos()
    except VExpressError as error:
        return Check("strategies", FAILURE, _join(error.what, error.why), error.fix)
    failures = get_plugin_load_failures()
    if failures:
        return Check("strategies", FAILURE, "; ".join(failure.message for failure in failures),
                     "Upgrade or uninstall that plugin's distribution (`pip uninstall NAME`).")
    if not infos:
        return Check("strategies", FAILURE, "no retarget strategy is installed (not even the built-in ones)",
                     "Reinstall vexpress-cli: its entry point registers the built-in strategies.")
    by_source: dict[str, list[str]] = {}
    for name, info in infos.items():
        by_source.setdefault(info.source, []).append(name)
    detail = "; ".join(f"{', '.join(names)} from {source}" for source, names in by_source.items())
    return Check("strategies", OK, detail,
                 data={"strategies": {name: info.source for name, info in infos.items()}})


def _presets_check() -> Check:
    from vexpress_cli.settings.presets import list_presets

    infos = list_presets()
    broken = [info for info in infos if info.error]
    data = {"presets": {info.name: {"source": info.source, "path": info.path, "ok": info.error is None}
                        for info in infos}}
    if broken:
        detail = "; ".join(f"{info.source} preset '{info.name}' ({info.path}) does not load: {info.error}"
                           for info in broken)
        files = ", ".join(info.path for info in broken)
        return Check("presets", FAILURE, detail, f"Fix or delete {files} (`vexpress presets show NAME` "
                     "re-checks one).", data=data)
    sources = {"builtin": 0, "user": 0}
    for info in infos:
        sources[info.source] = sources.get(info.source, 0) + 1
    return Check("presets", OK, f"{len(infos)} presets load ({sources['builtin']} built-in, {sources['user']} user): "
                 + ", ".join(info.name for info in infos), data=data)


# --- the smoke test ---------------------------------------------------------------------------


def _smoke_checks(context: _Context) -> list[Check]:
    if context.device is None:
        return [Check("smoke test", FAILURE, "not run: the device check failed", "Fix the device row first.")]
    return [_smoke_check(context.device, context.options.tiny_model_dir)]


def _smoke_check(device, tiny_model_dir: Path | None) -> Check:
    """A one-second generation with the tiny random model, checked as a finished video file."""
    from vexpress_cli.tiny.inputs import PORTRAIT_SIZE, write_demo_inputs
    from vexpress_cli.engine.devices import resolve_dtype
    from vexpress_cli.jobs.generate import GenerationRequest, frame_count, plan_generation, run_generation
    from vexpress_cli.media.video_reader import video_info
    from vexpress_cli.engine.pipeline import VExpressPipeline
    from vexpress_cli.settings.presets import generation_settings

    started = time.monotonic()
    dtype = resolve_dtype("auto", device)
    with tempfile.TemporaryDirectory(prefix="vexpress-doctor-") as folder:
        work = Path(folder)
        model = _tiny_model(tiny_model_dir, work)
        inputs = write_demo_inputs(work / "inputs", SMOKE_SECONDS)
        settings = generation_settings(None, {**SMOKE_SETTINGS, "device": str(device.type)})
        request = GenerationRequest(
            reference_image=inputs.reference_image, audio=inputs.audio, output=work / "smoke.mp4",
            settings=settings, reference_kps=inputs.reference_kps * (SMOKE_SIZE / PORTRAIT_SIZE),
        )
        plan = plan_generation(request, "fix_face", "doctor smoke test")
        pipeline = VExpressPipeline.from_pretrained(model, device=device, dtype=dtype)
        result = run_generation(pipeline, plan, request)
        info = video_info(result.output)
    seconds = time.monotonic() - started
    expected_frames = frame_count(plan.duration, plan.fps)
    problems = []
    if info.codec != "h264":
        problems.append(f"video codec {info.codec}, not h264")
    if info.audio_codec != "aac":
        problems.append(f"audio codec {info.audio_codec}, not aac")
    if info.frame_count != expected_frames:
        problems.append(f"{info.frame_count} frames, not round({plan.duration:g} s x {float(plan.fps):g} fps) "
                        f"= {expected_frames}")
    if (info.width, info.height) != (SMOKE_SIZE, SMOKE_SIZE):
        problems.append(f"{info.width}x{info.height} pixels, not {SMOKE_SIZE}x{SMOKE_SIZE}")
    data = {"seconds": round(seconds, 2), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
            "frames": info.frame_count, "video_codec": info.codec, "audio_codec": info.audio_codec}
    if problems:
        return Check("smoke test", FAILURE, "the generated video is wrong: " + "; ".join(problems),
                     "Reinstall imageio-ffmpeg and torch; if it persists, report it with this output.", data=data)
    return Check("smoke test", OK, f"{info.frame_count} frames of {SMOKE_SIZE}x{SMOKE_SIZE} on {device} "
                 f"({data['dtype']}), {info.codec} + {info.audio_codec}, {info.duration:.2f} s of video, "
                 f"in {seconds:.1f} s", data=data)


def _tiny_model(preferred: Path | None, scratch: Path) -> Path:
    """The tiny model in ``preferred`` (default: the user cache), or in ``scratch`` if that is not writable."""
    from vexpress_cli.tiny.model import ensure_tiny_model

    try:
        return ensure_tiny_model(preferred)
    except OSError:
        return ensure_tiny_model(scratch / "tiny-model")
