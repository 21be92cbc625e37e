"""vexpress_cli.media.paste_back: generated frames blended into the whole photo."""

from __future__ import annotations

import numpy as np
import pytest

from vexpress_cli.media.paste_back import PasteBack, even_output_size, feather_mask


def gradient_photo(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack([x + 0 * y, 0 * x + y, (x + y) / 2], axis=2).astype(np.uint8)


def test_output_size_is_the_photo_size_without_an_odd_last_row_or_column():
    assert even_output_size(1281, 721) == (1280, 720)
    assert even_output_size(1280, 720) == (1280, 720)


def test_max_size_caps_the_longest_side_and_keeps_the_shape():
    assert even_output_size(4000, 3000, 1920) == (1920, 1440)
    assert even_output_size(3000, 4000, 1000) == (750, 1000)
    assert even_output_size(800, 600, 1920) == (800, 600)  # never enlarged
    # an odd cap: the longest side is at most it (1919 gave 1920x1440, 999 gave 1000x1000)
    assert even_output_size(4000, 3000, 1919) == (1918, 1438)
    assert even_output_size(1000, 1000, 999) == (998, 998)
    assert even_output_size(3001, 2001, 999) == (998, 666)


def test_feather_mask_is_one_inside_and_falls_towards_zero_at_the_edges():
    mask = feather_mask(100, 80, 10)
    assert mask[40, 50] == 1.0 and mask[15:65, 15:85].min() == 1.0
    assert mask[40, 0] < 0.01 and mask[0, 50] < 0.01
    assert np.all(np.diff(mask[40, :50]) >= 0)  # rising towards the inside


def test_pixels_outside_the_box_are_the_photos_and_its_centre_is_the_frame():
    photo = gradient_photo(321, 200)
    paste = PasteBack(photo, (100, 40, 128, 128))
    frame = np.full((64, 64, 3), 7, dtype=np.uint8)
    output = paste(frame)
    assert output.shape == (200, 320, 3)  # even width: the last column dropped
    outside = np.ones((200, 320), bool)
    outside[40:168, 100:228] = False
    assert np.array_equal(output[outside], photo[:, :320][outside])
    assert np.array_equal(output[60:148, 120:208], np.full((88, 88, 3), 7, np.uint8))
    edge = output[40 + 64, 100 + 2].astype(int)  # inside the soft edge: between photo and frame
    assert np.all(np.abs(edge - photo[104, 102]) < np.abs(7 - photo[104, 102].astype(int)))


def test_a_box_reaching_outside_the_photo_is_clipped_to_it():
    photo = gradient_photo(200, 100)
    output = PasteBack(photo, (-50, -20, 120, 120))(np.zeros((32, 32, 3), np.uint8))
    assert output.shape == (100, 200, 3)
    assert np.array_equal(output[:, 100:], photo[:, 100:])
    assert output[30, 20].max() == 0


def test_max_size_scales_the_photo_and_the_box_together():
    photo = gradient_photo(800, 400)
    paste = PasteBack(photo, (400, 100, 200, 200), max_size=400)
    output = paste(np.zeros((64, 64, 3), np.uint8))
    assert output.shape == (200, 400, 3)
    assert paste.box_size == (100, 100)
    assert output[100, 250].max() == 0  # the box's centre, at (500, 200) in the photo
    assert np.abs(output[20, 20].astype(int) - photo[40, 40]).max() <= 2


def test_frames_of_a_chunk_come_one_by_one():
    paste = PasteBack(gradient_photo(100, 100), (10, 10, 50, 50))
    frames = list(paste.frames(np.zeros((3, 16, 16, 3), np.uint8)))
    assert len(frames) == 3 and all(frame.shape == (100, 100, 3) for frame in frames)


def test_a_box_beside_the_photo_is_refused():
    with pytest.raises(ValueError):
        PasteBack(gradient_photo(100, 100), (200, 200, 50, 50))
