"""vexpress_cli.face.framing: the crop box around a face, and cutting it out of a photo."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLES_DIR

from vexpress_cli.face.framing import (
    EYE_DISTANCE_SHARE,
    EYE_HEIGHT_SHARE,
    already_framed,
    FACE_WIDTH_SHARE,
    CropBox,
    cut_crop,
    frame_padding,
    face_crop_box,
    portrait_crop_box,
)


def test_crop_box_puts_the_face_at_the_samples_width_share_and_centres_it_horizontally():
    box = portrait_crop_box((1000, 800, 1184, 1000), 4000, 3000)
    assert box.w == box.h == round(184 / FACE_WIDTH_SHARE)
    assert abs(box.centre[0] - 1092) <= 1


def test_crop_box_puts_the_eye_line_at_the_samples_eye_height():
    eyes = [[1050, 880], [1134, 884]]
    box = portrait_crop_box((1000, 800, 1184, 1000), 4000, 3000, eyes=eyes)
    assert abs((882 - box.y) / box.h - EYE_HEIGHT_SHARE) < 0.005


def test_crop_box_of_a_wide_aspect_keeps_the_face_scale_on_its_shorter_side():
    box = portrait_crop_box((1000, 800, 1184, 1000), 4000, 3000, aspect=16 / 9)
    assert box.h == round(184 / FACE_WIDTH_SHARE)
    assert abs(box.w / box.h - 16 / 9) < 0.01


def test_crop_box_is_shifted_inside_the_photo_when_the_face_is_near_an_edge():
    box = portrait_crop_box((10, 5, 110, 105), 1000, 800)
    assert box.inside(1000, 800)
    assert (box.x, box.y) == (0, 0)
    right = portrait_crop_box((890, 690, 990, 790), 1000, 800)
    assert right.inside(1000, 800) and right.x + right.w == 1000 and right.y + right.h == 800


def test_crop_box_larger_than_the_photo_stays_centred_on_the_face_and_reaches_outside():
    box = portrait_crop_box((75, 100, 325, 350), 400, 400)  # 543 px, a third too large
    assert box.w > 400
    assert not box.inside(400, 400)
    assert abs(box.centre[0] - 200) <= 1
    assert frame_padding(box, 400, 400) > 0


def test_crop_box_rejects_an_empty_face_box():
    with pytest.raises(ValueError):
        portrait_crop_box((10, 10, 10, 50), 100, 100)


def test_crop_box_as_list_is_x_y_w_h():
    assert CropBox(1, 2, 3, 4).as_list() == [1, 2, 3, 4]


def test_cut_crop_inside_the_image_at_its_own_size_is_the_slice():
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    cut = cut_crop(image, CropBox(10, 5, 30, 20), 30, 20)
    assert np.array_equal(cut, image[5:25, 10:40])


def test_cut_crop_repeats_the_edge_pixels_where_the_box_leaves_the_image():
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cut = cut_crop(image, CropBox(-5, -3, 20, 20), 20, 20)
    assert np.array_equal(cut[3:, 5:], image[:17, :15])
    assert np.array_equal(cut[0, 5:], image[0, :15])  # rows above repeat the top row
    assert np.array_equal(cut[3:, 0], image[:17, 0])  # columns left of it repeat the left column


def test_cut_crop_resizes_to_the_requested_size_keeping_a_flat_colour():
    image = np.full((300, 400, 3), (200, 100, 50), dtype=np.uint8)
    assert np.array_equal(cut_crop(image, CropBox(0, 0, 300, 300), 64, 64)[10, 10], [200, 100, 50])
    assert cut_crop(image, CropBox(0, 0, 30, 30), 128, 96).shape == (96, 128, 3)


def test_cut_crop_refuses_a_box_that_misses_the_image():
    with pytest.raises(ValueError):
        cut_crop(np.zeros((10, 10, 3), np.uint8), CropBox(20, 20, 5, 5), 5, 5)


@pytest.mark.parametrize("sample", ["AOC", "tys"])
def test_crop_of_a_released_sample_is_close_to_its_own_frame(sample):
    from vexpress_cli.face import load_backend, load_image_rgb

    image = load_image_rgb(SAMPLES_DIR / sample / "ref.jpg")
    face = max(load_backend("dlib").detect(image), key=lambda face: face.area)
    box = face_crop_box(face.bbox, face.kps[:2], image.shape[1], image.shape[0])
    # The shares are the two samples' mean, so each sample's own frame is within 10 % of it.
    assert abs(box.w - 512) < 0.1 * 512
    assert abs(box.centre[0] - 256) < 0.1 * 512 and abs(box.centre[1] - 256) < 0.1 * 512


def test_crop_box_slightly_larger_than_the_photo_is_shrunk_to_fit_it_instead_of_padded():
    box = portrait_crop_box((100, 100, 330, 330), 512, 512)  # 230 / 0.46 = 500 ... just fits
    assert box.inside(512, 512)
    bigger = portrait_crop_box((100, 100, 350, 350), 512, 512)  # 543 px: 6 % too large
    assert (bigger.w, bigger.h) == (512, 512) and bigger.inside(512, 512)


def test_a_picture_of_the_output_shape_nearly_filled_by_its_box_counts_as_already_framed():
    assert already_framed(CropBox(35, 11, 467, 467), 512, 512)
    assert not already_framed(CropBox(35, 11, 467, 467), 1024, 512)  # another shape: cropped
    assert not already_framed(CropBox(100, 100, 300, 300), 512, 512)  # a small face: cropped
    assert already_framed(CropBox(-75, -43, 625, 625), 512, 512)  # the tys sample's driving video: 1.22x
    assert not already_framed(CropBox(-280, -276, 1029, 1029), 512, 512)  # a close-up, 2x: cut and padded


def test_photo_crop_scale_comes_from_the_eye_distance_not_the_jumpy_face_box():
    eyes = [[950, 900], [1050, 900]]
    box = face_crop_box((920, 820, 1100, 1050), eyes, 4000, 3000)
    # dlib's boxes come in 1.2x steps: a box 1.2x wider around the same eyes gives the same crop.
    assert face_crop_box((902, 802, 1118, 1068), eyes, 4000, 3000) == box
    assert abs(box.w - 100 / EYE_DISTANCE_SHARE) <= 1 and abs(box.centre[0] - 1000) <= 1


def test_photo_and_driving_video_frame_the_same_face_identically():
    from vexpress_cli.face.base import Face
    from vexpress_cli.kps.driving_crop import steady_crop_box

    face = Face([900, 300, 1090, 560], 0.9, [[940, 420], [1040, 410], [990, 470]])
    assert steady_crop_box([face], 1920, 1080, 1.0) == face_crop_box(face.bbox, face.kps[:2], 1920, 1080)


def test_eyes_that_coincide_fall_back_to_the_face_box_scale():
    box = face_crop_box((100, 100, 192, 192), [[150, 140], [150, 140]], 1000, 1000)
    assert box == portrait_crop_box((100, 100, 192, 192), 1000, 1000)
