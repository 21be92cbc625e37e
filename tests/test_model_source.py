"""engine.model_source: a folder passes through; a hub id resolves through a fake Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import TINY_MODEL_DIR
from fake_hub import FAKE_COMMIT, write_fake_hf_cache

from vexpress_cli.engine.model_folder import CHECKPOINT_STEMS, ModelFolder
from vexpress_cli.engine.model_source import (
    DEFAULT_HUB_ID,
    ESTIMATED_DOWNLOAD,
    HubSource,
    parse_hub_id,
    resolve_model_folder,
)
from vexpress_cli.errors import InputError, ModelFolderError


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_a_folder_passes_through_resolved():
    assert resolve_model_folder(TINY_MODEL_DIR) == TINY_MODEL_DIR.resolve()
    assert resolve_model_folder(str(TINY_MODEL_DIR)) == TINY_MODEL_DIR.resolve()


def test_a_missing_folder_is_a_model_folder_error_naming_the_download(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist") as caught:
        resolve_model_folder(tmp_path / "nowhere")
    assert "vexpress models download" in str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("tk93/V-Express", HubSource("tk93/V-Express")),
    ("tk93/V-Express@v1.0", HubSource("tk93/V-Express", "v1.0")),
    (f"tk93/V-Express@{FAKE_COMMIT}", HubSource("tk93/V-Express", FAKE_COMMIT)),
    ("model_ckpts", None),
    ("/abs/model_ckpts", None),
    ("a/b/c", None),
    ("../V-Express", None),
    ("tk93/V-Express@", None),
])
def test_parse_hub_id_accepts_owner_name_and_an_optional_revision_only(text, expected):
    assert parse_hub_id(text) == expected


def test_hub_id_resolves_to_a_folder_in_the_released_layout_with_the_tiny_models_files(fake_hf_cache):
    folder = resolve_model_folder(DEFAULT_HUB_ID)

    resolved = files_under(folder)
    assert {name: resolved.get(name) for name in files_under(TINY_MODEL_DIR)} == files_under(TINY_MODEL_DIR)
    assert "stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin" in resolved  # the rest of model_ckpts/ too
    model = ModelFolder(folder)
    assert all(model.checkpoint(stem) is not None for stem in CHECKPOINT_STEMS)


def test_hub_layout_view_links_into_the_snapshot_and_writes_nothing_into_it(fake_hf_cache):
    before = sorted(path.relative_to(fake_hf_cache.snapshot) for path in fake_hf_cache.snapshot.rglob("*"))

    folder = resolve_model_folder(DEFAULT_HUB_ID)

    after = sorted(path.relative_to(fake_hf_cache.snapshot) for path in fake_hf_cache.snapshot.rglob("*"))
    assert after == before
    checkpoint = folder / "v-express" / "reference_net.bin"
    assert checkpoint.is_symlink()  # a link, not a copy
    assert checkpoint.resolve() == (fake_hf_cache.snapshot / "reference_net.bin").resolve()
    assert resolve_model_folder(DEFAULT_HUB_ID) == folder  # the view is reused


def test_hub_id_with_a_commit_revision_resolves_to_that_snapshot(fake_hf_cache):
    by_commit = resolve_model_folder(f"{DEFAULT_HUB_ID}@{FAKE_COMMIT}")
    assert ModelFolder(by_commit).checkpoint("reference_net").read_bytes() == \
        (TINY_MODEL_DIR / "v-express" / "reference_net.bin").read_bytes()
    assert resolve_model_folder(DEFAULT_HUB_ID, revision=FAKE_COMMIT) == by_commit


def test_two_different_revisions_are_an_input_error(fake_hf_cache):
    with pytest.raises(InputError, match="Two revisions"):
        resolve_model_folder(f"{DEFAULT_HUB_ID}@main", revision="v2")


def test_snapshot_with_checkpoints_inside_model_ckpts_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    cache = write_fake_hf_cache(tmp_path / "cache")
    for stem in CHECKPOINT_STEMS:  # as if the repository had them under model_ckpts/v-express/
        os.replace(cache.snapshot / f"{stem}.bin", cache.snapshot / "model_ckpts" / "v-express" / f"{stem}.bin")

    folder = resolve_model_folder(DEFAULT_HUB_ID, local_files_only=True)

    assert folder == cache.snapshot / "model_ckpts"


def test_hf_hub_cache_takes_precedence_over_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    cache = write_fake_hf_cache(tmp_path / "cache")

    folder = resolve_model_folder(DEFAULT_HUB_ID, local_files_only=True)

    assert folder.is_relative_to(cache.cache)


def test_an_empty_cache_offline_says_the_download_command_and_its_size(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(ModelFolderError) as caught:
        resolve_model_folder(DEFAULT_HUB_ID)

    message = str(caught.value)
    assert "`vexpress models download`" in message and ESTIMATED_DOWNLOAD in message
    assert str(tmp_path / "empty") in message


def test_an_uncached_revision_offline_names_it_in_the_download_command(fake_hf_cache):
    with pytest.raises(ModelFolderError) as caught:
        resolve_model_folder(f"{DEFAULT_HUB_ID}@v9")
    assert "`vexpress models download --revision v9`" in str(caught.value)


def test_pipeline_loads_by_hub_id_from_the_fake_cache(fake_hf_cache):
    import torch

    from vexpress_cli.engine.pipeline import VExpressPipeline

    by_hub = VExpressPipeline.from_pretrained(resolve_model_folder(DEFAULT_HUB_ID))
    by_folder = VExpressPipeline.from_pretrained(TINY_MODEL_DIR)

    for name in ("vae", "reference_net", "denoising_unet", "v_kps_guider", "audio_encoder", "audio_projection"):
        hub_state = getattr(by_hub, name).state_dict()
        folder_state = getattr(by_folder, name).state_dict()
        assert hub_state.keys() == folder_state.keys(), name
        assert all(torch.equal(tensor, hub_state[key]) for key, tensor in folder_state.items()), name


def test_a_download_asks_for_one_file_per_required_file_in_the_preferred_format(tmp_path, monkeypatch):
    """Not local-only: the repository listing decides what snapshot_download may fetch (network replaced)."""
    import huggingface_hub

    from fake_hub import hub_layout_files

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    listed = [*hub_layout_files(TINY_MODEL_DIR), "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.bin",
              "model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin",
              "model_ckpts/insightface_models/models/buffalo_l/det_10g.onnx", "README.md"]
    asked = {}

    def fake_download(repo_id, **options):
        if options["local_files_only"]:  # the empty cache is looked at first
            raise huggingface_hub.utils.LocalEntryNotFoundError("nothing cached")
        asked.update(options)
        return str(write_fake_hf_cache(tmp_path / "cache").snapshot)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, revision=None: listed)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)

    resolve_model_folder(DEFAULT_HUB_ID, local_files_only=False)

    patterns = set(asked["allow_patterns"])
    assert asked["local_files_only"] is False
    assert "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.safetensors" in patterns
    assert "model_ckpts/sd-vae-ft-mse/diffusion_pytorch_model.bin" not in patterns  # one format only
    assert not patterns & {"model_ckpts/stable-diffusion-v1-5/unet/diffusion_pytorch_model.bin", "README.md"}
    assert {"reference_net.bin", "model_ckpts/v-express/config.json"} <= patterns
    assert len(patterns) == 13  # 12 required files + the tiny model's architecture overrides


def online(monkeypatch) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)


def test_a_complete_cached_snapshot_is_used_without_asking_the_hub(fake_hf_cache, monkeypatch):
    """No network here would otherwise mean about 30 s of huggingface_hub's retries before the cache is used."""
    online(monkeypatch)

    def network(*args, **kwargs):
        raise AssertionError("the Hub was asked although the cache holds every file")

    monkeypatch.setattr("vexpress_cli.engine.model_source._files_to_fetch", network)
    folder = resolve_model_folder(DEFAULT_HUB_ID)
    assert ModelFolder(folder).checkpoint("denoising_unet") is not None


def test_an_incomplete_cached_snapshot_is_fetched_and_an_unreachable_hub_is_named(fake_hf_cache, monkeypatch):
    online(monkeypatch)
    (fake_hf_cache.snapshot / "reference_net.bin").unlink()

    class ConnectError(Exception):
        pass

    def network(*args, **kwargs):
        raise ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr("vexpress_cli.engine.model_source._files_to_fetch", network)
    with pytest.raises(ModelFolderError) as error:
        resolve_model_folder(DEFAULT_HUB_ID)
    assert error.value.why == ("Fetching it failed: the Hugging Face Hub could not be reached, ConnectError: "
                               "[Errno -2] Name or service not known.")


def test_a_damaged_file_in_the_cache_is_fixed_by_deleting_its_blob_first(fake_hf_cache):
    from vexpress_cli.engine.checkpoints import read_checkpoint

    link = fake_hf_cache.snapshot / "audio_projection.bin"
    blob = link.resolve()
    blob.write_bytes(blob.read_bytes()[:-200])
    with pytest.raises(ModelFolderError) as error:
        read_checkpoint(link)
    assert error.value.fix == (f"Delete its damaged copy in the Hugging Face cache (rm {blob}), then run "
                               "`vexpress models download`.")
