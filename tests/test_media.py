"""Media layer: audio decoding and resampling, video probing, reading and writing."""

from __future__ import annotations

import math
import os
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media import (
    PngFolderWriter,
    VideoWriter,
    audio_info,
    extract_audio_track,
    iter_video_frames,
    load_audio,
    open_video_writer,
    resample,
    video_info,
)
from vexpress_cli.media.encoding import VideoEncoding
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.frames import as_fps_fraction

SINE_AMPLITUDE = 0.125  # ffmpeg's sine source
NTSC = Fraction(30000, 1001)
STEREO = ["-af", "pan=stereo|c0=c0|c1=c0"]  # `-ac 2` would lower the level by 3 dB


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def sine_input(seconds: float, rate: int = 44100, frequency: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}"]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    """Synthetic files, made once: a 440 Hz sine in several formats, and small videos."""
    folder = tmp_path_factory.mktemp("media")
    sine = sine_input(1.5)
    ffmpeg(*sine, *STEREO, "-c:a", "pcm_s16le", str(folder / "sine.wav"))
    ffmpeg(*sine_input(1.5, 48000), *STEREO, "-c:a", "flac", str(folder / "sine.flac"))
    ffmpeg(*sine, *STEREO, "-c:a", "libvorbis", str(folder / "sine.ogg"))
    ffmpeg(*sine, *STEREO, "-c:a", "aac", str(folder / "sine.m4a"))
    ffmpeg(*sine_input(1.5, 22050), "-c:a", "libmp3lame", str(folder / "sine.mp3"))
    color = ["-f", "lavfi", "-i", "color=c=gray:s=64x48:r=25:d=1.5"]
    ffmpeg(*color, *sine, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", *STEREO,
           "-shortest", str(folder / "with_audio.mp4"))  # fmt: skip
    ffmpeg(*color, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "no_audio.mp4"))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1", str(folder / "silence.wav"))
    with wave.open(str(folder / "empty.wav"), "wb") as empty:
        empty.setnchannels(1), empty.setsampwidth(2), empty.setframerate(16000)
    (folder / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    return folder


def dominant_frequency(signal: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal.double().numpy() * np.hanning(len(signal))))
    return float(np.argmax(spectrum) * rate / len(signal))


# --- audio in -------------------------------------------------------------------------------


@pytest.mark.parametrize("speaker", ["AOC", "tys"])
def test_sample_mp3_length_matches_info(speaker):
    path = SAMPLES_DIR / speaker / "aud.mp3"
    info = audio_info(path)
    waveform = load_audio(path)
    assert info.codec == "mp3" and info.container == "mp3"
    assert info.duration == pytest.approx(info.num_samples / info.sample_rate)
    # The header's rounded duration agrees with the decoded sample count.
    assert abs(info.duration - info.container_duration) < 0.05
    assert waveform.dtype == torch.float32 and waveform.ndim == 1
    assert abs(len(waveform) - round(info.duration * 16000)) <= 2
    assert len(waveform) == math.ceil(info.num_samples * 16000 / info.sample_rate)
    assert 0.05 < waveform.abs().max() <= 1.0 and not info.is_silent


def test_sample_info_values():
    aoc, tys = audio_info(SAMPLES_DIR / "AOC/aud.mp3"), audio_info(SAMPLES_DIR / "tys/aud.mp3")
    assert (aoc.sample_rate, aoc.channels, aoc.num_samples) == (44100, 2, 201728)
    assert (tys.sample_rate, tys.channels, tys.num_samples) == (16000, 1, 64512)


@pytest.mark.parametrize(
    "name, codec, rate, exact_length",
    [
        ("sine.wav", "pcm_s16le", 44100, True),
        ("sine.flac", "flac", 48000, True),
        ("sine.ogg", "vorbis", 44100, False),
        ("sine.m4a", "aac", 44100, False),
        ("sine.mp3", "mp3", 22050, False),
        ("with_audio.mp4", "aac", 44100, False),
    ],
)
def test_formats_decode_to_16k_mono(media_dir, name, codec, rate, exact_length):
    info = audio_info(media_dir / name)
    assert (info.codec, info.sample_rate) == (codec, rate)
    waveform = load_audio(media_dir / name)
    if exact_length:
        assert len(waveform) == 24000
    else:  # lossy codecs may keep a few ms of encoder padding
        assert abs(len(waveform) - 24000) < 0.03 * 16000
    assert dominant_frequency(waveform, 16000) == pytest.approx(440, abs=2)
    middle = waveform[2000:-2000]  # away from codec fade-in/out
    assert middle.abs().max() == pytest.approx(SINE_AMPLITUDE, rel=0.05)
    assert middle.pow(2).mean().sqrt() == pytest.approx(SINE_AMPLITUDE / math.sqrt(2), rel=0.05)


def test_stereo_is_averaged(media_dir, tmp_path):
    # Left: 440 Hz sine, right: silence -> mono is the sine at half level.
    path = tmp_path / "left_only.wav"
    ffmpeg(*sine_input(1.0), "-filter_complex", "[0:a]pan=stereo|c0=c0|c1=0*c0", str(path))
    waveform = load_audio(path)
    assert waveform[2000:-2000].abs().max() == pytest.approx(SINE_AMPLITUDE / 2, rel=0.02)


def test_audio_info_counts_samples_exactly(media_dir):
    info = audio_info(media_dir / "sine.wav")
    assert (info.sample_rate, info.channels, info.num_samples, info.duration) == (44100, 2, 66150, 1.5)


def test_silent_audio_is_allowed_but_reported(media_dir):
    info = audio_info(media_dir / "silence.wav")
    assert info.is_silent and info.peak == 0 and info.peak_dbfs == -math.inf
    assert len(load_audio(media_dir / "silence.wav")) == 16000
    assert not audio_info(media_dir / "sine.wav").is_silent


@pytest.mark.parametrize(
    "name, words",
    [
        ("missing.mp3", "does not exist"),
        ("corrupt.mp3", "Cannot read the audio file"),
        ("no_audio.mp4", "no audio track"),
        ("empty.wav", "empty"),
    ],
)
def test_audio_errors(media_dir, name, words):
    with pytest.raises(InputError, match=words) as caught:
        load_audio(media_dir / name)
    assert caught.value.fix  # every error says how to fix it


def test_folder_is_not_an_audio_file(media_dir):
    with pytest.raises(InputError, match="not a file"):
        audio_info(media_dir)


# --- resampler ------------------------------------------------------------------------------


def reference_resample(signal: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99):
    """Direct float64 evaluation of the Hann-windowed sinc sum, one output sample at a time."""
    gcd = math.gcd(orig, new)
    cutoff = min(orig, new) / gcd * rolloff  # in units of the reduced rates
    out_length = math.ceil(len(signal) * new / orig)
    inputs = np.arange(len(signal))
    result = np.empty(out_length)
    for j in range(out_length):
        t = cutoff * (inputs / (orig / gcd) - j / (new / gcd))
        t = np.clip(t, -width, width)
        taps = np.sinc(t) * np.cos(np.pi * t / (2 * width)) ** 2 * cutoff / (orig / gcd)
        result[j] = taps @ signal
    return result


@pytest.mark.parametrize("orig, new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)])
def test_resample_matches_direct_windowed_sinc(orig, new):
    signal = np.random.default_rng(1).uniform(-1, 1, 900)
    expected = reference_resample(signal, orig, new)
    got32 = resample(torch.from_numpy(signal).float(), orig, new)
    got64 = resample(torch.from_numpy(signal), orig, new)
    assert got32.shape == (len(expected),) and got32.dtype == torch.float32
    assert np.abs(got32.double().numpy() - expected).max() < 1e-5
    assert np.abs(got64.numpy() - expected).max() < 1e-12


@pytest.mark.parametrize("orig", [44100, 48000, 8000, 22050, 11025])
def test_resample_keeps_frequency_and_level(orig):
    seconds = 2
    t = torch.arange(orig * seconds, dtype=torch.float64) / orig
    tone = (0.5 * torch.sin(2 * math.pi * 440 * t)).float()
    out = resample(tone, orig, 16000)
    assert len(out) == math.ceil(len(tone) * 16000 / orig) == 32000
    assert dominant_frequency(out, 16000) == pytest.approx(440, abs=1)
    assert out[1000:-1000].abs().max() == pytest.approx(0.5, abs=0.005)


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = torch.arange(44100, dtype=torch.float64) / 44100
    too_high = torch.sin(2 * math.pi * 10000 * t).float()  # above 8 kHz, the 16 kHz Nyquist
    assert resample(too_high, 44100, 16000)[500:-500].abs().max() < 0.01


def test_resample_identity_batch_and_order_of_mixing():
    stereo = torch.randn(2, 4410)
    assert resample(stereo, 16000, 16000) is stereo
    both = resample(stereo, 44100, 16000)
    assert both.shape == (2, 1600)
    assert torch.allclose(both[1], resample(stereo[1], 44100, 16000), atol=1e-6)
    # Mixing then resampling equals resampling then mixing (both are linear).
    assert torch.allclose(resample(stereo.mean(0), 44100, 16000), both.mean(0), atol=1e-6)


def test_resample_odd_lengths():
    for length in (1, 2, 440, 441, 442):
        assert len(resample(torch.zeros(length), 44100, 16000)) == math.ceil(length * 16000 / 44100)


# --- extract_audio_track -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".m4a", ".wav", ".mp3"])
def test_extract_audio_track(media_dir, tmp_path, suffix):
    out = extract_audio_track(media_dir / "with_audio.mp4", tmp_path / f"speech{suffix}")
    assert out == tmp_path / f"speech{suffix}" and sorted(os.listdir(tmp_path)) == [out.name]
    original, extracted = audio_info(media_dir / "with_audio.mp4"), audio_info(out)
    assert abs(extracted.duration - original.duration) < 0.06
    assert dominant_frequency(load_audio(out), 16000) == pytest.approx(440, abs=2)
    with pytest.raises(InputError, match="overwrite=True"):
        extract_audio_track(media_dir / "with_audio.mp4", out)
    extract_audio_track(media_dir / "with_audio.mp4", out, overwrite=True)


def test_extract_audio_track_errors(media_dir, tmp_path):
    with pytest.raises(InputError, match="no audio track"):
        extract_audio_track(media_dir / "no_audio.mp4", tmp_path / "a.wav")
    with pytest.raises(InputError, match="suffix"):
        extract_audio_track(media_dir / "with_audio.mp4", tmp_path / "a.xyz")
    assert os.listdir(tmp_path) == []


# --- video in -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "speaker, fps, frames",
    [("AOC", NTSC, 137), ("tys", Fraction(25), 100)],  # tys: 99 frames at 25 fps, the last held longer
)
def test_sample_video_info(speaker, fps, frames):
    info = video_info(SAMPLES_DIR / speaker / "gt.mp4")
    assert (info.width, info.height, info.codec, info.pix_fmt) == (512, 512, "h264", "yuv420p")
    assert info.fps == fps and info.frame_count == frames
    assert info.has_audio and info.audio_codec == "aac"
    decoded = sum(1 for _ in iter_video_frames(info.path, size=(128, 128)))
    assert decoded == frames



def test_a_video_trimmed_without_reencoding_counts_only_the_frames_its_edit_list_shows(tmp_path):
    """`ffmpeg -ss 0.5 -i in.mp4 -c copy out.mp4` keeps the packets before the cut (an edit list skips them): the
    count was every packet (65 where 52 are shown and decoded), and the duration the packets' span."""
    trimmed = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", "0.5", "-t", "2", "-i", str(SAMPLES_DIR / "tys" / "gt.mp4"), "-c", "copy", str(trimmed))
    info = video_info(trimmed)
    decoded = sum(1 for _ in iter_video_frames(trimmed, size=(64, 64)))
    assert info.frame_count == decoded
    assert abs(info.duration - decoded / 25) <= 0.1  # it was the span of every packet: 65 frames' worth

