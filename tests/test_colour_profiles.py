"""Photos with an embedded ICC colour profile are read in sRGB: a Display P3 photo (an iPhone's) is converted,
an sRGB one is used as stored, and a profile that cannot be applied is named in a note."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL.Image
import PIL.ImageCms
import pytest
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.media.colour_profiles import ADOBE_RGB_COLUMNS, ColourProfile, matrix_profile
from vexpress_cli.media.images import read_photo

# Display P3's primaries adapted to D50 (the profile connection space), as Apple's profile stores them.
P3_COLUMNS = ((0.515102, 0.241182, -0.001050), (0.291965, 0.692236, 0.041882), (0.157153, 0.066582, 0.784378))
# sRGB's, as littlecms' built-in sRGB profile stores them.
SRGB_COLUMNS = ((0.436066, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076), (0.143066, 0.060608, 0.714096))
GAMMA = 563 / 256  # 2.2 in the profile's u8Fixed8 number
SKIN = (182, 121, 94)


def srgb_curve() -> list[int]:
    """sRGB's transfer curve as a 1024-entry ICC curve table."""
    encoded = np.linspace(0, 1, 1024)
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    return [round(value * 65535) for value in linear]


def rgb_profile(description: str, columns=P3_COLUMNS, curve: float | list[int] = GAMMA) -> bytes:
    """An ICC profile of P3 primaries and a 2.2 gamma unless told otherwise."""
    return matrix_profile(description, columns, curve)


def p3_to_srgb(rgb: tuple[int, int, int], columns=P3_COLUMNS) -> np.ndarray:
    """The sRGB pixel a P3 (gamma 2.2) pixel is, worked out with the colour matrices (no littlecms)."""
    linear = (np.asarray(rgb) / 255) ** GAMMA
    xyz = np.asarray(columns).T @ linear
    srgb_linear = np.clip(np.linalg.solve(np.asarray(SRGB_COLUMNS).T, xyz), 0, 1)
    encoded = np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055)
    return encoded * 255


def photo(tmp_path, name: str, profile: bytes | None, mode: str = "RGB", colour=SKIN):
    path = tmp_path / name
    image = PIL.Image.new("RGB", (64, 64), colour).convert(mode)
    image.save(path, **({"icc_profile": profile} if profile is not None else {}))
    return path


def test_a_display_p3_photo_is_converted_to_the_srgb_colours_the_matrices_give(tmp_path):
    read = read_photo(photo(tmp_path, "p3.png", rgb_profile("Display P3 (test)")), "reference image")
    pixels = np.asarray(read.image).reshape(-1, 3)
    expected = p3_to_srgb(SKIN)
    assert np.abs(pixels.astype(float) - expected).max() <= 2, (pixels[0], expected)
    assert pixels[0][0] > SKIN[0] and pixels[0][2] < SKIN[2]  # P3 is wider: the same numbers are more saturated
    assert read.colour_profile.converted and read.colour_profile.name == "Display P3 (test)"
    assert read.notes == ['The reference image p3.png is in the colour space "Display P3 (test)" (its embedded '
                          "profile); its colours were converted to sRGB, the space V-Express and video players "
                          "work in."]


def test_an_srgb_photo_and_a_photo_without_profile_keep_their_pixels_exactly(tmp_path):
    srgb = PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB")).tobytes()
    for path in (photo(tmp_path, "srgb.png", srgb), photo(tmp_path, "plain.png", None)):
        read = read_photo(path)
        assert np.all(np.asarray(read.image) == SKIN) and read.notes == []
    assert read_photo(tmp_path / "srgb.png").colour_profile.name == "sRGB built-in"


@pytest.mark.parametrize("profile, mode, reason", [
    (b"not an ICC profile at all", "RGB", "it cannot be read"),
    (rgb_profile("Display P3 (test)"), "L", "it is an RGB profile on L pixels"),
])
def test_a_profile_that_cannot_be_applied_is_named_and_the_pixels_are_used_as_stored(tmp_path, profile, mode, reason):
    read = read_photo(photo(tmp_path, "odd.png", profile, mode), "reference image")
    stored = np.asarray(PIL.Image.new("RGB", (64, 64), SKIN).convert(mode).convert("RGB"))
    assert np.array_equal(np.asarray(read.image), stored)
    assert len(read.notes) == 1 and "not applied: " + reason in read.notes[0]
    assert "used as stored" in read.notes[0]


