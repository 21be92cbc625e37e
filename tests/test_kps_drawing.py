"""V-Kps drawing: pixel-exact with the images the released model was trained on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import GOLDEN_DIR
from safetensors.torch import load_file

from vexpress_cli.kps import draw_kps_image, iter_kps_images

GOLDEN = GOLDEN_DIR / "golden.safetensors"
GOLDEN_KPS = [[20.3, 25.7], [44.1, 24.9], [31.6, 38.2]]


@pytest.fixture(scope="module")
def golden():
    return load_file(GOLDEN)


@pytest.mark.parametrize("as_type", [np.float32, np.float64, torch.tensor])
def test_matches_the_golden_image(golden, as_type):
    kps = as_type(np.array(GOLDEN_KPS, dtype=np.float32)) if as_type is torch.tensor else np.array(GOLDEN_KPS, as_type)
    image = draw_kps_image(64, 64, kps)
    expected = golden["draw_kps"].numpy()
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert np.array_equal(image, expected)


def test_colours_and_shapes():
    image = draw_kps_image(100, 100, [[20.0, 30.0], [80.0, 30.0], [50.0, 70.0]])
    assert tuple(image[30, 20]) == (255, 0, 0)  # left eye: red dot
    assert tuple(image[30, 80]) == (0, 255, 0)  # right eye: green dot
    assert tuple(image[70, 50]) == (0, 0, 255)  # nose: blue dot
    assert tuple(image[50, 35]) == (153, 0, 0)  # left eye-nose limb at 60 %
    assert tuple(image[50, 65]) == (0, 153, 0)  # right eye-nose limb at 60 %
    assert tuple(image[5, 5]) == (0, 0, 0)
    # Exactly the five colours, nothing else.
    colours = {tuple(pixel) for pixel in image.reshape(-1, 3)}
    assert colours == {(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (153, 0, 0), (0, 153, 0)}


def test_points_off_canvas_are_not_fatal_and_the_limbs_crossing_it_are_drawn():
    image = draw_kps_image(32, 48, [[-10.0, -10.0], [60.0, 5.0], [24.0, 40.0]])
    assert image.shape == (32, 48, 3)
    assert image.any()


def test_sequence_iterator_draws_each_frame_freshly(golden):
    track = golden["kps_sequence"].numpy()
    frames = list(iter_kps_images(64, 64, track))
    assert len(frames) == len(track)
    for frame, kps in zip(frames, track, strict=True):
        assert np.array_equal(frame, draw_kps_image(64, 64, kps))
    frames[0][:] = 7  # callers own what they get
    assert not np.array_equal(frames[0], frames[1])


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="3 points"):
        draw_kps_image(64, 64, np.zeros((5, 2)))


@pytest.mark.parametrize("far", [1e12, 3e38, -1e12, -3e38])
def test_absurd_coordinates_are_drawn_without_a_traceback(far):
    """Issue 8 item 9: keypoints at 1e12 or 3e38 px crashed cv2 (OverflowError, "Can't parse 'center'").
    What lies on the canvas is still drawn: the other discs, and the limb towards the far point."""
    points = np.array([[far, 40.0], [44.0, 25.0], [31.0, 38.0]], dtype=np.float32)
    image = draw_kps_image(64, 64, points)
    assert tuple(image[25, 44]) == (0, 255, 0) and tuple(image[38, 31]) == (0, 0, 255)
    assert not (image == (255, 0, 0)).all(axis=2).any()  # the far disc is off the canvas
    everything_far = draw_kps_image(64, 64, np.full((3, 2), far, dtype=np.float32))
    assert not everything_far.any()


def test_a_limb_to_a_far_point_keeps_its_direction():
    """Issue 8 item 9: a limb cut at the drawing limit still points where it did: limbs from the nose to
    (1e12, 40) and to (1e6, 40) look the same on the canvas."""
    nose = [32.0, 40.0]
    near = draw_kps_image(64, 64, np.array([[1e6, 40.0], [10.0, 10.0], nose], np.float32))
    far = draw_kps_image(64, 64, np.array([[1e12, 40.0], [10.0, 10.0], nose], np.float32))
    assert np.array_equal(near, far)
