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
# The retarget preview is a video file (never a folder of frames).
PREVIEW_SUFFIXES = VIDEO_OUTPUT_SUFFIXES
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

# --- everything else ---------------------------------------------------------------------------
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
PRESET_SUFFIXES = (".toml",)
RECORD_SUFFIXES = (".json",)  # a run record beside each output: talk.mp4.json
WEIGHT_SUFFIXES = (".safetensors", ".bin")  # model checkpoints, preferred first

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


def listed(suffixes) -> str:
    """``".mp4, .mov or .mkv"``: suffixes for a sentence."""
    suffixes = list(suffixes)
    return suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
