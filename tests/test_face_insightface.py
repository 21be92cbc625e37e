"""The insightface backend, run through insightface's own model_zoo/SCRFD code on a fake det_10g.

The real buffalo_l weights cannot be downloaded here, so a tiny ONNX graph with
det_10g's interface stands in: input ``[1, 3, H, W]``, nine outputs (scores,
box distances, keypoint offsets at strides 8/16/32, two anchors per cell, 2-D
``[N, C]`` like det_10g). Its "faces" are bright 32x32 cells: a stride-32 cell
whose mean is white scores ~1, everything else 0; every box spans one stride
around the anchor and the five keypoints sit at fixed offsets from it. So the
expected boxes and keypoints are known exactly, and the test checks the whole
path: get_model routing, SCRFD.prepare/detect (resize, anchors, distance
decoding, NMS, rescaling) and our parsing into Face.
"""

from __future__ import annotations

import numpy as np
import onnx
import PIL.Image
import pytest
from onnx import TensorProto, helper

from vexpress_cli.errors import ModelFolderError
from vexpress_cli.face import choose_backend, detect_reference_kps, load_backend
from vexpress_cli.face.insightface_backend import DETECTOR_IN_ROOT, InsightFaceBackend

STRIDES = (8, 16, 32)
KPS_OFFSETS = np.array([[-0.4, -0.3], [0.4, -0.3], [0.0, 0.1], [-0.3, 0.5], [0.3, 0.5]], dtype=np.float32)


def build_fake_det_10g(path) -> None:
    """Write an ONNX model with SCRFD det_10g's inputs and outputs (see module docstring)."""
    initializers = [
        helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        helper.make_tensor("column", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("box_distances", TensorProto.FLOAT, [1, 4], [1.0] * 4),
        helper.make_tensor("kps_offsets", TensorProto.FLOAT, [1, 10], KPS_OFFSETS.flatten().tolist()),
    ]
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["grey"], axes=[1], keepdims=1)]
    outputs = {"score": [], "bbox": [], "kps": []}
    for stride in STRIDES:
        s = stride
        nodes += [
            helper.make_node("AveragePool", ["grey"], [f"cells{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Reshape", [f"cells{s}", "column"], [f"cell_column{s}"]),
            # Two anchors per cell, interleaved like SCRFD's anchor centres.
            helper.make_node("Concat", [f"cell_column{s}", f"cell_column{s}"], [f"pairs{s}"], axis=1),
            helper.make_node("Reshape", [f"pairs{s}", "column"], [f"anchors{s}"]),
            helper.make_node("Mul", [f"anchors{s}", "zero"], [f"zeros{s}"]),
            helper.make_node("Relu", [f"anchors{s}" if s == 32 else f"zeros{s}"], [f"score_{s}"]),
            helper.make_node("Add", [f"zeros{s}", "box_distances"], [f"bbox_{s}"]),
            helper.make_node("Add", [f"zeros{s}", "kps_offsets"], [f"kps_{s}"]),
        ]
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            outputs[kind].append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [f"n{s}", width]))
    graph = helper.make_graph(
        nodes,
        "fake_det_10g",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs["score"] + outputs["bbox"] + outputs["kps"],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def expected_face(cell_x: int, cell_y: int, scale: float = 1.0):
    """Box and keypoints the fake detector gives for a white stride-32 cell, in image pixels."""
    anchor = np.array([cell_x * 32, cell_y * 32], dtype=np.float32)
    bbox = np.concatenate([anchor - 32, anchor + 32]) * scale
    return bbox, (anchor + KPS_OFFSETS * 32) * scale


def white_cells(size: tuple[int, int], cells: list[tuple[int, int]], cell_size: int = 32) -> np.ndarray:
    width, height = size
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for x, y in cells:
        image[y * cell_size : (y + 1) * cell_size, x * cell_size : (x + 1) * cell_size] = 255
    return image


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface_models")
    detector = root / DETECTOR_IN_ROOT
    detector.parent.mkdir(parents=True)
    build_fake_det_10g(detector)
    return root


@pytest.fixture(scope="module")
def backend(model_root):
    return load_backend("insightface", model_root, width=512, height=512)


def test_detector_loads_through_insightface_as_scrfd_with_the_originals_settings(backend, model_root):
    from insightface.model_zoo.scrfd import SCRFD

    assert backend.name == "insightface"
    detector = backend.detector
    assert isinstance(detector, SCRFD)
    assert detector.use_kps and detector.fmc == 3 and detector._num_anchors == 2
    assert detector.input_size == (512, 512) and detector.det_thresh == 0.5
    # The original calls FaceAnalysis.prepare(det_size=(height, width)); SCRFD reads it as (w, h).
    wide = load_backend("insightface", model_root, width=640, height=480)
    assert wide.detector.input_size == (480, 640)


def test_auto_chooses_insightface_when_its_detector_is_present(model_root):
    name, reason = choose_backend("auto", model_root)
    assert name == "insightface" and "det_10g.onnx" in reason


def test_detect_parses_boxes_scores_and_five_keypoints(backend):
    faces = backend.detect(white_cells((512, 512), [(5, 7)]))
    assert len(faces) == 1
    bbox, kps = expected_face(5, 7)
    np.testing.assert_allclose(faces[0].bbox, bbox, atol=1e-4)
    np.testing.assert_allclose(faces[0].kps, kps, atol=1e-4)
    np.testing.assert_allclose(faces[0].kps3, kps[:3], atol=1e-4)
    assert faces[0].score == pytest.approx(127.5 / 128, abs=1e-4)


def test_detect_finds_each_face_and_nothing_in_the_dark(backend):
    faces = backend.detect(white_cells((512, 512), [(2, 3), (12, 10)]))
    centres = sorted(tuple(face.center.round(1)) for face in faces)
    assert centres == [(64.0, 96.0), (384.0, 320.0)]
    assert backend.detect(np.zeros((512, 512, 3), dtype=np.uint8)) == []


def test_detections_are_scaled_back_from_the_detector_input_size(model_root):
    small_input = InsightFaceBackend(model_root / DETECTOR_IN_ROOT, input_size=(256, 256))
    image = white_cells((512, 512), [(3, 4)], cell_size=64)  # one 32-px cell at half size
    faces = small_input.detect(image)
    assert len(faces) == 1
    bbox, kps = expected_face(3, 4, scale=2.0)
    np.testing.assert_allclose(faces[0].bbox, bbox, atol=1e-3)
    np.testing.assert_allclose(faces[0].kps, kps, atol=1e-3)


def test_reference_kps_through_insightface_resize_like_the_original(model_root):
    big = white_cells((1024, 1024), [(5, 7)], cell_size=64)  # becomes cell (5, 7) at 512
    kps = detect_reference_kps(big, 512, 512, backend="auto", model_root=model_root)
    np.testing.assert_allclose(kps, expected_face(5, 7)[1][:3], atol=1e-3)


def test_a_broken_detector_file_is_a_model_folder_error(tmp_path):
    broken = tmp_path / DETECTOR_IN_ROOT
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelFolderError) as raised:
        load_backend("insightface", tmp_path)
    assert "could not be loaded" in raised.value.what and "face_backend=\"dlib\"" in str(raised.value)


