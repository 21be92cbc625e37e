"""Photo colours in sRGB: a photo with an embedded ICC colour profile is converted from it.

Many photos are stored in a wider colour space than sRGB (an iPhone's are Display P3, an editor's export
may be Adobe RGB) and say so in an embedded ICC profile. Read as plain numbers, as the original does, their
colours come out duller than any photo viewer shows them, and the video keeps that: video players show its
pixels as sRGB (BT.709, the same primaries). So a photo's colours are converted from its profile to sRGB
(with littlecms, through Pillow's ``ImageCms``), unless converting changes no colour by more than one level
(an sRGB profile, whatever its name): then, as without a profile, its pixels are used as stored. A profile
that cannot be read or does not fit the image's pixels is named in a note and left unapplied. A camera set to
Adobe RGB often embeds no profile, only EXIF tags saying so (DCF's option file: colour space "uncalibrated" and
interoperability index "R03"); such a photo is converted from Adobe RGB (1998).
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageCms

from vexpress_cli.errors import escaped_controls

# The pixels a profile of each ICC colour space describes: the Pillow mode it is applied to, and the image modes
# it fits (a palette or transparent image is turned into that mode first; its alpha is not used anyway).
PROFILE_SPACES = {
    "RGB": ("RGB", ("RGB", "RGBA", "RGBX", "P", "PA")),
    "CMYK": ("CMYK", ("CMYK",)),
    "GRAY": ("L", ("L", "LA")),
}
# What reading or applying a profile raises; ImportError: a Pillow built without littlecms (some distributions').
PROFILE_ERRORS = (PIL.ImageCms.PyCMSError, OSError, ValueError, TypeError, ImportError)
# Converting from a profile that changes no colour by more than this (an sRGB profile under another name, an
# older version of sRGB's) leaves the photo's pixels as stored.
SAME_AS_SRGB = 1
NAME_LENGTH = 80
# Adobe RGB (1998): its primaries adapted to D50 (Bradford) and its gamma (2.2 as a u8Fixed8), as Adobe's profile
# stores them.
ADOBE_RGB = "Adobe RGB (1998)"
ADOBE_RGB_COLUMNS = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457))
ADOBE_RGB_GAMMA = 563 / 256
D50 = (0.9642, 1.0, 0.8249)
# EXIF: the Exif IFD's ColorSpace tag (1 sRGB, 0xFFFF uncalibrated, 2 some makers' Adobe RGB) and the
# interoperability IFD's index ("R98" sRGB, "R03" Adobe RGB).
EXIF_IFD, INTEROP_IFD, COLOR_SPACE, INTEROP_INDEX = 0x8769, 0xA005, 0xA001, 0x0001


@dataclass(frozen=True)
class ColourProfile:
    """A photo's embedded colour profile and what reading the photo did with it."""

    name: str  # the profile's own description, e.g. "Display P3"
    converted: bool  # its colours were converted to sRGB (False: sRGB already, or the profile was not applied)
    reason: str = ""  # why a profile that is not sRGB was not applied
    declared_by: str = "its embedded profile"  # or its EXIF tags (a camera's Adobe RGB)


def in_srgb(image: PIL.Image.Image) -> tuple[PIL.Image.Image, ColourProfile | None]:
    """``image`` as 8-bit RGB in sRGB colours, and its colour profile (None when it has none and no EXIF tags say
    it is in Adobe RGB)."""
    data = image.info.get("icc_profile")
    if not data:
        if image.mode in PROFILE_SPACES["RGB"][1] and _exif_says_adobe_rgb(image):
            return _converted(image, _adobe_rgb(), "RGB", ColourProfile(ADOBE_RGB, True, declared_by="its EXIF tags"))
        return image.convert("RGB"), None
    profile, name, unreadable = _parsed(data)
    if profile is None:
        return image.convert("RGB"), ColourProfile(name, False, unreadable)
    space = profile.profile.xcolor_space.strip()
    mode, fitting_modes = PROFILE_SPACES.get(space, (None, ()))
    if image.mode not in fitting_modes:
        article = "an" if space[:1] in "AEFHILMNORSX" else "a"
        return image.convert("RGB"), ColourProfile(name, False, f"it is {article} {space} profile on {image.mode} "
                                                                "pixels")
    return _converted(image, profile, mode, ColourProfile(name, True))


def _converted(image: PIL.Image.Image, profile: PIL.ImageCms.ImageCmsProfile, mode: str,
               described: ColourProfile) -> tuple[PIL.Image.Image, ColourProfile]:
    """``image`` (pixels of ``mode``) converted from ``profile`` to sRGB, and ``described`` as it turned out: not
    converted where converting would change nothing, or littlecms could not apply it."""
    try:
        transform = PIL.ImageCms.buildTransform(profile, _srgb(), mode, "RGB", PIL.ImageCms.Intent.PERCEPTUAL)
        if mode == "RGB" and _changes_nothing(transform):
            return image.convert("RGB"), replace(described, converted=False)
        return PIL.ImageCms.applyTransform(image.convert(mode), transform), described
    except PROFILE_ERRORS as error:
        return image.convert("RGB"), replace(described, converted=False,
                                             reason=f"littlecms could not apply it ({error})")


