"""Photo colours in sRGB: a photo with an embedded ICC colour profile is converted from it.

Many photos are stored in a wider colour space than sRGB (an iPhone's are Display P3, an editor's export
may be Adobe RGB) and say so in an embedded ICC profile. Read as plain numbers, as the original does, their
colours come out duller than any photo viewer shows them, and the video keeps that: video players show its
pixels as sRGB (BT.709, the same primaries). So a photo's colours are converted from its profile to sRGB
(with littlecms, through Pillow's ``ImageCms``), unless converting changes no colour by more than one level
(an sRGB profile, whatever its name): then, as without a profile, its pixels are used as stored. A profile
that cannot be read or does not fit the image's pixels is named in a note and left unapplied. (A camera set to
Adobe RGB often embeds no profile, only an EXIF tag; such a photo is read as sRGB.)
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ColourProfile:
    """A photo's embedded colour profile and what reading the photo did with it."""

    name: str  # the profile's own description, e.g. "Display P3"
    converted: bool  # its colours were converted to sRGB (False: sRGB already, or the profile was not applied)
    reason: str = ""  # why a profile that is not sRGB was not applied


def in_srgb(image: PIL.Image.Image) -> tuple[PIL.Image.Image, ColourProfile | None]:
    """``image`` as 8-bit RGB in sRGB colours, and its embedded profile (None when it has none)."""
    data = image.info.get("icc_profile")
    if not data:
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
    try:
        transform = PIL.ImageCms.buildTransform(profile, _srgb(), mode, "RGB", PIL.ImageCms.Intent.PERCEPTUAL)
        if mode == "RGB" and _changes_nothing(transform):
            return image.convert("RGB"), ColourProfile(name, False)
        return PIL.ImageCms.applyTransform(image.convert(mode), transform), ColourProfile(name, True)
    except PROFILE_ERRORS as error:
        return image.convert("RGB"), ColourProfile(name, False, f"littlecms could not apply it ({error})")


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
        return (f'{photo} is in the colour space "{profile.name}" (its embedded profile); its colours were converted '
                "to sRGB, the space V-Express and video players work in.")
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
