"""Talking to the Hugging Face Hub for ``vexpress models download``: listing, the local cache, fetching.

The repository listing (or, offline, the cached snapshot), hub errors translated into what/why/fix, and the download
into the usual Hugging Face cache with our own progress bar. Placing the files into the model
folder is :mod:`vexpress_cli.jobs.download`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vexpress_cli.engine import model_folder as layout
from vexpress_cli.engine.model_source import HubFile, hf_cache_dir, hub_candidates
from vexpress_cli.errors import InputError, ModelFolderError

from vexpress_cli.progress import ProgressCallback

# How long the first request to the Hub may take before vexpress calls it unreachable.
HUB_PROBE_SECONDS = 10

T = TypeVar("T")


def offline_requested(offline: bool) -> bool:
    import huggingface_hub.constants as hub_constants

    from_env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return offline or from_env or bool(hub_constants.HF_HUB_OFFLINE)


def cache_root(cache_dir: Path | None) -> Path:
    return hf_cache_dir(cache_dir)


def list_hub_files(revision: str | None, repo_id: str = layout.HUB_REPO_ID) -> dict[str, int | None]:
    """Every file in the hub repository at ``revision``, with its size in bytes.

    One plain request first: offline, it fails at once instead of after huggingface_hub's five
    logged retries (about 25 s); the caller then falls back to the cache with one clear message.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import get_session

    get_session().head(f"{constants.ENDPOINT}/api/models/{repo_id}", timeout=HUB_PROBE_SECONDS)
    entries = HfApi().list_repo_tree(repo_id, recursive=True, revision=revision)
    return {entry.path: entry.size for entry in entries if isinstance(entry, RepoFile)}


def cached_snapshot(revision: str | None, cache_dir: Path, repo_id: str = layout.HUB_REPO_ID) -> Path | None:
    """The locally cached snapshot folder of the hub repository, or None when nothing is cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True,
            allow_patterns=hub_candidates(),
        )
    except LocalEntryNotFoundError:
        return None
    return Path(folder)


def files_in_snapshot(snapshot: Path) -> dict[str, int | None]:
    return {path: (snapshot / path).stat().st_size for path in hub_candidates()
            if (snapshot / path).is_file()}


def translate_hub_error(error: Exception, revision: str | None,
                        repo_id: str = layout.HUB_REPO_ID) -> Exception | None:
    """A clear VExpressError for hub answers that retrying offline cannot fix, else None."""
    from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RevisionNotFoundError):
        return InputError(
            f"The model repository {repo_id} has no revision '{revision}'.",
            fix=f"Leave out --revision for the latest files, or use a branch, tag or commit hash from "
            f"https://huggingface.co/{repo_id}/commits/main.",
        )
    if isinstance(error, RepositoryNotFoundError):
        return ModelFolderError(
            f"The Hugging Face Hub did not find the model repository {repo_id}.",
            why=f"It answered: {error}".splitlines()[0],
            fix="Check HF_ENDPOINT if you use a mirror, or download the files by hand "
            "(layout: `vexpress models download --help`).",
        )
    return None


def not_available_error(cache: Path, reason: str, offline: bool) -> ModelFolderError:
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


def fetch_files(planned: list[HubFile], revision: str | None, cache: Path, progress: ProgressCallback,
                repo_id: str = layout.HUB_REPO_ID) -> Path:
    """Download the planned files into the cache; returns the snapshot folder."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    to_fetch = [item for item in planned if not isinstance(
        try_to_load_from_cache(repo_id, item.hub_path, cache_dir=cache, revision=revision), str)]
    total = sum(item.size or 0 for item in to_fetch) or None
    baseline = _blob_bytes(storage)
    progress("download", 0, total)

    def tick() -> None:
        progress("download", max(0, _blob_bytes(storage) - baseline), total)

    bars_were_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # ours replace them
    try:
        folder = _run_in_thread(
            lambda: snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                      allow_patterns=[item.hub_path for item in planned]),
            tick,
        )
    finally:
        if not bars_were_disabled:
            enable_progress_bars()
    progress("download", total or 1, total or 1)
    return Path(folder)
