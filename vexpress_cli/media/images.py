"""Reading photos: one place that checks the file, bounds the memory and turns Pillow failures into InputErrors.

Pillow opens lazily: :func:`opened_image` reads only the header, refuses an image of more than
:data:`MAX_IMAGE_PIXELS` before any pixel is decoded (a 500 KB PNG can declare 13000 x 13000
pixels, 1.6 GB once decoded), and :func:`as_rgb` decodes it to 8-bit RGB, scaling 16-bit
grayscale down instead of clipping it to white. Photos come out upright: a phone photo whose EXIF
orientation says "rotate" is turned the way it was taken (:func:`upright`; :func:`read_photo` says so).

Colours come out in sRGB: a photo with an embedded colour profile that is not sRGB (an iPhone's Display P3)
is converted from it (:mod:`vexpress_cli.media.colour_profiles`). :func:`read_photo` opens a photo once and
says what reading it did.

Which files are photos (by suffix, or by their first bytes whatever the name) is decided in
:mod:`vexpress_cli.file_types` for every command; :func:`photo_format_of` reads a file's first bytes.
An animated GIF is read as its first frame, with a note (:func:`animation_note`); a HEIC photo
that Pillow cannot open is refused with how to export a JPEG.
"""

from __future__ import annotations

import functools
import mmap
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import PIL.features

from vexpress_cli.errors import InputError
from vexpress_cli.file_types import PHOTO_HEAD_BYTES, photo_format
from vexpress_cli.input_files import require_regular_file
from vexpress_cli.media.colour_profiles import ColourProfile, colour_note, in_srgb, unapplied_profile

# What Pillow raises for a missing, truncated, foreign or oversized (decompression bomb) file.
IMAGE_READ_ERRORS = (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, OSError, SyntaxError, ValueError)
# 8000 x 8000, more than any camera's photo; V-Express works at 512 x 512. About 200 MB as RGB.
MAX_IMAGE_PIXELS = 64_000_000
EXPECTED_IMAGE = "a JPEG or PNG photo"
# A JPEG's APP1 marker (EXIF, XMP); where its segments end and the pixels begin (start of scan, end of image);
# markers with no length after them; a marker: 0xFF (any number of them, fill bytes) and a byte that is not.
APP1, JPEG_IMAGE_DATA_MARKERS, JPEG_BARE_MARKERS = 0xE1, (0xDA, 0xD9), (0x00, 0x01, 0xD8)
JPEG_MARKER = re.compile(rb"\xff+([^\xff])")
MAX_EXIF_SEGMENTS = 16
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
EXIF_ORIENTATION_TAG = 0x0112
ORIENTATION_WORDS = {2: "mirrored", 3: "upside down", 4: "upside down and mirrored", 5: "on its side and mirrored",
                     6: "on its side, turned 90 degrees", 7: "on its side and mirrored",
                     8: "on its side, turned 90 degrees"}


def require_image_file(path: str | Path, label: str = "image") -> Path:
    """:func:`~vexpress_cli.input_files.require_regular_file` for an image, in the words :func:`opened_image` uses."""
    return require_regular_file(path, label, EXPECTED_IMAGE, missing_fix=f"Check the spelling of the {label} path.")


@contextmanager
def opened_image(path: str | Path, label: str = "image") -> Iterator[PIL.Image.Image]:
    """The image at ``path``, opened but not decoded yet; ``label`` names it in errors.

    The file must be a regular file (see :mod:`vexpress_cli.input_files`) of at most
    :data:`MAX_IMAGE_PIXELS` pixels. A Pillow error inside the ``with`` block (decoding is
    lazy, so it happens there) becomes an InputError too.
    """
    path = require_image_file(path, label)
    _refuse_exif_flood(path, label)
    _register_heif_reader()
    try:
        with warnings.catch_warnings():
            # Pillow warns about images over its own limit; ours is lower and says more.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            # Damaged EXIF data: Pillow keeps the tags it could read (the orientation first) and warns per read.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
            with PIL.Image.open(path) as image:
                _check_pixel_budget(image.size, path, label)
                yield image
    except PIL.Image.DecompressionBombError:
        raise _too_many_pixels(None, path, label) from None
    except IMAGE_READ_ERRORS as error:
        raise _unreadable(path, label, error) from None


def photo_format_of(path: str | Path) -> str | None:
    """The photo format the first bytes of ``path`` say (``"JPEG"``, ``"GIF"``, ``"HEIC"``, ...: see
    :func:`vexpress_cli.file_types.photo_format`), whatever its suffix; None for anything else or an unreadable file
    (whoever opens it next says why)."""
    try:
        with Path(path).open("rb") as handle:
            return photo_format(handle.read(PHOTO_HEAD_BYTES))
    except OSError:
        return None