def test_iter_frames_resize_matches_cv2(tmp_path):
    path = tmp_path / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=10:d=0.3", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    full = list(iter_video_frames(path))
    small = list(iter_video_frames(path, size=(320, 200)))
    assert len(full) == len(small) == 3 and full[0].shape == (720, 1280, 3)
    assert small[0].shape == (200, 320, 3) and small[0].dtype == np.uint8
    for big, resized in zip(full, small):
        assert np.array_equal(resized, cv2.resize(big, (320, 200), interpolation=cv2.INTER_LINEAR))
    full[0][0, 0] = 1  # frames are writable arrays of their own


def test_video_info_errors(media_dir):
    with pytest.raises(InputError, match="no video stream"):
        video_info(media_dir / "sine.wav")
    with pytest.raises(InputError, match="does not exist"):
        iter_video_frames(media_dir / "nope.mp4")  # fails at the call, before any next()


def test_rotated_video_reports_display_size(media_dir, tmp_path):
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(media_dir / "no_audio.mp4"), "-c", "copy", str(rotated))
    info = video_info(rotated)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    assert next(iter_video_frames(rotated)).shape == (64, 48, 3)


# --- video out ------------------------------------------------------------------------------


def gradient(height: int, width: int, shift: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 40 + 160 * x / width + shift
    green = 60 + 120 * y / height
    blue = np.full_like(x, 128.0)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def test_video_writer_round_trip_with_audio(media_dir, tmp_path):
    out = tmp_path / "talk.mp4"
    frames = [gradient(64, 96, i) for i in range(47)]
    with VideoWriter(out, NTSC, 96, 64, audio_path=media_dir / "sine.wav") as writer:  # 1.5 s audio
        writer.write(np.stack(frames[:20]))  # a numpy batch
        writer.write(torch.from_numpy(np.stack(frames[20:40])))  # a torch batch
        for frame in frames[40:]:
            writer.write(frame)
    assert sorted(os.listdir(tmp_path)) == ["talk.mp4"]
    info = video_info(out)
    assert (info.codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.frame_count == 47 and info.fps == NTSC and (info.width, info.height) == (96, 64)
    assert info.duration == pytest.approx(47 * 1001 / 30000, abs=1e-6)
    sound = audio_info(out)  # the 1.5 s audio is cut to the video's 1.568 s -- it is shorter, so kept
    assert sound.duration == pytest.approx(1.5, abs=0.03)
    decoded = list(iter_video_frames(out))
    assert len(decoded) == 47
    error = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(decoded, frames)])
    assert error < 1.5


