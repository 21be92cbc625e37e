"""Audio in: decode any common audio/video file to 16 kHz mono float32.

ffmpeg (the imageio-ffmpeg binary) decodes the file to 32-bit float WAV on a
pipe, so neither a system ffmpeg nor ffprobe is needed. The samples are read
in chunks of about 1 MB: each chunk is averaged to mono and resampled as it
arrives with the windowed-sinc filter of :func:`resample`, which matches
``torchaudio.functional.resample`` (the original V-Express used torchaudio).
Only the 16 kHz result is kept, so memory follows the output, not the input:
ten minutes of 96 kHz 6-channel FLAC peak at about 130 MB, where holding their
32-bit PCM took 2.4 GB. Float, not integer PCM: a float source (WAV, and what
the MP3/AAC/Opus decoders give) may go past full scale, and integer PCM would clip
it flat; the original loaded float, and wav2vec2 normalises the level anyway.
Integer sources give the same numbers either way (float32 holds them exactly,
or rounds them as ``astype(float32)`` did).

Why not let ffmpeg resample and downmix (``-ac 1 -ar 16000``)? Its resampler
is another filter, so the numbers would no longer be torchaudio's; streaming
our own filter keeps them (to float32 rounding) for the standard rates. A rate
sharing few factors with 16 kHz (44101 Hz) needs a filter bank of gigabytes,
in torchaudio too (``resampling.filter_fits``): only those ffmpeg resamples.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vexpress_cli.errors import InputError, VExpressError, parameter
from vexpress_cli.media.ffmpeg import (
    Probe,
    ffmpeg_command,
    probe,
    run_ffmpeg,
    start_ffmpeg,
    stderr_tail,
    stop_process,
)
from vexpress_cli.file_types import AUDIO_OUTPUT_CODECS
from vexpress_cli.media.images import photo_format_of
from vexpress_cli.media.resampling import StreamingResampler, filter_fits
from vexpress_cli.outputs import atomic_output, check_output
from vexpress_cli.wording import plural

STANDARD_SAMPLE_RATE = 16000
SILENCE_PEAK = 10 ** (-60 / 20)  # peaks below -60 dBFS count as silent
_CHUNK_BYTES = 1 << 20  # read from ffmpeg at a time
_MAX_HEADER_CHUNK = 1 << 16  # a WAV header chunk (fmt, LIST) larger than this is not ffmpeg's
# The longest speech load_audio decodes, from the file's header before decoding and from the samples while
# decoding: 4 hours take about a day to generate on one GPU.
MAX_AUDIO_SECONDS = 4 * 3600
# Below this rate a recording holds nothing above half of it (2 kHz): no speech a listener or wav2vec2 could
# follow. A telephone's 8 kHz is the lowest rate speech is recorded at.
MIN_SPEECH_SAMPLE_RATE = 4000


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
    peak: float  # largest absolute sample over all channels; 1.0 is full scale, float audio may go past it
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
    source = probe_audio(path)
    num_samples, peak = 0, 0.0
    with _PcmStream(source) as stream:
        for chunk in stream.chunks():
            num_samples += len(chunk)
            peak = max(peak, float(chunk.max()), -float(chunk.min()))
    _check_not_empty(source, num_samples)
    return AudioInfo(
        path=source.path,
        container=source.container,
        codec=source.audio.codec,
        sample_rate=stream.sample_rate,
        channels=stream.channels,
        num_samples=num_samples,
        duration=num_samples / stream.sample_rate,
        peak=peak,
        container_duration=source.duration,
    )


def resampled_length(info: AudioInfo, sample_rate: int = STANDARD_SAMPLE_RATE) -> int:
    """How many samples :func:`load_audio` gives for the file of ``info`` at ``sample_rate``.

    ``ceil(n * sample_rate / rate)`` for the rates our resampler takes; a rate ffmpeg resamples
    (``resampling.filter_fits``) is decoded to count what ffmpeg gives (a sample more or less).
    """
    if filter_fits(info.sample_rate, sample_rate):
        return -(-info.num_samples * sample_rate // info.sample_rate)
    return len(load_audio(info.path, sample_rate))


def truncation_warning(decoded: float, claimed: float | None) -> str | None:
    """A warning when the decoded length is far from what the file's header claims (a cut-off download)."""
    # Headers round to 10 ms, and MP3s without a Xing header only estimate; a gap this big is real.
    if claimed is None or abs(decoded - claimed) <= max(0.1, 0.05 * claimed):
        return None
    return (f"The header says {claimed:g} s but {decoded:.2f} s decode: the file may be truncated "
            "(or its header is wrong).")


