"""Reading photos: one place that turns every way Pillow can fail into a clear InputError."""

from __future__ import annotations

from pathlib import Path

import PIL.Image

from vexpress_cli.input_files import require_regular_file

# What Pillow raises for a missing, truncated, foreign or oversized (decompression bomb) file.
IMAGE_READ_ERRORS = (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, OSError, SyntaxError, ValueError)


def open_rgb_image(path: str | Path, label: str = "image") -> PIL.Image.Image:
    """The photo at ``path`` as an RGB image; ``label`` names it in errors (e.g. "reference image")."""
    from vexpress_cli.errors import InputError

    path = require_regular_file(path, label, "a JPEG or PNG photo",
                                missing_fix=f"Check the spelling of the {label} path.")
    try:
        with PIL.Image.open(path) as image:
            return image.convert("RGB")
    except IMAGE_READ_ERRORS as error:
        raise InputError(
            f"Cannot read the {label} {path}.",
            f"It is not an image Pillow can open ({error}).",
            "Pass a JPEG or PNG photo.",
        ) from None