def _exif_says_adobe_rgb(image: PIL.Image.Image) -> bool:
    exif = image.getexif()
    tags = exif.get_ifd(EXIF_IFD)
    if tags.get(COLOR_SPACE) == 2:
        return True
    if tags.get(COLOR_SPACE) != 0xFFFF or INTEROP_IFD not in tags:  # Pillow's get_ifd raises KeyError without it
        return False
    index = exif.get_ifd(INTEROP_IFD).get(INTEROP_INDEX)
    return isinstance(index, str) and index.strip("\0 ") == "R03"


def unapplied_profile(image: PIL.Image.Image, reason: str) -> ColourProfile | None:
    """The embedded profile of an image whose pixels it is not applied to (``reason``), None when it has none."""
    data = image.info.get("icc_profile")
    return ColourProfile(_parsed(data)[1], False, reason) if data else None


def _parsed(data: bytes) -> tuple[PIL.ImageCms.ImageCmsProfile | None, str, str]:
    """The embedded profile and its name; ``(None, "unreadable", why)`` for one littlecms cannot read."""
    try:
        profile = PIL.ImageCms.ImageCmsProfile(io.BytesIO(data))
        return profile, profile_name(profile), ""
    except PROFILE_ERRORS as error:
        return None, "unreadable", f"it cannot be read ({error})"


def profile_name(profile: PIL.ImageCms.ImageCmsProfile) -> str:
    """The profile's own description, on one line, its control characters escaped (it is shown in a terminal)."""
    words = " ".join(PIL.ImageCms.getProfileDescription(profile).split())
    return escaped_controls(words[:NAME_LENGTH]) or "unnamed"


def colour_note(profile: ColourProfile | None, path: str | Path, label: str) -> str | None:
    """What reading the photo did with its colour profile, in words (None: no profile, or sRGB)."""
    if profile is None or (not profile.converted and not profile.reason):
        return None
    photo = f"The {label} {Path(path).name}"
    if profile.converted:
        return (f'{photo} is in the colour space "{profile.name}" ({profile.declared_by}); its colours were '
                "converted to sRGB, the space V-Express and video players work in.")
    return (f'{photo} carries the colour profile "{profile.name}", not applied: {profile.reason}. Its colours are '
            "used as stored and may look duller or stronger than in a photo viewer; export it as sRGB to be sure.")


def _changes_nothing(transform) -> bool:
    """Whether ``transform`` leaves every colour of a 16 x 16 x 16 grid within :data:`SAME_AS_SRGB` of itself."""
    probe = _colour_grid()
    converted = np.asarray(PIL.ImageCms.applyTransform(probe, transform), dtype=np.int16)
    return int(np.abs(converted - np.asarray(probe, dtype=np.int16)).max()) <= SAME_AS_SRGB


@functools.cache
def _colour_grid() -> PIL.Image.Image:
    levels = np.arange(0, 256, 17, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(64, 64, 3)
    return PIL.Image.fromarray(grid)


@functools.cache
def _srgb() -> PIL.ImageCms.ImageCmsProfile:
    return PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB"))


@functools.cache
def _adobe_rgb() -> PIL.ImageCms.ImageCmsProfile:
    profile = matrix_profile(ADOBE_RGB, ADOBE_RGB_COLUMNS, ADOBE_RGB_GAMMA)
    return PIL.ImageCms.ImageCmsProfile(io.BytesIO(profile))


def matrix_profile(description: str, columns, curve: float | list[int]) -> bytes:
    """An ICC v2 RGB display profile (ICC.1:2001-04) of primaries ``columns`` (XYZ adapted to D50) and one tone
    curve: a gamma, or a table of 16-bit values."""
    def xyz(*values: float) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    text = description.encode("latin-1") + b"\0"
    table = (struct.pack(">IH", 1, round(curve * 256)) if isinstance(curve, float)
             else struct.pack(f">I{len(curve)}H", len(curve), *curve))
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67),
        b"wtpt": xyz(*D50), b"rXYZ": xyz(*columns[0]), b"gXYZ": xyz(*columns[1]), b"bXYZ": xyz(*columns[2]),
        **{name: b"curv\0\0\0\0" + table for name in (b"rTRC", b"gTRC", b"bTRC")},
        b"cprt": b"text\0\0\0\0No copyright\0",
    }
    offset = 128 + 4 + 12 * len(tags)
    directory, data = b"", b""
    for name, body in tags.items():
        body += bytes(-len(body) % 4)
        directory += name + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + xyz(*D50)[8:])
    return header + bytes(128 - len(header)) + struct.pack(">I", len(tags)) + directory + data