def test_generate_reads_the_reference_in_srgb_and_says_so(tmp_path):
    from vexpress_cli.jobs.reference_photo import read_reference_photo
    from vexpress_cli.settings.schema import GenerationSettings

    path = photo(tmp_path, "p3.png", rgb_profile("Display P3 (test)"))
    reference = read_reference_photo(path, GenerationSettings(width=64, height=64, crop="none"))
    assert np.abs(np.asarray(reference.image).astype(float) - p3_to_srgb(SKIN)).max() <= 2
    assert any('colour space "Display P3 (test)"' in note for note in reference.notes)


def test_inspect_names_the_colour_profile_and_warns_when_it_is_not_applied(tmp_path):
    converted = photo(tmp_path, "p3.png", rgb_profile("Display P3 (test)"))
    broken = photo(tmp_path, "broken.png", b"garbage")
    reports = [json.loads(CliRunner().invoke(app, ["inspect", "--json", "--crop", "none", str(path)]).stdout)
               for path in (converted, broken)]
    assert reports[0]["colour_profile"] == "Display P3 (test)"
    assert not any("colour profile" in warning for warning in reports[0]["warnings"])
    assert reports[1]["colour_profile"] == "unreadable"
    assert any("not applied: it cannot be read" in warning for warning in reports[1]["warnings"])


def test_the_test_profile_is_a_valid_icc_profile_littlecms_reads():
    profile = PIL.ImageCms.ImageCmsProfile(io.BytesIO(rgb_profile("Display P3 (test)")))
    assert PIL.ImageCms.getProfileDescription(profile).strip() == "Display P3 (test)"
    assert profile.profile.xcolor_space == "RGB "


def test_a_profile_that_is_srgb_under_another_name_keeps_the_pixels_and_one_named_srgb_but_linear_is_converted(
        tmp_path):
    """sRGB was told by its name: "c2" (Facebook's compact sRGB) was converted, a linear "sRGB" one was not."""
    as_srgb = read_photo(photo(tmp_path, "c2.png", rgb_profile("c2", SRGB_COLUMNS, srgb_curve())))
    assert np.all(np.asarray(as_srgb.image) == SKIN) and as_srgb.notes == []
    assert (as_srgb.colour_profile.name, as_srgb.colour_profile.converted) == ("c2", False)
    linear = read_photo(photo(tmp_path, "linear.png", rgb_profile("sRGB linear (test)", SRGB_COLUMNS, 1.0)))
    encoded = [round((1.055 * (value / 255) ** (1 / 2.4) - 0.055) * 255) for value in SKIN]  # linear light, encoded
    assert linear.colour_profile.converted and np.abs(np.asarray(linear.image)[0, 0] - encoded).max() <= 2


def test_a_profile_name_with_control_characters_is_shown_escaped(tmp_path):
    read = read_photo(photo(tmp_path, "odd.png", rgb_profile("P3\x1b[2J\x07 (test)")), "reference image")
    assert read.colour_profile.name == "P3\\x1b[2J\\x07 (test)"
    assert "\x1b" not in read.notes[0]


def test_a_16_bit_grey_photo_names_its_profile_as_not_applied(tmp_path):
    path = tmp_path / "grey16.png"
    grey = PIL.Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16))
    grey.save(path, icc_profile=rgb_profile("Display P3 (test)"))
    read = read_photo(path)
    assert read.colour_profile == ColourProfile("Display P3 (test)", False, "it is not applied to 16-bit grey")
    assert np.all(np.asarray(read.image) == round(40000 * 255 / 65535))


def test_a_pillow_without_littlecms_reads_the_photo_as_stored_with_a_note(tmp_path, monkeypatch):
    def no_littlecms(*args, **kwargs):
        raise ImportError("The _imagingcms C module is not installed")

    monkeypatch.setattr(PIL.ImageCms, "buildTransform", no_littlecms)
    read = read_photo(photo(tmp_path, "p3.png", rgb_profile("Display P3 (test)")))
    assert np.all(np.asarray(read.image) == SKIN)
    assert "not applied: littlecms could not apply it (The _imagingcms C module is not installed)" in read.notes[0]


