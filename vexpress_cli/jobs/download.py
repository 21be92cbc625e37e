"""Fetch the released V-Express weights from the Hugging Face Hub into a model folder.

The hub repository (``layout.HUB_REPO_ID``) keeps most files under ``model_ckpts/`` and the five
V-Express checkpoints at its top level; it also carries files we never read (full Stable
Diffusion weights, extra face-analysis models). We therefore:

1. list the repository (or, offline, the locally cached snapshot) and pick exactly one hub file
   for each file the model folder needs (``REQUIRED_FILES``), preferring ``.safetensors``;
2. let ``huggingface_hub.snapshot_download`` fetch only those into the usual Hugging Face cache,
   so an interrupted download resumes and offline mode works;
3. place each file into the model folder layout (``vexpress_cli.engine.model_folder``) as a hard link to the
   cached blob (no extra disk space) or, across file systems, a copy; every file is written under
   a temporary name and renamed, so an interrupted run never leaves a truncated weight file;
4. check that every required file is present with the size the hub lists.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from vexpress_cli.engine import model_folder as layout
from vexpress_cli.engine.model_folder import REQUIRED_FILES, RequiredFile, missing_required_files
from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.outputs import ensure_writable_folder

HUB_PREFIX = "model_ckpts/"
T = TypeVar("T")


def hub_paths_for(layout_path: str) -> tuple[str, ...]:
    """Where a model-folder file may live in the hub repository, most likely first."""
    candidates = [HUB_PREFIX + layout_path, layout_path]
    vexpress_folder = layout.VEXPRESS_DIR.as_posix() + "/"
    if layout_path.startswith(vexpress_folder):
        # The original README moves the top-level *.bin files into model_ckpts/v-express/.
        candidates.append(layout_path.removeprefix(vexpress_folder))
    return tuple(candidates)


@dataclass(frozen=True)
class PlannedFile:
    hub_path: str
    target: str  # path inside the model folder
    size: int | None


@dataclass
class DownloadReport:
    target: Path
    revision: str
    planned: list[PlannedFile] = field(default_factory=list)
    already_present: int = 0
    linked: int = 0
    copied: int = 0
    offline: bool = False

    @property
    def bytes_placed(self) -> int:
        return sum(item.size or 0 for item in self.planned)


def plan_download(hub_files: Mapping[str, int | None], needed: Iterable[RequiredFile],
                  from_cache: Path | None = None) -> list[PlannedFile]:
    """Pick one hub file for each needed file.

    ModelFolderError when ``hub_files`` (the repository listing, or the cached snapshot at
    ``from_cache``) has none of a needed file's choices.
    """
    planned, absent = [], []
    for required in needed:
        match = next(
            ((hub_path, choice) for choice in required.choices for hub_path in hub_paths_for(choice)
             if hub_path in hub_files),
            None,
        )
        if match is None:
            absent.append(f"{required.label} ({' or '.join(required.choices)})")
        else:
            planned.append(PlannedFile(match[0], match[1], hub_files[match[0]]))
    if absent and from_cache is not None:
        raise ModelFolderError(
            f"The Hugging Face cache holds only part of the V-Express files; missing: {'; '.join(absent)}.",
            why=f"Only the local cache ({from_cache}) could be used (offline mode, or the Hub was unreachable).",
            fix="Run `vexpress models download` again with network access to fetch the rest.",
        )
    if absent:
        raise ModelFolderError(
            f"The model repository {layout.HUB_REPO_ID} does not provide: {'; '.join(absent)}.",
            why="Its file layout differs from the one this version of vexpress expects.",
            fix="Try another --revision, or download those files by hand into the model folder "
            "(the layout is shown by `vexpress models download --help`).",
        )
    return planned


# --- talking to the hub -----------------------------------------------------------------------


def _offline_requested(offline: bool) -> bool:
    import huggingface_hub.constants as hub_constants

    from_env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return offline or from_env or bool(hub_constants.HF_HUB_OFFLINE)


def _cache_root(cache_dir: Path | None) -> Path:
    import huggingface_hub.constants as hub_constants

    return Path(cache_dir or os.environ.get("HF_HUB_CACHE") or hub_constants.HF_HUB_CACHE).expanduser()


def _all_hub_candidates() -> list[str]:
    return sorted({path for required in REQUIRED_FILES for choice in required.choices
                   for path in hub_paths_for(choice)})


def list_hub_files(revision: str | None) -> dict[str, int | None]:
    """Every file in the hub repository at ``revision``, with its size in bytes."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    entries = HfApi().list_repo_tree(layout.HUB_REPO_ID, recursive=True, revision=revision)
    return {entry.path: entry.size for entry in entries if isinstance(entry, RepoFile)}