def still_photo_format(path: str | Path) -> str | None:
    """The format of ``path`` when it is a still photo (one picture), else None: not a photo, or an animated GIF
    (ffmpeg reads that as a video, so extract takes it as one)."""
    fmt = photo_format_of(path)
    if fmt != "GIF":
        return fmt
    try:
        with PIL.Image.open(path) as image:
            return fmt if getattr(image, "n_frames", 1) <= 1 else None
    except IMAGE_READ_ERRORS:
        return None  # a damaged GIF: ffmpeg says what is wrong with it


@dataclass
class Photo:
    """A photo as vexpress reads it: upright 8-bit RGB in sRGB colours, and what reading it did, in words."""

    image: PIL.Image.Image
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    colour_profile: ColourProfile | None = None
    stored_format: str | None = None  # as the file holds it: "JPEG", "PNG", ...
    stored_mode: str = "RGB"  # Pillow's mode before decoding: "L", "RGBA", "I;16", ...
    exif_orientation: int | None = None  # the EXIF tag's value as stored, valid or not
    animation_note: str | None = None  # also in notes


def read_photo(path: str | Path, label: str = "image") -> Photo:
    """The photo at ``path``, upright, in RGB and sRGB, with notes on what was done to it (animated: its first frame;
    stored turned: turned upright; a colour profile: converted) and a warning where it is transparent."""
    with opened_image(path, label) as image:
        rgb, profile = decoded_rgb(upright(image))
        animated = animation_note(image, path, label)
        notes = [animated, _rotation_note(image, path, label), colour_note(profile, path, label)]
        warning = _transparency_warning(image, path, label)
        return Photo(rgb, [note for note in notes if note], [warning] if warning else [], profile,
                     image.format, image.mode, image.getexif().get(EXIF_ORIENTATION_TAG), animated)


def as_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """``image`` decoded to 8-bit RGB in sRGB colours (see :func:`decoded_rgb`)."""
    return decoded_rgb(image)[0]


def decoded_rgb(image: PIL.Image.Image) -> tuple[PIL.Image.Image, ColourProfile | None]:
    """``image`` decoded to 8-bit RGB, its colours converted to sRGB from its embedded profile, and that profile.

    16-bit grayscale (PNG) is scaled from 0..65535 to 0..255; Pillow's own ``convert("RGB")``
    would clip it, turning nearly every pixel white.
    """
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
        wide = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # round(v * 255 / 65535)
        return PIL.Image.fromarray(gray).convert("RGB"), unapplied_profile(image, "it is not applied to 16-bit grey")
    return in_srgb(image)


def open_rgb_image(path: str | Path, label: str = "image") -> PIL.Image.Image:
    """The photo at ``path`` as an upright RGB image in sRGB colours; ``label`` names it in errors (e.g. "reference
    image")."""
    with opened_image(path, label) as image:
        return as_rgb(upright(image))


def exif_orientation(image: PIL.Image.Image) -> int | None:
    """The EXIF orientation (1-8) an opened image declares, or None."""
    orientation = image.getexif().get(EXIF_ORIENTATION_TAG)
    return orientation if orientation in ORIENTATION_WORDS or orientation == 1 else None


def upright(image: PIL.Image.Image) -> PIL.Image.Image:
    """``image`` turned as its EXIF orientation says (the pixels as the camera's user saw them)."""
    if exif_orientation(image) in ORIENTATION_WORDS:
        return PIL.ImageOps.exif_transpose(image)
    return image


def _rotation_note(image: PIL.Image.Image, path: str | Path, label: str) -> str | None:
    orientation = exif_orientation(image)
    if orientation not in ORIENTATION_WORDS:
        return None
    return (f"The {label} {Path(path).name} is stored {ORIENTATION_WORDS[orientation]} (EXIF orientation "
            f"{orientation}); it was turned upright.")


def animation_note(image: PIL.Image.Image, path: str | Path, label: str = "image") -> str | None:
    """Which frame of an animated photo (a GIF, an animated WebP or AVIF, a multi-page TIFF) is used; None for a
    still one."""
    frames = getattr(image, "n_frames", 1)
    if frames <= 1:
        return None
    return (f"The {label} {Path(path).name} holds {frames} frames (it is animated); only its first frame is used, "
            "as a still photo.")