def heard(path: Path) -> np.ndarray:
    """The sound of ``path`` as a player plays it, from the file's time 0 (a stream starting later is preceded
    by silence), 16 kHz mono."""
    pcm = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-af",
                          "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(pcm, np.float32)


def test_a_speech_video_whose_sound_starts_late_is_heard_from_the_videos_first_frame(tmp_path):
    """Its sound kept its 0.5 s delay in the output: the lips led the speech by half a second, and the cut to
    the frames' length lost the speech's end."""
    late = tmp_path / "late.mp4"  # a picture from 0 s, its sound (noise: no period to align wrongly) from 0.5 s
    ffmpeg("-f", "lavfi", "-i", "color=gray:size=64x64:duration=2:rate=25", "-itsoffset", "0.5",
           "-f", "lavfi", "-i", "anoisesrc=duration=1.5:sample_rate=16000:seed=3", "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-c:a", "aac", str(late))
    speech = load_audio(late).numpy()  # what the frames are made for: the sound from its first sample
    frames = np.stack([gradient(64, 96, index) for index in range(30)])
    with VideoWriter(tmp_path / "talk.mp4", 25, 96, 64, audio_path=late) as writer:
        writer.write(frames)
    with PngFolderWriter(tmp_path / "frames", fps=25, audio_path=late) as writer:
        writer.write(frames)
    for output in (tmp_path / "talk.mp4", tmp_path / "frames" / "audio.wav"):
        sound = heard(output)
        lag = int(np.argmax(np.correlate(sound[:12000], speech[1000:5000], "valid"))) - 1000
        assert abs(lag) <= 16, f"{output.name}: the speech is {lag / 16:.1f} ms late"
        assert len(sound) / 16000 == pytest.approx(1.2, abs=0.03)  # the 30 frames' length, all speech


