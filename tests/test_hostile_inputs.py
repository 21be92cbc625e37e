"""Inputs built to hang, exhaust memory or mislead (issue 8): each is refused at once, or read right.

Memory is measured in a fresh interpreter (``ru_maxrss`` only grows, and this test process has
already held much more), as the growth of the peak across the one call under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import SAMPLES_DIR

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.jobs.inspect import inspect_audio, inspect_kps
from vexpress_cli.jobs.inspect.dispatch import input_kind
from vexpress_cli.kps import KpsTrack, check_kps_in_frame, load_kps, save_kps
from vexpress_cli.media import load_audio, video_info
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.images import open_rgb_image
from vexpress_cli.settings.presets import load_preset

HANG_SECONDS = 20  # far longer than any refusal takes


def returns_within(call, fifo: Path) -> BaseException | None:
    """Run ``call()``; fail if it is still blocked after HANG_SECONDS, else return what it raised."""
    outcome: dict[str, BaseException] = {}

    def target():
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        try:  # let the blocked reader go: a writer that opens and closes gives it end-of-file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(HANG_SECONDS)
        pytest.fail(f"reading the FIFO {fifo.name} blocked for {HANG_SECONDS} s")
    return outcome.get("error")


LOADERS = {
    "reference image": ("ref.png", lambda path: open_rgb_image(path, "reference image")),
    "audio": ("speech.mp3", load_audio),
    "kps file": ("kps.pth", load_kps),
    "driving video": ("driving.mp4", video_info),
    "preset file": ("mine.toml", load_preset),
    "input to inspect": ("speech.wav", input_kind),  # inspect's first look, worded as every command's
}


@pytest.mark.parametrize("kind", LOADERS)
def test_a_fifo_is_refused_at_once(tmp_path, kind):
    """Issue 8 item 10: a FIFO given as any input is refused at once with a clear message, never read."""
    name, loader = LOADERS[kind]
    fifo = tmp_path / name
    os.mkfifo(fifo)
    error = returns_within(lambda: loader(fifo), fifo)
    assert isinstance(error, InputError), repr(error)
    message = str(error)
    assert "is not a regular file but a named pipe (FIFO)" in message and str(fifo) in message
    assert error.fix


def test_a_character_device_is_refused_too():
    """Issue 8 item 10: /dev/zero (endless) is not read either."""
    with pytest.raises(InputError, match="not a regular file but a character device"):
        load_kps(Path("/dev/zero"))


def peak_growth_mb(code: str, tmp_path: Path) -> tuple[float, str]:
    """Run ``code`` (which prints one line) after the imports; the growth of the peak RSS in MB, and the line."""
    script = (
        "import resource, sys, torch, numpy\n"
        "import vexpress_cli.kps.io, vexpress_cli.media.audio, vexpress_cli.media.images\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"{code}\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line, growth = result.stdout.strip().splitlines()[-2:]
    return float(growth), line


@pytest.mark.slow
def test_a_tiny_kps_file_declaring_millions_of_frames_is_refused_before_reading(tmp_path):
    """Issue 8 item 12a: a 1.5 KB .pth with a stride-0 tensor of 20 M frames took 1.1 GB; now it is refused
    from its declared shape, without the memory."""
    path = tmp_path / "bomb.pth"
    torch.save(torch.zeros(1, 3, 2).expand(20_000_000, 3, 2), path)
    assert path.stat().st_size < 4000
    growth, outcome = peak_growth_mb(
        "from vexpress_cli.errors import InputError\n"
        "try:\n    vexpress_cli.kps.io.load_kps('bomb.pth'); print('loaded')\n"
        "except InputError as error:\n    print(error)",
        tmp_path,
    )
    assert "declares a track of shape [20000000, 3, 2], more than the 5,184,000 frames" in outcome
    assert growth < 200, f"{growth:.0f} MB"


def test_a_kps_list_longer_than_a_day_is_refused(tmp_path):
    """Issue 8 item 12a: the legacy list-of-arrays form has the same frame limit (checked on its length)."""
    from vexpress_cli.kps import readers

    with pytest.raises(InputError, match="more than the 5,184,000 frames"):
        readers.check_declared_size(readers.declared_shape([np.zeros((3, 2), np.float32)] * (readers.MAX_FRAMES + 1)),
                                    tmp_path / "long.pth")
    assert readers.declared_shape([np.zeros((3, 2))] * 4) == [4, 3, 2]


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    """Issue 8 item 12b: a small 13000x13000 PNG decoded to 1.65 GB; now its header size is refused."""
    path = tmp_path / "huge.png"
    PIL.Image.new("1", (13000, 13000)).save(path)  # 1 bit per pixel: a small file
    assert path.stat().st_size < 2_000_000
    with pytest.raises(InputError) as error:
        open_rgb_image(path, "reference image")
    message = str(error.value)
    assert "13000 x 13000 pixels (169 megapixels)" in message and "up to 64 megapixels" in message
    assert "Downscale" in error.value.fix


def test_the_huge_png_through_the_cli_is_an_error_paragraph(tmp_path):
    """Issue 8 item 12b: `vexpress inspect` on it exits 2 with the message, no traceback."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    path = tmp_path / "huge.png"
    PIL.Image.new("1", (9000, 9000)).save(path)
    result = CliRunner().invoke(app, ["inspect", str(path), "--backend", "dlib"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "9000 x 9000 pixels" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_photo_with_damaged_exif_keeps_its_orientation_without_pillows_warnings(tmp_path):
    """The IFD says five tags and holds one (the orientation): Pillow printed a raw warning for each read."""
    path = tmp_path / "damaged-exif.jpg"
    ifd = b"II*\x00\x08\x00\x00\x00" + b"\x05\x00" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00"
    PIL.Image.new("RGB", (32, 48), "gray").save(path, exif=b"Exif\x00\x00" + ifd)
    done = subprocess.run([sys.executable, "-W", "always", "-m", "vexpress_cli", "inspect", str(path), "--json",
                           "--backend", "dlib"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    report = json.loads(done.stdout)
    assert (report["exif_orientation"], report["width"], report["height"]) == (6, 48, 32)  # turned upright
    assert open_rgb_image(path).size == (48, 32)


@pytest.fixture(scope="module")
def long_multichannel_flac(tmp_path_factory) -> Path:
    """60 s of 96 kHz 6-channel FLAC: 138 MB as the decoder's 32-bit PCM, 12 MB on disk."""
    path = tmp_path_factory.mktemp("flac") / "long.flac"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=96000:duration=60",
                    "-af", "pan=6c|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", "-c:a", "flac", str(path)], check=True)
    return path


@pytest.mark.slow
def test_long_high_rate_audio_decodes_in_bounded_memory(long_multichannel_flac, tmp_path):
    """Issue 8 item 12c: audio streams from ffmpeg straight to 16 kHz mono. Before, the whole 32-bit PCM
    was held (twice) and the file's growth of peak memory was 250 MB for this one; the output is 3.8 MB."""
    growth, line = peak_growth_mb(
        f"waveform = vexpress_cli.media.audio.load_audio({str(long_multichannel_flac)!r})\n"
        "print(len(waveform), float(waveform.abs().max()))",
        tmp_path,
    )
    samples, peak = line.split()
    assert int(samples) == 60 * 16000 and abs(float(peak) - 0.125) < 0.01
    assert growth < 100, f"{growth:.0f} MB"


def test_streamed_resampling_matches_the_whole_signal_resampler():
    """Issue 8 item 12c: the streamed filter is resample()'s, chunk boundaries anywhere (float rounding only)."""
    from vexpress_cli.media.resampling import StreamingResampler, resample

    signal = torch.rand(100_003, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for orig in (96000, 44100, 22050, 8000, 16000):
        streamer = StreamingResampler(orig, 16000)
        pieces, start = [], 0
        for size in [1, 7, 999, 65536, 12345] * 10:
            pieces.append(streamer.push(signal[start:start + size]))
            start += size
        assert start >= len(signal)
        pieces.append(streamer.finish())
        streamed, whole = torch.cat(pieces), resample(signal, orig, 16000)
        assert streamed.shape == whole.shape
        assert (streamed - whole).abs().max() < 1e-6, orig


def test_audio_numbers_are_unchanged_by_streaming():
    """Issue 8 item 12c: the sample speech decodes to the same length and (to float rounding) the same
    samples as the whole-file decoder gave; its peak and count stay exact."""
    from vexpress_cli.media.audio import audio_info
    from vexpress_cli.media.resampling import resample

    path = SAMPLES_DIR / "AOC" / "aud.mp3"
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.num_samples) == (44100, 2, 201728)
    pcm = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "s32le", "-c:a", "pcm_s32le", "-"],
                         capture_output=True, check=True).stdout
    samples = np.frombuffer(pcm, "<i4").reshape(-1, 2)
    # The 32-bit integer decoding of before float decoding (the MP3 decoder's floats, rounded to 2**-31).
    mono = (samples[:, 0].astype(np.float32) + samples[:, 1]) * np.float32(2.0**-32)
    expected = resample(torch.from_numpy(mono), 44100, 16000).clamp(-1, 1)
    got = load_audio(path)
    assert got.shape == expected.shape and (got - expected).abs().max() < 1e-6
    assert info.peak == pytest.approx(max(int(samples.max()), -int(samples.min())) / 2**31, abs=2**-31)


