"""Where the weights come from: a model folder, or a hub id resolved through the Hugging Face cache.

:func:`resolve_model_folder` turns either into a local folder in the released layout
(:mod:`vexpress_cli.engine.model_folder`), which everything else reads:

- a folder passes through;
- a hub id (``tk93/V-Express``, optionally ``tk93/V-Express@revision``) is looked up in the Hugging
  Face cache (``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``),
  and fetched into it unless ``local_files_only`` or ``HF_HUB_OFFLINE=1``. Only the files vexpress
  reads are fetched, never the rest of the repository (full Stable Diffusion weights, extra face models).

The hub repository keeps most files under ``model_ckpts/`` and the five V-Express checkpoints at its
top level (the original README moves them into ``model_ckpts/v-express/``). When the snapshot has
them only at the top level, the folder returned is a *layout view* beside the snapshot in the cache
(``models--tk93--V-Express/vexpress-layout/<commit>/``): symbolic links into the snapshot, no copied
byte. Nothing is ever written into the snapshot itself.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vexpress_cli.engine.model_folder import (ARCHITECTURE_OVERRIDES, CHECKPOINT_STEMS, REQUIRED_FILES, VEXPRESS_DIR,
                                              RequiredFile)
from vexpress_cli.errors import InputError, ModelFolderError, parameter
from vexpress_cli.file_types import WEIGHT_SUFFIXES

DEFAULT_HUB_ID = "tk93/V-Express"
HUB_PREFIX = "model_ckpts/"
LAYOUT_VIEWS = "vexpress-layout"  # beside "snapshots" in the cache's repository folder
DOWNLOAD_COMMAND = "vexpress models download"
# What `vexpress models download` fetches from tk93/V-Express, estimated from parameter counts at
# float32: the V-Express checkpoints 9.0 GB (2.25 G elements, tests/fixtures/golden's state-dict
# manifest), the VAE 0.33 GB, wav2vec2 0.38 GB, the face detector 17 MB. Not measured: no download here.
ESTIMATED_DOWNLOAD = "about 9.7 GB"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HubSource:
    """A hub repository and revision (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_id(text: str) -> HubSource | None:
    """``owner/name`` or ``owner/name@revision`` as a HubSource; None when ``text`` is not shaped so."""
    repo_id, _, revision = text.strip().partition("@")
    if not _HUB_ID.match(repo_id) or ".." in repo_id or (revision == "" and "@" in text):
        return None
    return HubSource(repo_id, revision or None)


def looks_like_hub_id(text: str) -> bool:
    """True for ``owner/name[@revision]`` that is not an existing path here."""
    return parse_hub_id(text) is not None and not Path(text).expanduser().exists()


def offline_from_environment() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it only once, at import)."""
    import huggingface_hub.constants as hub_constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(hub_constants.HF_HUB_OFFLINE)


def hf_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache: ``cache_dir``, ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, else the default."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    import huggingface_hub.constants as hub_constants

    return Path(hub_constants.HF_HUB_CACHE).expanduser()


def repo_storage(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of one repository (``models--owner--name``)."""
    return hf_cache_dir(cache_dir) / ("models--" + repo_id.replace("/", "--"))


# --- which hub files make a model folder -------------------------------------------------------


def hub_paths_for(layout_path: str) -> tuple[str, ...]:
    """Where a model-folder file may live in the hub repository, most likely first."""
    candidates = [HUB_PREFIX + layout_path, layout_path]
    vexpress_folder = VEXPRESS_DIR.as_posix() + "/"
    if layout_path.startswith(vexpress_folder):
        # The hub keeps the V-Express checkpoints at its top level.
        candidates.append(layout_path.removeprefix(vexpress_folder))
    return tuple(candidates)


def hub_candidates() -> list[str]:
    """Every hub path that may hold a file vexpress reads (used as snapshot_download's allow-list)."""
    layout_paths = {choice for required in REQUIRED_FILES for choice in required.choices}
    layout_paths.add(ARCHITECTURE_OVERRIDES.as_posix())
    return sorted({path for layout_path in layout_paths for path in hub_paths_for(layout_path)})


@dataclass(frozen=True)
class HubFile:
    hub_path: str
    layout_path: str  # where it belongs in the model folder
    size: int | None


def choose_hub_files(hub_files: Mapping[str, int | None], needed: Iterable[RequiredFile] = REQUIRED_FILES,
                     ) -> tuple[list[HubFile], list[str]]:
    """One hub file for each ``needed`` file of the layout (preferred format first), and the labels of the required
    ones absent (an absent optional one is left out)."""
    chosen, absent = [], []
    for required in needed:
        match = next(((hub_path, choice) for choice in required.choices for hub_path in hub_paths_for(choice)
                      if hub_path in hub_files), None)
        if match is None:
            if not required.optional:
                absent.append(f"{required.label} ({' or '.join(required.choices)})")
        else:
            chosen.append(HubFile(match[0], match[1], hub_files[match[0]]))
    return chosen, absent


