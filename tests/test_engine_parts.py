"""Context windows, the streamed median filter and the pipeline's frame bookkeeping."""

from __future__ import annotations

import json

import pytest
import torch

from vexpress_cli.engine.context_windows import context_windows, windows_per_frame
from vexpress_cli.engine.window_denoiser import last_occurrences
from vexpress_cli.engine.median_filter import median_filter_stream

from conftest import GOLDEN_DIR


@pytest.mark.parametrize("size,overlap", [(24, 4), (12, 4), (8, 2), (16, 0), (5, 4)])
def test_every_frame_is_in_some_window_for_any_length(size, overlap):
    for num_frames in range(1, 160):
        windows = context_windows(num_frames, size, overlap)
        assert set().union(*windows) == set(range(num_frames))
        assert all(len(window) == min(size, num_frames) for window in windows)


def test_windows_fold_back_at_the_end_like_the_original():
    assert context_windows(12, 8, 2) == [[0, 1, 2, 3, 4, 5, 6, 7], [6, 7, 8, 9, 10, 11, 10, 9]]
    assert windows_per_frame(context_windows(12, 8, 2), 12) == [1] * 6 + [2, 2] + [1] * 4


def test_no_frames_are_dropped_where_the_original_truncated_and_its_windows_come_first():
    # The original cut the video to whole windows; context_windows.json records how many and where they ended.
    for key, original in json.loads((GOLDEN_DIR / "context_windows.json").read_text()).items():
        num_frames, size, overlap = map(int, key.split("_"))
        windows = context_windows(num_frames, size, overlap)
        assert max(max(window) for window in windows) == num_frames - 1
        theirs = windows[:original["num_context"]]  # ours, over the frames the original kept: the same windows
        assert theirs == [list(range(start, start + size)) for start in range(0, len(theirs) * (size - overlap),
                                                                               size - overlap)]
        assert len(theirs) == original["num_context"] and theirs[-1][-1] == original["last_end"]


def test_last_occurrence_of_a_repeated_frame_wins():
    assert last_occurrences([6, 7, 8, 9, 10, 11, 10, 9]) == ([6, 7, 8, 9, 10, 11], [0, 1, 2, 7, 6, 5])


def test_bad_context_is_rejected():
    with pytest.raises(ValueError):
        context_windows(10, 4, 4)


def reference_median(video: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(video, (1, 1, 1, 1, 1, 1), mode="reflect")
    channels, frames, height, width = video.shape
    blocks = padded.unfold(1, 3, 1).unfold(2, 3, 1).unfold(3, 3, 1)
    return blocks.reshape(channels, frames, height, width, 27).median(dim=-1).values


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 40])
def test_streamed_median_equals_whole_video_median(chunk):
    video = torch.rand(3, 17, 9, 11, generator=torch.manual_seed(0))
    streamed = torch.cat(list(median_filter_stream(video.split(chunk, dim=1))), dim=1)
    assert torch.equal(streamed, reference_median(video))


def test_median_of_8bit_frames_is_the_8bit_median():
    video = torch.rand(3, 6, 8, 8, generator=torch.manual_seed(1))
    as_bytes = (video * 255).to(torch.uint8)
    streamed = torch.cat(list(median_filter_stream(as_bytes.split(2, dim=1))), dim=1)
    assert torch.equal(streamed, (reference_median(video) * 255).to(torch.uint8))


def test_single_frame_video_is_filtered_as_the_frame_repeated_three_times():
    frame = torch.rand(3, 1, 5, 5, generator=torch.manual_seed(3))
    (out,) = list(median_filter_stream([frame]))
    expected = reference_median(frame.repeat(1, 3, 1, 1))[:, 1:2]
    assert out.shape == frame.shape and not torch.equal(out, frame) and torch.equal(out, expected)


def test_median_is_exact_with_many_ties():
    video = torch.randint(0, 3, (3, 9, 7, 6), generator=torch.manual_seed(2)).to(torch.uint8)
    streamed = torch.cat(list(median_filter_stream(video.split(4, dim=1))), dim=1)
    assert torch.equal(streamed, reference_median(video.float()).to(torch.uint8))