def test_extract_a_sequence_with_the_insightface_backend(backend, tmp_path):
    from vexpress_cli.kps.from_video import extract_kps_sequence
    from vexpress_cli.media.encoding import VideoEncoding
    from vexpress_cli.media.video_writer import VideoWriter

    cells = [(4, 8), (5, 8), (6, 8), None, (8, 8), (9, 8)]  # one square moving right; frame 3 blank
    video = tmp_path / "square.mp4"
    with VideoWriter(video, fps=25, width=512, height=512, encoding=VideoEncoding(crf=10)) as writer:
        for cell in cells:
            writer.write(white_cells((512, 512), [cell] if cell else []))
    points, report = extract_kps_sequence(video, backend, 512, 512)
    assert report.backend == "insightface" and report.frames == 6
    assert report.missing_frames == [3] and report.multi_face_frames == []
    for index, cell in enumerate(cells):
        expected = expected_face(*cell)[1][:3] if cell else expected_face(7, 8)[1][:3]  # midway between 2 and 4
        np.testing.assert_allclose(points[index], expected, atol=1e-3)


def test_inspect_finds_the_detector_in_the_model_folder_generate_and_extract_use(tmp_path, no_user_config,
                                                                                monkeypatch):
    """With the weights found by the lookup (here the user config's model_dir; the Hugging Face cache alike),
    inspect looked only under $VEXPRESS_MODEL_DIR or ./model_ckpts, and so reported dlib where generate,
    extract and retarget use insightface."""
    from vexpress_cli.jobs.inspect import inspect_image

    model = tmp_path / "weights"
    detector = model / "insightface_models" / DETECTOR_IN_ROOT
    detector.parent.mkdir(parents=True)
    build_fake_det_10g(detector)
    config = tmp_path / "config"  # no_user_config points VEXPRESS_CONFIG_DIR here
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(f'model_dir = "{model.as_posix()}"\n')
    monkeypatch.chdir(tmp_path)  # no ./model_ckpts
    photo = tmp_path / "cells.png"
    PIL.Image.fromarray(white_cells((512, 512), [(7, 7)])).save(photo)

    report = inspect_image(photo, crop="none")

    assert report.face.backend == "insightface" and str(detector) in report.face.backend_reason
    assert report.face.found


def test_a_missing_detector_is_expected_where_the_model_folder_keeps_it(tmp_path):
    (tmp_path / "v-express").mkdir()
    with pytest.raises(ModelFolderError) as raised:
        load_backend("insightface", tmp_path)
    assert str(tmp_path / "insightface_models" / DETECTOR_IN_ROOT) in raised.value.fix


def test_the_detector_file_itself_is_a_model_root_as_extract_md_says(model_root):
    """extract, retarget and inspect refused it as "a file, not a folder"; the face layer always took it."""
    from vexpress_cli.jobs.inspect import inspect_image

    detector = model_root / DETECTOR_IN_ROOT
    photo = model_root.parent / "cells.png"
    PIL.Image.fromarray(white_cells((512, 512), [(7, 7)])).save(photo)

    report = inspect_image(photo, crop="none", model_root=detector)

    assert report.face.backend == "insightface" and str(detector) in report.face.backend_reason
    assert report.face.found