# --- resolving ---------------------------------------------------------------------------------


def resolve_model_folder(source: str | Path, revision: str | None = None, cache_dir: str | Path | None = None,
                         local_files_only: bool | None = None) -> Path:
    """A local folder in the released layout for ``source``: a folder, or a hub id (``owner/name[@rev]``).

    ``local_files_only`` None follows ``HF_HUB_OFFLINE``. A cached snapshot holding every file is used
    without asking the Hub; when not local-only, a hub id whose files are not all cached is fetched into
    the cache (only the files vexpress reads). Raises ModelFolderError
    (with the download command) when the weights are not there, InputError for a malformed source.
    """
    if isinstance(source, Path) or not looks_like_hub_id(str(source)):
        return _existing_folder(Path(source))
    hub = parse_hub_id(str(source))
    assert hub is not None
    if revision is not None and hub.revision is not None and revision != hub.revision:
        raise InputError(f"Two revisions for {hub.repo_id}: '{hub.revision}' (in '{source}') and '{revision}'.",
                         fix="Give the revision once, either as owner/name@revision or as revision=.")
    hub = HubSource(hub.repo_id, revision or hub.revision)
    if local_files_only is None:
        local_files_only = offline_from_environment()
    storage = repo_storage(hub.repo_id, cache_dir)
    if not local_files_only:  # a complete snapshot in the cache is used as the CLI uses it: without the network
        cached = _complete_cached_folder(hub, cache_dir, storage)
        if cached is not None:
            return cached
    return layout_folder(_snapshot(hub, cache_dir, local_files_only), storage)


def _complete_cached_folder(hub: HubSource, cache_dir: str | Path | None, storage: Path) -> Path | None:
    from vexpress_cli.engine.checkpoints import check_model_files
    from vexpress_cli.engine.model_folder import ModelFolder

    try:
        folder = layout_folder(_snapshot(hub, cache_dir, local_files_only=True), storage)
        check_model_files(ModelFolder(folder))
    except ModelFolderError:
        return None
    return folder


def _existing_folder(folder: Path) -> Path:
    folder = folder.expanduser()
    if folder.is_dir():
        return folder.resolve()
    problem = "is a file, not a folder" if folder.exists() else "does not exist"
    raise ModelFolderError(
        f"No model folder: {folder} {problem}.",
        why=f"A model is a folder in the released layout or a Hugging Face hub id such as {DEFAULT_HUB_ID}.",
        fix=f"Check the path, or run `{DOWNLOAD_COMMAND}` ({ESTIMATED_DOWNLOAD}) to fetch the weights into the "
        "Hugging Face cache, where vexpress finds them from any folder.",
    )


def download_command(hub: HubSource) -> str:
    command = DOWNLOAD_COMMAND
    if hub.repo_id != DEFAULT_HUB_ID:
        command += f" --model {hub.repo_id}"
    if hub.revision:
        command += f" --revision {hub.revision}"
    return command


def not_cached_error(hub: HubSource, cache: Path, offline: bool, reason: str = "") -> ModelFolderError:
    if offline and offline_from_environment():
        why = f"HF_HUB_OFFLINE=1 allows only the cache, and it has no snapshot of {hub}."
    elif offline:
        why = f"The cache has no snapshot of {hub}, and nothing is downloaded without asking."
    else:
        why = reason or f"The cache has no snapshot of {hub}."
    return ModelFolderError(
        f"The V-Express weights ({hub}) are not in the Hugging Face cache at {cache}.",
        why=why,
        fix=f"Run `{download_command(hub)}` with network access; it fetches {ESTIMATED_DOWNLOAD} into that "
        "cache (set HF_HOME or HF_HUB_CACHE to put it elsewhere), or pass a model folder instead of the hub id.",
    )