def test_a_16_bit_png_keeps_its_grey_levels(tmp_path):
    """Issue 8 item 14: a 16-bit grayscale PNG was read as white (clipped); it is scaled to 8 bits."""
    ramp = (np.arange(64 * 32).reshape(32, 64) * 32).astype(np.uint16)  # 0 .. 65504
    path = tmp_path / "deep.png"
    PIL.Image.fromarray(ramp).save(path)
    assert PIL.Image.open(path).mode.startswith("I;16")
    rgb = np.asarray(open_rgb_image(path))
    expected = np.round(ramp / 257).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 64, 3)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb.mean() < 140  # not white


def test_inspect_decodes_a_16_bit_png_once_with_generates_reader(tmp_path, monkeypatch):
    """Issue 8 item 14: `inspect` decodes through the same reader (its image is what generate sees), and only once
    for its report and generate's framing (it used to decode the photo twice)."""
    from vexpress_cli.jobs.inspect.image import inspect_image
    from vexpress_cli.media import images

    path = tmp_path / "deep.png"
    PIL.Image.fromarray(np.full((16, 16), 32896, np.uint16)).save(path)  # 32896 / 257 = 128
    decoded, real = [], images.decoded_rgb
    monkeypatch.setattr(images, "decoded_rgb", lambda image: decoded.append(real(image)) or decoded[-1])
    report = inspect_image(path, crop="none", width=64, height=64)
    assert (report.mode, report.width, len(decoded)) == ("I;16", 16, 1)
    assert (np.asarray(decoded[0][0]) == 128).all()


