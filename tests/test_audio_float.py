"""Audio is decoded as float: NaN/inf samples are refused, louder-than-full-scale float audio is not clipped.

ffmpeg decoded to 32-bit integer PCM, so a float WAV's NaN samples became a +1.0 burst (a click), +inf full
scale, and a clip at peak 12 was clipped flat, all silently.
"""

from __future__ import annotations

import json
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR
from typer.testing import CliRunner

from vexpress_cli.errors import InputError
from vexpress_cli.media import audio_info, load_audio
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.resampling import resample


def write_float_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """A 32-bit IEEE float WAV (format tag 3) of ``[samples]`` or ``[samples, channels]``."""
    samples = np.asarray(samples, dtype="<f4")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    data = samples.tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def speech_like(rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    voice = np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return 0.5 * voice / np.abs(voice).max()  # peak 0.5


def inspect_json(path: Path) -> dict:
    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("reader", [load_audio, audio_info])
def test_nan_samples_are_refused_with_how_many(tmp_path, reader):
    samples = speech_like()
    samples[5000:5100] = np.nan  # loaded as a +1.0 burst before
    path = write_float_wav(tmp_path / "nan.wav", samples)
    with pytest.raises(InputError) as caught:
        reader(path)
    message = str(caught.value)
    assert "100 samples that are NaN or infinite" in message and "the first at 0.312 s" in message
    assert "damaged" in message and "Re-export" in message


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_samples_are_refused(tmp_path, value):
    samples = np.stack([speech_like(), speech_like()], axis=1)
    samples[8000, 1] = value  # one sample of one channel: full scale before
    path = write_float_wav(tmp_path / "inf.wav", samples)
    with pytest.raises(InputError, match="holds 1 sample that is NaN or infinite"):
        load_audio(path)


def test_the_inspect_command_refuses_nan_audio(tmp_path):
    from vexpress_cli.cli.app import app

    samples = speech_like()
    samples[:3] = np.nan
    result = CliRunner().invoke(app, ["inspect", str(write_float_wav(tmp_path / "nan.wav", samples))])
    assert result.exit_code != 0 and "NaN or infinite" in result.output


def test_float_audio_louder_than_full_scale_keeps_its_shape(tmp_path):
    """wav2vec2 normalises each clip's level, so a loud float clip must arrive whole, not clipped flat."""
    samples = speech_like()
    normal = load_audio(write_float_wav(tmp_path / "normal.wav", samples))
    loud = load_audio(write_float_wav(tmp_path / "loud.wav", 24 * samples))  # peak 12
    assert loud.abs().max() == pytest.approx(12, rel=1e-3)
    assert (loud - 24 * normal).abs().max() < 24 * 1e-6
    info = audio_info(tmp_path / "loud.wav")
    assert info.peak == pytest.approx(12, rel=1e-6) and info.peak_dbfs == pytest.approx(21.58, abs=0.01)


def test_inspect_reports_the_true_peak_and_warns_above_full_scale(tmp_path):
    data = inspect_json(write_float_wav(tmp_path / "loud.wav", 24 * speech_like()))
    assert data["peak"] == pytest.approx(12, rel=1e-6) and data["peak_dbfs"] == pytest.approx(21.58, abs=0.01)
    assert len(data["warnings"]) == 1 and "above full scale" in data["warnings"][0]
    assert "volume=-22dB" in data["warnings"][0]
    assert inspect_json(write_float_wav(tmp_path / "normal.wav", speech_like()))["warnings"] == []


def old_decoding(path: Path, rate: int) -> torch.Tensor:
    """What load_audio gave when it decoded to 32-bit integer PCM (for a rate our resampler takes)."""
    probe = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "s32le", "-c:a", "pcm_s32le", "-"],
                           capture_output=True, check=True)
    channels = 3 if "three" in path.name else 2
    samples = np.frombuffer(probe.stdout, "<i4").reshape(-1, channels)
    mono = samples[:, 0].astype(np.float32)
    for channel in range(1, channels):
        mono += samples[:, channel]
    mono *= np.float32(1.0 / (channels * 2**31))
    return resample(torch.from_numpy(mono), rate, 16000).clamp(-1, 1)


@pytest.mark.parametrize("name, rate, width", [("stereo16.wav", 44100, 2), ("three24.wav", 48000, 3)])
def test_integer_audio_gives_the_same_samples_as_before(tmp_path, name, rate, width):
    """Float32 holds 16-bit samples exactly and rounds 24/32-bit ones as the integer path did."""
    channels = 3 if "three" in name else 2
    tone = np.stack([speech_like(rate, 0.7) * (1 + channel / 2) for channel in range(channels)], axis=1)
    ints = np.round(tone * (2 ** (8 * width - 1) - 1)).astype("<i4")
    raw = ints.view(np.uint8).reshape(-1, 4)[:, :width].tobytes()  # little-endian: the low bytes first
    path = tmp_path / name
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels), file.setsampwidth(width), file.setframerate(rate)
        file.writeframes(raw)
    got, expected = load_audio(path), old_decoding(path, rate)
    assert got.shape == expected.shape and torch.equal(got, expected)
    assert audio_info(path).peak == np.abs(ints).max() / 2 ** (8 * width - 1)


def test_mp3_gives_the_same_samples_as_before_to_float_rounding():
    """The MP3 decoder's floats were rounded to 2**-31 by the integer path: a difference far below 1e-6."""
    path = SAMPLES_DIR / "AOC" / "aud.mp3"
    got, expected = load_audio(path), old_decoding(path, 44100)
    assert got.shape == expected.shape and (got - expected).abs().max() < 1e-6
