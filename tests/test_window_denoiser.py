"""The per-step window loop (engine/window_denoiser.py): V-Kps features once per job, window groups and
several windows per UNet call give the numbers of the one-window-at-a-time loop."""

from __future__ import annotations


import pytest
import torch

from vexpress_cli import VExpressPipeline
from vexpress_cli.engine.context_windows import context_windows
from vexpress_cli.engine.window_denoiser import WindowOptions, choose_window_batch, window_groups

from conftest import TINY_MODEL_DIR

pytestmark = pytest.mark.usefixtures("like_the_real_command")


@pytest.fixture(scope="module")
def pipe():
    return VExpressPipeline.from_pretrained(TINY_MODEL_DIR, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def job(windowed_golden_job):
    return windowed_golden_job


def denoise(pipe, job, **options) -> torch.Tensor:
    before = pipe.window_options
    pipe.window_options = WindowOptions(**options)
    try:
        return pipe.denoise(generator=torch.manual_seed(4), **job)
    finally:
        pipe.window_options = before


def count_guider_runs(pipe, monkeypatch) -> list[int]:
    runs = []
    original = pipe.kps_features
    monkeypatch.setattr(pipe, "kps_features", lambda images: runs.append(images.shape[2]) or original(images))
    return runs


@pytest.mark.slow
def test_cached_kps_features_give_identical_latents_to_per_step_ones(pipe, job, monkeypatch):
    runs = count_guider_runs(pipe, monkeypatch)
    per_step = denoise(pipe, job, kps_cache_bytes=0)
    per_step_runs = len(runs)
    runs.clear()
    cached = denoise(pipe, job)
    windows = len(context_windows(job["video_length"], job["context_frames"], job["context_overlap"]))
    assert per_step_runs == windows * job["num_inference_steps"]
    assert len(runs) == windows  # once per job
    assert torch.equal(cached, per_step)


@pytest.mark.slow
def test_window_groups_give_identical_latents_to_one_window_at_a_time(pipe, job):
    one_group = denoise(pipe, job)
    one_window_per_group = denoise(pipe, job, group_bytes=0)
    assert torch.equal(one_group, one_window_per_group)


@pytest.mark.parametrize("window_batch", [2, 3])
@pytest.mark.slow
def test_several_windows_per_unet_call_match_one_at_a_time(pipe, job, window_batch):
    alone = denoise(pipe, job, window_batch=1)
    batched = denoise(pipe, job, window_batch=window_batch)
    assert (batched - alone).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_window_batch_without_guidance_matches_one_at_a_time(pipe, job):
    unguided = {**job, "guidance_scale": 1.0}
    alone = denoise(pipe, unguided, window_batch=1)
    batched = denoise(pipe, unguided, window_batch=2)
    assert (batched - alone).abs().max().item() <= 1e-4


def test_groups_cover_every_window_once_in_order_within_their_frame_budget():
    windows = context_windows(100, 24, 4)
    for budget in (1, 24, 30, 50, 1000):
        groups = window_groups(windows, budget)
        assert [number for group in groups for number in group.numbers] == list(range(len(windows)))
        for group in groups:
            frames = {frame for number in group.numbers for frame in windows[number]}
            assert group.start == min(frames) and group.stop == max(frames) + 1
            assert group.stop - group.start <= max(budget, 24)


def test_automatic_window_batch_is_one_on_the_cpu():
    cpu = torch.device("cpu")
    assert choose_window_batch(0, cpu, torch.float32) == 1
    assert choose_window_batch(3, cpu, torch.float32) == 3


def test_automatic_window_batch_on_cuda_follows_free_memory_and_is_one_when_compiled_or_saving_memory(monkeypatch):
    """3.75 GiB per fp16 window at 512x512, 70 % of free memory, at most 4; compiled or save_gpu_memory: 1."""
    cuda = torch.device("cuda")
    free = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 140 * 2**30))
    for free_gib, expected in [(4, 1), (11, 2), (17, 3), (60, 4)]:
        free["bytes"] = free_gib * 2**30
        assert choose_window_batch(0, cuda, torch.float16) == expected, free_gib
        assert choose_window_batch(0, cuda, torch.float16, compiled=True) == 1
        assert choose_window_batch(0, cuda, torch.float16, save_gpu_memory=True) == 1
    free["bytes"] = 11 * 2**30
    assert choose_window_batch(0, cuda, torch.float32) == 1  # fp32 windows take twice the memory
    assert choose_window_batch(2, cuda, torch.float16, compiled=True) == 2  # asked for is what it gets