def _transparency_warning(image: PIL.Image.Image, path: str | Path, label: str) -> str | None:
    """What V-Express will see where the photo is transparent (None when under 1% of it is)."""
    if not (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
        return None
    share = float((np.asarray(image.convert("RGBA").getchannel("A")) < 128).mean())
    if share < 0.01:
        return None
    return (f"{share:.0%} of the {label} {Path(path).name} is transparent or mostly so (under half opaque); "
            "V-Express sees the colours stored under it, as the original does, often black or leftovers. Flatten it "
            "onto a background first (any editor's 'flatten' or 'remove alpha') if those pixels are not meant to be "
            "seen.")


@functools.cache
def _register_heif_reader() -> bool:
    """Pillow reads HEIC photos (an iPhone's default) once the optional pillow-heif package registers its reader;
    whether it is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _unreadable(path: Path, label: str, error: Exception) -> InputError:
    """Why Pillow could not open ``path``: a format it has no reader for (HEIC, AVIF) is named, anything else is
    Pillow's error."""
    fmt = photo_format_of(path)
    if fmt == "HEIC":  # Pillow has no HEIC reader of its own; pillow-heif adds one when registered
        return InputError(
            f"Cannot read the {label} {path}: it is a HEIC photo.",
            why="HEIC photos (an iPhone's default) are read only with the optional pillow-heif package, which is "
            "not installed here." if not _register_heif_reader() else f"pillow-heif could not read it ({error}).",
            fix="Install it (pip install pillow-heif), or export the photo as JPEG (iPhone: Settings > Camera > "
            "Formats > Most Compatible) or convert it to JPEG or PNG, then pass that.",
        )
    if fmt == "AVIF" and not PIL.features.check("avif"):
        return InputError(f"Cannot read the {label} {path}: it is an AVIF photo.",
                          why=f"This Pillow ({PIL.__version__}) was built without AVIF support.",
                          fix=f"Convert it to JPEG or PNG, or upgrade Pillow (pip install -U pillow), then pass "
                          f"{EXPECTED_IMAGE}.")
    if fmt in ("JPEG", "PNG", "GIF"):  # formats Pillow reads in full: failing, the file itself is at fault
        return InputError(f"Cannot read the {label} {path}: it starts as a {fmt} photo, but the rest cannot be "
                          f"decoded ({error}).",
                          why="The file is damaged or cut short: a copy, download or export that failed or has not "
                          "finished.",
                          fix="Copy or export it again (or open it in an image editor and save it anew), then pass "
                          "that.")
    return InputError(f"Cannot read the {label} {path}.", f"It is not an image Pillow can open ({error}).",
                      f"Pass {EXPECTED_IMAGE}.")


def _refuse_exif_flood(path: Path, label: str) -> None:
    """InputError for a JPEG with more EXIF segments than a camera writes: Pillow joins them one by one, in time
    that grows with the square of their number (1000 of them, 65 MB, took minutes before any check)."""
    if photo_format_of(path) != "JPEG":
        return
    count = exif_segments(path)
    if count > MAX_EXIF_SEGMENTS:
        raise InputError(f"Cannot read the {label} {path}: it holds more than {MAX_EXIF_SEGMENTS} EXIF segments.",
                         why=f"A camera writes one (vexpress reads up to {MAX_EXIF_SEGMENTS}); this many take "
                         "minutes to read, and carry nothing a photo needs.",
                         fix="Save the photo again without its metadata (any editor's 'export', or "
                         "`exiftool -all= PHOTO`), then pass that.")


def exif_segments(path: Path, enough: int = MAX_EXIF_SEGMENTS + 1) -> int:
    """How many EXIF (APP1 "Exif") segments the JPEG at ``path`` holds before its image data, counted up to
    ``enough``. Markers are found as Pillow finds them: any bytes between segments and runs of 0xFF fill bytes
    are skipped; each segment's length says where the next one starts."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        count, position = 0, 2  # past the start-of-image marker
        while count < enough and (found := JPEG_MARKER.search(data, position)):
            marker, position = found.group(1)[0], found.end()
            if marker in JPEG_IMAGE_DATA_MARKERS:
                break
            if marker in JPEG_BARE_MARKERS or 0xD0 <= marker <= 0xD7:  # no length follows (restart markers too)
                continue
            length = int.from_bytes(data[position:position + 2], "big")
            count += marker == APP1 and data[position + 2:position + 8] == b"Exif\0\0"
            position += max(length, 2)
    return count


def _check_pixel_budget(size: tuple[int, int], path: Path, label: str) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(size, path, label)


def _too_many_pixels(size: tuple[int, int] | None, path: Path, label: str) -> InputError:
    declared = (f"it is {size[0]} x {size[1]} pixels ({size[0] * size[1] / 1e6:.0f} megapixels), too many" if size
                else "it declares more pixels than Pillow will decode")
    return InputError(
        f"Cannot read the {label} {path}: {declared}.",
        why=f"vexpress reads images of up to {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (e.g. 8000 x 8000); decoding "
        "more would take hundreds of megabytes of memory for one photo, and V-Express works at 512 x 512 anyway.",
        fix=f"Downscale or crop it first (e.g. to 2048 pixels on the long side) and pass {EXPECTED_IMAGE}.",
    )