def _snapshot(hub: HubSource, cache_dir: str | Path | None, local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    cache = hf_cache_dir(cache_dir)
    try:
        patterns = hub_candidates() if local_files_only else _files_to_fetch(hub)
        folder = snapshot_download(hub.repo_id, revision=hub.revision, cache_dir=cache,
                                   local_files_only=local_files_only, allow_patterns=patterns)
    except LocalEntryNotFoundError as error:
        raise not_cached_error(hub, cache, local_files_only, str(error).splitlines()[0]) from None
    except Exception as error:  # network, unknown repository or revision: say which, in one paragraph
        raise _hub_error(hub, cache, error) from None
    return Path(folder)


def _files_to_fetch(hub: HubSource) -> list[str]:
    """One hub file per required file (the preferred format), and the optional architecture overrides.

    Unreachable hub: every candidate, so that snapshot_download falls back to what the cache holds.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

    try:
        listed = set(HfApi().list_repo_files(hub.repo_id, revision=hub.revision))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except Exception:  # no network, proxy, hub down
        return hub_candidates()
    chosen, _ = choose_hub_files(dict.fromkeys(listed))
    overrides = [path for path in hub_paths_for(ARCHITECTURE_OVERRIDES.as_posix()) if path in listed]
    return [item.hub_path for item in chosen] + overrides


def _hub_error(hub: HubSource, cache: Path, error: Exception) -> ModelFolderError:
    from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RevisionNotFoundError):
        return ModelFolderError(f"The model repository {hub.repo_id} has no revision '{hub.revision}'.",
                                fix="Use a branch, tag or commit hash of that repository, or leave out @revision.")
    if isinstance(error, RepositoryNotFoundError):
        return ModelFolderError(f"The Hugging Face Hub has no model repository {hub.repo_id}.",
                                fix=f"Check the hub id (the released weights are {DEFAULT_HUB_ID}).")
    detail = f"{type(error).__name__}: {error}".splitlines()[0].rstrip(".")
    unreachable = "the Hugging Face Hub could not be reached, " if _is_connection_error(error) else ""
    return not_cached_error(hub, cache, offline=False, reason=f"Fetching it failed: {unreachable}{detail}.")


def _is_connection_error(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ConnectionError", "ConnectError", "ConnectTimeout", "OfflineModeIsEnabled"})


# --- the layout view ---------------------------------------------------------------------------


def layout_folder(snapshot: Path, storage: Path) -> Path:
    """The snapshot's folder in the released layout, through a view of links when the checkpoints
    sit at the snapshot's top level (the hub repository's layout)."""
    base = snapshot / HUB_PREFIX.rstrip("/")
    base = base if base.is_dir() else snapshot
    moved = _top_level_checkpoints(snapshot, base)
    if not moved:
        return base
    view = storage / LAYOUT_VIEWS / snapshot.name
    wanted = _view_entries(base, moved)
    if _view_matches(view, wanted):
        return view
    return _build_view(view, wanted)


def _top_level_checkpoints(snapshot: Path, base: Path) -> dict[str, Path]:
    """``v-express/<name>`` -> top-level file, for the checkpoints absent from ``base/v-express``."""
    moved = {}
    for stem in CHECKPOINT_STEMS:
        if any((base / VEXPRESS_DIR / f"{stem}{suffix}").is_file() for suffix in WEIGHT_SUFFIXES):
            continue
        for suffix in WEIGHT_SUFFIXES:
            if (snapshot / f"{stem}{suffix}").is_file():
                moved[f"{stem}{suffix}"] = snapshot / f"{stem}{suffix}"
                break
    return moved


def _view_entries(base: Path, moved: dict[str, Path]) -> dict[str, Path]:
    """Relative view path -> the snapshot file it links to: every file of ``base``, and the moved checkpoints.

    File by file (real folders in the view), so that anything walking the model folder sees every file.
    """
    entries = {path.relative_to(base).as_posix(): path for path in base.rglob("*") if path.is_file()}
    entries.update({f"{VEXPRESS_DIR.name}/{name}": target for name, target in moved.items()})
    return entries


def _view_matches(view: Path, wanted: dict[str, Path]) -> bool:
    if not view.is_dir():
        return False
    present = {path.relative_to(view).as_posix() for path in view.rglob("*") if not path.is_dir()}
    return present == set(wanted) and all((view / name).is_file() for name in wanted)


def _build_view(view: Path, wanted: dict[str, Path]) -> Path:
    """Write the view under a temporary name, then rename it into place (another process may race us)."""
    temporary = view.parent / f".{view.name}.{uuid.uuid4().hex}.tmp"
    try:
        temporary.mkdir(parents=True)
        for name, target in wanted.items():
            link = temporary / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(target, link.parent), link)
        if view.exists():
            stale = view.parent / f".{view.name}.{uuid.uuid4().hex}.stale"
            os.replace(view, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(temporary, view)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if _view_matches(view, wanted):  # another process built the same view meanwhile
            return view
        raise ModelFolderError(
            f"Cannot arrange the cached V-Express files into the model layout at {view}.",
            why=f"Writing symbolic links failed: {error.strerror or error}.",
            fix="Make the Hugging Face cache writable (or set HF_HUB_CACHE to a writable folder), or pass "
            f"a model folder as {parameter('model_dir')}.",
        ) from None
    return view
