"""Finding the weights: a model folder, or a hub id resolved through the Hugging Face cache.

The first *configured* source wins, in this order:

1. ``--model`` (a hub id such as ``tk93/V-Express@<revision>``, or a folder) or ``--model-dir`` (a folder),
2. ``$VEXPRESS_MODEL`` (hub id or folder), then ``$VEXPRESS_MODEL_DIR`` (folder),
3. ``model`` (hub id or folder), then ``model_dir`` (folder) in ``config.toml``,
4. ``./model_ckpts`` when that folder exists (the original repository's layout),
5. the hub id ``tk93/V-Express`` in the Hugging Face cache (``HF_HOME``, ``HF_HUB_CACHE``).

A configured source that names a missing folder, or a hub id that is not in the cache, is an error
rather than a silent fall-through to the next one: a stale setting should be fixed, not quietly
ignored. Nothing is downloaded here: a hub id is looked up in the cache only, and the error names
``vexpress models download``, which fills it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from vexpress_cli.engine.model_source import DEFAULT_HUB_ID, parse_hub_id, resolve_model_folder
from vexpress_cli.errors import InputError, ModelFolderError, VExpressError, join_messages, parameter
from vexpress_cli.settings.user_config import config_file, load_user_config

MODEL_ENV = "VEXPRESS_MODEL"
MODEL_DIR_ENV = "VEXPRESS_MODEL_DIR"
DEFAULT_MODEL_DIR = Path("model_ckpts")


class ResolvedModelDir(NamedTuple):
    """The model folder (in the released layout), how it was found, and what was named there."""

    path: Path
    how: str  # may name a parameter (model_dir, --model-dir): show it through errors.spell_parameters
    source: str = ""  # the folder or hub id as named (a hub id resolves to a folder in the cache)
    skipped: tuple[str, ...] = ()  # the sources before it, each with why it was passed over


@dataclass(frozen=True)
class _Source:
    how: str
    value: str | Path | None  # None: this source is not set
    unset: str = "not set"
    folder_only: bool = False
    base: Path | None = None  # a relative folder is relative to this (the config file's folder)
    when_present: bool = False  # skipped, not an error, when the folder is absent


def _sources(explicit_dir: Path | None, model: str | None) -> Iterator[_Source]:
    if model is not None and explicit_dir is not None:
        raise InputError(f"Both {parameter('model')} and {parameter('model_dir')} were given.",
                         fix=f"Give one: {parameter('model')} takes a hub id or a folder, "
                         f"{parameter('model_dir')} a folder.")
    if model is not None:
        yield _Source(parameter("model"), model)
    else:
        how = parameter("model_dir") if explicit_dir is not None else f"{parameter('model')} or {parameter('model_dir')}"
        yield _Source(how, explicit_dir, unset="not given", folder_only=True)
    yield _Source(f"${MODEL_ENV}", os.environ.get(MODEL_ENV) or None)
    yield _Source(f"${MODEL_DIR_ENV}", os.environ.get(MODEL_DIR_ENV) or None, folder_only=True)
    path = config_file()
    config = load_user_config(path, generate=False)  # read only when no earlier source was set; not [generate]
    unset = "not set" if path.is_file() else "no such file"
    yield _Source(f"model in {path}", config.get("model"), unset=unset, base=path.parent)
    yield _Source(f"model_dir in {path}", config.get("model_dir"), unset=unset, folder_only=True, base=path.parent)
    yield _Source(f"./{DEFAULT_MODEL_DIR} when present", Path.cwd() / DEFAULT_MODEL_DIR, when_present=True)
    yield _Source(f"default {DEFAULT_HUB_ID} in the Hugging Face cache", DEFAULT_HUB_ID)


def _as_folder(source: _Source) -> Path | None:
    """The folder a source names, or None when it names a hub id."""
    text = str(source.value)
    folder = Path(text).expanduser()
    if source.base is not None and not folder.is_absolute():
        folder = source.base / folder  # not normalised as text: ".." may climb out of a linked folder
    if isinstance(source.value, Path) or source.folder_only or folder.exists() or parse_hub_id(text) is None:
        return folder
    return None


def resolve_model_dir(explicit: Path | None = None, model: str | None = None) -> ResolvedModelDir:
    """The model folder to use (see the module docstring for the order), in the released layout.

    ``explicit`` is ``--model-dir`` (a folder), ``model`` is ``--model`` (a hub id or a folder).
    Raises ModelFolderError when the chosen source has no weights; the message lists every source
    that was consulted and says how to download the weights.
    """
    tried: list[str] = []
    for source in _sources(Path(explicit) if explicit is not None else None, model):
        if source.value is None:
            tried.append(f"{source.how}: {source.unset}")
            continue
        folder = _as_folder(source)
        if source.when_present and folder is not None and not folder.is_dir():
            tried.append(f"{source.how}: not present")
            continue
        if folder is not None:
            return ResolvedModelDir(_existing_folder(folder, source.how, tried), source.how, str(folder), tuple(tried))
        try:
            resolved = resolve_model_folder(str(source.value), local_files_only=True)
        except VExpressError as error:
            why = join_messages(_order(tried, source.how), error.why) if tried else error.why
            fix = join_messages(error.fix, TRY_FIRST) if source.value == DEFAULT_HUB_ID else error.fix
            raise ModelFolderError(error.what, why=why, fix=fix) from None
        return ResolvedModelDir(resolved, source.how, str(source.value), tuple(tried))
    raise AssertionError("the default hub id always resolves or raises")


TRY_FIRST = (f"To try vexpress before downloading: `vexpress demo` writes a tiny random-weight model and names "
             f"its folder, which works as {parameter('model_dir')} (the video is noise, every part runs).")


def _order(tried: list[str], how: str) -> str:
    return "Looked in this order: " + "; ".join([*tried, how]) + "."


def _existing_folder(folder: Path, how: str, tried: list[str]) -> Path:
    if folder.is_dir():
        return folder.resolve()
    problem = "is a file, not a folder" if folder.exists() else "does not exist"
    raise ModelFolderError(
        f"No model folder: {folder} ({how}) {problem}.",
        why=_order(tried, how),
        fix="Fix that setting, or unset it to use the weights in the Hugging Face cache "
        "(`vexpress models download` fetches them there; `vexpress models path` shows what is found).",
    )



def face_model_root(given: Path | None = None, backend: str = "auto") -> Path | None:
    """Where face detection outside ``generate`` (extract, retarget, inspect) looks for the detector.

    ``given`` (a ``model_root`` argument) when given; else, unless ``backend`` is dlib (no file needed),
    the model folder the lookup finds, so the detector is found wherever the weights are, the Hugging
    Face cache included; None when there is none (the face layer's own default applies).
    """
    if given is not None or backend == "dlib":
        return given
    try:
        return resolve_model_dir().path
    except VExpressError:
        return None