def uncounted_wav_warning(path: str | Path) -> str | None:
    """A warning for a WAV file holding sound past the end its header gives (a recorder stopped before writing
    its final header): ffmpeg, like any player, stops where the header says. None for any other file."""
    found = _wav_data_chunk(Path(path))
    if found is None:
        return None
    byte_rate, data_size, after, tail = found
    extra = after / byte_rate if byte_rate else 0.0
    if data_size == 0 or extra < 0.1 or not _sound_follows(tail, after):
        return None
    return (f"Its WAV header counts {data_size / byte_rate:.2f} s of sound, but about {extra:.2f} s more follow in "
            "the file, which players and vexpress leave out: the recorder may have stopped before it finished the "
            "file. To use all of it: ffmpeg -ignore_length 1 -i IN.wav OUT.wav")


WAV_CHUNKS_READ = 64  # a WAV file has a handful of chunks before its sound; more is no WAV worth reading
TAIL_BYTES_READ = 65536


def _wav_data_chunk(path: Path) -> tuple[int, int, int, bytes] | None:
    """``(byte rate, data size, bytes after the data, the first of those bytes)`` of a RIFF WAVE file, else
    None."""
    try:
        with path.open("rb") as handle:
            if (head := handle.read(12))[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            file_size, offset, byte_rate = os.fstat(handle.fileno()).st_size, 12, 0
            for _ in range(WAV_CHUNKS_READ):
                handle.seek(offset)
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                size = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"fmt ":
                    byte_rate = int.from_bytes(handle.read(12)[8:12], "little")
                elif chunk[:4] == b"data":
                    handle.seek(offset + 8 + size)
                    return byte_rate, size, file_size - offset - 8 - size, handle.read(TAIL_BYTES_READ)
                offset += 8 + size + (size & 1)
    except OSError:
        return None
    return None


def _sound_follows(tail: bytes, room: int) -> bool:
    """Whether the ``room`` bytes after the counted sound, starting with ``tail``, may be more of it: not another
    chunk (a LIST of tags, with or without the pad byte after an odd-sized one), not an ID3 tag, not zero padding."""
    starts_chunk = any(len(tail) >= start + 8 and all(32 <= byte < 127 for byte in tail[start:start + 4])
                       and int.from_bytes(tail[start + 4:start + 8], "little") <= room - start - 8
                       for start in (0, 1))
    return not (starts_chunk or tail.startswith(b"ID3") or not tail.strip(b"\0"))


def load_audio(path: str | Path | Probe, sample_rate: int = STANDARD_SAMPLE_RATE) -> torch.Tensor:
    """Decode ``path`` to a 1-D float32 mono tensor at ``sample_rate`` Hz, in [-1, 1] unless the file is louder.

    Accepts MP3, WAV, M4A/AAC, FLAC, OGG/Opus and the audio track of a video
    (mp4/mov/mkv). Channels are averaged, then resampled with the filter of
    :func:`resample`, chunk by chunk as ffmpeg decodes; the output has
    ``ceil(n * sample_rate / source_rate)`` samples. The original resampled
    each channel first and averaged afterwards; both steps are linear, so the
    order changes nothing but float rounding (~1e-7). Values are clamped to
    [-1, 1] because resampling can overshoot full scale by a hair (Gibbs ripple);
    float audio louder than full scale is not clipped but clamped to its own peak.
    NaN or infinite samples (a damaged file) are an InputError.
    A rate whose filter bank would not fit (``resampling.filter_fits``) is resampled
    by ffmpeg instead. Speech longer than ``MAX_AUDIO_SECONDS`` (4 hours) is an InputError.
    ``path`` may also be the file's :func:`probe_audio`, to probe it once.
    """
    source = path if isinstance(path, Probe) else probe_audio(path)
    # A video's duration may be its picture's, longer than its sound: its samples are counted instead.
    if source.video is None and (source.duration or 0) > MAX_AUDIO_SECONDS:
        raise _too_long(source, f"its header says {_clock(source.duration)}")
    with _PcmStream(source, sample_rate) as stream:
        resampler = StreamingResampler(stream.sample_rate, sample_rate)
        pieces, peak = [], 1.0
        for chunk in stream.chunks():
            peak = max(peak, float(chunk.max()), -float(chunk.min()))
            pieces.append(resampler.push(torch.from_numpy(_mono_float32(chunk))))
            if resampler.consumed > MAX_AUDIO_SECONDS * stream.sample_rate:  # a header that says less, or nothing
                raise _too_long(source, f"it decodes to more than {_clock(MAX_AUDIO_SECONDS)}")
        pieces.append(resampler.finish())
    _check_not_empty(source, resampler.consumed)
    return torch.cat(pieces).clamp_(-peak, peak).contiguous()


def low_rate_problem(path: str | Path, rate: int) -> str | None:
    """What is wrong with an audio track whose rate is below :data:`MIN_SPEECH_SAMPLE_RATE` (None when it is not):
    its header is wrong or it is no speech, and upsampled to 16 kHz it would make a long video of nothing."""
    if not 0 < rate < MIN_SPEECH_SAMPLE_RATE:
        return None
    return (f"The audio of {str(path)!r} has {rate:,} samples a second; speech needs at least "
            f"{MIN_SPEECH_SAMPLE_RATE:,} (a telephone records 8,000), so its header is wrong or it is not speech")


def _too_long(source: Probe, how_long: str) -> InputError:
    return InputError(
        f"The audio of {str(source.path)!r} is too long: {how_long}, and a video may last at most "
        f"{_clock(MAX_AUDIO_SECONDS)}.",
        "A video that long takes about a day to generate on one GPU, and its speech alone fills gigabytes of memory.",
        "Cut the speech into parts (ffmpeg -ss START -t SECONDS -i IN OUT) and generate each, or all of them "
        "with `vexpress batch`.",
    )


def _clock(seconds: float) -> str:
    """``4:02:07`` for 14527 s; a part of a second counts as one (4:00:00.5 is past 4:00:00)."""
    whole = math.ceil(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def probe_audio(path: str | Path) -> Probe:
    """Probe a file that must have an audio track (any audio file, or a video with sound)."""
    source = probe(path, "audio")
    if source.audio is None and (photo := photo_format_of(source.path)):
        raise InputError(
            f"{str(source.path)!r} is a {photo} photo, not a speech recording.",
            "The speech must be a sound file or a video with sound; this file holds a picture.",
            f"Pass the recording as {parameter('audio')} (mp3, wav, m4a, flac, ogg). If the photo and the "
            f"recording were swapped, give the photo as {parameter('reference_image')} instead.",
        )
    if source.audio is None:
        raise InputError(
            f"{str(source.path)!r} has no audio track.",
            "ffmpeg found no audio stream in it.",
            "Pass a speech recording (mp3, wav, m4a, flac, ogg) or a video that has sound.",
        )
    return source


def _check_not_empty(source: Probe, num_samples: int) -> None:
    if num_samples == 0:
        raise InputError(
            f"The audio of {str(source.path)!r} is empty.",
            "It decodes to zero samples.",
            "Pass a recording that actually contains speech.",
        )


class _PcmStream:
    """ffmpeg decoding the audio track of ``source`` to 32-bit float PCM, read in chunks.

    Use as a context manager: entering starts ffmpeg and reads the WAV header
    (``sample_rate``, ``channels``); leaving stops ffmpeg whatever happened
    (Ctrl+C included). :meth:`chunks` yields ``[samples, channels]`` float32 arrays,
    all finite, and raises InputError when ffmpeg fails or the file holds NaN or infinite samples.
    """

    def __init__(self, source: Probe, target_rate: int | None = None):
        self.source, self.target_rate = source, target_rate
        self.sample_rate = self.channels = 0

    def __enter__(self) -> "_PcmStream":
        # A rate that shares few factors with the target needs a filter bank of gigabytes (resampling.py):
        # ffmpeg resamples it instead, with its own filter.
        rate = self.source.audio.sample_rate
        odd = rate and self.target_rate and not filter_fits(rate, self.target_rate)
        by_ffmpeg = ["-ar", str(self.target_rate)] if odd else []
        command = ffmpeg_command(
            "-i", str(self.source.path), "-map", f"0:{self.source.audio.index}", "-vn", "-sn", "-dn",
            "-map_metadata", "-1", "-fflags", "+bitexact", *by_ffmpeg, "-c:a", "pcm_f32le", "-f", "wav", "pipe:1",
        )  # fmt: skip
        self._stderr = tempfile.TemporaryFile()
        self.process = start_ffmpeg(command, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self._read_header()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process)
        self._stderr.close()

    def chunks(self) -> Iterator[np.ndarray]:
        frame_bytes = 4 * self.channels
        rest, frames, bad, first_bad = b"", 0, 0, 0
        while data := self.process.stdout.read(_CHUNK_BYTES):
            data = rest + data if rest else data
            usable = len(data) - len(data) % frame_bytes
            rest = data[usable:]
            if usable:
                chunk = np.frombuffer(data, dtype="<f4", count=usable // 4).reshape(-1, self.channels)
                finite = np.isfinite(chunk)
                if not bad and not finite.all():
                    first_bad = frames + int(np.argmin(finite.all(axis=1)))
                bad += int(finite.size - np.count_nonzero(finite))
                frames += len(chunk)
                if not bad:  # after the first bad sample only count them: the file is refused
                    yield chunk
        if self.process.wait() != 0:
            raise self._decode_error()
        if bad:
            raise self._non_finite_error(bad, first_bad / self.sample_rate)

    def _read_header(self) -> None:
        """Parse the RIFF header up to the ``data`` chunk (its size is unknown on a pipe)."""
        riff = self.process.stdout.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise self._decode_error()
        while True:
            head = self.process.stdout.read(8)
            if len(head) < 8:
                raise self._decode_error()
            name, size = head[:4], int.from_bytes(head[4:], "little")
            if name == b"data":
                break
            if size > _MAX_HEADER_CHUNK:
                raise self._decode_error()
            body = self.process.stdout.read(size + size % 2)
            if name == b"fmt " and len(body) >= 16:
                self.channels = int.from_bytes(body[2:4], "little")
                self.sample_rate = int.from_bytes(body[4:8], "little")
                bits = int.from_bytes(body[14:16], "little")
                if bits != 32:
                    raise VExpressError(
                        "Unexpected sample width from ffmpeg.",
                        f"Expected 32-bit float PCM, got {bits}-bit.",
                        "Report this as a bug in vexpress-cli.",
                    )
        if self.channels <= 0 or self.sample_rate <= 0:
            raise self._decode_error()
        if self.target_rate and not filter_fits(self.sample_rate, self.target_rate):  # not the probe's rate
            stop_process(self.process)
            raise InputError(f"The audio of {str(self.source.path)!r} has an unusual sample rate, "
                             f"{self.sample_rate} Hz.",
                             f"Resampling it to {self.target_rate} Hz would take gigabytes of memory.",
                             f"Convert it first: ffmpeg -i IN -ar {self.target_rate} OUT.wav")

    def _non_finite_error(self, count: int, first: float) -> InputError:
        return InputError(
            f"The audio of {str(self.source.path)!r} holds {plural(count, 'sample')} that "
            f"{'is' if count == 1 else 'are'} NaN or infinite (the first at {first:.3f} s).",
            "Such samples are not sound: the file is damaged, or the program that wrote it put NaN or inf into it. "
            "Played they are loud clicks, and they would spoil the speech features of every frame.",
            "Re-export the speech from its source (e.g. as 16-bit WAV or MP3), or fix the program that wrote it.",
        )

    def _decode_error(self) -> InputError:
        stop_process(self.process)
        self._stderr.seek(0)
        return InputError(
            f"Cannot decode the audio of {str(self.source.path)!r}.",
            f"ffmpeg said: {stderr_tail(self._stderr.read())}.",
            "The file may be damaged or truncated; re-export it (e.g. as WAV or MP3).",
        )


def _mono_float32(samples: np.ndarray) -> np.ndarray:
    """The average of the channels of float32 ``[samples, channels]``, as a writable float32 array."""
    mono = np.array(samples[:, 0], dtype=np.float32)
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    if samples.shape[1] > 1:
        mono *= np.float32(1.0 / samples.shape[1])
    return mono


def extract_audio_track(video_path: str | Path | Probe, out_path: str | Path, overwrite: bool = False) -> Path:
    """Write the audio track of ``video_path`` to ``out_path``; the format follows the suffix.

    The stream is copied without re-encoding when the target format can hold
    its codec (AAC into .m4a, MP3 into .mp3, ...), otherwise it is encoded.
    Written through :func:`vexpress_cli.outputs.atomic_output`: complete, or not at all.
    ``video_path`` may also be the file's :func:`probe` result (saves one ffmpeg run).
    """
    source = _with_audio_track(video_path)
    target = check_output(out_path, overwrite, "audio", folder_made_later=True)
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
    "write_audio_track",
]
