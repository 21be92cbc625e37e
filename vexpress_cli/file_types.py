"""Every file suffix vexpress reads or writes, in one place.

Suffixes are lower case with the leading dot; compare them with ``path.suffix.lower()``.
The output kinds that :func:`vexpress_cli.outputs.check_output` knows are built from
these lists, so a suffix added here is accepted (and listed in error messages) everywhere.
Nothing here imports the rest of vexpress_cli.
"""

from __future__ import annotations

# --- video -------------------------------------------------------------------------------------
# What the video writer encodes to, with the ffmpeg muxer for each suffix.
VIDEO_OUTPUT_MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
VIDEO_OUTPUT_SUFFIXES = tuple(VIDEO_OUTPUT_MUXERS)
# What `vexpress inspect` and the readers recognise as video by name (ffmpeg reads more).
VIDEO_INPUT_SUFFIXES = (*VIDEO_OUTPUT_SUFFIXES, ".avi", ".webm")
# The files of a PNG frame folder: frame_000001.png ... and, optionally, audio.wav.
FRAME_SUFFIX = ".png"
FRAME_FOLDER_AUDIO = "audio.wav"

# --- audio -------------------------------------------------------------------------------------
# suffix: (ffmpeg muxer, encoder, source codecs that can be copied as they are)
AUDIO_OUTPUT_CODECS = {
    ".wav": ("wav", "pcm_s16le", ("pcm_s16le",)),
    ".mp3": ("mp3", "libmp3lame", ("mp3",)),
    ".m4a": ("mp4", "aac", ("aac",)),
    ".aac": ("adts", "aac", ("aac",)),
    ".flac": ("flac", "flac", ("flac",)),
    ".ogg": ("ogg", "libvorbis", ("vorbis", "opus", "flac")),
    ".opus": ("opus", "libopus", ("opus",)),
}
AUDIO_OUTPUT_SUFFIXES = tuple(AUDIO_OUTPUT_CODECS)
AUDIO_INPUT_SUFFIXES = AUDIO_OUTPUT_SUFFIXES  # speech is read from any of them (or from a video)

# --- keypoint tracks ---------------------------------------------------------------------------
KPS_SAFETENSORS_SUFFIX = ".safetensors"  # ours: a tensor plus fps, frame size and backend
KPS_PICKLE_SUFFIXES = (".pth", ".pt")  # a bare tensor, or the original V-Express pickle
KPS_SUFFIXES = (*KPS_PICKLE_SUFFIXES, KPS_SAFETENSORS_SUFFIX)

# --- photos ------------------------------------------------------------------------------------
# Every command (generate, inspect, extract, batch) takes a file for a photo by these suffixes, or by
# its first bytes (:func:`photo_format`), whatever its name. HEIC is listed to be named, not read:
# Pillow opens it only with the pillow-heif package installed (vexpress_cli.media.images registers it).
HEIF_SUFFIXES = (".heic", ".heif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif", *HEIF_SUFFIXES)
# First bytes of each photo format, with Pillow's name for it. WebP (RIFF....WEBP) and the ISO-BMFF
# ones (AVIF, HEIF: an `ftyp` box, as in an mp4) are told apart in photo_format.
PHOTO_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    b"GIF87a": "GIF", b"GIF89a": "GIF",
}
# Brands of an `ftyp` box that make the file a still image, not a movie (mp4, mov and m4a have others).
AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
PHOTO_HEAD_BYTES = 64  # enough for every signature and an ftyp box's usual brands

# --- everything else ---------------------------------------------------------------------------
PRESET_SUFFIXES = (".toml",)
RECORD_SUFFIXES = (".json",)  # a run record beside each output: talk.mp4.json
WEIGHT_SUFFIXES = (".safetensors", ".bin")  # model checkpoints, preferred first
TORCH_FILE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")  # what torch.save writes, as diffusers and transformers name it
# Every file of a model folder that holds weights (the face detector's .onnx too): what a run record fingerprints.
CHECKPOINT_SUFFIXES = tuple(dict.fromkeys((*WEIGHT_SUFFIXES, *TORCH_FILE_SUFFIXES, ".onnx")))

# Input kinds `vexpress inspect` tells apart by suffix, in the order it tries them.
INPUT_KIND_SUFFIXES = {
    "audio": AUDIO_INPUT_SUFFIXES,
    "image": IMAGE_SUFFIXES,
    "kps": KPS_SUFFIXES,
    "preset": PRESET_SUFFIXES,
    "record": RECORD_SUFFIXES,
    "video": VIDEO_INPUT_SUFFIXES,
}

# Every suffix above: an output named only ``.mp4`` (no name before the dot) is refused.
KNOWN_SUFFIXES = frozenset(
    (*VIDEO_INPUT_SUFFIXES, *AUDIO_OUTPUT_SUFFIXES, *KPS_SUFFIXES, *IMAGE_SUFFIXES, *PRESET_SUFFIXES,
     *WEIGHT_SUFFIXES)
)


def photo_format(head: bytes) -> str | None:
    """``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"BMP"``, ``"TIFF"``, ``"GIF"``, ``"AVIF"`` or ``"HEIC"`` (any other
    HEIF) when ``head`` (a file's first :data:`PHOTO_HEAD_BYTES` bytes) starts a photo of that format, else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(head)
        return "AVIF" if brands & AVIF_BRANDS else "HEIC" if brands & HEIF_BRANDS else None
    return next((name for magic, name in PHOTO_SIGNATURES.items() if head.startswith(magic)), None)


def _ftyp_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of the `ftyp` box ``head`` starts with (a mif1 file is AVIF or HEIC by the
    others)."""
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return {head[8:12], *(head[start:start + 4] for start in range(16, end - 3, 4))}


def listed(suffixes) -> str:
    """``".mp4, .mov or .mkv"``: suffixes for a sentence."""
    suffixes = list(suffixes)
    return suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