def cached_snapshot(revision: str | None, cache_dir: Path) -> Path | None:
    """The locally cached snapshot folder of the hub repository, or None when nothing is cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            layout.HUB_REPO_ID, revision=revision, cache_dir=cache_dir, local_files_only=True,
            allow_patterns=_all_hub_candidates(),
        )
    except LocalEntryNotFoundError:
        return None
    return Path(folder)


def _files_in_snapshot(snapshot: Path) -> dict[str, int | None]:
    return {path: (snapshot / path).stat().st_size for path in _all_hub_candidates()
            if (snapshot / path).is_file()}


def _translate_hub_error(error: Exception, revision: str | None) -> Exception | None:
    """A clear VExpressError for hub answers that retrying offline cannot fix, else None."""
    from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RevisionNotFoundError):
        return InputError(
            f"The model repository {layout.HUB_REPO_ID} has no revision '{revision}'.",
            fix=f"Leave out --revision for the latest files, or use a branch, tag or commit hash from "
            f"https://huggingface.co/{layout.HUB_REPO_ID}/commits/main.",
        )
    if isinstance(error, RepositoryNotFoundError):
        return ModelFolderError(
            f"The Hugging Face Hub did not find the model repository {layout.HUB_REPO_ID}.",
            why=f"It answered: {error}".splitlines()[0],
            fix="Check HF_ENDPOINT if you use a mirror, or download the files by hand "
            "(layout: `vexpress models download --help`).",
        )
    return None


def _not_available(cache: Path, reason: str, offline: bool) -> ModelFolderError:
    if offline:
        why = "Offline mode (--offline or HF_HUB_OFFLINE=1) allows only files already in the cache."
        fix = "Run again with network access (drop --offline, unset HF_HUB_OFFLINE)"
    else:
        why = f"The Hugging Face Hub could not be reached ({reason})."
        fix = "Check the network connection (HTTPS_PROXY, or HF_ENDPOINT for a mirror) and run again"
    return ModelFolderError(
        f"Cannot get the V-Express weights: they are not in the Hugging Face cache at {cache}.",
        why=why,
        fix=f"{fix}, or copy a complete model folder from another machine and pass --model-dir "
        "(layout: `vexpress models download --help`).",
    )


def _blob_bytes(storage: Path) -> int:
    blobs = storage / "blobs"
    try:
        return sum(entry.stat().st_size for entry in os.scandir(blobs) if entry.is_file())
    except FileNotFoundError:
        return 0


def _run_in_thread(work: Callable[[], T], on_tick: Callable[[], None]) -> T:
    """Run ``work`` in a daemon thread, calling ``on_tick`` while waiting (Ctrl-C stays responsive)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed back to the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="vexpress-download", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
        on_tick()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _fetch(planned: list[PlannedFile], revision: str | None, cache: Path, progress: Progress | None) -> Path:
    """Download the planned files into the cache; returns the snapshot folder."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    storage = cache / repo_folder_name(repo_id=layout.HUB_REPO_ID, repo_type="model")
    to_fetch = [item for item in planned if not isinstance(
        try_to_load_from_cache(layout.HUB_REPO_ID, item.hub_path, cache_dir=cache, revision=revision), str)]
    total = sum(item.size or 0 for item in to_fetch) or None
    baseline = _blob_bytes(storage)
    task = None
    if progress is not None:
        task = progress.add_task(f"Downloading {len(to_fetch)} of {len(planned)} files", total=total)

    def tick() -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=max(0, _blob_bytes(storage) - baseline))

    bars_were_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # ours replace them
    try:
        folder = _run_in_thread(
            lambda: snapshot_download(layout.HUB_REPO_ID, revision=revision, cache_dir=cache,
                                      allow_patterns=[item.hub_path for item in planned]),
            tick,
        )
    finally:
        if not bars_were_disabled:
            enable_progress_bars()
    if progress is not None and task is not None:
        progress.update(task, completed=total or 1, total=total or 1)
    return Path(folder)


# --- placing files ----------------------------------------------------------------------------


def _place_file(source: Path, destination: Path) -> bool:
    """Hard-link (True) or copy (False) ``source`` to ``destination`` through a temporary name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    temporary.unlink(missing_ok=True)
    blob = source.resolve()  # the cache's snapshot entries are symlinks to blobs
    try:
        try:
            os.link(blob, temporary)
            linked = True
        except OSError:
            shutil.copyfile(blob, temporary)
            linked = False
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return linked