TRACK_512 = np.array([[[180.0, 220.0], [280.0, 218.0], [230.0, 275.0]]] * 5, np.float32)


def test_keypoints_outside_the_frame_are_refused_or_warned():
    """Issue 8 item 14: a 512 px track at 64 px, or negative coordinates, has no keypoint in the frame:
    InputError; a track partly outside gives a warning; one inside, nothing."""
    assert check_kps_in_frame(TRACK_512, 512, 512) is None
    for points, size in ((TRACK_512, 64), (-TRACK_512, 512)):
        with pytest.raises(InputError) as error:
            check_kps_in_frame(points, size, size, "the driving track")
        assert f"No keypoint of the driving track lies inside the {size}x{size} frame" in str(error.value)
        assert "Re-extract the track with `vexpress extract`" in error.value.fix
    moved = TRACK_512.copy()
    moved[3:, :, 0] += 300  # the last two frames drift off the right edge
    warning = check_kps_in_frame(moved, 512, 512)
    assert warning.startswith("2 of 5 frames of the kps track have keypoints outside the 512x512 frame")
    assert check_kps_in_frame(TRACK_512[0], 512, 512) is None  # one [3, 2] frame works too


def test_inspect_counts_the_same_frames_outside(tmp_path):
    """Issue 8 item 14: inspect's frames_outside and the check share one definition of outside."""
    moved = TRACK_512.copy()
    moved[3:, :, 0] += 300
    path = save_kps(tmp_path / "drift.safetensors", KpsTrack(moved, fps=25, width=512, height=512))
    assert json.loads(json.dumps(inspect_kps(path).to_dict()))["frames_outside"] == 2


