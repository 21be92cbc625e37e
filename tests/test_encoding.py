"""Encoder control: --codec, --crf, --encoder-preset and --audio-bitrate, checked on real ffmpeg output.

Every video here is encoded by the bundled ffmpeg and read back through it (codec names from
``ffmpeg -i``, x264's settings string in the stream, file sizes).
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media import encoding
from vexpress_cli.media.encoding import ENCODERS, NVENC_CODECS, VideoEncoding, codec_usable, resolve_codec
from vexpress_cli.media.ffmpeg import ffmpeg_exe, probe
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.media.video_writer import VideoWriter, open_video_writer
from vexpress_cli.settings.schema import CODECS, DEFAULTS, resolve_settings

runner = CliRunner()


def textured_frames(count: int = 12, size: int = 96) -> np.ndarray:
    """Moving noise: detail an encoder must spend bits on, so quality settings show in the size."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size * 2, 3), dtype=np.uint8)
    return np.stack([base[:, index * 4:index * 4 + size] for index in range(count)])


def encode(path, encoding_used: VideoEncoding, audio=None):
    with VideoWriter(path, 25, 96, 96, audio_path=audio, encoding=encoding_used) as writer:
        writer.write(textured_frames())
    return path


@pytest.fixture(scope="module")
def noise_audio(tmp_path_factory):
    """1 s of white noise: AAC cannot squeeze it below the bitrate it is given."""
    path = tmp_path_factory.mktemp("audio") / "noise.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anoisesrc=r=44100:a=0.5:d=1",
                    str(path)], check=True)
    return path


def test_defaults_are_h264_crf_18_medium_192k_with_auto_codec():
    assert (DEFAULTS["codec"], DEFAULTS["crf"], DEFAULTS["encoder_preset"], DEFAULTS["audio_bitrate"]) == (
        "auto", 18, "medium", 192)
    assert set(CODECS) == {"auto", *ENCODERS}


@pytest.mark.parametrize(("codec", "probed"), [("h264", "h264"), ("h265", "hevc")])
def test_codec_setting_gives_a_video_of_that_codec(codec, probed, tmp_path):
    out = encode(tmp_path / f"{codec}.mp4", VideoEncoding(codec=codec))
    info = video_info(out)
    assert info.codec == probed
    assert info.frame_count == 12


def test_h265_in_mp4_is_tagged_hvc1_for_apple_players(tmp_path):
    out = encode(tmp_path / "h265.mp4", VideoEncoding(codec="h265"))
    assert "hvc1" in probe(out).video.details[0]


