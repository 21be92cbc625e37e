"""A torch.save file whose zip parts are compressed (a zip bomb: a few MB that torch inflates to gigabytes in
memory before any check) is refused before torch.load, as a kps file and as any checkpoint of a model folder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL_DIR
from test_hostile_inputs import peak_growth_mb

from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.kps import load_kps
from vexpress_cli.torch_files import zip_bomb_reason

MB = 1 << 20


def deflated(source: Path, target: Path, padding: int = 0) -> Path:
    """``source`` (a torch.save zip) with every part deflated, and ``padding`` zero bytes after data.pkl's pickle
    (torch stops reading a pickle at its STOP opcode, so the file still loads), written a MB at a time."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as bomb:
        for info in original.infolist():
            packed = zipfile.ZipInfo(info.filename)
            packed.compress_type = zipfile.ZIP_DEFLATED
            with bomb.open(packed, "w", force_zip64=True) as part:
                part.write(original.read(info.filename))
                for _ in range(padding // MB if info.filename.endswith("data.pkl") else 0):
                    part.write(bytes(MB))
    return target


def test_a_kps_file_that_torch_would_inflate_to_300_mb_is_refused_in_little_memory(tmp_path):
    torch.save(torch.full((10, 3, 2), 100.0), tmp_path / "plain.pth")
    bomb = deflated(tmp_path / "plain.pth", tmp_path / "bomb.pth", padding=300 * MB)
    assert bomb.stat().st_size < 2 * MB
    growth, outcome = peak_growth_mb(
        "from vexpress_cli.errors import InputError\n"
        "try:\n    vexpress_cli.kps.io.load_kps('bomb.pth'); print('loaded')\n"
        "except InputError as error:\n    print(error.what.raw)",
        tmp_path,
    )
    assert outcome.startswith("Refused to load the kps file bomb.pth: its part ")
    assert "data.pkl is compressed, which torch.save never does: unpacked, it would take 315 MB" in outcome
    assert growth < 100, f"{growth:.0f} MB"
    assert load_kps(tmp_path / "plain.pth").points.shape == (10, 3, 2)  # the same file stored, as torch writes it


def test_a_part_declaring_more_bytes_than_the_file_holds_is_refused(tmp_path):
    path = tmp_path / "kps.pth"
    torch.save(torch.zeros(4, 3, 2), path)
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"PK\x01\x02")  # the central directory: one 46-byte header and a name per part
    while raw[offset:offset + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = (int.from_bytes(raw[offset + at:offset + at + 2], "little")
                                                     for at in (28, 30, 32))
        if raw[offset + 46:offset + 46 + name_length].endswith(b"data.pkl"):
            raw[offset + 24:offset + 28] = (10**9).to_bytes(4, "little")  # its uncompressed size
        offset += 46 + name_length + extra_length + comment_length
    path.write_bytes(bytes(raw))
    assert zip_bomb_reason(path).endswith("data.pkl declares 1,000,000,000 bytes, more than the whole file holds")


def linked_model(tmp_path: Path) -> Path:
    """A copy of the tiny model whose files are links to the fixture's (a file replaced in it leaves those be)."""
    root = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR, root, copy_function=lambda src, dst: Path(dst).symlink_to(src))
    return root


@pytest.mark.parametrize("part", [pytest.param("v-express/v_kps_guider.bin", marks=pytest.mark.slow),
                                  "wav2vec2-base-960h/pytorch_model.bin",
                                  "sd-vae-ft-mse/diffusion_pytorch_model.bin"])
def test_a_compressed_checkpoint_of_a_model_folder_is_refused_before_it_is_read(tmp_path, part):
    from safetensors.torch import load_file

    from vexpress_cli.engine.loading import load_released_components

    root = linked_model(tmp_path)
    target = root / part
    if target.suffix == ".bin" and not target.exists():  # a torch.save copy in place of the safetensors file
        safetensors = next(target.parent.glob("*.safetensors"))
        torch.save(load_file(safetensors), tmp_path / "plain.bin")
        safetensors.unlink()
    else:
        shutil.copyfile(target, tmp_path / "plain.bin")
        target.unlink()
    deflated(tmp_path / "plain.bin", target)
    first = zipfile.ZipFile(target).infolist()[0].filename
    with pytest.raises(ModelFolderError) as raised:
        load_released_components(root)
    assert raised.value.what.raw.startswith(f"Refused to load the checkpoint {target}: its part {first} is compressed, "
                                            "which torch.save never does")


def test_a_kps_file_stored_as_torch_writes_it_is_not_a_zip_bomb(tmp_path):
    torch.save(torch.zeros(4, 3, 2), tmp_path / "kps.pth")
    assert zip_bomb_reason(tmp_path / "kps.pth") is None
    with pytest.raises(InputError):
        load_kps(deflated(tmp_path / "kps.pth", tmp_path / "bomb.pth"))


def test_a_compressed_part_of_a_saved_pipeline_folder_is_refused_before_diffusers_reads_it(tiny_pipe, tmp_path):
    from vexpress_cli.engine.pipeline import VExpressPipeline

    saved = tmp_path / "saved"
    tiny_pipe.save_pretrained(saved, safe_serialization=False)
    target = next(saved.glob("vae/*.bin"))
    target.rename(tmp_path / "plain.bin")
    deflated(tmp_path / "plain.bin", target)
    with pytest.raises(ModelFolderError) as raised:
        VExpressPipeline.from_pretrained(saved)
    assert raised.value.what.raw.startswith(f"Refused to load the checkpoint {target}: its part ")
