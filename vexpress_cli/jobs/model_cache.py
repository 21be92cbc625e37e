"""The weights in the Hugging Face cache: ``vexpress models download`` and ``vexpress models list``.

:func:`download_to_cache` fetches exactly the files vexpress reads (one per required file, the
preferred format first) into the usual Hugging Face cache and copies nothing anywhere else: the
engine reads them there (:func:`vexpress_cli.engine.model_source.resolve_model_folder`), from any
folder. :func:`cached_models` lists what the cache holds, with sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vexpress_cli.engine.model_folder import REQUIRED_FILES, lacking_optional_files, missing_required_files
from vexpress_cli.engine.model_source import (
    DEFAULT_HUB_ID,
    HubFile,
    HubSource,
    choose_hub_files,
    hf_cache_dir,
    layout_folder,
    parse_hub_id,
    repo_storage,
)
from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.jobs.hub import (
    cached_snapshot,
    fetch_files,
    files_in_snapshot,
    list_hub_files,
    not_available_error,
    offline_requested,
    translate_hub_error,
)
from vexpress_cli.progress import ProgressCallback, checked_callback

NEEDED_FILES = sum(not required.optional for required in REQUIRED_FILES)
# What huggingface_hub's scan says of an entry that is no repository at all, such as the version.txt marker
# files transformers and diffusers write into the cache: nothing was skipped there.
NOT_A_REPOSITORY = ("Repo path is not a directory", "Repo path is not a valid HuggingFace cache directory")


@dataclass
class CacheReport:
    """What ``download_to_cache`` did: the folder the engine reads, and what was fetched."""

    hub: HubSource
    cache: Path
    folder: Path  # the model folder in the released layout, inside the cache
    commit: str
    chosen: list[HubFile] = field(default_factory=list)
    fetched: list[HubFile] = field(default_factory=list)
    offline: bool = False
    replaced: list[str] = field(default_factory=list)  # damaged cached files fetched again, each with why

    @property
    def lacking(self) -> list[str]:
        """The optional files (the face detector) the repository did not provide."""
        return lacking_optional_files(self.folder)

    @property
    def bytes_fetched(self) -> int:
        return sum(item.size or 0 for item in self.fetched)

    @property
    def bytes_total(self) -> int:
        return sum(item.size or 0 for item in self.chosen)


def download_command_for(root: Path) -> str:
    """The command that fills a model folder: into the Hugging Face cache when the folder is there (a layout
    view or a snapshot), else into the folder itself."""
    in_cache = root.resolve().is_relative_to(hf_cache_dir().resolve())
    return "vexpress models download" if in_cache else f"vexpress models download --to {root}"


def hub_source(model: str | None, revision: str | None) -> HubSource:
    hub = parse_hub_id(model or DEFAULT_HUB_ID)
    if hub is None:
        raise InputError(f"'{model}' is not a hub id.", why="Only a Hugging Face hub repository can be downloaded.",
                         fix=f"Pass a hub id such as {DEFAULT_HUB_ID} (or leave --model out).")
    if revision and hub.revision and revision != hub.revision:
        raise InputError(f"Two revisions: '{hub.revision}' (in '{model}') and --revision {revision}.",
                         fix="Give the revision once.")
    return HubSource(hub.repo_id, revision or hub.revision)


def download_to_cache(model: str | None = None, *, revision: str | None = None, offline: bool = False,
                      cache_dir: Path | None = None, progress: ProgressCallback | None = None) -> CacheReport:
    """Fetch the files vexpress reads from ``model`` (default tk93/V-Express) into the Hugging Face cache.

    Files already cached are not fetched again, unless damaged (a size other than the Hub lists, or cut
    short): those are deleted from the cache and fetched again. An interrupted download resumes.
    ``offline`` (or ``HF_HUB_OFFLINE=1``) only checks the cache. ``progress`` gets ``listing`` and ``download`` (bytes).
    """
    progress = checked_callback(progress)
    hub = hub_source(model, revision)
    cache = hf_cache_dir(cache_dir)
    offline = offline_requested(offline)
    snapshot, hub_files, from_cache = _listing(hub, cache, offline, progress)
    chosen, absent = choose_hub_files(hub_files)
    if absent:
        where = f"the cached snapshot ({snapshot})" if from_cache else f"the model repository {hub}"
        raise ModelFolderError(f"{where[0].upper() + where[1:]} does not provide: {'; '.join(absent)}.",
                               why="Only the cache could be used (offline mode, or the Hub was unreachable)."
                               if from_cache else
                               "Its file layout differs from the one this version of vexpress expects.",
                               fix="Run `vexpress models download` with network access." if from_cache else
                               "Try another --revision.")
    replaced = [] if from_cache else _drop_damaged(chosen, hub, cache)
    fetched = [] if from_cache else _not_cached(chosen, hub, cache)
    if not from_cache:
        snapshot = _fetch(chosen, hub, cache, progress)
    assert snapshot is not None
    folder = layout_folder(snapshot, repo_storage(hub.repo_id, cache))
    _check_complete(folder)
    return CacheReport(hub, cache, folder, snapshot.name, chosen, fetched, offline=from_cache, replaced=replaced)


def _listing(hub: HubSource, cache: Path, offline: bool, progress: ProgressCallback):
    """(snapshot or None, hub path -> size, whether only the cache could be used)."""
    if not offline:
        progress("listing", 0, 1)
        try:
            files = list_hub_files(hub.revision, hub.repo_id)
            progress("listing", 1, 1)
            return None, files, False
        except KeyboardInterrupt:
            raise
        except Exception as error:  # no network, proxy, hub down: the cache may still have everything
            translated = translate_hub_error(error, hub.revision, hub.repo_id)
            if translated is not None:
                raise translated from None
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
    snapshot = cached_snapshot(hub.revision, cache, hub.repo_id)
    if snapshot is None:
        raise not_available_error(cache, "" if offline else reason, offline=offline)
    return snapshot, files_in_snapshot(snapshot), True


def _not_cached(chosen: list[HubFile], hub: HubSource, cache: Path) -> list[HubFile]:
    from huggingface_hub import try_to_load_from_cache

    return [item for item in chosen if not isinstance(
        try_to_load_from_cache(hub.repo_id, item.hub_path, cache_dir=cache, revision=hub.revision), str)]


def _drop_damaged(chosen: list[HubFile], hub: HubSource, cache: Path) -> list[str]:
    """Delete cached files that cannot be the Hub's (huggingface_hub skips any file it holds, damaged or
    not), so that the fetch replaces them; returns each with why."""
    from huggingface_hub import try_to_load_from_cache

    from vexpress_cli.engine.checkpoints import file_problem

    dropped = []
    for item in chosen:
        cached = try_to_load_from_cache(hub.repo_id, item.hub_path, cache_dir=cache, revision=hub.revision)
        if not isinstance(cached, str) or not Path(cached).is_file():
            continue
        link = Path(cached)
        size = link.stat().st_size
        problem = (f"{size} bytes, the Hub lists {item.size}" if item.size is not None and size != item.size
                   else file_problem(link))
        if problem is not None:
            blob = link.resolve()
            link.unlink()
            blob.unlink(missing_ok=True)  # the same file where the cache holds no links (Windows)
            dropped.append(f"{item.hub_path} ({problem})")
    return dropped


def _fetch(chosen: list[HubFile], hub: HubSource, cache: Path, progress: ProgressCallback) -> Path:
    try:
        return fetch_files(chosen, hub.revision, cache, progress, hub.repo_id)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise
    except Exception as error:
        translated = translate_hub_error(error, hub.revision)
        if translated is not None:
            raise translated from None
        raise ModelFolderError(
            f"The download from {hub} stopped: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}",
            why="Files fetched so far stay in the Hugging Face cache.",
            fix="Run `vexpress models download` again to resume.",
        ) from None


def _check_complete(folder: Path) -> None:
    missing = [f"{required.label} ({' or '.join(required.choices)})"
               for required in missing_required_files(folder, optional=False)]
    if missing:
        raise ModelFolderError(
            f"The cached model at {folder} is incomplete: missing {'; '.join(missing)}.",
            why="The download was cut short, or cached files were deleted.",
            fix="Run `vexpress models download` again; it fetches only what is missing.",
        )


# --- what the cache holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class CachedRevision:
    commit: str
    refs: tuple[str, ...]
    size_on_disk: int
    folder: Path  # in the released layout
    missing: tuple[str, ...]  # labels of required files the snapshot lacks
    lacking: tuple[str, ...] = ()  # labels of optional files it lacks (the face detector)


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    size_on_disk: int
    revisions: tuple[CachedRevision, ...]


def cached_models(cache_dir: Path | None = None) -> tuple[Path, list[CachedModel], list[str]]:
    """The cache folder, every cached model repository holding V-Express files (by hub id), and the
    problems that made huggingface_hub skip a repository (a deleted blob, a broken link)."""
    from huggingface_hub import scan_cache_dir

    cache = hf_cache_dir(cache_dir)
    if not cache.is_dir():
        return cache, [], []
    try:
        scan = scan_cache_dir(cache)
    except UnicodeDecodeError as error:  # huggingface_hub skips what it knows to be damaged, not this
        raise InputError(f"Cannot read the Hugging Face cache {cache}.",
                         f"A file in it is not what huggingface_hub writes ({error}).",
                         "Find the damaged model folder (models--OWNER--NAME, e.g. a refs/ file that is not a "
                         "commit hash), delete it, and download the model again: vexpress models download.") from None
    except OSError as error:
        raise InputError(f"Cannot read the Hugging Face cache {cache}.", f"{error.strerror or error}: "
                         f"{error.filename or cache}.", "Give this user read access to the cache, or point "
                         "HF_HUB_CACHE at a cache it can read.") from None
    models = []
    for repo in sorted(scan.repos, key=lambda repo: repo.repo_id):
        if repo.repo_type != "model":
            continue
        revisions = tuple(_revision(repo, revision) for revision in sorted(repo.revisions, key=lambda r: r.commit_hash))
        revisions = tuple(revision for revision in revisions if len(revision.missing) < NEEDED_FILES)
        if revisions or repo.repo_id == DEFAULT_HUB_ID:
            models.append(CachedModel(repo.repo_id, repo.size_on_disk, revisions))
    return cache, models, [str(warning).rstrip(".") for warning in scan.warnings
                           if not str(warning).startswith(NOT_A_REPOSITORY)]


def _revision(repo, revision) -> CachedRevision:
    snapshot = Path(revision.snapshot_path)
    folder = layout_folder(snapshot, Path(repo.repo_path)) if _has_any_layout_file(snapshot) else snapshot
    missing = missing_required_files(folder)
    return CachedRevision(revision.commit_hash, tuple(sorted(revision.refs)), revision.size_on_disk, folder,
                          tuple(file.label for file in missing if not file.optional),
                          tuple(file.label for file in missing if file.optional))


def _has_any_layout_file(snapshot: Path) -> bool:
    return any((snapshot / "model_ckpts").is_dir() or (snapshot / required.choices[0]).exists()
               for required in REQUIRED_FILES)