def test_video_writer_cuts_longer_audio(tmp_path):
    long_audio = tmp_path / "long.mp3"
    ffmpeg(*sine_input(5.0), str(long_audio))
    out = tmp_path / "short.mp4"
    with VideoWriter(out, 25, 32, 32, audio_path=long_audio) as writer:
        writer.write(np.zeros((25, 32, 32, 3), np.uint8))
    assert audio_info(out).duration == pytest.approx(1.0, abs=0.025)
    assert video_info(out).frame_count == 25


@pytest.mark.parametrize(
    "fps, expected",
    [(29.97, NTSC), (30, Fraction(30)), (23.976, Fraction(24000, 1001)), (24, Fraction(24)),
     (12.34, Fraction(1234, 100)), (Fraction(100, 3), Fraction(100, 3)), (Fraction(50, 3), Fraction(50, 3))],
)
def test_mkv_fps_is_recovered_exactly(tmp_path, fps, expected):
    # Matroska stores millisecond timestamps; 29.97 must still come back as 30000/1001.
    out = tmp_path / "clip.mkv"
    with VideoWriter(out, fps, 32, 32) as writer:
        writer.write(np.zeros((47, 32, 32, 3), np.uint8))
    info = video_info(out)
    assert info.fps == expected and info.frame_count == 47 and info.container == "matroska"


