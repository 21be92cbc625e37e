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

Steps 1 and 2, the hub side, are :mod:`vexpress_cli.jobs.hub`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


from vexpress_cli.engine import model_folder as layout
from vexpress_cli.engine.model_folder import (REQUIRED_FILES, RequiredFile, lacking_optional_files,
                                              missing_required_files)
from vexpress_cli.engine.model_source import HubFile, choose_hub_files
from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.jobs.hub import (
    cache_root,
    cached_snapshot,
    fetch_files,
    files_in_snapshot,
    list_hub_files,
    not_available_error,
    offline_requested,
    translate_hub_error,
)
from vexpress_cli.progress import ProgressCallback, checked_callback
from vexpress_cli.outputs import OutputAppearedError, atomic_output, ensure_writable_folder
from vexpress_cli.outputs.write_failures import DiskFullError


@dataclass
class DownloadReport:
    target: Path
    revision: str
    planned: list[HubFile] = field(default_factory=list)
    already_present: int = 0
    linked: int = 0
    copied: int = 0
    offline: bool = False

    @property
    def lacking(self) -> list[str]:
        """The optional files (the face detector) neither the folder nor the source held."""
        return lacking_optional_files(self.target) if self.target.is_dir() else []

    @property
    def bytes_placed(self) -> int:
        return sum(item.size or 0 for item in self.planned)


def plan_download(hub_files: Mapping[str, int | None], needed: Iterable[RequiredFile],
                  from_cache: Path | None = None, repo_id: str = layout.HUB_REPO_ID) -> list[HubFile]:
    """Pick one hub file for each needed file.

    ModelFolderError when ``hub_files`` (the repository listing, or the cached snapshot at
    ``from_cache``) has none of a needed required file's choices (an optional one is left out).
    """
    planned, absent = choose_hub_files(hub_files, needed)
    if absent and from_cache is not None:
        raise ModelFolderError(
            f"The Hugging Face cache holds only part of the V-Express files; missing: {'; '.join(absent)}.",
            why=f"Only the local cache ({from_cache}) could be used (offline mode, or the Hub was unreachable).",
            fix="Run `vexpress models download` again with network access to fetch the rest.",
        )
    if absent:
        raise ModelFolderError(
            f"The model repository {repo_id} does not provide: {'; '.join(absent)}.",
            why="Its file layout differs from the one this version of vexpress expects.",
            fix="Try another --revision, or download those files by hand into the model folder "
            "(the layout is shown by `vexpress models download --help`).",
        )
    return planned


# --- placing files ----------------------------------------------------------------------------


def _place_file(source: Path, destination: Path) -> bool:
    """Hard-link (True) or copy (False) ``source`` to ``destination``, through :func:`atomic_output`."""
    blob = source.resolve()  # the cache's snapshot entries are symlinks to blobs
    with atomic_output(destination) as temporary:
        temporary.unlink()  # the link takes the reserved name
        try:
            os.link(blob, temporary)
            return True
        except OSError:
            shutil.copyfile(blob, temporary)
            return False


def _place_all(snapshot: Path, planned: list[HubFile], target: Path, report: DownloadReport,
               progress: ProgressCallback) -> None:
    total = sum(item.size or 0 for item in planned) or None
    placed = 0
    progress("place", placed, total)
    for item in planned:
        source = snapshot / item.hub_path
        if not source.is_file():
            raise ModelFolderError(
                f"The downloaded snapshot lacks {item.hub_path}.",
                why=f"Expected it under {snapshot}.",
                fix="Run `vexpress models download` again; it resumes where it stopped.",
            )
        try:
            linked = _place_file(source, target / item.layout_path)
        except OutputAppearedError:
            continue  # another download placed it meanwhile; the check at the end reads its size
        except DiskFullError:
            raise ModelFolderError(f"Cannot place {item.layout_path} into the model folder {target}: its disk is full.",
                                   fix="Free space on it, then run `vexpress models download` again (downloaded "
                                   "files stay in the Hugging Face cache).") from None
        except OSError as error:
            raise ModelFolderError(
                f"Cannot place {item.layout_path} into the model folder {target}.",
                why=f"{error.strerror or error}" + (f" ({error.filename})." if error.filename else "."),
                fix="Check free disk space and that the model folder is writable; then run "
                "`vexpress models download` again (downloaded files stay in the Hugging Face cache).",
            ) from None
        if linked:
            report.linked += 1
        else:
            report.copied += 1
        placed += (target / item.layout_path).stat().st_size
        progress("place", placed, total)