def write_sine_wav(path: Path, rate: int, samples: int, hertz: float = 220.0) -> Path:
    import wave

    tone = (np.sin(2 * np.pi * hertz * np.arange(samples) / rate) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(rate)
        file.writeframes(tone.tobytes())
    return path


@pytest.mark.parametrize("rate", [44101, 96001, 8001])
@pytest.mark.slow
def test_a_rate_sharing_few_factors_with_16_khz_is_resampled_in_little_memory(rate, tmp_path):
    """2 s at 44101 Hz (88 KB) reached 22.7 GB before the OOM killer: its filter bank has 16000 x 44135 taps.
    ffmpeg resamples such rates; the tone stays where it was."""
    from vexpress_cli.media.resampling import filter_fits

    assert not filter_fits(rate, 16000)
    write_sine_wav(tmp_path / "odd.wav", rate, 2 * rate)
    growth, outcome = peak_growth_mb(
        "waveform = vexpress_cli.media.audio.load_audio('odd.wav')\n"
        "spectrum = numpy.abs(numpy.fft.rfft(waveform.numpy()))\n"
        "print(len(waveform), numpy.argmax(spectrum) * 16000 / len(waveform))", tmp_path)
    length, hertz = outcome.split()
    assert int(length) == 32000 and abs(float(hertz) - 220) < 1
    assert growth < 200, f"{growth:.0f} MB"


def test_the_standard_rates_keep_the_torchaudio_filter(tmp_path, monkeypatch):
    """Only rates whose filter bank would not fit are handed to ffmpeg's resampler (-ar)."""
    from vexpress_cli.media import audio
    from vexpress_cli.media.resampling import filter_fits

    standard = (8000, 11025, 16000, 22050, 24000, 32000, 37800, 44100, 48000, 88200, 96000, 176400, 192000)
    assert all(filter_fits(rate, 16000) for rate in standard)
    commands = []
    real_start = audio.start_ffmpeg
    monkeypatch.setattr(audio, "start_ffmpeg",
                        lambda command, **kw: commands.append(command) or real_start(command, **kw))
    for rate in (44100, 44101):
        load_audio(write_sine_wav(tmp_path / f"{rate}.wav", rate, rate // 10))
    assert ["-ar" in command for command in commands] == [False, True]


@pytest.mark.slow
def test_a_one_hertz_file_upsamples_in_steps_of_bounded_output(tmp_path):
    """5 samples at 1 Hz asked torch for 67 GB: one step of 2**20 inputs, each giving 16000 outputs."""
    path = tmp_path / "slow.wav"
    write_sine_wav(path, 1, 5, hertz=0.25)
    growth, outcome = peak_growth_mb(f"print(len(vexpress_cli.media.audio.load_audio({str(path)!r})))", tmp_path)
    assert outcome == "80000" and growth < 200, (outcome, growth)


@pytest.mark.parametrize("rate, samples", [(44101, 110253), (47999, 4800)])
def test_inspect_counts_the_frames_generate_makes_for_a_rate_ffmpeg_resamples(rate, samples, tmp_path):
    """ffmpeg's resampled length can be a sample off ceil(n * 16000 / rate): 63 frames said, 62 made."""
    from fractions import Fraction

    from vexpress_cli.jobs.planning import frame_count

    path = write_sine_wav(tmp_path / "odd.wav", rate, samples)
    made = frame_count(len(load_audio(path)) / 16000, Fraction(25))
    assert inspect_audio(path, 25).frames == made


def test_a_too_long_header_duration_is_shown_rounded_up_past_the_limit(tmp_path, monkeypatch):
    from vexpress_cli.media import audio

    monkeypatch.setattr(audio, "MAX_AUDIO_SECONDS", 2)
    with pytest.raises(InputError, match=r"its header says 0:00:03, and a video may last at most 0:00:02\."):
        load_audio(write_sine_wav(tmp_path / "speech.wav", 16000, 40000))  # 2.5 s


def test_a_video_longer_than_the_limit_with_short_sound_is_not_refused_by_its_duration(tmp_path, monkeypatch):
    from vexpress_cli.media import audio

    monkeypatch.setattr(audio, "MAX_AUDIO_SECONDS", 2)
    video = tmp_path / "talk.mp4"  # 3 s of picture, 1 s of sound
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=gray:size=64x64:rate=25:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000:duration=1", "-c:v", "libx264",
                    "-c:a", "aac", str(video)], check=True)
    assert audio.probe_audio(video).duration >= 2.9
    assert abs(len(load_audio(video)) - 16000) < 1100  # aac's priming and padding frames


def test_a_kps_file_holding_an_int_past_float64s_range_is_bad_points_not_a_traceback(tmp_path):
    path = tmp_path / "big.pth"
    torch.save([[[10**400, 1.0], [1.0, 1.0], [1.0, 1.0]]], path)
    with pytest.raises(InputError, match="are not a numeric array") as error:
        load_kps(path)
    assert "too large" in error.value.why


@pytest.mark.parametrize("rate, shown", [("1200", "1200 fps"), ("1/200", "0.005 fps")])
def test_a_video_a_kps_track_cannot_time_is_refused_before_faces_are_looked_for(rate, shown, tmp_path):
    """A 1200 fps clip went through face detection, then failed on saving with advice to use a missing --fps.
    The clip has no face: a later check would say so."""
    from vexpress_cli.jobs.extract import extract

    video = tmp_path / "fast.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"color=gray:size=64x64:rate={rate}",
                    "-frames:v", "3", "-c:v", "libx264", "-video_track_timescale", "120000", str(video)], check=True)
    with pytest.raises(InputError, match=f"plays at {shown}, outside the 0.01 to 1000 fps") as error:
        extract(video, tmp_path / "k.safetensors", face_backend="dlib")
    assert 'setpts=N/(30*TB)' in error.value.fix and "--fps" not in str(error.value)
    assert not (tmp_path / "k.safetensors").exists()


