"""How a video is encoded: the codec, its quality (CRF), speed preset and the audio bitrate.

:class:`VideoEncoding` turns the four generation settings (``codec``, ``crf``,
``encoder_preset``, ``audio_bitrate``) into ffmpeg arguments. :func:`resolve_codec` picks the
concrete codec for ``auto`` and checks that the bundled ffmpeg can use the one asked for:
the NVIDIA encoders (``h264_nvenc``, ``hevc_nvenc``) are compiled into the bundled ffmpeg but
only work with an NVIDIA GPU that has NVENC and its driver, so a one-frame trial encode
decides, once per process.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass

from vexpress_cli.errors import InputError, parameter

# The codec names of --codec (without auto) and the ffmpeg encoder behind each.
ENCODERS = {"h264": "libx264", "h265": "libx265", "h264_nvenc": "h264_nvenc", "hevc_nvenc": "hevc_nvenc"}
NVENC_CODECS = ("h264_nvenc", "hevc_nvenc")
# What `--codec auto` tries, in order; the last one is always there in the bundled ffmpeg.
AUTO_ORDER = ("h264_nvenc", "h264")
# x264's presets (x265 has the same names) mapped to NVENC's p1 (fastest) .. p7 (best): our choice,
# with medium at p4, NVENC's own default.
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
                 "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7"}
# The widest or tallest frame an encoder takes, where it was measured (the bundled ffmpeg's libx264 refuses
# 16386x16; libx265 took 16392x64; NVENC was not measured): a larger video fails at its first frame.
ENCODER_MAX_SIDE = {"h264": 16384}
TRIAL_SECONDS = 30  # a trial encode that hangs (a stuck driver) counts as unusable


@dataclass(frozen=True)
class VideoEncoding:
    """A concrete encoding: ``codec`` is one of :data:`ENCODERS` (never ``auto``)."""

    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"
    audio_bitrate: int = 192  # kbit/s, AAC

    @property
    def encoder(self) -> str:
        """The ffmpeg encoder's name, e.g. libx264."""
        return ENCODERS[self.codec]

    def video_arguments(self, muxer: str) -> list[str]:
        """ffmpeg's ``-c:v ...`` arguments for this encoding into a ``muxer`` (mp4, mov, matroska) file."""
        arguments = ["-c:v", self.encoder]
        if self.codec in NVENC_CODECS:
            # NVENC's constant-quality mode; -cq 0 would mean "encoder's choice", so 0 asks for the best (1).
            arguments += ["-preset", NVENC_PRESETS[self.preset], "-rc", "vbr", "-cq", str(max(1, self.crf)),
                          "-b:v", "0"]
        else:
            arguments += ["-preset", self.preset, "-crf", str(int(self.crf))]
        if self.codec == "h265":
            arguments += ["-x265-params", "log-level=error"]
        if self.codec in ("h265", "hevc_nvenc") and muxer in ("mp4", "mov"):
            arguments += ["-tag:v", "hvc1"]  # what Apple players need to play HEVC from mp4/mov
        return arguments

    def audio_arguments(self) -> list[str]:
        return ["-c:a", "aac", "-b:a", f"{int(self.audio_bitrate)}k"]


def encoding_for_output(settings, output) -> VideoEncoding | None:
    """The encoding a :class:`~vexpress_cli.settings.schema.GenerationSettings` asks for, ``auto`` resolved;
    None when ``output`` is a folder of (lossless) PNG frames."""
    from vexpress_cli.outputs import output_kind

    if output_kind(output, "video") == "frames":
        return None
    return VideoEncoding(resolve_codec(settings.codec), settings.crf, settings.encoder_preset,
                         settings.audio_bitrate)


ENCODING_SETTINGS = ("codec", "crf", "encoder_preset", "audio_bitrate")


def unused_encoding_warnings(settings, encoding: VideoEncoding | None) -> list[str]:
    """A warning when encoding settings other than the defaults are asked for but the output is a folder of
    PNG frames, which they do not apply to. By value, not by source: a batch job or a rerun of a record
    passes every setting explicitly."""
    from vexpress_cli.settings.schema import DEFAULTS

    asked = [parameter(name) for name in ENCODING_SETTINGS if getattr(settings, name) != DEFAULTS[name]]
    if encoding is not None or not asked:
        return []
    one = len(asked) == 1
    return [f"{', '.join(asked)} {'has' if one else 'have'} no effect on a folder of PNG frames (lossless; the audio "
            f"is kept as audio.wav): {'it applies' if one else 'they apply'} to a video file such as talk.mp4."]