def _place_all(snapshot: Path, planned: list[PlannedFile], target: Path, report: DownloadReport,
               progress: Progress | None) -> None:
    total = sum(item.size or 0 for item in planned) or None
    task = progress.add_task(f"Placing {len(planned)} files", total=total) if progress is not None else None
    for item in planned:
        source = snapshot / item.hub_path
        if not source.is_file():
            raise ModelFolderError(
                f"The downloaded snapshot lacks {item.hub_path}.",
                why=f"Expected it under {snapshot}.",
                fix="Run `vexpress models download` again; it resumes where it stopped.",
            )
        try:
            linked = _place_file(source, target / item.target)
        except OSError as error:
            raise ModelFolderError(
                f"Cannot place {item.target} into the model folder {target}.",
                why=f"{error.strerror or error}" + (f" ({error.filename})." if error.filename else "."),
                fix="Check free disk space and that the model folder is writable; then run "
                "`vexpress models download` again (downloaded files stay in the Hugging Face cache).",
            ) from None
        if linked:
            report.linked += 1
        else:
            report.copied += 1
        if progress is not None and task is not None:
            progress.advance(task, (target / item.target).stat().st_size)


def _verify(target: Path, planned: list[PlannedFile]) -> None:
    problems = [f"{required.label} ({' or '.join(required.choices)}) is missing"
                for required in missing_required_files(target)]
    for item in planned:
        size = (target / item.target).stat().st_size if (target / item.target).is_file() else None
        if item.size is not None and size is not None and size != item.size:
            problems.append(f"{item.target} has {size} bytes, the hub lists {item.size}")
    if problems:
        raise ModelFolderError(
            f"The model folder {target} is incomplete after the download: {'; '.join(problems)}.",
            why="A cached file may be truncated or the download was cut short.",
            fix="Delete those files and run `vexpress models download` again.",
        )


# --- the whole thing ----------------------------------------------------------------------------


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def download_models(
    target: Path,
    *,
    revision: str | None = None,
    offline: bool = False,
    cache_dir: Path | None = None,
    console: Console | None = None,
) -> DownloadReport:
    """Make ``target`` a complete model folder, downloading only the files it lacks.

    ``offline`` (or ``HF_HUB_OFFLINE=1``) uses only the local Hugging Face cache. ``console``
    shows progress when given. Raises ModelFolderError/InputError with what/why/fix on failure.
    """
    target = Path(target).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise InputError(f"--to {target} is a file, not a folder.", fix="Pick a folder path.")
    offline = _offline_requested(offline)
    cache = _cache_root(cache_dir)
    report = DownloadReport(target=target, revision=revision or "main", offline=offline)

    needed = missing_required_files(target) if target.is_dir() else list(REQUIRED_FILES)
    report.already_present = len(REQUIRED_FILES) - len(needed)
    if not needed:
        return report
    ensure_writable_folder(target, create=False)  # before any listing or download

    snapshot: Path | None = None
    if offline:
        snapshot = cached_snapshot(revision, cache)
        if snapshot is None:
            raise _not_available(cache, "", offline=True)
        hub_files = _files_in_snapshot(snapshot)
    else:
        if console is not None:
            console.print(f"Listing {layout.HUB_REPO_ID} on the Hugging Face Hub...", highlight=False)
        try:
            hub_files = list_hub_files(revision)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # no network, proxy, hub down: the cache may still have everything
            translated = _translate_hub_error(error, revision)
            if translated is not None:
                raise translated from None
            snapshot = cached_snapshot(revision, cache)
            if snapshot is None:
                raise _not_available(cache, f"{type(error).__name__}: {error}".splitlines()[0], False) from None
            hub_files = _files_in_snapshot(snapshot)
            report.offline = True

    report.planned = plan_download(hub_files, needed, from_cache=snapshot)
    ensure_writable_folder(target)
    progress = _progress(console) if console is not None else None
    try:
        if progress is not None:
            progress.start()
        if snapshot is None:
            try:
                snapshot = _fetch(report.planned, revision, cache, progress)
            except KeyboardInterrupt:
                raise
            except Exception as error:
                translated = _translate_hub_error(error, revision)
                if translated is not None:
                    raise translated from None
                raise ModelFolderError(
                    f"The download from {layout.HUB_REPO_ID} stopped: "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                    why="Files fetched so far stay in the Hugging Face cache.",
                    fix="Run `vexpress models download` again to resume.",
                ) from None
        _place_all(snapshot, report.planned, target, report, progress)
    finally:
        if progress is not None:
            progress.stop()
    _verify(target, report.planned)
    return report