def test_speech_longer_than_four_hours_is_refused_before_and_while_decoding(tmp_path, monkeypatch):
    """10 hours of Opus silence (13.5 MB) decoded to 4.7 GB and on; the header's duration is checked first, and
    a file whose header says less is stopped once its samples pass the limit."""
    from dataclasses import replace

    from vexpress_cli.media import audio

    path = write_sine_wav(tmp_path / "speech.wav", 16000, 3 * 16000)
    monkeypatch.setattr(audio, "MAX_AUDIO_SECONDS", 2)
    with pytest.raises(InputError, match=r"is too long: its header says 0:00:03, and a video may last at most "
                                         r"0:00:02\.") as error:
        load_audio(path)
    assert "ffmpeg -ss START -t SECONDS" in error.value.fix and "vexpress batch" in error.value.fix
    probed = audio.probe_audio(path)
    monkeypatch.setattr(audio, "probe_audio", lambda _: replace(probed, duration=None))  # a header without one
    with pytest.raises(InputError, match="it decodes to more than 0:00:02"):
        load_audio(path)


DEEP_TOML, DEEP_JSON = "x = " + "[" * 5000 + "]" * 5000 + "\n", "[" * 100_000 + "]" * 100_000


def test_json_and_toml_nested_too_deeply_are_bad_text_not_a_recursion_error(tmp_path, monkeypatch):
    """5000 '[' in a preset, the config, a run record, a manifest line or a model config was a RecursionError
    traceback (and one such user preset hid the whole preset list)."""
    from vexpress_cli.engine.architecture import read_json
    from vexpress_cli.jobs.batch.manifest import read_manifest
    from vexpress_cli.jobs.records import read_record
    from vexpress_cli.settings.user_config import load_user_config

    deep = "nest deeper than can be read"
    (tmp_path / "deep.toml").write_text(DEEP_TOML)
    with pytest.raises(InputError, match=f"is not valid TOML: its brackets or tables {deep}"):
        load_preset(tmp_path / "deep.toml")
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "config.toml").write_text(DEEP_TOML)
    with pytest.raises(InputError, match=f"config.toml is not valid TOML: its brackets or tables {deep}"):
        load_user_config()
    (tmp_path / "record.json").write_text(DEEP_JSON)
    with pytest.raises(InputError, match=f"Cannot read the run record .*\\. Its brackets or tables {deep}"):
        read_record(tmp_path / "record.json")
    (tmp_path / "jobs.jsonl").write_text(DEEP_JSON + "\n")
    entries, [problem] = read_manifest(tmp_path / "jobs.jsonl")
    assert entries == [] and problem.line == 1 and problem.text == f"not valid JSON (its brackets or tables {deep})."
    (tmp_path / "config.json").write_text(DEEP_JSON)
    with pytest.raises(VExpressError, match=f"Cannot read the VAE config at .*: its brackets or tables {deep}"):
        read_json(tmp_path / "config.json", "the VAE config")
