"""Audio in: decode any common audio/video file to 16 kHz mono float32.

ffmpeg (the imageio-ffmpeg binary) decodes the file to 32-bit PCM WAV on a
pipe; pydub parses that WAV into an ``AudioSegment``, so neither a system
ffmpeg nor ffprobe is needed. Channels are averaged to mono and resampled
with :func:`resample`, a windowed-sinc resampler that matches
``torchaudio.functional.resample`` (the original V-Express used torchaudio).
"""

from __future__ import annotations

import functools
import math
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media.ffmpeg import (
    Probe,
    ffmpeg_command,
    ffmpeg_exe,
    probe,
    run_ffmpeg,
    stderr_tail,
    stop_process,
)
from vexpress_cli.file_types import AUDIO_OUTPUT_CODECS
from vexpress_cli.outputs import atomic_output, check_output

with warnings.catch_warnings():
    # pydub warns at import time when no system ffmpeg is on PATH (we never use
    # one) and, on Python 3.11-3.12, that the audioop module it uses is deprecated.
    warnings.simplefilter("ignore", RuntimeWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pydub import AudioSegment
    from pydub.audio_segment import fix_wav_headers, read_wav_audio

STANDARD_SAMPLE_RATE = 16000
SILENCE_PEAK = 10 ** (-60 / 20)  # peaks below -60 dBFS count as silent
_FULL_SCALE = 2**31  # decoded samples are signed 32-bit PCM


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file (or the audio track of a video) holds, at its own sample rate."""

    path: Path
    container: str
    codec: str
    sample_rate: int
    channels: int
    num_samples: int  # per channel, as decoded
    duration: float  # num_samples / sample_rate
    peak: float  # largest absolute sample over all channels, 0..1
    container_duration: float | None = None  # what the header claims; may be rounded or wrong

    @property
    def peak_dbfs(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else -math.inf

    @property
    def is_silent(self) -> bool:
        """True when nothing is louder than -60 dBFS (allowed, but worth a warning)."""
        return self.peak < SILENCE_PEAK


def audio_info(path: str | Path) -> AudioInfo:
    """Format, rate, channels and exact length of an audio file or a video's audio track.

    The file is decoded once to count samples exactly: container headers round
    (``Duration: 00:00:04.57``) or lie (MP3 without a Xing header).
    """
    source, segment = _decode(path)
    samples = _interleaved_samples(segment)
    peak = max(int(samples.max()), -int(samples.min())) / _FULL_SCALE if samples.size else 0.0
    num_samples = int(segment.frame_count())
    return AudioInfo(
        path=source.path,
        container=source.container,
        codec=source.audio.codec,
        sample_rate=segment.frame_rate,
        channels=segment.channels,
        num_samples=num_samples,
        duration=num_samples / segment.frame_rate,
        peak=peak,
        container_duration=source.duration,
    )


def load_audio(path: str | Path, sample_rate: int = STANDARD_SAMPLE_RATE) -> torch.Tensor:
    """Decode ``path`` to a 1-D float32 mono tensor in [-1, 1] at ``sample_rate`` Hz.

    Accepts MP3, WAV, M4A/AAC, FLAC, OGG/Opus and the audio track of a video
    (mp4/mov/mkv). Channels are averaged, then resampled with :func:`resample`;
    the output has ``ceil(n * sample_rate / source_rate)`` samples. The
    original resampled each channel first and averaged afterwards; both steps
    are linear, so the order changes nothing but float rounding (~1e-7).
    Values are clamped to [-1, 1] because resampling can overshoot full scale
    by a hair (Gibbs ripple).
    """
    source, segment = _decode(path)
    mono = torch.from_numpy(_mono_float32(segment))
    if segment.frame_rate != sample_rate:
        mono = resample(mono, segment.frame_rate, sample_rate)
    return mono.clamp_(-1.0, 1.0).contiguous()


def probe_audio(path: str | Path) -> Probe:
    """Probe a file that must have an audio track (any audio file, or a video with sound)."""
    source = probe(path, "audio")
    if source.audio is None:
        raise InputError(
            f"{str(source.path)!r} has no audio track.",
            "ffmpeg found no audio stream in it.",
            "Pass a speech recording (mp3, wav, m4a, flac, ogg) or a video that has sound.",
        )
    return source


def _decode(path: str | Path) -> tuple[Probe, AudioSegment]:
    AudioSegment.converter = ffmpeg_exe()  # so pydub's own export() works without a system ffmpeg
    source = probe_audio(path)
    command = ffmpeg_command(
        "-i", str(source.path), "-map", f"0:{source.audio.index}", "-vn", "-sn", "-dn",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-c:a", "pcm_s32le", "-f", "wav", "pipe:1",
    )  # fmt: skip
    wav_bytes, returncode, stderr = _run_capturing(command)
    if returncode != 0 or len(wav_bytes) < 44:
        raise InputError(
            f"Cannot decode the audio of {str(source.path)!r}.",
            f"ffmpeg said: {stderr_tail(stderr)}.",
            "The file may be damaged or truncated; re-export it (e.g. as WAV or MP3).",
        )
    segment = _segment_from_wav(wav_bytes)
    if segment.frame_count() == 0:
        raise InputError(
            f"The audio of {str(source.path)!r} is empty.",
            "It decodes to zero samples.",
            "Pass a recording that actually contains speech.",
        )
    return source, segment


def _run_capturing(command: list[str]) -> tuple[bytearray, int, bytes]:
    """Run ``command``; its stdout lands in one growing buffer (no extra copy of long audio)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        try:  # Ctrl+C while reading must not leave ffmpeg running
            data = bytearray()
            while chunk := process.stdout.read(1 << 20):
                data += chunk
            returncode = process.wait()
        finally:
            stop_process(process)
        stderr.seek(0)
        return data, returncode, stderr.read()


def _segment_from_wav(data: bytearray) -> AudioSegment:
    # A WAV written to a pipe has no sizes in its header (ffmpeg cannot seek
    # back); pydub's helper fills them in from the real length. A memoryview
    # lets pydub slice out the samples without copying them.
    view = memoryview(data)
    fix_wav_headers(view)
    wav = read_wav_audio(view)
    return AudioSegment(
        data=wav.raw_data,
        sample_width=wav.bits_per_sample // 8,
        frame_rate=wav.sample_rate,
        channels=wav.channels,
    )


def _interleaved_samples(segment: AudioSegment) -> np.ndarray:
    if segment.sample_width != 4:
        raise VExpressError(
            "Unexpected sample width from ffmpeg.",
            f"Expected 32-bit PCM, got {8 * segment.sample_width}-bit.",
            "Report this as a bug in vexpress-cli.",
        )
    return np.frombuffer(segment.raw_data, dtype="<i4").reshape(-1, segment.channels)


def _mono_float32(segment: AudioSegment) -> np.ndarray:
    samples = _interleaved_samples(segment)
    mono = samples[:, 0].astype(np.float32)
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    mono *= np.float32(1.0 / (samples.shape[1] * _FULL_SCALE))
    return mono


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling of ``waveform`` (shape ``[..., time]``) from ``orig_freq`` to ``new_freq``.

    Same algorithm and defaults as ``torchaudio.functional.resample`` with
    ``resampling_method="sinc_interp_hann"``:

    1. Reduce the rates by their gcd: ``o = orig/g``, ``n = new/g`` (44100->16000
       becomes 441->160). The output repeats every ``o`` input samples with
       ``n`` distinct phases, so ``n`` filters cover every output sample.
    2. Cut-off ``base = min(o, n) * rolloff`` (in the reduced units), i.e. just
       below the lower of the two Nyquist frequencies. Each filter spans
       ``lowpass_filter_width`` zero crossings of the sinc on each side, which
       is ``width = ceil(lowpass_filter_width * o / base)`` input samples.
    3. Filter ``p`` (output phase ``p/n``) at input offset ``i`` in
       ``[-width, width + o)`` is ``sinc(pi*t) * cos(pi*t / (2*L))**2 * base/o``
       with ``t = base * (i/o - p/n)`` clamped to ``[-L, L]`` (L =
       ``lowpass_filter_width``) -- a Hann-windowed sinc that is zero outside.
    4. Zero-pad the signal by ``width`` on the left and ``width + o`` on the
       right, run one strided ``conv1d`` (stride ``o``, ``n`` output channels),
       interleave the channels, and keep ``ceil(len * new / orig)`` samples.

    The filters are computed in float64 and cast to the signal's dtype. Equal
    rates return the input unchanged.
    """
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, float(rolloff))
    kernel = kernel.to(device=waveform.device, dtype=waveform.dtype)

    shape = waveform.shape
    length = shape[-1]
    flat = waveform.reshape(-1, 1, length)
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    phases = torch.nn.functional.conv1d(padded, kernel, stride=orig)  # [batch, n, blocks]
    interleaved = phases.transpose(1, 2).reshape(flat.shape[0], -1)
    target_length = -(-new * length // orig)  # ceil without float rounding
    return interleaved[:, :target_length].reshape(*shape[:-1], target_length)


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """The ``[new, 1, 2*width + orig]`` polyphase filter bank described in :func:`resample`."""
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    offsets = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = torch.arange(new, dtype=torch.float64)[:, None] / new
    t = ((offsets[None, :] - phases) * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * (math.pi / (2 * lowpass_filter_width))) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * (base / orig))[:, None, :], width


def extract_audio_track(video_path: str | Path | Probe, out_path: str | Path, overwrite: bool = False) -> Path:
    """Write the audio track of ``video_path`` to ``out_path``; the format follows the suffix.

    The stream is copied without re-encoding when the target format can hold
    its codec (AAC into .m4a, MP3 into .mp3, ...), otherwise it is encoded.
    Written through :func:`vexpress_cli.outputs.atomic_output`: complete, or not at all.
    ``video_path`` may also be the file's :func:`probe` result (saves one ffmpeg run).
    """
    source = _with_audio_track(video_path)
    target = check_output(out_path, overwrite, "audio", create_folder=True)
    with atomic_output(target, overwrite) as temp:
        write_audio_track(source, temp)
    return target


def write_audio_track(video_path: str | Path | Probe, path: str | Path) -> None:
    """Write the audio track of ``video_path`` to ``path`` as it is, in the format its suffix names.

    No checks on ``path`` and no temporary name: for writing into the temporary path of
    :func:`vexpress_cli.outputs.atomic_outputs` (the kps file and the audio of ``extract``).
    """
    source = _with_audio_track(video_path)
    path = Path(path)
    muxer, encoder, copyable = AUDIO_OUTPUT_CODECS[path.suffix.lower()]
    codec = "copy" if source.audio.codec in copyable else encoder
    run_ffmpeg(
        ["-y", "-i", str(source.path), "-map", f"0:{source.audio.index}", "-vn", "-sn", "-dn",
         "-c:a", codec, *(["-movflags", "+faststart"] if muxer == "mp4" else []), "-f", muxer, str(path)],
        what=f"Could not extract the audio of {str(source.path)!r}.",
        fix="Try another output format, e.g. .wav.",
    )  # fmt: skip


def _with_audio_track(video_path: str | Path | Probe) -> Probe:
    source = video_path if isinstance(video_path, Probe) else probe(video_path, "video")
    if source.audio is None:
        raise InputError(
            f"{str(source.path)!r} has no audio track to extract.",
            "ffmpeg found no audio stream in it.",
            "Use a video with sound, or pass the speech audio as a separate file.",
        )
    return source


__all__ = [
    "AudioInfo",
    "STANDARD_SAMPLE_RATE",
    "audio_info",
    "extract_audio_track",
    "load_audio",
    "probe_audio",
    "resample",
    "write_audio_track",
]
