"""``vexpress inspect PHOTO`` looks for the face where ``generate`` looks: in the crop it cuts (``--crop auto``,
the default, or a box), and in the stretched whole photo only with ``--crop none``.

The photo is a wide canvas (2400x1000) with the AOC sample's portrait, shrunk to 300 px, pasted
bottom-left: stretched to 512x512 its face is squashed past what the detector finds.
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
from conftest import SAMPLES_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.face import detect_reference_kps
from vexpress_cli.jobs.reference_photo import read_reference_photo, reference_keypoints
from vexpress_cli.settings.schema import GenerationSettings

pytestmark = pytest.mark.usefixtures("no_user_config")

runner = CliRunner()


@pytest.fixture(scope="module")
def wide_photo(tmp_path_factory):
    canvas = PIL.Image.new("RGB", (2400, 1000), (120, 130, 140))
    canvas.paste(PIL.Image.open(SAMPLES_DIR / "AOC" / "ref.jpg").convert("RGB").resize((300, 300)), (60, 660))
    path = tmp_path_factory.mktemp("wide") / "wide.jpg"
    canvas.save(path, quality=95)
    return path


def inspect_report(*args) -> tuple[dict, str]:
    """The JSON report and the human one of the same inspect command."""
    as_json = runner.invoke(app, ["inspect", *map(str, args), "--json"])
    human = runner.invoke(app, ["inspect", *map(str, args)])
    assert as_json.exit_code == 0 and human.exit_code == 0, as_json.output + human.output
    return json.loads(as_json.stdout), " ".join(human.stdout.split())


def test_inspect_finds_the_face_of_a_wide_photo_in_the_crop_generate_cuts(wide_photo):
    data, human = inspect_report(wide_photo, "--backend", "dlib")
    face = data["face"]
    assert face["found"] is True and face["faces"] == 1
    x, y, w, h = data["crop"]
    assert face["detected_in"] == f"the crop {w}x{h} at ({x}, {y}) at 512x512"
    assert not any("No face" in warning for warning in data["warnings"])
    assert "No face found" not in human and "no face found" not in human
    settings = GenerationSettings(face_backend="dlib")
    reference = read_reference_photo(wide_photo, settings)
    generate_kps = reference_keypoints(reference, wide_photo, settings, None)
    assert data["crop"] == reference.crop_list
    np.testing.assert_allclose(face["kps"], generate_kps, atol=0.01)  # the very points generate uses


def test_inspect_with_crop_none_looks_in_the_stretched_photo_like_generate_crop_none(wide_photo):
    data, _ = inspect_report(wide_photo, "--backend", "dlib", "--crop", "none")
    assert data["crop"] is None and data["would_crop"] == "none: the whole photo, stretched to 512x512"
    assert data["face"]["found"] is False and data["face"]["detected_in"] == "the whole photo stretched to 512x512"
    with pytest.raises(InputError, match="No face was found"):  # generate --crop none finds none either
        detect_reference_kps(wide_photo, 512, 512, backend="dlib")
    assert any("stretched to 512x512" in warning and "--crop auto" in warning for warning in data["warnings"])


def test_inspect_with_a_crop_box_looks_in_that_box(wide_photo):
    data, _ = inspect_report(wide_photo, "--backend", "dlib", "--crop", "10,600,400,400")
    assert data["crop"] == [10, 600, 400, 400] and data["face"]["found"] is True
    assert data["face"]["detected_in"] == "the crop 400x400 at (10, 600) at 512x512"


def test_inspect_refuses_a_crop_box_outside_the_photo_like_generate(wide_photo):
    result = runner.invoke(app, ["inspect", str(wide_photo), "--backend", "dlib", "--crop", "2300,0,400,400"])
    assert result.exit_code == 2
    assert "--crop 2300,0,400,400 does not lie inside the 2400x1000 photo" in " ".join(result.stderr.split())


def test_inspect_refuses_a_face_index_past_the_faces_found_like_generate_instead_of_reporting_no_face(wide_photo):
    result = runner.invoke(app, ["inspect", str(wide_photo), "--backend", "dlib", "--face-index", "2"])
    assert result.exit_code == 2
    assert (f"Error: --face-index is 2, but {wide_photo} has 1 face. Faces are numbered by size from 0, the "
            "largest. Use --face-index 0, or leave it out.") == " ".join(result.stderr.split())


def test_inspect_and_retarget_refuse_a_model_root_that_does_not_exist(wide_photo, tmp_path):
    from vexpress_cli import retarget

    result = runner.invoke(app, ["inspect", str(wide_photo), "--model-root", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"--model-root {tmp_path / 'nope'}: no such folder." in " ".join(result.stderr.split())
    with pytest.raises(InputError, match="model_root=.*nope.*: no such folder"):
        retarget(wide_photo, SAMPLES_DIR / "AOC" / "kps.pth", tmp_path / "out.pth", model_root=tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_library_report_names_settings_in_python_and_the_cli_as_flags(wide_photo):
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.jobs.inspect import inspect_image

    report = inspect_image(wide_photo, backend="dlib", crop="none")
    python_words = " ".join(report.to_dict()["warnings"])
    assert 'crop="auto"' in python_words and "\x1e" not in python_words
    assert "--crop auto" in " ".join(report.to_dict(flag_of)["warnings"])
