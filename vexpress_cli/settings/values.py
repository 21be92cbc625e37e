"""How a value given for a setting is read before the settings schema checks it: from Python (numpy scalars,
a Fraction, torch's dtype names, a crop box as a list), from command-line or CSV text, and a choice in any case.
Every source goes through here, so each takes and refuses the same values."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from vexpress_cli.errors import InputError, described, digit_count, parameter
from vexpress_cli.input_files import whole_number

if TYPE_CHECKING:
    from vexpress_cli.settings.schema import Setting

DTYPE_ALIASES = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32", "float": "fp32"}


def plain_value(setting: Setting | None, name: str, value: Any) -> Any:
    """``value`` given for setting ``name`` as the schema checks it: a numpy scalar as Python's own number, bool
    or text; a choice in lower case; a Fraction as a float; torch's precision names (and dtypes) as ours; a
    torch.device as its name; a crop box given as four whole numbers (a list, tuple or array, as results report
    it) as its text."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()
    if name == "device" and _is_torch_device(value):
        value = str(value)  # generator.device, or torch.device("cuda", 1)
    if setting is not None and setting.choices and isinstance(value, str):
        value = _choice_in_any_case(setting, value)
    if setting is not None and setting.kind is float and isinstance(value, Fraction):
        value = float(value)  # fps=Fraction(30000, 1001), as inspect reports a video's rate
    if name == "dtype" and (isinstance(value, str) or type(value).__name__ == "dtype"):  # torch.float16 too
        return DTYPE_ALIASES.get(str(value).removeprefix("torch.").lower(), value)
    if name == "crop" and type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if name == "crop" and isinstance(value, (list, tuple)):
        numbers = [plain_value(None, "", item) for item in value]
        if len(numbers) != 4 or not all(isinstance(item, int) and not isinstance(item, bool) for item in numbers):
            raise InputError(f"{parameter('crop')} is {described(value)}.",
                             "A box is four whole numbers [x, y, w, h] in the photo's pixels: its top-left corner "
                             "and its width and height.", f"Give {parameter('crop')} as four whole numbers such as "
                             "[200, 80, 600, 600], or as \"auto\" or \"none\".")
        return ",".join(map(_box_number_text, numbers))
    return value


def _is_torch_device(value: Any) -> bool:
    """Whether ``value`` is a ``torch.device`` (told apart without importing torch)."""
    return type(value).__module__ == "torch" and type(value).__name__ == "device"


def _box_number_text(number: int) -> str:
    """``str(number)``; for a number too long for Python to write, a text of its length (read back as
    :func:`whole_number` reads a long one), which the box check refuses by its length."""
    try:
        return str(number)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return "-" * (number < 0) + "1" + "0" * (digit_count(abs(number)) - 1)


def _choice_in_any_case(setting: Setting, value: str) -> str:
    """``DDIM`` as ``ddim``, ``CUDA:1`` as ``cuda:1``: every choice is lower case, whoever gives it."""
    lowered = value.lower()
    if lowered in setting.choices or (setting.also_matching and re.fullmatch(setting.also_matching, lowered)):
        return lowered
    return value


def value_from_text(setting: Setting, text: str) -> Any:
    """A setting's value from command-line or CSV text: a whole number for an integer setting, a number for a
    number setting. Anything else stays text, which the schema refuses as it refuses it from a preset or
    Python (``--seed 8.0`` as ``seed = 8.0``)."""
    stripped = text.strip()
    if setting.kind is int and re.fullmatch(r"[+-]?[0-9]+", stripped):
        return whole_number(stripped)
    if setting.kind is float:
        try:
            return float(stripped)
        except ValueError:
            return text
    return text
