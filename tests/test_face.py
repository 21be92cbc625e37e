"""Face backends (dlib), backend choice, reference-image keypoints and face tracking helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SAMPLES_DIR

from vexpress_cli.errors import InputError, ModelFolderError
from vexpress_cli.face import (
    Face,
    FaceBackend,
    choose_backend,
    detect_reference_kps,
    find_detector,
    load_backend,
    load_image_rgb,
)
from vexpress_cli.face.dlib_backend import DlibBackend, keypoints_from_landmarks
from vexpress_cli.face.tracking import FaceFollower, fill_missing_frames, follow_face

REFERENCE_IMAGE = SAMPLES_DIR / "tys" / "ref.jpg"


@pytest.fixture(scope="module")
def dlib_backend():
    return load_backend("dlib")


@pytest.fixture(scope="module")
def reference_rgb():
    return load_image_rgb(REFERENCE_IMAGE)


def face_at(x: float, y: float, size: float) -> Face:
    kps = np.array([[x - 10, y - 5], [x + 10, y - 5], [x, y + 5]])
    return Face(bbox=[x - size / 2, y - size / 2, x + size / 2, y + size / 2], score=0.9, kps=kps)


# --- dlib keypoint mapping -------------------------------------------------------------------


def test_keypoints_from_landmarks_uses_eyelid_centroids_and_nose_tip():
    landmarks = np.zeros((68, 2), dtype=np.float32)
    landmarks[[37, 38, 40, 41]] = [[10, 0], [12, 0], [12, 4], [10, 4]]
    landmarks[[36, 39]] = [[0, 100], [0, 100]]  # eye corners do not count
    landmarks[[43, 44, 46, 47]] = [[30, 0], [32, 0], [32, 4], [30, 4]]
    landmarks[30] = [21, 9]
    landmarks[33] = [21, 50]
    kps = keypoints_from_landmarks(landmarks)
    assert kps.dtype == np.float32 and kps.shape == (3, 2)
    np.testing.assert_allclose(kps, [[11, 2], [31, 2], [21, 9]])


def test_dlib_backend_follows_the_protocol_and_finds_the_reference_face(dlib_backend, reference_rgb):
    assert isinstance(dlib_backend, FaceBackend)
    assert dlib_backend.name == "dlib"
    faces = dlib_backend.detect(reference_rgb)
    assert len(faces) == 1
    face = faces[0]
    left_eye, right_eye, nose = face.kps3
    x1, y1, x2, y2 = face.bbox
    assert x1 < left_eye[0] < right_eye[0] < x2  # image-left eye first
    assert max(left_eye[1], right_eye[1]) < nose[1] < y2
    assert face.kps3.dtype == np.float32


def test_dlib_backend_finds_nothing_in_a_blank_image(dlib_backend):
    assert dlib_backend.detect(np.full((256, 256, 3), 128, dtype=np.uint8)) == []


def test_dlib_backend_upsamples_to_find_a_small_face(dlib_backend, reference_rgb):
    small = np.zeros((512, 512, 3), dtype=np.uint8)
    small[100:228, 300:428] = cv2.resize(reference_rgb, (128, 128), interpolation=cv2.INTER_AREA)
    assert DlibBackend(upsample_retries=0).detect(small) == []  # too small at its own scale
    faces = dlib_backend.detect(small)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].bbox
    assert 300 <= (x1 + x2) / 2 <= 428 and 100 <= (y1 + y2) / 2 <= 228


# --- detect_reference_kps --------------------------------------------------------------------


def test_reference_kps_from_a_path_and_an_array_agree(reference_rgb):
    from_path = detect_reference_kps(REFERENCE_IMAGE, 512, 512, backend="dlib")
    from_array = detect_reference_kps(reference_rgb, 512, 512, backend="dlib")
    assert from_path.shape == (3, 2) and from_path.dtype == np.float32
    np.testing.assert_allclose(from_path, from_array)


def test_reference_kps_are_in_the_resized_image_coordinates(reference_rgb):
    at_512 = detect_reference_kps(reference_rgb, 512, 512, backend="dlib")
    big = cv2.resize(reference_rgb, (1920, 1080))  # a large, stretched source
    at_512_from_big = detect_reference_kps(big, 512, 512, backend="dlib")
    np.testing.assert_allclose(at_512_from_big, at_512, atol=3.0)
    at_256x384 = detect_reference_kps(reference_rgb, 256, 384, backend="dlib")
    expected = at_512 * np.array([256 / 512, 384 / 512], dtype=np.float32)
    np.testing.assert_allclose(at_256x384, expected, atol=4.0)


def test_reference_kps_take_the_largest_of_several_faces(reference_rgb):
    canvas = np.zeros((1024, 1024, 3), dtype=np.uint8)
    canvas[0:512, 0:512] = reference_rgb
    canvas[600:936, 600:936] = cv2.resize(reference_rgb, (336, 336), interpolation=cv2.INTER_AREA)
    single = detect_reference_kps(reference_rgb, 512, 512, backend="dlib")
    kps = detect_reference_kps(canvas, 1024, 1024, backend="dlib")
    np.testing.assert_allclose(kps, single, atol=3.0)


def test_reference_image_without_a_face_is_a_clear_input_error(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 400, 3), 200, dtype=np.uint8))
    with pytest.raises(InputError) as raised:
        detect_reference_kps(blank, 512, 512, backend="dlib")
    error = raised.value
    assert "No face was found" in error.what and "wall.png" in error.what
    assert "512x512" in error.why and error.fix


def test_unreadable_reference_images_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image_rgb(tmp_path / "missing.jpg")
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(InputError, match="Cannot read the image"):
        load_image_rgb(not_an_image)


# --- backend choice --------------------------------------------------------------------------


def test_auto_uses_dlib_when_no_detector_is_present(tmp_path):
    name, reason = choose_backend("auto", tmp_path)
    assert name == "dlib" and str(tmp_path) in reason
    backend = load_backend("auto", tmp_path)
    assert backend.name == "dlib" and "no det_10g.onnx" in backend.reason


def test_find_detector_accepts_the_usual_folder_shapes(tmp_path):
    assert find_detector(tmp_path) is None
    detector = tmp_path / "insightface_models" / "models" / "buffalo_l" / "det_10g.onnx"
    detector.parent.mkdir(parents=True)
    detector.write_bytes(b"")
    assert find_detector(tmp_path) == detector  # the V-Express model folder
    assert find_detector(tmp_path / "insightface_models") == detector  # the insightface root
    assert find_detector(detector.parent) == detector  # buffalo_l itself
    assert find_detector(detector) == detector  # the file


def test_default_model_root_follows_vexpress_model_dir(tmp_path, monkeypatch):
    from vexpress_cli.face import default_model_root

    monkeypatch.delenv("VEXPRESS_MODEL_DIR", raising=False)
    assert default_model_root().as_posix() == "model_ckpts/insightface_models"
    monkeypatch.setenv("VEXPRESS_MODEL_DIR", str(tmp_path))
    assert default_model_root() == tmp_path / "insightface_models"


def test_insightface_without_its_model_says_where_to_put_it(tmp_path):
    with pytest.raises(ModelFolderError) as raised:
        load_backend("insightface", tmp_path)
    error = raised.value
    assert str(tmp_path) in error.what
    assert "models/buffalo_l/det_10g.onnx" in error.why
    assert "det_10g.onnx" in error.fix and "model_root" in str(error) and "face_backend=\"dlib\"" in str(error)


def test_unknown_backend_name_is_an_input_error():
    with pytest.raises(InputError, match="Unknown face backend 'mediapipe'"):
        choose_backend("mediapipe")


# --- tracking helpers ------------------------------------------------------------------------


def test_follow_face_starts_with_the_largest_then_stays_nearest():
    big, small = face_at(100, 100, 80), face_at(400, 400, 40)
    assert follow_face([small, big], None) is big
    # The other face grows larger, but the track stays with the face near the last one.
    moved, grown = face_at(110, 104, 50), face_at(400, 400, 120)
    assert follow_face([grown, moved], big) is moved


def test_the_follower_refuses_a_lone_face_where_the_other_person_was_and_far_from_the_followed_one():
    follower = FaceFollower()
    left, right = face_at(100, 100, 80), face_at(400, 100, 80)
    assert follower.pick([left, right]) is left
    assert follower.pick([face_at(402, 104, 80)]) is None  # the other person's: the followed face was missed
    assert follower.pick([moved := face_at(112, 100, 80)]) is moved
    alone = FaceFollower()
    alone.pick([left])
    assert alone.pick([cut := face_at(400, 300, 60)]) is cut  # no one else seen: a cut or a quick move is followed


def follow(frames: list[list[Face]]) -> list[float | None]:
    follower = FaceFollower()
    return [None if (face := follower.pick(faces)) is None else float(face.center[0]) for faces in frames]


def test_a_stray_second_box_does_not_stop_the_follower_from_following_a_walk_past_where_it_was():
    """A false detection (a poster) remembered for good made every later frame near it "missing"."""
    walk = [[face_at(100 + 10 * step, 100, 80)] for step in range(40)]
    walk[0].append(face_at(300, 100, 80))
    assert follow(walk) == [100 + 10 * step for step in range(40)]


def test_a_doubled_box_of_the_followed_face_does_not_lose_it():
    frames = [[face_at(100, 100, 80), face_at(115, 100, 80)]] + [[face_at(100 + 5 * step, 100, 80)]
                                                                 for step in range(1, 20)]
    assert None not in follow(frames)


def test_after_a_cut_from_a_two_shot_the_follower_takes_the_lone_face_within_a_second():
    """A cut to a close-up of the followed person, near where the other person sat: held for at most a second."""
    from vexpress_cli.face.tracking import OTHER_FACE_MEMORY

    two_shot = [[face_at(150, 200, 80), face_at(490, 200, 80)] for _ in range(10)]
    close_up = [[face_at(470, 220, 90)] for _ in range(40)]
    followed = follow(two_shot + close_up)
    assert followed[:10] == [150.0] * 10
    assert followed[10 + OTHER_FACE_MEMORY:] == [470.0] * (40 - OTHER_FACE_MEMORY)


def test_fill_missing_frames_interpolates_gaps_and_holds_the_ends():
    a = np.array([[0, 0], [10, 0], [5, 5]], dtype=np.float32)
    b = a + np.float32(30)
    filled = fill_missing_frames([None, a, None, None, b, None])
    assert filled.shape == (6, 3, 2) and filled.dtype == np.float32
    np.testing.assert_allclose(filled[0], a)
    np.testing.assert_allclose(filled[2], a + 10)
    np.testing.assert_allclose(filled[3], a + 20)
    np.testing.assert_allclose(filled[4], b)
    np.testing.assert_allclose(filled[5], b)
    with pytest.raises(ValueError):
        fill_missing_frames([None, None])


def test_an_oversized_photo_is_an_input_error(monkeypatch):
    import PIL.Image

    from conftest import SAMPLES_DIR

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)  # any real photo is now a "decompression bomb"
    with pytest.raises(InputError, match="Cannot read the image"):
        load_image_rgb(SAMPLES_DIR / "tys" / "ref.jpg")