def test_a_variable_rate_video_is_read_at_its_average_rate_by_timestamps(tmp_path):
    """Its frames were read one per frame at the average rate: a clip that slows from 30 to 10 fps had its slow
    part played fast, and a track extracted from it drifted away from the speech."""
    steady = tmp_path / "steady.mp4"
    with VideoWriter(steady, 30, 32, 32, encoding=VideoEncoding(crf=0)) as writer:
        writer.write(np.stack([np.full((32, 32, 3), 10 * index, np.uint8) for index in range(20)]))
    slowing = tmp_path / "slowing.mkv"  # 10 frames at 30 fps, then 10 at 10 fps
    ffmpeg("-i", str(steady), "-vf", "setpts='if(lt(N,10),N,10+(N-10)*3)/(30*TB)'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-crf", "0", str(slowing))
    assert not video_info(steady).variable_rate
    assert [round(frame.mean() / 10) for frame in iter_video_frames(video_info(steady))] == list(range(20))
    info = video_info(slowing)
    times = [index / 30 if index < 10 else (10 + (index - 10) * 3) / 30 for index in range(20)]
    assert info.variable_rate and info.frame_times == pytest.approx(times, abs=1e-3)
    on_screen = [max(index for index, start in enumerate(times) if start <= k / float(info.fps) + 1e-3)
                 for k in range(20)]
    assert [round(frame.mean() / 10) for frame in iter_video_frames(info)] == on_screen
    assert on_screen == [0, 1, 3, 5, 7, 9, 10, 11, 11, 12, 13, 13, 14, 15, 15, 16, 17, 17, 18, 19]  # skipped, held


def test_a_steady_video_whose_last_frame_starts_late_keeps_its_rate_and_every_frame(tmp_path):
    """The frame before the last held longer: the video was taken as variable-rate and read at 19.8 fps."""
    steady = tmp_path / "steady.mp4"
    with VideoWriter(steady, 25, 32, 32, encoding=VideoEncoding(crf=0)) as writer:
        writer.write(np.stack([np.full((32, 32, 3), 10 * index, np.uint8) for index in range(12)]))
    held = tmp_path / "held.mkv"
    ffmpeg("-i", str(steady), "-vf", "setpts='if(lt(N,11),N,N+5)/(25*TB)'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-crf", "0", str(held))
    info = video_info(held)
    assert info.fps == 25 and not info.variable_rate
    assert [round(frame.mean() / 10) for frame in iter_video_frames(info)] == list(range(12))


def test_a_variable_rate_video_cut_by_an_edit_list_is_read_frame_by_frame_not_shifted(tmp_path):
    """Packets before an edit list's start are never decoded: placing the decoded frames by them shifted the
    track by half a second."""
    steady = tmp_path / "steady.mp4"
    with VideoWriter(steady, 30, 32, 32, encoding=VideoEncoding(crf=0)) as writer:
        writer.write(np.stack([np.full((32, 32, 3), 10 * index, np.uint8) for index in range(20)]))
    slowing, cut = tmp_path / "slowing.mp4", tmp_path / "cut.mp4"
    ffmpeg("-i", str(steady), "-vf", "setpts='if(lt(N,10),N,10+(N-10)*3)/(30*TB)'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-g", "100", str(slowing))
    ffmpeg("-ss", "0.2", "-i", str(slowing), "-c", "copy", str(cut))
    info = video_info(cut)
    decoded = [round(frame.mean() / 10) for frame in iter_video_frames(info)]
    assert len(decoded) == info.frame_count  # the cut packets are never decoded, nor counted
    assert not info.variable_rate and decoded == list(range(decoded[0], 20))  # each decoded frame once, in order


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing(media_dir, tmp_path, interrupt):
    with pytest.raises(interrupt):
        with VideoWriter(tmp_path / "out.mp4", 25, 32, 32, audio_path=media_dir / "sine.wav") as writer:
            writer.write(np.zeros((5, 32, 32, 3), np.uint8))
            raise interrupt()
    assert os.listdir(tmp_path) == []


