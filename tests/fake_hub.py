"""A fake Hugging Face cache holding a model in the layout of the released hub repository.

The hub repository tk93/V-Express keeps the model folder under ``model_ckpts/`` except the five
V-Express checkpoints, which sit at its top level (the original README moves them into
``model_ckpts/v-express/``); it also holds files vexpress never reads. :func:`write_fake_hf_cache`
writes a model folder (the tiny one by default) that way, in huggingface_hub's own cache format
(``models--owner--name/{blobs,snapshots/<commit>,refs/<branch>}``), so the real
``huggingface_hub.snapshot_download(local_files_only=True)`` finds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from conftest import TINY_MODEL_DIR

from vexpress_cli.engine.model_folder import CHECKPOINT_STEMS, VEXPRESS_DIR
from vexpress_cli.engine.model_source import DEFAULT_HUB_ID

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Files of the real repository that vexpress never reads: they must not be needed.
UNREAD_FILES = {
    "README.md": b"# V-Express\n",
    "model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin": b"full SD unet, never read",
    "model_ckpts/insightface_models/models/buffalo_l/w600k_r50.onnx": b"recognition model, never read",
}


@dataclass(frozen=True)
class FakeHubCache:
    cache: Path  # the hub cache folder (HF_HUB_CACHE, or $HF_HOME/hub)
    snapshot: Path  # models--owner--name/snapshots/<commit>
    repo_id: str
    commit: str


def hub_layout_files(model_dir: Path) -> dict[str, Path]:
    """hub path -> file of ``model_dir``, placed as the released hub repository places them."""
    files = {}
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(model_dir)
        is_checkpoint = relative.parent == VEXPRESS_DIR and relative.stem in CHECKPOINT_STEMS
        files[relative.name if is_checkpoint else f"model_ckpts/{relative.as_posix()}"] = path
    return files


def write_fake_hf_cache(cache: Path, model_dir: Path = TINY_MODEL_DIR, repo_id: str = DEFAULT_HUB_ID,
                        commit: str = FAKE_COMMIT, ref: str = "main", *, extra: dict[str, bytes] | None = None,
                        files: dict[str, Path | bytes] | None = None) -> FakeHubCache:
    """Write ``model_dir`` into ``cache`` as huggingface_hub caches ``repo_id`` at ``commit``.

    ``extra``: more hub files (path -> content); ``files``: exactly these hub files instead of the model's.
    """
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    contents: dict[str, Path | bytes] = ({**hub_layout_files(model_dir), **UNREAD_FILES} if files is None
                                         else dict(files))
    contents.update(extra or {})
    for hub_path, content in contents.items():
        data = content if isinstance(content, bytes) else None
        digest = hashlib.sha256(data if data is not None else content.read_bytes()).hexdigest()  # type: ignore[union-attr]
        blob = storage / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            blob.write_bytes(data)
        else:
            shutil.copyfile(content, blob)
        link = snapshot / hub_path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    return FakeHubCache(cache, snapshot, repo_id, commit)
