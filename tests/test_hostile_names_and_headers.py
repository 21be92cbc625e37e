"""Crafted names and headers (from the hostile-input audit of 2026-12-02): a NUL in a path, a JPEG flooded with
EXIF segments, a TOML nested 100,000 deep, speech declaring 2 samples a second. Each is refused at once with one
paragraph, not a traceback, a stall or gigabytes."""

from __future__ import annotations

import PIL.Image
import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from test_hostile_inputs import write_sine_wav

from vexpress_cli.errors import InputError
from vexpress_cli.jobs.inspect import inspect_audio
from vexpress_cli.media.images import open_rgb_image


@pytest.mark.parametrize("argument", ["reference_image", "audio", "output", "kps"])
def test_a_nul_character_in_a_library_path_is_an_input_error_naming_it(argument, tmp_path):
    import vexpress_cli

    paths = {"reference_image": str(SAMPLES_DIR / "AOC" / "ref.jpg"), "audio": str(SAMPLES_DIR / "AOC" / "aud.mp3"),
             "output": str(tmp_path / "out.mp4"), "kps": str(SAMPLES_DIR / "AOC" / "kps.pth")}
    paths[argument] = paths[argument].replace("/AOC/", "/AO\0C/").replace("out.mp4", "o\0ut.mp4")
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu")
    with pytest.raises(InputError) as raised:
        generator.plan(paths.pop("reference_image"), paths.pop("audio"), paths.pop("output"), **paths)
    assert str(raised.value.what).startswith(f"{argument} holds a NUL character (\\x00): ")
    assert "\0" not in raised.value.render() and not list(tmp_path.iterdir())


def test_a_nul_character_in_a_manifest_path_is_that_lines_problem(tmp_path):
    from vexpress_cli.jobs.batch.manifest import ManifestError, read_manifest

    manifest = tmp_path / "jobs.csv"
    manifest.write_text("reference_image,audio,output\nref.jpg,a.wav,out/c\0.mp4\n")
    _, problems = read_manifest(manifest)
    assert [problem.line for problem in problems] == [2]
    shown = ManifestError(manifest, problems).render()
    assert "line 2: 'output' holds a NUL character (\\x00), which no path can contain: out/c\\x00.mp4." in shown
    assert "\0" not in shown


@pytest.mark.parametrize("between", [b"", b"\xff", b"\x00"])
def test_a_jpeg_flooded_with_exif_segments_is_refused_before_pillow_reads_it(tmp_path, between):
    """1000 EXIF segments of 64 KB took Pillow 3 min 22 s (it joins them in quadratic time) before any check; fill
    bytes between segments, which Pillow skips, or an XMP segment first must not hide them."""
    import struct

    from vexpress_cli.media.images import MAX_EXIF_SEGMENTS, exif_segments

    photo = (SAMPLES_DIR / "AOC" / "ref.jpg").read_bytes()
    segment = b"\xff\xe1" + struct.pack(">H", 2 + 14) + b"Exif\0\0MM\0*\0\0\0\x08"
    xmp = b"\xff\xe1" + struct.pack(">H", 2 + 29 + 4) + b"http://ns.adobe.com/xap/1.0/\0<x/>"
    flooded, camera = tmp_path / "flooded.jpg", tmp_path / "camera.jpg"
    flooded.write_bytes(photo[:2] + xmp + between.join([segment] * (MAX_EXIF_SEGMENTS + 1)) + photo[2:])
    exif = PIL.Image.Exif()
    exif[0x010F] = "a camera maker"
    PIL.Image.open(SAMPLES_DIR / "AOC" / "ref.jpg").save(camera, exif=exif)
    assert (exif_segments(flooded), exif_segments(camera)) == (MAX_EXIF_SEGMENTS + 1, 1)
    with pytest.raises(InputError, match=f"it holds more than {MAX_EXIF_SEGMENTS} EXIF segments"):
        open_rgb_image(flooded)
    assert open_rgb_image(camera).size == PIL.Image.open(camera).size


def test_inspect_of_a_toml_nested_too_deeply_is_the_preset_readers_error_not_a_recursion_error(tmp_path):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = CliRunner().invoke(app, ["inspect", str(deep)])
    assert result.exit_code == 2 and "nest deeper than can be read" in " ".join(result.output.split())
    assert not isinstance(result.exception, RecursionError)


def test_speech_at_2_hz_is_refused_before_decoding_and_inspect_warns(tmp_path):
    """32 KB declaring 2 Hz took 1.7 GB at plan time and would have made 240,000 frames (2.2 hours)."""
    import vexpress_cli

    from vexpress_cli.media.audio import MIN_SPEECH_SAMPLE_RATE

    slow = write_sine_wav(tmp_path / "rate2.wav", 2, 16000, hertz=0.5)
    generator = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu")
    with pytest.raises(InputError) as raised:
        generator.plan(str(SAMPLES_DIR / "AOC" / "ref.jpg"), str(slow), str(tmp_path / "out.mp4"))
    assert raised.value.what.raw.startswith(f"The audio of {str(slow)!r} has 2 samples a second; speech needs at "
                                            f"least {MIN_SPEECH_SAMPLE_RATE:,}")
    assert any("has 2 samples a second" in warning and "generate refuses it" in warning
               for warning in inspect_audio(slow, 25).warnings)
    telephone = write_sine_wav(tmp_path / "phone.wav", 8000, 8000)
    assert not any("samples a second" in warning for warning in inspect_audio(telephone, 25).warnings)


def test_planning_probes_the_speech_once_for_its_rate_check_and_its_decoding(tmp_path, monkeypatch):
    import vexpress_cli

    from vexpress_cli.media import audio, ffmpeg

    phone = write_sine_wav(tmp_path / "phone.wav", 8000, 8000)
    probed, real = [], ffmpeg.probe
    for module in (audio, ffmpeg):
        monkeypatch.setattr(module, "probe", lambda *args: probed.append(real(*args)) or probed[-1])
    plan = vexpress_cli.Generator(model_dir=TINY_MODEL_DIR, device="cpu").plan(
        SAMPLES_DIR / "AOC" / "ref.jpg", phone, tmp_path / "out.mp4", width=64, height=64,
        reference_kps="22,26;42,26;32,38")
    assert [source.path.name for source in probed] == ["phone.wav"] and plan.num_frames == 30
