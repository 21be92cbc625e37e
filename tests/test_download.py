"""`vexpress models download` without a network: a fake hub cache in huggingface_hub's own layout.

The offline tests go through the real ``huggingface_hub.snapshot_download`` (local files only);
the "online" tests replace only the two network calls (listing and fetching) and still exercise
file selection, placement into the model-folder layout and the final check.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants as hub_constants
import pytest
from typer.testing import CliRunner

from vexpress_cli.jobs import download
from vexpress_cli.engine import model_folder as layout
from vexpress_cli.engine.model_folder import missing_required_files
from vexpress_cli.jobs.download import download_models
from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.engine.model_folder import ModelFolder

COMMIT = "0123456789abcdef0123456789abcdef01234567"
STORAGE = "models--tk93--V-Express"

# What the hub repository holds: most files under model_ckpts/, the checkpoints at the top level,
# both VAE weight formats, and files vexpress never needs.
HUB_FILES: dict[str, bytes] = {
    "README.md": b"# V-Express",
    "model_ckpts/stable-diffusion-v1-5/unet/config.json": b'{"sample_size": 64}',
    "model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin": b"full SD unet, not needed",
    "model_ckpts/stable-diffusion-v1-5/vae/config.json": b"{}",
    "model_ckpts/sd-vae-ft-mse/config.json": b'{"latent_channels": 4}',
    "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.safetensors": b"vae safetensors",
    "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.bin": b"vae bin, the duplicate",
    "model_ckpts/wav2vec2-base-960h/config.json": b'{"hidden_size": 768}',
    "model_ckpts/wav2vec2-base-960h/preprocessor_config.json": b'{"sampling_rate": 16000}',
    "model_ckpts/wav2vec2-base-960h/pytorch_model.bin": b"wav2vec2 weights",
    "model_ckpts/insightface_models/models/buffalo_l/det_10g.onnx": b"detector",
    "model_ckpts/insightface_models/models/buffalo_l/w600k_r50.onnx": b"recognition, not needed",
    **{f"{stem}.bin": f"{stem} weights".encode() for stem in layout.CHECKPOINT_STEMS},
}
NOT_NEEDED = {
    "README.md",
    "model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin",
    "model_ckpts/stable-diffusion-v1-5/vae/config.json",
    "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.bin",
    "model_ckpts/insightface_models/models/buffalo_l/w600k_r50.onnx",
}
EXPECTED_PLACEMENT = {  # model-folder path -> hub path
    "stable-diffusion-v1-5/unet/config.json": "model_ckpts/stable-diffusion-v1-5/unet/config.json",
    "sd-vae-ft-mse/config.json": "model_ckpts/sd-vae-ft-mse/config.json",
    "sd-vae-ft-mse/diffusion_pytorch_model.safetensors":
        "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
    "wav2vec2-base-960h/config.json": "model_ckpts/wav2vec2-base-960h/config.json",
    "wav2vec2-base-960h/preprocessor_config.json": "model_ckpts/wav2vec2-base-960h/preprocessor_config.json",
    "wav2vec2-base-960h/pytorch_model.bin": "model_ckpts/wav2vec2-base-960h/pytorch_model.bin",
    "insightface_models/models/buffalo_l/det_10g.onnx": "model_ckpts/insightface_models/models/buffalo_l/det_10g.onnx",
    **{f"v-express/{stem}.bin": f"{stem}.bin" for stem in layout.CHECKPOINT_STEMS},
}


def populate_cache(cache: Path, files: dict[str, bytes], ref: str = "main", storage_name: str = STORAGE) -> Path:
    """Write files the way huggingface_hub caches them: blobs + snapshot symlinks + a ref."""
    storage = cache / storage_name
    snapshot = storage / "snapshots" / COMMIT
    for name, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / ref).write_text(COMMIT)
    return snapshot


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("VEXPRESS_MODEL_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("offline mode must not list the hub")

    monkeypatch.setattr(download, "list_hub_files", refuse)


def run_cli(*args: str):
    from vexpress_cli.cli.app import app

    return CliRunner().invoke(app, list(args))


def without_spaces(text: str) -> str:
    return "".join(text.split())


def assert_placed(target: Path, snapshot: Path) -> None:
    placed = {path.relative_to(target).as_posix() for path in target.rglob("*") if path.is_file()}
    assert placed == set(EXPECTED_PLACEMENT)
    for layout_path, hub_path in EXPECTED_PLACEMENT.items():
        assert (target / layout_path).read_bytes() == HUB_FILES[hub_path]
    assert missing_required_files(target) == []
    folder = ModelFolder(target)
    assert folder.unet_config.is_file() and folder.insightface_detector.is_file()
    assert all(folder.checkpoint(stem) is not None for stem in layout.CHECKPOINT_STEMS)


def test_offline_download_places_cached_files_into_the_layout(env, monkeypatch, no_network):
    snapshot = populate_cache(env / "hf-cache", HUB_FILES)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = env / "models"

    result = run_cli("models", "download", "--to", str(target))
    assert result.exit_code == 0, result.output
    assert_placed(target, snapshot)
    # Hard links to the cached blobs: no second copy of multi-gigabyte weights.
    placed = target / "v-express" / "denoising_unet.bin"
    assert placed.stat().st_ino == (snapshot / "denoising_unet.bin").resolve().stat().st_ino
    assert "12 hard-linked" in " ".join(result.output.split())
    assert not list(target.rglob(".*.partial*"))

    again = run_cli("models", "download", "--to", str(target), "--offline")
    assert again.exit_code == 0, again.output
    assert "Complete already" in again.output


def test_download_into_a_folder_takes_the_model_asked_for_not_the_default(env, monkeypatch, no_network):
    """--to ignored --model: it placed tk93/V-Express, or found nothing when only the mirror was cached."""
    snapshot = populate_cache(env / "hf-cache", HUB_FILES, storage_name="models--someone--V-Express-mirror")
    target = env / "models"
    result = run_cli("models", "download", "--model", "someone/V-Express-mirror", "--to", str(target), "--offline")
    assert result.exit_code == 0, result.output
    assert_placed(target, snapshot)
    assert "from someone/V-Express-mirror" in " ".join(result.output.split())


def test_default_download_fills_only_the_cache_and_is_then_found_from_any_folder(env, no_network):
    snapshot = populate_cache(env / "hf-cache", HUB_FILES)
    result = run_cli("models", "download", "--offline")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in env.iterdir()) == ["hf-cache"]  # nothing placed or copied here
    assert "finds these weights from any folder (default tk93/V-Express in the Hugging Face cache)" in \
        " ".join(result.output.split())
    path = run_cli("models", "path")
    assert path.exit_code == 0, path.output
    folder = Path(path.stdout.strip())
    assert folder.is_relative_to(env / "hf-cache") and missing_required_files(folder) == []
    checkpoint = folder / "v-express" / "denoising_unet.bin"
    assert checkpoint.resolve() == (snapshot / "denoising_unet.bin").resolve()  # a link into the cache


@pytest.mark.parametrize("to_folder", [False, True], ids=["cache", "to-folder"])
def test_a_cache_without_the_optional_face_detector_is_complete_for_the_offline_download(env, no_network,
                                                                                         to_folder):
    """generate needs no face detector (dlib stands in): the download says so instead of refusing."""
    detector = "model_ckpts/insightface_models/models/buffalo_l/det_10g.onnx"
    populate_cache(env / "hf-cache", {name: data for name, data in HUB_FILES.items() if name != detector})
    target = env / "models"
    result = run_cli("models", "download", "--offline", *(["--to", str(target)] if to_folder else []))
    assert result.exit_code == 0, result.output
    assert ("Note: no face detector here (optional): extract and auto-crop use dlib instead; run `vexpress models "
            "download` with network access to fetch it.") in " ".join(result.output.split())
    if to_folder:
        assert missing_required_files(target, optional=False) == []
        assert [file.label for file in missing_required_files(target)] == ["face detector"]
    (model,) = json.loads(run_cli("models", "list", "--json").stdout)["models"]
    assert [(revision["missing"], revision["lacking_optional"]) for revision in model["revisions"]] == [
        ([], ["face detector"])]


def test_offline_without_cache_is_a_clear_error_and_writes_nothing(env, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = env / "models"
    result = run_cli("models", "download", "--to", str(target))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = without_spaces(result.output)
    assert without_spaces(f"they are not in the Hugging Face cache at {env / 'hf-cache'}") in message
    assert without_spaces("Offline mode (--offline or HF_HUB_OFFLINE=1)") in message
    assert without_spaces("Run again with network access") in message
    assert not target.exists()


def test_partial_cache_offline_names_the_missing_files(env, no_network):
    partial = {name: data for name, data in HUB_FILES.items() if name != "motion_module.bin"}
    populate_cache(env / "hf-cache", partial)
    with pytest.raises(ModelFolderError, match="only part of the V-Express files; missing: V-Express motion_module"):
        download_models(env / "models", offline=True)
    assert not (env / "models").exists()


def test_files_already_present_are_kept_and_not_requested(env, monkeypatch, no_network):
    populate_cache(env / "hf-cache", HUB_FILES)
    target = env / "models"
    own = target / "v-express" / "reference_net.safetensors"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"my own converted weights")
    report = download_models(target, offline=True)
    assert report.already_present == 1
    assert "v-express/reference_net.bin" not in {item.layout_path for item in report.planned}
    assert own.read_bytes() == b"my own converted weights"
    assert not (target / "v-express" / "reference_net.bin").exists()
    assert missing_required_files(target) == []


class FakeHub:
    """Stands in for the network: lists HUB_FILES and 'downloads' into the cache in hub layout."""

    def __init__(self, cache: Path, sizes: dict[str, int] | None = None):
        self.cache, self.requested = cache, None
        self.sizes = sizes or {}

    def list_files(self, revision, repo_id):
        assert repo_id == layout.HUB_REPO_ID
        return {name: self.sizes.get(name, len(data)) for name, data in HUB_FILES.items()}

    def snapshot_download(self, repo_id, *, revision=None, cache_dir=None, allow_patterns=None,
                          local_files_only=False, **kwargs):
        assert repo_id == layout.HUB_REPO_ID and Path(cache_dir) == self.cache
        assert not local_files_only
        self.requested = sorted(allow_patterns)
        return str(populate_cache(self.cache, {name: HUB_FILES[name] for name in allow_patterns}))


def test_online_download_requests_only_the_needed_files(env, monkeypatch):
    hub = FakeHub(env / "hf-cache")
    monkeypatch.setattr(download, "list_hub_files", hub.list_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    events = []

    report = download_models(env / "models", progress=lambda stage, done, total: events.append((stage, done, total)))

    assert hub.requested == sorted(EXPECTED_PLACEMENT.values())
    assert not NOT_NEEDED & set(hub.requested)
    assert_placed(env / "models", env / "hf-cache" / STORAGE / "snapshots" / COMMIT)
    assert report.bytes_placed == sum(len(HUB_FILES[name]) for name in EXPECTED_PLACEMENT.values())
    assert not report.offline
    total = sum(len(HUB_FILES[name]) for name in EXPECTED_PLACEMENT.values())
    stages = [stage for stage, _, _ in events]
    assert stages[0] == "listing" and stages.index("download") < stages.index("place")  # in this order
    assert ("download", total, total) in events and events[-1] == ("place", total, total)


def test_size_mismatch_with_the_hub_listing_is_reported(env, monkeypatch):
    hub = FakeHub(env / "hf-cache", sizes={"motion_module.bin": 10**9})
    monkeypatch.setattr(download, "list_hub_files", hub.list_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    with pytest.raises(ModelFolderError, match=r"v-express/motion_module\.bin has \d+ bytes, the hub lists 1000000000"):
        download_models(env / "models")


def test_unreachable_hub_falls_back_to_the_cache(env, monkeypatch):
    def unreachable(revision, repo_id):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(download, "list_hub_files", unreachable)
    with pytest.raises(ModelFolderError) as caught:
        download_models(env / "models")
    assert "could not be reached (ConnectionError: Name or service not known)" in str(caught.value)

    populate_cache(env / "hf-cache", HUB_FILES)
    report = download_models(env / "models")
    assert report.offline and missing_required_files(env / "models") == []


def test_unknown_revision_is_an_input_error(env, monkeypatch):
    from huggingface_hub.utils import RevisionNotFoundError

    def no_such_revision(revision, repo_id):
        error = RevisionNotFoundError.__new__(RevisionNotFoundError)
        Exception.__init__(error, "404 Revision Not Found")
        raise error

    monkeypatch.setattr(download, "list_hub_files", no_such_revision)
    with pytest.raises(InputError, match="has no revision 'v9'"):
        download_models(env / "models", revision="v9")


def test_interrupted_copy_leaves_no_partial_file(env, monkeypatch):
    snapshot = populate_cache(env / "hf-cache", {"a.bin": b"0123456789"})

    def no_links(*args):
        raise OSError("cross-device link")

    def broken_copy(source, destination):
        Path(destination).write_bytes(b"01234")  # half written, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(download.os, "link", no_links)
    monkeypatch.setattr(download.shutil, "copyfile", broken_copy)
    destination = env / "models" / "v-express" / "a.bin"
    with pytest.raises(OSError, match="No space left"):
        download._place_file(snapshot / "a.bin", destination)
    assert not destination.exists()
    assert not (env / "models").exists()  # nor the folders made for it


def test_target_under_a_file_fails_before_planning(env, monkeypatch, no_network):
    populate_cache(env / "hf-cache", HUB_FILES)
    (env / "afile").write_text("a file, not a folder")
    result = run_cli("models", "download", "--to", str(env / "afile" / "models"), "--offline")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    folder = env / "afile" / "models"
    assert without_spaces(f"Cannot create the output folder '{folder}'") in without_spaces(result.output)

    def no_cache_lookup(*args, **kwargs):
        raise AssertionError("the cache was searched although the target cannot be written")

    monkeypatch.setattr(download, "cached_snapshot", no_cache_lookup)
    with pytest.raises(InputError, match="is a file, not a folder"):
        download_models(env / "afile" / "deeper" / "models", offline=True)


def test_read_only_target_fails_before_planning(env, monkeypatch, no_network):
    populate_cache(env / "hf-cache", HUB_FILES)

    def read_only(*args, **kwargs):  # as on a read-only disk, where even root cannot write
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("vexpress_cli.outputs.checks.tempfile.mkstemp", read_only)
    with pytest.raises(InputError, match=f"cannot be created: '{env}' is not writable"):
        download_models(env / "models", offline=True)
    assert not (env / "models").exists()


def test_failure_placing_a_file_is_a_model_folder_error(env, monkeypatch, no_network):
    populate_cache(env / "hf-cache", HUB_FILES)

    def no_links(*args):
        raise OSError("cross-device link")

    def full_disk(source, destination):
        raise OSError(28, "No space left on device", str(destination))

    monkeypatch.setattr(download.os, "link", no_links)
    monkeypatch.setattr(download.shutil, "copyfile", full_disk)
    with pytest.raises(ModelFolderError, match="its disk is full") as raised:
        download_models(env / "models", offline=True)
    assert "Cannot place" in raised.value.what and "run `vexpress models download` again" in raised.value.fix
    assert not list((env / "models").rglob(".*.partial*"))


def test_an_unreachable_hub_is_one_clean_message_after_one_try(env, monkeypatch):
    """Issue 8 item 6: offline, `models download` printed huggingface_hub's retry lines for ~25 s."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    connections = []

    def hang_up():  # every connection is closed at once, as a dead proxy would
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            connections.append(client)
            client.close()

    threading.Thread(target=hang_up, daemon=True).start()
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        result = run_cli("models", "download", "--to", str(env / "models"))
    finally:
        server.close()
    assert result.exit_code == 2, result.output
    assert "The Hugging Face Hub could not be reached" in " ".join(result.output.split())
    assert "Retrying" not in result.output and "Traceback" not in result.output
    assert len(connections) == 1


def test_download_to_a_folder_names_the_folder_only_once_it_succeeded(env, no_network):
    """`models download --offline --to X` printed "Model folder: X" and then failed."""
    target = env / "models"
    failed = run_cli("models", "download", "--offline", "--to", str(target))  # an empty cache
    assert failed.exit_code == 2 and "Model folder:" not in failed.output
    populate_cache(env / "hf-cache", HUB_FILES)
    done = run_cli("models", "download", "--offline", "--to", str(target))
    assert done.exit_code == 0, done.output
    assert without_spaces(f"Model folder: {target} (--to, from ") in without_spaces(done.output)


def test_a_progress_that_cannot_be_called_is_refused_before_anything_is_fetched(tmp_path):
    """Both download jobs check their callback as every other job does; it was a TypeError at the first report."""
    from vexpress_cli.jobs.model_cache import download_to_cache

    for job in (lambda: download_models(tmp_path / "weights", progress=5), lambda: download_to_cache(progress=5)):
        with pytest.raises(InputError, match=r"^progress is int 5, which cannot be called\."):
            job()
    assert not (tmp_path / "weights").exists()
