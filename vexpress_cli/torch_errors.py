"""What a failed ``torch.load`` means, in words a user can act on.

torch's messages for a damaged or foreign file carry advice we never take: to retry with
``weights_only=False`` (which lets a malicious file run code), to "torch.save your checkpoint"
with another option, or to file an issue with PyTorch. :func:`torch_load_reason` keeps what the
message says about the file and drops the rest; kps files and model checkpoints both use it.
"""

from __future__ import annotations

import pickle
import re

# Lines of torch's messages that give advice instead of describing the file.
ADVICE_PHRASES = ("Weights only load failed", "weights_only", "Check the documentation", "trusted source",
                  "Please file an issue", "please torch.save", "In PyTorch 2.6")
NOT_A_ZIP_CHECKPOINT = ("_use_new_zipfile_serialization", "mmap can only be used")


def forbidden_global(error: BaseException) -> str | None:
    """The Python object (``module.name``) a weights-only load refused, if that was the failure."""
    # torch words this differently by case ("Unsupported global: GLOBAL x",
    # "unsupported GLOBAL x whose module is blocked"); both name the global.
    found = re.search(r"GLOBAL\s+([\w.]+)", str(error))
    return found.group(1) if found else None


def torch_load_reason(error: BaseException) -> str:
    """One clause (no final period) saying why ``torch.load`` failed, without torch's advice."""
    text = str(error)
    name = forbidden_global(error)
    if name:
        return f"it holds the Python object {name}, not only tensors"
    if any(phrase in text for phrase in NOT_A_ZIP_CHECKPOINT):
        return "it is not a torch checkpoint: damaged, truncated, or another kind of file"
    if "storage has wrong byte size" in text:  # torch's own text shows "%ld" where the sizes should be
        return "its tensors' data is not the size its header declares: a damaged or altered file"
    if "failed finding central directory" in text:  # a zip whose end is missing; torch then adds a paragraph
        return "it is truncated, its end missing: a copy or download cut short"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not any(phrase in line for phrase in ADVICE_PHRASES)]
    if not useful:
        return f"{type(error).__name__}: it is not a valid torch file"
    if isinstance(error, pickle.UnpicklingError):  # e.g. "Unsupported operand 55": bytes that are no pickle
        return f"it is not a valid torch file: {useful[0].rstrip('.')}"
    return useful[0].rstrip(".")
