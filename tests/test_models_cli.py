"""The weights from the Hugging Face cache, from any folder: generate, models path/list/download (fake cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR, flat
from fake_hub import FAKE_COMMIT, hub_layout_files, write_fake_hf_cache
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.engine.model_source import DEFAULT_HUB_ID
from vexpress_cli.jobs import model_cache

DETECTOR = "model_ckpts/insightface_models/models/buffalo_l/det_10g.onnx"


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def empty_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path / "config"))
    return folder


@pytest.mark.slow
def test_generate_from_an_empty_folder_without_model_dir_finds_the_cached_weights(fake_hf_cache, empty_folder,
                                                                                  speech):
    """The real command in a fresh process: HF_HOME and HF_HUB_OFFLINE=1 as a user would set them."""
    vexpress = Path(sys.executable).with_name("vexpress")
    env = {**os.environ, "VEXPRESS_CONFIG_DIR": os.environ["VEXPRESS_CONFIG_DIR"]}
    for name in ("VEXPRESS_MODEL_DIR", "VEXPRESS_MODEL", "HF_HUB_CACHE"):
        env.pop(name, None)
    completed = subprocess.run(
        [str(vexpress), "generate", "-i", str(SAMPLES_DIR / "tys" / "ref.jpg"), "-a", str(speech),
         "-o", "out.mp4", "--width", "64", "--height", "64", "--num_inference_steps", "1",
         "--reference-kps", "22,26;42,26;32,38", "--retarget_strategy", "fix_face", "--json"],
        cwd=empty_folder, env=env, capture_output=True, text=True, timeout=300)

    assert completed.returncode == 0, completed.stderr
    assert (empty_folder / "out.mp4").is_file()
    record = json.loads((empty_folder / "out.mp4.json").read_text())
    model_folder = Path(record["model"]["folder"])
    assert model_folder.is_relative_to(fake_hf_cache.cache)
    assert {entry["name"] for entry in record["model"]["files"]} >= {
        "v-express/reference_net.bin", "v-express/denoising_unet.bin",
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"}


def test_models_path_explains_the_cached_default(fake_hf_cache, empty_folder):
    result = run_cli("models", "path", "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["how"] == f"default {DEFAULT_HUB_ID} in the Hugging Face cache"
    assert found["source"] == DEFAULT_HUB_ID
    assert Path(found["path"]).is_relative_to(fake_hf_cache.cache)
    assert "./model_ckpts when present: not present" in found["skipped"]


def test_models_path_of_an_incomplete_snapshot_names_what_it_lacks_and_exits_2(fake_hf_cache, empty_folder):
    """It exited 0, so the scripted check of docs/models.md took an incomplete folder for usable weights."""
    (fake_hf_cache.snapshot / "reference_net.bin").unlink()
    result = run_cli("models", "path", "--json")
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["lacks"] == ["v-express/reference_net.bin"]  # still there for a script
    human = run_cli("models", "path")
    assert human.exit_code == 2 and "Traceback" not in human.output
    assert "It lacks v-express/reference_net.bin, so generate would stop there. `vexpress models download` fetches " \
        "them." in flat(human.stderr)


def test_models_path_with_a_revision_and_with_an_uncached_one(fake_hf_cache, empty_folder):
    pinned = run_cli("models", "path", "--model", f"{DEFAULT_HUB_ID}@{FAKE_COMMIT}", "--json")
    assert pinned.exit_code == 0, pinned.output
    assert json.loads(pinned.stdout)["how"] == "--model"

    missing = run_cli("models", "path", "--model", f"{DEFAULT_HUB_ID}@v9")
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert "`vexpress models download --revision v9`" in flat(missing.output)


def test_a_model_ckpts_folder_here_beats_the_cache(fake_hf_cache, empty_folder):
    (empty_folder / "model_ckpts").mkdir()
    result = run_cli("models", "path", "--json")
    assert json.loads(result.stdout)["path"] == str((empty_folder / "model_ckpts").resolve())


def test_an_empty_model_ckpts_folder_here_fails_models_path_and_says_it_hides_the_cached_weights(fake_hf_cache,
                                                                                                 empty_folder):
    """An empty ./model_ckpts (left from the original's layout) passed `models path` while generate failed on it."""
    (empty_folder / "model_ckpts").mkdir()
    result = run_cli("models", "path")
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = flat(result.stderr)
    assert "./model_ckpts is looked at before the cache, so it hides the complete weights in the Hugging Face " \
        "cache (" in message
    assert "Or remove (or rename) the folder ./model_ckpts, or run vexpress from another folder." in message


def test_models_list_shows_the_cached_revision_its_size_and_what_it_lacks(fake_hf_cache, empty_folder):
    result = run_cli("models", "list", "--json")

    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["cache"] == str(fake_hf_cache.cache)
    (model,) = listing["models"]
    (revision,) = model["revisions"]
    tiny_bytes = sum(path.stat().st_size for path in hub_layout_files(TINY_MODEL_DIR).values())
    assert (model["repo_id"], revision["commit"], revision["refs"]) == (DEFAULT_HUB_ID, FAKE_COMMIT, ["main"])
    assert revision["size_on_disk"] >= tiny_bytes
    assert (revision["missing"], revision["lacking_optional"]) == ([], ["face detector"])  # the tiny model has none

    table = run_cli("models", "list")
    row = next(line for line in table.output.splitlines() if DEFAULT_HUB_ID in line)
    assert "yes (no face" in row and "lacks" not in table.output


def test_models_without_a_subcommand_lists_the_cache_and_exits_0_as_presets_does(fake_hf_cache, empty_folder):
    """`vexpress models` printed its help and exited 2, while `vexpress presets` lists and exits 0."""
    result = run_cli("models")
    assert result.exit_code == 0, result.output
    assert result.stdout == run_cli("models", "list").stdout and DEFAULT_HUB_ID in result.stdout
    assert "`vexpress models path`" in flat(result.stderr)


def test_models_list_of_an_empty_cache_says_how_to_fill_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nothing"))
    result = run_cli("models", "list")
    assert result.exit_code == 0 and "`vexpress models download` fetches them" in flat(result.output)


def test_download_fetches_one_file_per_required_file_into_the_cache_and_copies_nothing(tmp_path, monkeypatch):
    """The two network calls replaced: the listing (the repository as the hub lists it) and the fetch."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "hub-repo"
    repo = write_fake_hf_cache(source, extra={DETECTOR: b"detector"})
    listing = {path.relative_to(repo.snapshot).as_posix(): path.stat().st_size
               for path in repo.snapshot.rglob("*") if path.is_file()}
    requested = []

    def fetch(chosen, revision, cache_folder, progress, repo_id):
        requested.extend(item.hub_path for item in chosen)
        return write_fake_hf_cache(cache_folder, files={path: repo.snapshot / path for path in requested}).snapshot

    monkeypatch.setattr(model_cache, "list_hub_files", lambda revision, repo_id: listing)
    monkeypatch.setattr(model_cache, "fetch_files", fetch)

    result = run_cli("models", "download")

    assert result.exit_code == 0, result.output
    assert "model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin" not in requested
    assert "README.md" not in requested and len(requested) == 12
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "hub-repo"]  # nothing placed here
    assert "finds these weights from any folder" in flat(result.output)


def test_download_fetches_again_a_cached_file_cut_short_or_of_another_size_than_the_hub_lists(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    repo = write_fake_hf_cache(tmp_path / "hub-repo", extra={DETECTOR: b"detector"})
    listing = {path.relative_to(repo.snapshot).as_posix(): path.stat().st_size
               for path in repo.snapshot.rglob("*") if path.is_file()}
    cached = write_fake_hf_cache(cache, extra={DETECTOR: b"detector"})
    vae = "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.safetensors"
    cut = cached.snapshot / vae
    cut.resolve().write_bytes(cut.read_bytes()[:100])  # its header promises more than the file holds
    listing[vae] = None  # a size the Hub does not list: judged from the file itself
    listing["denoising_unet.bin"] += 1  # the Hub lists another size than the cache holds
    requested = []

    def fetch(chosen, revision, cache_folder, progress, repo_id):
        requested.extend(item.hub_path for item in chosen if not (cached.snapshot / item.hub_path).exists())
        return write_fake_hf_cache(cache_folder, files={path: repo.snapshot / path for path in requested}).snapshot

    monkeypatch.setattr(model_cache, "list_hub_files", lambda revision, repo_id: listing)
    monkeypatch.setattr(model_cache, "fetch_files", fetch)

    report = model_cache.download_to_cache()

    assert sorted(requested) == ["denoising_unet.bin", vae]
    assert (cached.snapshot / vae).read_bytes() == (repo.snapshot / vae).read_bytes()
    assert report.replaced[0].startswith(f"{vae} (damaged")
    size = (repo.snapshot / "denoising_unet.bin").stat().st_size
    assert report.replaced[1] == f"denoising_unet.bin ({size} bytes, the Hub lists {size + 1})"
    requested.clear()
    listing["denoising_unet.bin"] -= 1
    cut.resolve().write_bytes(b"")
    again = run_cli("models", "download")
    assert again.exit_code == 0, again.output
    assert requested == [vae] and "damaged in the cache, fetched again: " in flat(again.output)


def test_the_face_detector_is_found_in_the_cached_weights_from_any_folder(tmp_path, monkeypatch, empty_folder):
    """extract and retarget look for det_10g.onnx where the weights resolve, the Hugging Face cache included."""
    from test_face_insightface import build_fake_det_10g

    from vexpress_cli.face import choose_backend
    from vexpress_cli.settings.model_lookup import face_model_root

    detector = tmp_path / "det_10g.onnx"
    build_fake_det_10g(detector)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_fake_hf_cache(tmp_path / "cache", extra={DETECTOR: detector.read_bytes()})

    root = face_model_root()

    assert root is not None and root.is_relative_to(tmp_path / "cache")
    name, reason = choose_backend("auto", root)
    assert name == "insightface" and "det_10g.onnx" in reason


def test_without_weights_anywhere_face_detection_keeps_its_own_default(tmp_path, monkeypatch, empty_folder):
    from vexpress_cli.settings.model_lookup import face_model_root

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nothing"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert face_model_root() is None


def test_models_list_does_not_call_the_caches_marker_files_skipped_repositories(fake_hf_cache):
    """transformers and diffusers write version files into the cache, which huggingface_hub's scan reports."""
    (fake_hf_cache.cache / "version.txt").write_text("1")
    (fake_hf_cache.cache / "version_diffusers_cache.txt").write_text("1")
    (fake_hf_cache.cache / "notes").mkdir()
    result = run_cli("models", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == [] and "Warning" not in result.stderr


def test_models_list_on_a_cache_huggingface_hub_cannot_read_is_one_paragraph(fake_hf_cache):
    """A refs/ file that is not UTF-8 made huggingface_hub's scan raise UnicodeDecodeError: a traceback."""
    refs = next(fake_hf_cache.cache.glob("models--*")) / "refs" / "main"
    refs.write_bytes(b"\xff\xfe not a commit")
    result = run_cli("models", "list")
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: Cannot read the Hugging Face cache {fake_hf_cache.cache}. A file in it is not "
                              "what huggingface_hub writes ('utf-8' codec can't decode byte 0xff")
    assert "delete it, and download the model again" in message


def test_models_list_names_a_repository_huggingface_hub_skipped_for_a_missing_blob(fake_hf_cache):
    blob = (fake_hf_cache.snapshot / "reference_net.bin").resolve()
    blob.unlink()  # the snapshot's link stays, the file it leads to is gone
    result = run_cli("models", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == [f"Blob missing (broken symlink): {blob}"]
    unwrapped = "".join(result.stderr.split())  # rich wraps the long path anywhere
    assert "".join(f"Warning: a cached repository was skipped: Blob missing (broken symlink): {blob}.".split()) \
        in unwrapped