def test_ffmpeg_dying_is_reported_and_cleaned_up(tmp_path):
    with pytest.raises(VExpressError, match="ffmpeg stopped while encoding"):
        with VideoWriter(tmp_path / "out.mp4", 25, 32, 32) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            writer._process.kill()  # stands in for a crash or a full disk
            writer._process.wait()
            for _ in range(50):  # the pipe buffer may take a few frames before it breaks
                writer.write(np.zeros((4, 32, 32, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_writer_refuses_to_overwrite(tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="overwrite=True"):
        VideoWriter(out, 25, 32, 32)
    assert out.read_bytes() == b"precious" and os.listdir(tmp_path) == ["exists.mp4"]
    with VideoWriter(out, 25, 32, 32, overwrite=True) as writer:
        writer.write(np.zeros((3, 32, 32, 3), np.uint8))
    assert video_info(out).frame_count == 3


@pytest.mark.parametrize(
    "given, expected",
    [(29.97, NTSC), (23.976, Fraction(24000, 1001)), (59.94, Fraction(60000, 1001)), (25.0, Fraction(25)),
     (12.5, Fraction(25, 2)), ("30000/1001", NTSC), (NTSC, NTSC), (30, Fraction(30))],
)
def test_fps_arguments_become_exact_fractions(given, expected):
    assert as_fps_fraction(given) == expected


def test_writer_pads_odd_sizes(tmp_path):
    out = tmp_path / "odd.mp4"
    frame = gradient(47, 63)
    with VideoWriter(out, 25, 63, 47) as writer:
        assert writer.output_size == (64, 48)
        writer.write(frame)
    decoded = next(iter_video_frames(out))
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded[:46, :62].astype(int) - frame[:46, :62]).mean() < 2


def test_writer_input_errors(media_dir, tmp_path):
    with pytest.raises(InputError, match=".avi"):
        VideoWriter(tmp_path / "x.avi", 25, 32, 32)
    with pytest.raises(InputError, match="no audio track"):
        VideoWriter(tmp_path / "x.mp4", 25, 32, 32, audio_path=media_dir / "no_audio.mp4")
    with VideoWriter(tmp_path / "x.mp4", 25, 32, 32) as writer:
        with pytest.raises(ValueError, match="32x32"):
            writer.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(TypeError, match="uint8"):
            writer.write(np.zeros((32, 32, 3), np.float32))
        writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(VExpressError, match="No frames"):
        with VideoWriter(tmp_path / "empty.mp4", 25, 32, 32):
            pass
    assert sorted(os.listdir(tmp_path)) == ["x.mp4"]


def test_writer_unwritable_folder(tmp_path):
    with pytest.raises(InputError, match="The folder ./proc/vexpress-test. cannot be created"):
        VideoWriter("/proc/vexpress-test/out.mp4", 25, 32, 32)
    if os.geteuid() != 0:  # root may write into a 0o500 folder
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            VideoWriter(locked / "out.mp4", 25, 32, 32)
    if Path("/sys").exists() and not os.access("/sys", os.W_OK):
        with pytest.raises(InputError, match="not writable"):
            VideoWriter("/sys/out.mp4", 25, 32, 32)


def test_png_folder_writer(media_dir, tmp_path):
    frames = [gradient(24, 32, 10 * i) for i in range(3)]
    writer = open_video_writer(str(tmp_path / "frames") + "/", 25, 32, 24, audio_path=media_dir / "sine.wav")
    assert isinstance(writer, PngFolderWriter)
    with writer:
        writer.write(np.stack(frames))
    folder = tmp_path / "frames"
    assert sorted(os.listdir(tmp_path)) == ["frames"]
    assert sorted(os.listdir(folder)) == ["audio.wav", "frame_000001.png", "frame_000002.png", "frame_000003.png"]
    for index, frame in enumerate(frames, start=1):
        saved = cv2.cvtColor(cv2.imread(str(folder / f"frame_{index:06d}.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(saved, frame)  # PNG is lossless
    assert audio_info(folder / "audio.wav").duration == pytest.approx(3 / 25, abs=0.001)

    with pytest.raises(InputError, match="overwrite=True"):
        PngFolderWriter(folder)
    with PngFolderWriter(folder, overwrite=True) as again:
        again.write(frames[0])
    assert os.listdir(folder) == ["frame_000001.png"]


def test_png_folder_writer_guards_other_folders(tmp_path):
    precious = tmp_path / "holiday"
    precious.mkdir()
    (precious / "photo.jpg").write_bytes(b"jpg")
    with pytest.raises(InputError, match="Will not replace"):
        PngFolderWriter(precious, overwrite=True)
    with pytest.raises(ValueError):
        with PngFolderWriter(tmp_path / "frames") as writer:
            writer.write(np.zeros((4, 4, 3), np.uint8))
            raise ValueError("boom")
    assert sorted(os.listdir(tmp_path)) == ["holiday"]
    assert os.listdir(precious) == ["photo.jpg"]


def test_open_video_writer_picks_by_suffix(tmp_path):
    png = open_video_writer(tmp_path / "frames", 25, 8, 8)
    assert isinstance(png, PngFolderWriter)
    png.discard()
    for suffix in (".mp4", ".mov", ".mkv"):
        writer = open_video_writer(tmp_path / f"clip{suffix}", 25, 8, 8)
        assert isinstance(writer, VideoWriter)
        writer.discard()
    with pytest.raises(InputError, match="e.g. 'clip.mp4'"):
        open_video_writer(tmp_path / "clip.gif", 25, 8, 8)
    assert os.listdir(tmp_path) == []


def test_open_video_writer_checks_its_output_once_and_offers_frames_for_an_unknown_suffix(tmp_path, monkeypatch):
    """It checked the path, then the writer it made checked it again."""
    from vexpress_cli.media import video_writer

    checked, check = [], video_writer.check_output

    def counted(*args, **options):
        checked.append(args)
        return check(*args, **options)

    monkeypatch.setattr(video_writer, "check_output", counted)
    for name in ("clip.mp4", "frames"):
        open_video_writer(tmp_path / name, 25, 8, 8).discard()
    assert len(checked) == 2
    with pytest.raises(InputError, match="or no suffix for a folder of PNG frames"):
        open_video_writer(tmp_path / "clip.gif", 25, 8, 8)
    assert os.listdir(tmp_path) == []


def test_png_folder_writer_audio_failure_is_reported_and_leaves_nothing(media_dir, tmp_path):
    speech = tmp_path / "speech.wav"
    speech.write_bytes((media_dir / "sine.wav").read_bytes())
    writer = PngFolderWriter(tmp_path / "frames", fps=25, audio_path=speech)
    writer.write(gradient(24, 32))
    speech.write_bytes(b"RIFF but not really a wav file")  # broken after the writer checked it
    with pytest.raises(VExpressError, match="Could not save the audio next to the frames") as raised:
        writer.commit()
    assert "ffmpeg said:" in raised.value.why
    assert sorted(os.listdir(tmp_path)) == ["speech.wav"]


def test_iter_frames_reuses_a_video_info(media_dir, monkeypatch):
    info = video_info(media_dir / "with_audio.mp4")
    assert info.stream_index == 0
    expected = list(iter_video_frames(info.path, size=(32, 24)))

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr("vexpress_cli.media.video_reader.probe", no_probe)
    reused = list(iter_video_frames(info, size=(32, 24)))
    assert len(reused) == len(expected) == info.frame_count
    assert all(np.array_equal(a, b) for a, b in zip(reused, expected))


def test_probe_results_are_reused(media_dir, tmp_path, monkeypatch):
    from vexpress_cli.media.ffmpeg import probe

    source = probe(media_dir / "with_audio.mp4", "video")
    expected = video_info(media_dir / "with_audio.mp4")

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr("vexpress_cli.media.video_reader.probe", no_probe)
    monkeypatch.setattr("vexpress_cli.media.audio.probe", no_probe)
    assert video_info(source) == expected
    out = extract_audio_track(source, tmp_path / "speech.m4a")
    monkeypatch.undo()
    assert audio_info(out).duration == pytest.approx(1.5, abs=0.06)


def test_output_under_a_file_is_an_input_error(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(InputError, match="Cannot create the output folder"):
        VideoWriter(tmp_path / "afile" / "out.mp4", 25, 32, 32)
    with pytest.raises(InputError, match="Cannot create the output folder"):
        PngFolderWriter(tmp_path / "afile" / "frames")
    assert sorted(os.listdir(tmp_path)) == ["afile"]


def test_decoding_is_stopped_when_interrupted(media_dir, monkeypatch):
    """Ctrl+C while the audio streams in must not leave ffmpeg running."""
    import vexpress_cli.media.audio as audio_module

    started = []
    popen = subprocess.Popen

    class InterruptedPipe:
        def __init__(self, pipe):
            self.pipe = pipe

        def read(self, size):
            raise KeyboardInterrupt

        def close(self):
            self.pipe.close()

    def interrupted_popen(command, *args, **kwargs):
        process = popen(command, *args, **kwargs)
        if "pcm_f32le" in command:  # the decoder, not the probe before it
            started.append(process)
            process.stdout = InterruptedPipe(process.stdout)
        return process

    monkeypatch.setattr(audio_module.subprocess, "Popen", interrupted_popen)
    with pytest.raises(KeyboardInterrupt):
        load_audio(media_dir / "sine.wav")
    assert len(started) == 1 and started[0].returncode is not None  # killed and reaped


@pytest.fixture
def fresh_ffmpeg_lookup():
    """ffmpeg_exe() is cached per process: look the binary up again, before and after the test."""
    ffmpeg_exe.cache_clear()
    yield
    ffmpeg_exe.cache_clear()


@pytest.mark.parametrize("target, reason", [("nowhere/ffmpeg", "not an executable file"),
                                            ("a-folder", "not an executable file"),
                                            ("not-a-program", "Exec format error")])
def test_imageio_ffmpeg_exe_pointing_nowhere_is_a_clear_error(tmp_path, monkeypatch, fresh_ffmpeg_lookup,
                                                                target, reason):
    """Issue 8 item 9: IMAGEIO_FFMPEG_EXE naming a missing file, a folder or a non-program raised
    FileNotFoundError, PermissionError or OSError from subprocess; now a VExpressError names the variable."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    (tmp_path / "a-folder").mkdir()
    (tmp_path / "not-a-program").write_bytes(b"\0\1\2\3 no program")
    (tmp_path / "not-a-program").chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / target))
    with pytest.raises(VExpressError) as error:
        audio_info(SAMPLES_DIR / "tys" / "aud.mp3")
    message = str(error.value)
    assert f"The ffmpeg that $IMAGEIO_FFMPEG_EXE names ({tmp_path / target}) cannot be run" in message
    assert reason in message and "unset IMAGEIO_FFMPEG_EXE" in error.value.fix
    result = CliRunner().invoke(app, ["inspect", str(SAMPLES_DIR / "tys" / "aud.mp3")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "IMAGEIO_FFMPEG_EXE" in result.output


@pytest.mark.slow
def test_a_video_declaring_frames_larger_than_8k_is_refused_before_a_frame_is_decoded(tmp_path):
    """An 8200 x 4400 frame is 108 MB decoded; the file holding a black one is a few kilobytes."""
    from vexpress_cli.media.video_reader import iter_video_frames, video_info

    huge = tmp_path / "huge.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=8200x4400:r=1", "-frames:v", "1", "-c:v", "png", str(huge))
    info = video_info(huge)  # probing it is fine: its size, rate and length are all read without a frame
    assert (info.width, info.height) == (8200, 4400)
    for read in (iter_video_frames, lambda path: iter_video_frames(info)):  # refused at the call
        with pytest.raises(InputError) as refused:
            read(huge)
        assert refused.value.what == (f"Cannot read the video {str(huge)!r}: its frames are 8200 x 4400 pixels, "
                                      "larger than 8K (8192 x 4320).")