def columns_from_chromaticities(primaries, white) -> np.ndarray:
    """A colour space's primaries in XYZ adapted from its white to D50 with the Bradford matrix (the profile's
    columns), from the chromaticities its standard gives."""
    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])

    unscaled = np.stack([xyz(*primary) for primary in primaries], axis=1)
    columns = unscaled * np.linalg.solve(unscaled, xyz(*white))
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    gain = (bradford @ np.array([0.9642, 1.0, 0.8249])) / (bradford @ xyz(*white))
    return (np.linalg.inv(bradford) @ np.diag(gain) @ bradford @ columns).T


def camera_jpeg(tmp_path, name: str, colour_space: int, index: str | None, orientation: int = 1, **save):
    """A JPEG whose EXIF says what a camera's does: ColorSpace, the interoperability index and the orientation."""
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA001] = colour_space
    if index is not None:
        exif.get_ifd(0x8769)[0xA005] = {0x0001: index}
    path = tmp_path / name
    PIL.Image.new("RGB", (64, 32), SKIN).save(path, quality=100, exif=exif, **save)
    return path


def test_adobe_rgbs_stored_primaries_are_the_standards_chromaticities_adapted_to_d50():
    adobe = columns_from_chromaticities([(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)], (0.3127, 0.3290))
    assert np.abs(adobe - np.asarray(ADOBE_RGB_COLUMNS)).max() < 5e-5


@pytest.mark.parametrize("colour_space, orientation", [(0xFFFF, 1), (0xFFFF, 6), (2, 1)])
def test_a_camera_jpeg_in_adobe_rgb_by_its_exif_tags_is_converted_to_srgb(tmp_path, colour_space, orientation):
    """A camera set to Adobe RGB embeds no profile: ColorSpace "uncalibrated" and interoperability index "R03" (or
    ColorSpace 2, some makers') say it. Read as stored it came out dull."""
    path = camera_jpeg(tmp_path, "DSC_0001.JPG", colour_space, "R03", orientation)
    stored = np.asarray(PIL.Image.open(path).convert("RGB"))[0, 0]
    read = read_photo(path, "reference image")
    pixels = np.asarray(read.image).reshape(-1, 3)
    adobe = columns_from_chromaticities([(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)], (0.3127, 0.3290))
    assert np.abs(pixels.astype(float) - p3_to_srgb(tuple(stored), adobe)).max() <= 2
    assert pixels[0][0] > stored[0] and read.image.size == ((32, 64) if orientation == 6 else (64, 32))
    assert read.colour_profile == ColourProfile("Adobe RGB (1998)", True, declared_by="its EXIF tags")
    assert ('The reference image DSC_0001.JPG is in the colour space "Adobe RGB (1998)" (its EXIF tags); its colours '
            "were converted to sRGB") in " ".join(read.notes)


@pytest.mark.parametrize("colour_space, index", [(1, "R98"), (0xFFFF, None), (0xFFFF, "R98"), (1, "R03")])
def test_a_camera_jpeg_whose_exif_says_srgb_or_nothing_sure_keeps_its_pixels(tmp_path, colour_space, index):
    path = camera_jpeg(tmp_path, "DSC_0002.JPG", colour_space, index)
    read = read_photo(path)
    assert np.array_equal(np.asarray(read.image), np.asarray(PIL.Image.open(path).convert("RGB")))
    assert (read.colour_profile, read.notes) == (None, [])


def test_an_embedded_profile_outranks_exif_tags_that_say_adobe_rgb(tmp_path):
    srgb = PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB")).tobytes()
    path = camera_jpeg(tmp_path, "DSC_0003.JPG", 0xFFFF, "R03", icc_profile=srgb)
    read = read_photo(path)
    assert np.array_equal(np.asarray(read.image), np.asarray(PIL.Image.open(path).convert("RGB")))
    assert read.colour_profile.name == "sRGB built-in" and not read.colour_profile.converted
