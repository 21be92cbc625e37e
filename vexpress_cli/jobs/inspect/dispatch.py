"""Which kind of input a path is (by suffix, else by its first bytes), and the report for any input file."""

from __future__ import annotations

from pathlib import Path

from vexpress_cli.errors import InputError
from vexpress_cli.file_types import INPUT_KIND_SUFFIXES, PHOTO_HEAD_BYTES, photo_format
from vexpress_cli.input_files import require_regular_file
from vexpress_cli.jobs.inspect.audio import AudioReport, inspect_audio
from vexpress_cli.jobs.inspect.config import ConfigReport, inspect_config, is_user_config
from vexpress_cli.jobs.inspect.frames import FramesReport, inspect_frames, is_frame_folder
from vexpress_cli.jobs.inspect.image import ImageReport, inspect_image
from vexpress_cli.jobs.inspect.kps import DEFAULT_JUMP_PX, KpsReport, inspect_kps
from vexpress_cli.jobs.inspect.preset import PresetReport, inspect_preset
from vexpress_cli.jobs.inspect.record import RecordReport, inspect_record
from vexpress_cli.jobs.inspect.report import check_input_path
from vexpress_cli.jobs.inspect.video import VideoReport, inspect_video


def input_kind(path: str | Path) -> str:
    """``"model_folder"``, ``"frames"``, ``"audio"``, ``"image"``, ``"kps"``, ``"preset"``, ``"config"``, ``"record"``
    or ``"video"``.

    A folder of frame PNGs (generate's frame output) is ``"frames"``, any other folder a model
    folder; a file is judged by its suffix, else by its first bytes (a photo's first bytes win over a video's suffix,
    as every command reads them); a .toml file is the user config when named
    config.toml or setting model or model_dir, else a preset. Anything else raises InputError.
    """
    path = check_input_path(path)
    if path.is_dir():
        if is_frame_folder(path):
            return "frames"
        if _named_like_a_file(path) and not _has_model_layout(path):  # talk.wav/ is no model folder
            require_regular_file(path, "input", f"the {path.suffix} file")
        return "model_folder"
    if not path.is_file():  # a pipe, device or socket: told as every command tells it
        require_regular_file(path, "input", "an image, audio, video, kps file, preset or record, or a model folder")
    suffix = path.suffix.lower()
    kind = next((kind for kind, suffixes in INPUT_KIND_SUFFIXES.items() if suffix in suffixes), None)
    if kind == "video" and _kind_from_content(path) == "image":
        return "image"  # a photo under a video's name (extract refuses it as a still image too)
    if kind is not None:
        return "config" if kind == "preset" and is_user_config(path) else kind
    kind = _kind_from_content(path)
    if kind is None:
        known = "; ".join(f"{kind} {' '.join(suffixes)}" for kind, suffixes in INPUT_KIND_SUFFIXES.items())
        raise InputError(
            f"Cannot tell what kind of input {path} is.",
            why=f"Its suffix '{path.suffix or '(none)'}' is not one vexpress reads, "
            "and its first bytes match no known format.",
            fix=f"Inspect a model folder or a file of one of these kinds: {known}.",
        )
    return kind


def _named_like_a_file(path: Path) -> bool:
    return any(path.suffix.lower() in suffixes for suffixes in INPUT_KIND_SUFFIXES.values())


def _has_model_layout(path: Path) -> bool:
    from vexpress_cli.engine.model_folder import AUDIO_ENCODER_DIR, UNET_CONFIG, VAE_DIR, VEXPRESS_DIR

    return any((path / part).exists() for part in (VEXPRESS_DIR, VAE_DIR, AUDIO_ENCODER_DIR, UNET_CONFIG.parts[0]))


def _kind_from_content(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(PHOTO_HEAD_BYTES)
    except OSError as error:
        raise InputError(f"{path} cannot be read.", why=str(error), fix="Check the file and its permissions.") from None
    # Photos first, as every command tells them: an AVIF or HEIC photo is an `ftyp` box too, like an mp4.
    if photo_format(head) is not None:
        return "image"
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "):
        return {b"WAVE": "audio", b"AVI ": "video"}[head[8:12]]
    if head[4:8] == b"ftyp":  # ISO base media: mp4, mov, m4a
        return "audio" if head[8:12] in (b"M4A ", b"M4B ") else "video"
    signatures = {
        b"ID3": "audio", b"fLaC": "audio", b"OggS": "audio",
        b"\x1a\x45\xdf\xa3": "video",  # Matroska / WebM
    }
    # kps files are not sniffed: their reader picks the format by suffix, and a zip is not always torch.
    for magic, kind in signatures.items():
        if head.startswith(magic):
            return kind
    return None


def inspect_input(
    path: str | Path,
    *,
    fps: float | None = None,
    backend: str | None = None,
    width: int | None = None,
    height: int | None = None,
    model_root: str | Path | None = None,
    jump_px: float = DEFAULT_JUMP_PX,
    crop: str | None = None,
    face_index: int | None = None,
) -> AudioReport | ConfigReport | FramesReport | ImageReport | KpsReport | PresetReport | RecordReport | VideoReport:
    """The report for any input file, its kind picked by :func:`input_kind` (model folders excluded).

    A setting left out is taken as generate takes it: your config's [generate] value, else the default. A kps
    file's ``fps`` only stands in for a rate the file does not record (no setting's)."""
    from vexpress_cli.settings.user_config import your_defaults

    kind = input_kind(path)
    if kind == "audio":
        return inspect_audio(path, your_defaults(fps=fps)["fps"])
    if kind == "image":
        given = your_defaults(face_backend=backend, width=width, height=height, crop=crop, face_index=face_index)
        return inspect_image(path, given["face_backend"], given["width"], given["height"], model_root, given["crop"],
                             given["face_index"])
    if kind == "kps":
        return inspect_kps(path, fps, jump_px)
    if kind == "preset":
        return inspect_preset(Path(path))
    if kind == "config":
        return inspect_config(path)
    if kind == "record":
        return inspect_record(path)
    if kind == "video":
        return inspect_video(path)
    if kind == "frames":
        return inspect_frames(path)
    raise InputError(f"{path} is a folder.", why="inspect_input reports files.",
                     fix="Use vexpress_cli.jobs.inspect.inspect_model_folder for a model folder.")
