"""One notion of a photo for every command: TIFF, GIF, AVIF and HEIC are photos to generate, inspect and extract
alike (by suffix or by their first bytes), not "no known format" in inspect, a video in extract, or "moov atom not
found". A HEIC photo Pillow cannot open is named as such, with how to export a JPEG."""

from __future__ import annotations

import json
from pathlib import Path

import PIL.features
import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR, error_paragraph
from PIL import Image
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.jobs.generate import Generator

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

TYS = SAMPLES_DIR / "tys"
SMALL = {"width": 64, "height": 64, "num_inference_steps": 1, "face_backend": "dlib"}
# An iPhone photo's first bytes: an ISO-BMFF `ftyp` box (as an mp4 starts) of brand heic, then the rest.
HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
HEIC_MESSAGE = "HEIC photos (an iPhone's default) are read only with the optional pillow-heif package"
runner = CliRunner()
needs_avif = pytest.mark.skipif(not PIL.features.check("avif"), reason="this Pillow cannot write AVIF")


def photo(folder: Path, name: str, frames: int = 1) -> Path:
    """The tys portrait saved as ``name`` (its suffix picks the format); ``frames`` > 1 makes an animated GIF."""
    path = folder / name
    portrait = Image.open(TYS / "ref.jpg").convert("RGB")
    turned = [portrait.rotate(5 * index) for index in range(1, frames)]
    if turned:
        portrait.save(path, save_all=True, append_images=turned, duration=100, loop=0)
    else:
        portrait.save(path)
    return path


def heic(folder: Path, name: str = "IMG_0001.HEIC") -> Path:
    path = folder / name
    path.write_bytes(HEIC_HEAD + b"\x00\x00\x01\x00meta" + bytes(range(256)) * 4)
    return path


def inspect_json(path: Path) -> dict:
    result = runner.invoke(app, ["inspect", str(path), "--backend", "dlib", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("name", "fmt"), [("ref.tiff", "TIFF"), ("ref.tif", "TIFF"), ("ref.gif", "GIF"),
                                           pytest.param("ref.avif", "AVIF", marks=needs_avif)])
def test_inspect_reports_a_tiff_gif_or_avif_as_a_photo(tmp_path, name, fmt):
    data = inspect_json(photo(tmp_path, name))
    assert (data["kind"], data["format"], data["width"], data["height"]) == ("image", fmt, 512, 512)
    assert data["face"]["found"] is True


@needs_avif
@pytest.mark.parametrize("name", ["photo.dat", "photo.mp4"])
def test_inspect_tells_an_avif_photo_by_its_first_bytes_not_as_a_video_whatever_its_name(tmp_path, name):
    path = photo(tmp_path, "ref.avif").rename(tmp_path / name)
    data = inspect_json(path)
    assert (data["kind"], data["format"]) == ("image", "AVIF")


def test_inspect_notes_that_only_the_first_frame_of_an_animated_gif_is_used(tmp_path):
    data = inspect_json(photo(tmp_path, "anim.gif", frames=3))
    assert data["kind"] == "image" and data["format"] == "GIF"
    assert any("holds 3 frames" in warning and "only its first frame is used" in warning
               for warning in data["warnings"]), data["warnings"]


@needs_avif
def test_extract_refuses_an_avif_as_a_still_image_like_a_webp(tmp_path):
    message = error_paragraph(["extract", photo(tmp_path, "ref.avif"), "-o", tmp_path / "k.pth"])
    assert message.startswith(f"Error: {tmp_path / 'ref.avif'} is a still image, not a video."), message
    assert "(AVIF)" in message
    assert not (tmp_path / "k.pth").exists()


@pytest.mark.parametrize("name", ["ref.tiff", "still.gif", "IMG_0001.HEIC"])
def test_extract_refuses_a_one_frame_tiff_gif_or_heic_as_a_still_image(tmp_path, name):
    path = heic(tmp_path, name) if name.endswith(".HEIC") else photo(tmp_path, name)
    message = error_paragraph(["extract", path, "-o", tmp_path / "k.pth"])
    assert message.startswith(f"Error: {path} is a still image, not a video."), message
    assert "moov atom" not in message
    assert not (tmp_path / "k.pth").exists()


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "IMG_0001.heif", "IMG_0001.jpg", "IMG_0001"])
def test_generate_names_a_heic_photo_and_how_to_export_a_jpeg(tmp_path, name):
    with pytest.raises(InputError) as raised:
        Generator(TINY_MODEL_DIR).plan(heic(tmp_path, name), TYS / "aud.mp3", tmp_path / "o.mp4", **SMALL)
    message = raised.value.render()
    assert HEIC_MESSAGE in message and "pip install pillow-heif" in message, message
    assert "Settings > Camera > Formats > Most Compatible" in message, message
    assert "not an image Pillow can open" not in message and "Pass a JPEG or PNG" not in message


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "IMG_0001"])
def test_inspect_names_a_heic_photo_not_a_video_without_a_moov_atom(tmp_path, name):
    message = error_paragraph(["inspect", heic(tmp_path, name), "--backend", "dlib"])
    assert HEIC_MESSAGE in message and "Most Compatible" in message, message
    assert "moov atom" not in message and "video" not in message


def test_generate_uses_the_first_frame_of_an_animated_gif_and_says_so(tmp_path):
    plan = Generator(TINY_MODEL_DIR).plan(photo(tmp_path, "anim.gif", frames=3), TYS / "aud.mp3",
                                          tmp_path / "o.mp4", **SMALL)
    assert any("anim.gif holds 3 frames" in note for note in plan.notes), plan.notes


@pytest.mark.parametrize(("head", "fmt"), [
    (b"II*\x00\x08\x00", "TIFF"), (b"MM\x00*\x00\x00", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"), (HEIC_HEAD, "HEIC"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),  # told by its compatible brands
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", None),  # an mp4
    (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom", None),  # an m4a
])
def test_photo_formats_by_first_bytes(head, fmt):
    from vexpress_cli.file_types import photo_format

    assert photo_format(head) == fmt


def test_an_installed_pillow_heif_is_registered_before_a_photo_is_opened(tmp_path, monkeypatch):
    """The HEIC message named pillow-heif, but installing it changed nothing: no one registered its reader."""
    import sys
    import types

    from vexpress_cli.media import images

    registered = []
    fake = types.SimpleNamespace(register_heif_opener=lambda: registered.append(1))
    monkeypatch.setitem(sys.modules, "pillow_heif", fake)
    images._register_heif_reader.cache_clear()
    try:
        images.open_rgb_image(SAMPLES_DIR / "AOC" / "ref.jpg")
        images.open_rgb_image(SAMPLES_DIR / "AOC" / "ref.jpg")
    finally:
        images._register_heif_reader.cache_clear()
    assert registered == [1]  # once per process