def test_h265_in_mkv_is_written_too(tmp_path):
    out = encode(tmp_path / "h265.mkv", VideoEncoding(codec="h265"))
    assert video_info(out).codec == "hevc"


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_higher_crf_gives_a_smaller_file(codec, tmp_path):
    sizes = [encode(tmp_path / f"crf{crf}.mp4", VideoEncoding(codec=codec, crf=crf)).stat().st_size
             for crf in (12, 24, 36)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_encoder_preset_reaches_x264(tmp_path):
    """x264 writes its options into the stream: ultrafast turns CABAC off, medium keeps it on."""
    fast = encode(tmp_path / "fast.mp4", VideoEncoding(preset="ultrafast")).read_bytes()
    medium = encode(tmp_path / "medium.mp4", VideoEncoding(preset="medium")).read_bytes()
    assert b"cabac=0" in fast and b"cabac=1" not in fast
    assert b"cabac=1" in medium


def test_crf_reaches_x264(tmp_path):
    data = encode(tmp_path / "crf30.mp4", VideoEncoding(crf=30)).read_bytes()
    assert re.search(rb"crf=30\.0", data)


def test_audio_bitrate_sets_the_aac_rate(noise_audio, tmp_path):
    sizes = {}
    for kbps in (64, 160):
        out = encode(tmp_path / f"a{kbps}.mp4", VideoEncoding(audio_bitrate=kbps), audio=noise_audio)
        rate = int(re.search(r"(\d+) kb/s", ", ".join(probe(out).audio.details)).group(1))
        assert abs(rate - kbps) <= kbps * 0.15, rate
        sizes[kbps] = out.stat().st_size
    assert sizes[160] > sizes[64]


def test_writer_without_encoding_is_libx264_medium_at_crf_18(tmp_path):
    with VideoWriter(tmp_path / "plain.mp4", 25, 96, 96) as writer:
        writer.write(textured_frames())
    data = (tmp_path / "plain.mp4").read_bytes()
    assert video_info(tmp_path / "plain.mp4").codec == "h264" and b"crf=18.0" in data


def test_png_frame_folder_is_lossless_whatever_the_codec(tmp_path):
    frames = textured_frames(3)
    with open_video_writer(tmp_path / "frames", 25, 96, 96, encoding=VideoEncoding(codec="h265", crf=51)) as writer:
        writer.write(frames)
    import cv2

    first = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / "frame_000001.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(first, frames[0])


# --- choosing the codec -------------------------------------------------------------------


def test_auto_picks_nvenc_where_it_works(monkeypatch):
    monkeypatch.setattr(encoding, "codec_usable", lambda codec, listed=None: True)
    assert resolve_codec("auto") == "h264_nvenc"


def test_auto_falls_back_to_libx264_without_nvenc(monkeypatch):
    monkeypatch.setattr(encoding, "codec_usable", lambda codec, listed=None: codec not in NVENC_CODECS)
    assert resolve_codec("auto") == "h264"


def test_auto_here_picks_a_codec_that_really_encodes_an_h264_video(tmp_path):
    video = video_info(encode(tmp_path / "auto.mp4", VideoEncoding(codec=resolve_codec("auto"))))
    assert (video.codec, video.frame_count) == ("h264", len(textured_frames()))


@pytest.mark.parametrize("codec", NVENC_CODECS)
def test_nvenc_asked_for_without_a_usable_gpu_encoder_says_what_why_fix(codec):
    if codec_usable(codec):
        pytest.skip(f"{codec} works on this machine")
    with pytest.raises(InputError) as caught:
        resolve_codec(codec)
    error = caught.value
    assert codec in error.what and "NVIDIA" in error.why and "auto" in error.fix


def test_nvenc_trial_agrees_with_a_real_encode(tmp_path):
    """The one-frame trial that decides 'usable' predicts whether a real encode works."""
    usable = codec_usable("h264_nvenc")
    try:
        encode(tmp_path / "nvenc.mp4", VideoEncoding(codec="h264_nvenc"))
        worked = True
    except VExpressError as error:  # the encoder's own refusal, not any failure on the way
        assert "h264_nvenc" in str(error)
        worked = False
    assert worked == usable


def test_missing_software_encoder_is_reported_as_not_in_this_ffmpeg(monkeypatch):
    monkeypatch.setattr(encoding, "listed_encoders", lambda: frozenset({"libx264", "aac"}))
    with pytest.raises(InputError) as caught:
        resolve_codec("h265")
    assert "no libx265 encoder" in caught.value.why


# --- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "words"), [
    ({"crf": 52}, "from 0 to 51"), ({"crf": -1}, "from 0 to 51"), ({"crf": 18.5}, "must be an integer"),
    ({"audio_bitrate": 8}, "from 32 to 512"), ({"codec": "vp9"}, "not one of"),
    ({"encoder_preset": "fastest"}, "not one of"),
])
def test_bad_encoder_values_are_refused_with_the_allowed_range(values, words):
    with pytest.raises(InputError) as caught:
        resolve_settings(explicit=values)
    assert words in str(caught.value)


def test_cli_rejects_an_unknown_preset_name(tmp_path):
    result = runner.invoke(app, ["generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a", str(SAMPLES_DIR / "AOC" / "aud.mp3"),
                                 "-o", str(tmp_path / "x.mp4"), "--encoder-preset", "fastest"])
    assert result.exit_code == 2
    assert "fastest" in result.output and not (tmp_path / "x.mp4").exists()


# --- through generate ---------------------------------------------------------------------


