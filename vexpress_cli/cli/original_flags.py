"""The original ``inference.py``'s flags that are not generation settings: model paths, GPU choice, and
options vexpress has no use for. Each is mapped onto vexpress's own (``--model-dir``, ``--device``) or
refused with a message naming the replacement. docs/original-flags.md has the whole table."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vexpress_cli.engine import model_folder as layout
from vexpress_cli.errors import InputError

# Each model-path flag of the original and where its file or folder sits in a model folder.
MODEL_PATH_FLAGS = {
    "--unet_config_path": layout.UNET_CONFIG,
    "--vae_path": layout.VAE_DIR,
    "--audio_encoder_path": layout.AUDIO_ENCODER_DIR,
    "--insightface_model_path": Path("insightface_models"),
    **{f"--{stem}_path": layout.VEXPRESS_DIR / f"{stem}.bin" for stem in layout.CHECKPOINT_STEMS},
}
SPEECH_SAMPLE_RATE = 16000


# Every such flag with its type and help, for the generate command's compatibility panel.
OPTIONS: dict[str, tuple[type, str]] = {
    **{flag: (Path, "Its model folder is used (as --model-dir).") for flag in MODEL_PATH_FLAGS},
    "--gpu_id": (int, "Same as --device cuda:N."),
    "--standard_audio_sampling_rate": (int, f"Only {SPEECH_SAMPLE_RATE}: speech is always resampled to it."),
    "--do_multi_devices_inference": (bool, "Accepted and ignored; --devices spreads the work across devices."),
}


def model_dir_from_paths(model_dir: Path | None, paths: dict[str, Path | None]) -> Path | None:
    """The model folder the original's path flags point into (all must agree, and with ``model_dir``)."""
    roots: dict[Path, str] = {}
    for flag, given in paths.items():
        if given is None:
            continue
        relative = MODEL_PATH_FLAGS[flag]
        parts = PurePosixPath(Path(given).as_posix().rstrip("/")).parts
        if len(parts) < len(relative.parts) or tuple(parts[-len(relative.parts):]) != relative.parts:
            raise InputError(f"{flag} {given} is not where a model folder keeps that file ({relative}).",
                             why="vexpress loads all networks from one model folder in the released layout.",
                             fix="Pass --model-dir FOLDER (the original's ./model_ckpts) instead of the file paths.")
        roots.setdefault(Path(*parts[:-len(relative.parts)]) if len(parts) > len(relative.parts) else Path("."),
                         flag)
    if model_dir is not None:
        roots.setdefault(model_dir, "--model-dir")
    if len({root.resolve() for root in roots}) > 1:
        listing = "; ".join(f"{flag} -> {root}" for root, flag in roots.items())
        raise InputError(f"The model paths point into different folders ({listing}).",
                         why="vexpress loads all networks from one model folder.",
                         fix="Put the files in one folder in the released layout and pass --model-dir FOLDER.")
    return next(iter(roots), None)


def device_from_gpu_id(device: str | None, gpu_id: int | None) -> str | None:
    """``--gpu_id N`` is ``--device cuda:N``."""
    if gpu_id is None:
        return device
    if gpu_id < 0:
        raise InputError(f"--gpu_id {gpu_id} is not a GPU number.", why="GPUs are numbered from 0 (cuda:0).",
                         fix="Pass --gpu_id 0 for the first GPU, or --device cpu to run without one.")
    if device not in (None, "auto", "cuda", f"cuda:{gpu_id}"):
        raise InputError(f"--gpu_id {gpu_id} and --device {device} disagree.",
                         why="--gpu_id picks a CUDA GPU.", fix=f"Pass --device cuda:{gpu_id} alone.")
    return f"cuda:{gpu_id}"


def check_sample_rate(rate: int | None) -> None:
    if rate is not None and rate != SPEECH_SAMPLE_RATE:
        raise InputError(f"--standard_audio_sampling_rate {rate} is not possible.",
                         why=f"wav2vec2 was trained on {SPEECH_SAMPLE_RATE} Hz speech; vexpress resamples any audio "
                         "to it.", fix="Leave the flag out.")