def check_frame_size(encoding: VideoEncoding | None, width: int, height: int, why: str, fix: str) -> None:
    """InputError before any work when ``encoding`` cannot encode ``width`` x ``height`` frames."""
    limit = ENCODER_MAX_SIDE.get(encoding.codec) if encoding is not None else None
    if limit is not None and max(width, height) > limit:
        raise InputError(f"The video would be {width}x{height}, larger than the {limit} pixels a side "
                         f"{encoding.codec} encodes.", why, fix)


def resolve_codec(codec: str) -> str:
    """``codec`` as a concrete codec: ``auto`` becomes h264_nvenc where it works, else h264.

    InputError (what, why, fix) when the bundled ffmpeg cannot encode with the codec asked for.
    """
    if codec == "auto":
        return next(name for name in AUTO_ORDER if name == AUTO_ORDER[-1] or codec_usable(name))
    if codec not in ENCODERS:
        raise InputError(f"{parameter('codec')} is {codec!r}, which is not a codec vexpress knows.",
                         fix=f"Use one of: auto, {', '.join(ENCODERS)}.")
    if not codec_usable(codec):
        raise unusable_codec_error(codec)
    return codec


def unusable_codec_error(codec: str) -> InputError:
    encoder = ENCODERS[codec]
    if encoder not in listed_encoders():
        why = f"The ffmpeg that vexpress runs has no {encoder} encoder (see `vexpress doctor`)."
    else:
        why = (f"ffmpeg has {encoder}, but it needs an NVIDIA GPU with a video encoder (NVENC) and its driver, and "
               f"a test encode failed here: {nvenc_failure(encoder)}.")
    return InputError(f"Cannot encode with {parameter('codec', codec)} on this machine.", why=why,
                      fix=f"Use {parameter('codec', 'auto')} (the best encoder this machine has) or h264.")


@functools.cache
def listed_encoders() -> frozenset[str]:
    """The names of the encoders the bundled ffmpeg was built with."""
    from vexpress_cli.media.ffmpeg import run_ffmpeg

    return parse_encoder_listing(run_ffmpeg(["-encoders"], what="The bundled ffmpeg cannot list its encoders.",
                                            fix="Reinstall it: pip install --force-reinstall imageio-ffmpeg"))


def parse_encoder_listing(listing: bytes) -> frozenset[str]:
    """The encoder names in what ``ffmpeg -encoders`` printed."""
    names = set()
    for line in listing.decode("utf-8", "replace").splitlines():
        parts = line.split()
        # " V....D libx264  libx264 H.264 ...": six flag characters, then the name (the legend has "=").
        if len(parts) > 1 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[1] != "=":
            names.add(parts[1])
    return frozenset(names)


def codec_usable(codec: str, listed: frozenset[str] | None = None) -> bool:
    """Whether ``codec`` works here: listed by ffmpeg (``listed``, default: the bundled one's list), and for
    NVENC a trial encode succeeds."""
    encoder = ENCODERS[codec]
    if encoder not in (listed_encoders() if listed is None else listed):
        return False
    return codec not in NVENC_CODECS or nvenc_failure(encoder) is None


@functools.cache
def nvenc_failure(encoder: str) -> str | None:
    """None when a one-frame trial encode with ``encoder`` works, else what ffmpeg said."""
    from vexpress_cli.media.ffmpeg import ffmpeg_command, own_process_group

    command = ffmpeg_command("-f", "lavfi", "-i", "color=black:size=256x256:duration=0.1", "-frames:v", "1",
                             "-c:v", encoder, "-f", "null", "-")
    try:
        result = subprocess.run(command, capture_output=True, timeout=TRIAL_SECONDS, **own_process_group())
    except subprocess.TimeoutExpired:
        return f"the trial encode did not finish in {TRIAL_SECONDS} s"
    except OSError as error:
        return error.strerror or str(error)
    if result.returncode == 0:
        return None
    # The first line says why ("Cannot load libcuda.so.1", "No capable devices found"); the rest is fallout.
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines() or ["ffmpeg printed nothing"]
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", lines[0]).strip()