@pytest.mark.usefixtures("no_user_config", "like_the_real_command")
def test_generate_encodes_with_the_settings_and_reports_the_codec(speech, tmp_path):
    out = tmp_path / "talk.mp4"
    result = runner.invoke(app, [
        "generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a", str(speech), "-o", str(out), "--width", "64", "--height",
        "64", "--num-inference-steps", "1", "--model-dir", str(TINY_MODEL_DIR), "--reference-kps", "22,26;42,26;32,38",
        "--codec", "h265", "--crf", "30", "--encoder-preset", "ultrafast", "--audio-bitrate", "96", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    info = video_info(out)
    assert (info.codec, info.audio_codec) == ("hevc", "aac")
    assert (report["settings"]["codec"], report["settings"]["crf"]) == ("h265", 30)
    assert report["settings"]["encoder_preset"] == "ultrafast" and report["settings"]["audio_bitrate"] == 96


@pytest.mark.usefixtures("no_user_config")
def test_generate_with_an_unusable_codec_fails_before_writing(speech, tmp_path):
    if codec_usable("hevc_nvenc"):
        pytest.skip("hevc_nvenc works on this machine")
    out = tmp_path / "talk.mp4"
    result = runner.invoke(app, ["generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a", str(speech), "-o", str(out),
                                 "--model-dir", str(TINY_MODEL_DIR), "--codec", "hevc_nvenc"])
    assert result.exit_code == 2
    assert "--codec" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_doctor_lists_each_codec_and_what_auto_picks_here():
    from vexpress_cli.jobs.doctor import DoctorOptions
    from vexpress_cli.jobs.doctor.ffmpeg import ffmpeg_checks
    from vexpress_cli.jobs.doctor.report import DoctorContext

    rows = {check.name: check for check in ffmpeg_checks(DoctorContext(DoctorOptions()))}
    row = rows["video codecs"]
    assert row.status == "ok"
    assert {codec: facts["usable"] for codec, facts in row.data["codecs"].items()} == {
        codec: codec_usable(codec) for codec in ENCODERS}
    assert row.data["auto"] == resolve_codec("auto")
    assert all(codec in row.detail for codec in ENCODERS)


def test_png_output_needs_no_encoder_so_an_unusable_codec_is_not_checked(monkeypatch, tmp_path):
    from vexpress_cli.media.encoding import encoding_for_output

    monkeypatch.setattr(encoding, "codec_usable", lambda codec, listed=None: False)
    settings = resolve_settings(explicit={"codec": "hevc_nvenc"}).settings
    assert encoding_for_output(settings, tmp_path / "frames") is None
    with pytest.raises(InputError):
        encoding_for_output(settings, tmp_path / "talk.mp4")


@pytest.mark.usefixtures("no_user_config")
def test_encoding_settings_asked_for_a_folder_of_png_frames_are_a_warning_not_ignored_silently(speech, tmp_path):
    import vexpress_cli

    preset = tmp_path / "small.toml"
    preset.write_text('[generate]\ncrf = 30\n')
    job = dict(reference_kps="22,26;42,26;32,38", width=64, height=64)
    with vexpress_cli.Generator(TINY_MODEL_DIR, device="cpu") as generator:
        frames = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", speech, tmp_path / "frames", codec="h265",
                                preset=preset, **job)
        video = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", speech, tmp_path / "talk.mp4", codec="h265",
                               preset=preset, **job)
        plain = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", speech, tmp_path / "frames", **job)
        # as a batch job or a rerun of a record passes them: every setting given, at its default
        given = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", speech, tmp_path / "frames", codec="auto", crf=18,
                               encoder_preset="medium", audio_bitrate=192, **job)
    unused = [str(warning) for warning in frames.warnings if "no effect on a folder of PNG frames" in str(warning)]
    assert unused == ["codec, crf have no effect on a folder of PNG frames (lossless; the audio is kept as "
                      "audio.wav): they apply to a video file such as talk.mp4."]
    assert not any("PNG frames" in str(warning) for warning in [*video.warnings, *plain.warnings, *given.warnings])


def test_one_encoding_setting_for_png_frames_is_told_in_the_singular():
    from vexpress_cli.errors import spell_parameters
    from vexpress_cli.media.encoding import unused_encoding_warnings

    (warning,) = unused_encoding_warnings(resolve_settings(explicit={"crf": 20}).settings, None)
    assert spell_parameters(warning).startswith("crf has no effect on a folder of PNG frames") and "it applies" in warning
    assert unused_encoding_warnings(resolve_settings(explicit={"crf": 20}).settings, VideoEncoding("h264")) == []