def _verify(target: Path, planned: list[HubFile]) -> None:
    problems = [f"{required.label} ({' or '.join(required.choices)}) is missing"
                for required in missing_required_files(target, optional=False)]
    for item in planned:
        size = (target / item.layout_path).stat().st_size if (target / item.layout_path).is_file() else None
        if item.size is not None and size is not None and size != item.size:
            problems.append(f"{item.layout_path} has {size} bytes, the hub lists {item.size}")
    if problems:
        raise ModelFolderError(
            f"The model folder {target} is incomplete after the download: {'; '.join(problems)}.",
            why="A cached file may be truncated or the download was cut short.",
            fix="Delete those files and run `vexpress models download` again.",
        )


# --- the whole thing ----------------------------------------------------------------------------


def download_models(
    target: Path,
    *,
    repo_id: str = layout.HUB_REPO_ID,
    revision: str | None = None,
    offline: bool = False,
    cache_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> DownloadReport:
    """Make ``target`` a complete model folder from the hub repository ``repo_id``, downloading only the files
    it lacks.

    ``offline`` (or ``HF_HUB_OFFLINE=1``) uses only the local Hugging Face cache. ``progress``
    gets the stages ``listing``, ``download`` and ``place`` (bytes). Raises
    ModelFolderError/InputError with what/why/fix on failure.
    """
    progress = checked_callback(progress)
    target = Path(target).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise InputError(f"--to {target} is a file, not a folder.", fix="Pick a folder path.")
    offline = offline_requested(offline)
    cache = cache_root(cache_dir)
    report = DownloadReport(target=target, revision=revision or "main", offline=offline)

    needed = missing_required_files(target) if target.is_dir() else list(REQUIRED_FILES)
    report.already_present = len(REQUIRED_FILES) - len(needed)
    if not needed:
        return report
    ensure_writable_folder(target, create=False)  # before any listing or download

    snapshot: Path | None = None
    if offline:
        snapshot = cached_snapshot(revision, cache, repo_id)
        if snapshot is None:
            raise not_available_error(cache, "", offline=True)
        hub_files = files_in_snapshot(snapshot)
    else:
        progress("listing", 0, 1)
        try:
            hub_files = list_hub_files(revision, repo_id)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # no network, proxy, hub down: the cache may still have everything
            translated = translate_hub_error(error, revision, repo_id)
            if translated is not None:
                raise translated from None
            snapshot = cached_snapshot(revision, cache, repo_id)
            if snapshot is None:
                raise not_available_error(cache, f"{type(error).__name__}: {error}".splitlines()[0], False) from None
            hub_files = files_in_snapshot(snapshot)
            report.offline = True
        progress("listing", 1, 1)

    report.planned = plan_download(hub_files, needed, from_cache=snapshot, repo_id=repo_id)
    ensure_writable_folder(target)
    if snapshot is None:
        try:
            snapshot = fetch_files(report.planned, revision, cache, progress, repo_id)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            translated = translate_hub_error(error, revision, repo_id)
            if translated is not None:
                raise translated from None
            raise ModelFolderError(
                f"The download from {repo_id} stopped: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                why="Files fetched so far stay in the Hugging Face cache.",
                fix="Run `vexpress models download` again to resume.",
            ) from None
    _place_all(snapshot, report.planned, target, report, progress)
    _verify(target, report.planned)
    return report
