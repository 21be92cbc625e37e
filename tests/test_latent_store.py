"""LatentStore: the same numbers in memory and in a temporary file (issue 8 item 13)."""

from __future__ import annotations

import pytest
import torch

from vexpress_cli.engine.latent_store import LatentStore

SHAPE = (4, 37, 3, 5)  # channels, frames, height, width: 15 values a frame, not a multiple of 16


def stores():
    return LatentStore(*SHAPE, budget_bytes=10**9), LatentStore(*SHAPE, budget_bytes=0)


def test_only_the_store_past_its_budget_uses_a_file():
    memory, disk = stores()
    assert not memory.on_disk and disk.on_disk


def test_seeded_noise_is_the_same_in_a_file_as_one_randn_call():
    memory, disk = stores()
    memory.fill_random(torch.manual_seed(7), 2.0)
    disk.fill_random(torch.manual_seed(7), 2.0)
    expected = torch.randn((1, *SHAPE), generator=torch.manual_seed(7)) * 2.0
    assert torch.equal(memory.read_range(0, 37), expected)
    assert torch.equal(disk.read_range(0, 37), expected)


def test_folded_windows_read_and_add_the_same_in_both():
    window = [30, 31, 32, 33, 34, 35, 36, 35, 34]  # runs past the end and folds back
    frames, values = [30, 31, 32, 33, 34, 35, 36], torch.arange(1 * 4 * 7 * 15, dtype=torch.float32).reshape(1, 4, 7, 3, 5)
    results = []
    for store in stores():
        store.fill_random(torch.manual_seed(1), 1.0)
        store.add(frames, values)
        store.add(frames[:3], values[:, :, :3])
        results.append((store.read(window), store.read_range(0, 37).clone()))
        store.zero()
        assert torch.equal(store.read_range(0, 37), torch.zeros(1, *SHAPE))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[0][0].shape == (1, 4, 9, 3, 5)


def test_chunks_cover_the_video_once():
    memory, disk = stores()
    assert list(memory.chunks(16)) == [(0, 37)]
    assert list(disk.chunks(16)) == [(0, 16), (16, 32), (32, 37)]
    disk.write_range(16, 32, torch.ones(1, 4, 16, 3, 5))
    assert disk.read_range(0, 37).sum() == 4 * 16 * 15
    disk.close()


def test_a_temporary_folder_without_room_is_a_clear_error_at_creation_and_when_it_fills(monkeypatch, tmp_path):
    import errno
    import shutil
    from collections import namedtuple

    from vexpress_cli.engine import latent_store
    from vexpress_cli.errors import VExpressError

    monkeypatch.setattr(latent_store.tempfile, "tempdir", str(tmp_path))
    usage, real_usage = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(latent_store.shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(VExpressError) as raised:
        LatentStore(4, 100, 8, 8, budget_bytes=0)  # 100 KB
    assert raised.value.what.raw.startswith(f"The temporary folder {tmp_path} has no room for this video's latents")
    assert "point TMPDIR at a folder on a disk with room" in raised.value.fix.raw

    monkeypatch.setattr(latent_store.shutil, "disk_usage", real_usage)
    store = LatentStore(4, 100, 8, 8, budget_bytes=0)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latent_store.os, "pwrite", full)
    with pytest.raises(VExpressError, match="has no room for this video's latents"):
        store.fill_random(torch.Generator().manual_seed(0), 1.0)
    store.close()


def test_the_room_check_counts_the_space_other_open_sparse_stores_will_still_take(monkeypatch, tmp_path):
    """Each array fitting alone is not enough: a second sparse store must fit beside the first's promised bytes."""
    import shutil
    from collections import namedtuple

    from vexpress_cli.engine import latent_store
    from vexpress_cli.errors import VExpressError

    monkeypatch.setattr(latent_store.tempfile, "tempdir", str(tmp_path))
    shape = (4, 1000, 25, 25)  # 10 MB, sparse: nothing is written
    real_free = shutil.disk_usage(tmp_path).free
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(latent_store.shutil, "disk_usage", lambda folder: usage(10**9, 0, 15 * 10**6))
    first = LatentStore(*shape, budget_bytes=0)
    with pytest.raises(VExpressError) as raised:
        LatentStore(*shape, budget_bytes=0)
    assert raised.value.what.raw.endswith(
        "(10 MB for each of the two to four arrays denoising keeps; 15 MB free, of which the latents already open in "
        "this process (this job's other arrays, or another job's) will still take 10 MB).")
    first.close()
    LatentStore(*shape, budget_bytes=0).close()  # the first one's promise ended with it

    monkeypatch.setattr(latent_store.shutil, "disk_usage", lambda folder: usage(10**9, 0, real_free))
    with LatentStore(4, 100, 8, 8, budget_bytes=0) as written:
        written.fill_random(torch.Generator().manual_seed(0), 1.0)
        assert written._unwritten_bytes() == 0  # written space is the disk's own count again


def test_a_short_write_is_finished_and_a_write_of_nothing_is_a_full_disk(monkeypatch):
    """A filling disk takes what fits and fails only at the next write: the rest of the latents stayed zero."""
    from vexpress_cli.engine import latent_store
    from vexpress_cli.errors import VExpressError

    real_pwrite = latent_store.os.pwrite
    monkeypatch.setattr(latent_store.os, "pwrite", lambda fd, data, offset: real_pwrite(fd, bytes(data)[:7], offset))
    memory, disk = stores()
    for store in (memory, disk):
        store.fill_random(torch.Generator().manual_seed(3), 1.0)
    assert torch.equal(memory.read_range(0, SHAPE[1]), disk.read_range(0, SHAPE[1]))  # 7 bytes at a time, all of it
    monkeypatch.setattr(latent_store.os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(VExpressError, match="has no room for this video's latents"):
        disk.fill_random(torch.Generator().manual_seed(3), 1.0)
