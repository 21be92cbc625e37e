"""Photo colours in sRGB: a photo with an embedded ICC colour profile is converted from it.

Phones and cameras store many photos in a wider colour space than sRGB (an iPhone's are Display P3, a
camera's often Adobe RGB) and say so in an embedded ICC profile. Read as plain numbers, as the original
does, their colours come out duller than any photo viewer shows them, and the video keeps that: video
players show its pixels as sRGB (BT.709, the same primaries). So a photo whose profile is not sRGB has its
colours converted to sRGB (with littlecms, through Pillow's ``ImageCms``); an sRGB photo's pixels are used as
stored, unchanged. A profile that cannot be read or does not fit the image's pixels is named in a note and
left unapplied.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import PIL.ImageCms

# The pixels a profile of each ICC colour space describes: the Pillow mode it is applied to, and the image modes
# it fits (a palette or transparent image is turned into that mode first; its alpha is not used anyway).
PROFILE_SPACES = {
    "RGB": ("RGB", ("RGB", "RGBA", "RGBX", "P", "PA")),
    "CMYK": ("CMYK", ("CMYK",)),
    "GRAY": ("L", ("L", "LA")),
}
PROFILE_ERRORS = (PIL.ImageCms.PyCMSError, OSError, ValueError, TypeError)


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
    try:
        profile = PIL.ImageCms.ImageCmsProfile(io.BytesIO(data))
        name = " ".join(PIL.ImageCms.getProfileDescription(profile).split()) or "unnamed"
    except PROFILE_ERRORS as error:
        return image.convert("RGB"), ColourProfile("unreadable", False, f"it cannot be read ({error})")
    if is_srgb(name):
        return image.convert("RGB"), ColourProfile(name, False)
    space = profile.profile.xcolor_space.strip()
    mode, fitting_modes = PROFILE_SPACES.get(space, (None, ()))
    if image.mode not in fitting_modes:
        return image.convert("RGB"), ColourProfile(name, False, f"it is a {space} profile on {image.mode} pixels")
    try:
        return _converted(image.convert(mode), profile), ColourProfile(name, True)
    except PROFILE_ERRORS as error:
        return image.convert("RGB"), ColourProfile(name, False, f"littlecms could not apply it ({error})")


def is_srgb(name: str) -> bool:
    """Whether a profile of this description is sRGB (e.g. "sRGB IEC61966-2.1", "sRGB built-in")."""
    return "srgb" in name.lower()


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


def _converted(image: PIL.Image.Image, profile: PIL.ImageCms.ImageCmsProfile) -> PIL.Image.Image:
    return PIL.ImageCms.profileToProfile(image, profile, _srgb(), renderingIntent=PIL.ImageCms.Intent.PERCEPTUAL,
                                         outputMode="RGB")


@functools.cache
def _srgb() -> PIL.ImageCms.ImageCmsProfile:
    return PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB"))
