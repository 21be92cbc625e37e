"""Any photo in: upright (EXIF), cut around the face (crop), blended back into the whole photo (paste-back).

The photo is the tys sample's portrait pasted off-centre into a larger canvas, so the true face
centre is known: the face the detector finds in the portrait alone, moved by where it was pasted.
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.jobs.generate import Generator
from vexpress_cli.media.video_reader import iter_video_frames, video_info

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

CANVAS_SIZE = (1280, 720)
PORTRAIT_AT = (720, 160)  # the portrait's top-left corner in the canvas: right of centre, low
SMALL = {"width": 64, "height": 64, "num_inference_steps": 1, "face_backend": "dlib"}
SMALL_FLAGS = ["--width", "64", "--height", "64", "--num-inference-steps", "1", "--face-backend", "dlib",
               "--model-dir", str(TINY_MODEL_DIR)]
runner = CliRunner()


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    """The canvas PNG, its pixels, the same canvas as a JPEG stored on its side (EXIF 6), and the true face centre."""
    from vexpress_cli.face import load_backend, load_image_rgb

    folder = tmp_path_factory.mktemp("canvas")
    portrait = load_image_rgb(SAMPLES_DIR / "tys" / "ref.jpg")
    width, height = CANVAS_SIZE
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    background = np.stack([60 + 120 * x + 0 * y, 90 + 60 * y + 0 * x, 140 + 40 * np.sin(6 * x + 3 * y)], axis=2)
    pixels = background.astype(np.uint8)
    left, top = PORTRAIT_AT
    pixels[top:top + 512, left:left + 512] = portrait
    face = max(load_backend("dlib").detect(portrait), key=lambda face: face.area)
    centre = np.array([(face.bbox[0] + face.bbox[2]) / 2 + left, (face.bbox[1] + face.bbox[3]) / 2 + top])
    upright = folder / "canvas.png"
    PIL.Image.fromarray(pixels).save(upright)
    # EXIF orientation 6: "turn 90 degrees clockwise to show", so the stored pixels are turned the other way.
    on_its_side = folder / "canvas_exif6.jpg"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(np.ascontiguousarray(np.rot90(pixels))).save(on_its_side, quality=95, exif=exif)
    return {"upright": upright, "on_its_side": on_its_side, "pixels": pixels, "face_centre": centre}


def plan_for(photo, audio, tmp_path, reference_kps=None, **settings):
    return Generator(TINY_MODEL_DIR).plan(photo, audio, tmp_path / "o.mp4", reference_kps=reference_kps,
                                          **{**SMALL, **settings})


def assert_crop_around(crop, centre):
    x, y, w, h = crop
    assert w == h
    assert np.hypot(x + w / 2 - centre[0], y + h / 2 - centre[1]) < 0.1 * w, (crop, centre)


def test_auto_crop_centres_the_face_of_an_off_centre_canvas(canvas, speech, tmp_path):
    plan = plan_for(canvas["upright"], speech, tmp_path)
    assert_crop_around(plan.crop, canvas["face_centre"])
    assert plan.reference_image.size == (64, 64)
    assert not any("stretched" in warning for warning in plan.warnings)


def test_auto_crop_finds_the_face_of_the_canvas_stored_on_its_side_with_exif_orientation_6(canvas, speech, tmp_path):
    plan = plan_for(canvas["on_its_side"], speech, tmp_path)
    assert_crop_around(plan.crop, canvas["face_centre"])
    assert any("EXIF orientation 6" in note and "turned upright" in note for note in plan.notes)
    upright = plan_for(canvas["upright"], speech, tmp_path)
    assert np.abs(np.subtract(plan.crop, upright.crop)).max() <= 4  # the same box as the upright photo's


def test_crop_none_stretches_the_whole_photo_with_a_warning(canvas, speech, tmp_path):
    plan = plan_for(canvas["upright"], speech, tmp_path, crop="none", reference_kps="22,26;42,26;32,38")
    assert plan.crop is None
    assert any("stretched to 64x64" in warning for warning in plan.warnings)


def test_a_crop_box_given_by_hand_is_cut_from_the_photo(canvas, speech, tmp_path):
    left, top = PORTRAIT_AT
    plan = plan_for(canvas["upright"], speech, tmp_path, crop=f"{left},{top},512,512")
    assert plan.crop == [left, top, 512, 512]
    portrait = np.asarray(PIL.Image.open(SAMPLES_DIR / "tys" / "ref.jpg").convert("RGB").resize((64, 64)))
    assert np.abs(np.asarray(plan.reference_image).astype(int) - portrait).mean() < 4


def test_a_crop_box_outside_the_photo_is_refused_before_anything_is_written(canvas, speech, tmp_path):
    output = tmp_path / "o.mp4"
    result = runner.invoke(app, ["generate", "-i", str(canvas["upright"]), "-a", str(speech), "-o", str(output),
                                 *SMALL_FLAGS, "--crop", "1000,600,512,512"])
    assert result.exit_code == 2
    assert "--crop 1000,600,512,512 does not lie inside the 1280x720 photo" in " ".join(result.output.split())
    assert not output.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_photo_without_a_face_under_crop_auto_names_fixes_that_work(speech, tmp_path):
    wall = tmp_path / "wall.png"
    PIL.Image.new("RGB", (300, 200), (128, 128, 128)).save(wall)
    command = ["generate", "-i", str(wall), "-a", str(speech), "-o", str(tmp_path / "o.mp4"), *SMALL_FLAGS]
    result = runner.invoke(app, command)
    message = " ".join(result.output.split())
    assert result.exit_code == 2
    # The tiny model has no det_10g.onnx: --face-backend insightface would fail too, so it is not offered.
    assert "No face was found" in message and "Try a photo with a clearer, roughly frontal face" in message
    assert "--face-backend insightface" not in message
    assert "--crop X,Y,W,H (the part to animate, in the photo's pixels) with --reference-kps 'x,y;x,y;x,y'" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["wall.png"]
    named = runner.invoke(app, [*command, "--crop", "50,20,160,160", "--reference-kps", "22,26;42,26;32,38"])
    assert named.exit_code == 0, named.output  # the face named by hand: no detector needed


@pytest.mark.parametrize(("backend", "with_detector", "advice"), [
    ("dlib", True, 'Try the other detector (face_backend="insightface") or a photo with a clearer'),
    ("dlib", False, "Try a photo with a clearer"),
    ("insightface", True, 'Try the other detector (face_backend="dlib") or a photo with a clearer'),
])
def test_no_face_advice_offers_the_other_detector_only_when_it_can_run(backend, with_detector, advice, tmp_path):
    """dlib always can; insightface only with det_10g.onnx where it would be looked for (here the model root)."""
    from test_face_insightface import build_fake_det_10g

    from vexpress_cli.face.insightface_backend import DETECTOR_IN_ROOT
    from vexpress_cli.jobs.reference_photo import NoFaceFound, find_crop
    from vexpress_cli.settings.schema import GenerationSettings

    if with_detector:
        (tmp_path / DETECTOR_IN_ROOT).parent.mkdir(parents=True)
        build_fake_det_10g(tmp_path / DETECTOR_IN_ROOT)  # its "faces" are white cells: none in a grey wall
    wall = np.full((200, 300, 3), 128, np.uint8)
    with pytest.raises(NoFaceFound) as raised:
        find_crop(wall, GenerationSettings(face_backend=backend, crop="auto"), tmp_path, "the wall")
    assert advice in " ".join(str(raised.value).split())


def test_a_face_index_beyond_the_faces_found_is_refused(canvas, speech, tmp_path):
    with pytest.raises(InputError, match="face_index is 3, but .* has 1 face.* Use face_index=0, or leave it out."):
        plan_for(canvas["upright"], speech, tmp_path, face_index=3)


def mean_difference(frame, canvas_pixels, mask):
    return float(np.abs(frame.astype(int) - canvas_pixels.astype(int))[mask].mean())


@pytest.mark.slow
def test_paste_back_gives_a_canvas_sized_video_changed_only_inside_the_crop(canvas, speech, tmp_path):
    output = tmp_path / "pasted.mp4"
    result = runner.invoke(app, ["generate", "-i", str(canvas["upright"]), "-a", str(speech), "-o", str(output),
                                 *SMALL_FLAGS, "--paste-back", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    x, y, w, h = report["crop"]
    assert report["size"] == list(CANVAS_SIZE)
    assert json.loads((tmp_path / "pasted.mp4.json").read_text())["crop"] == report["crop"]
    info = video_info(output)
    assert (info.width, info.height) == CANVAS_SIZE
    outside = np.ones(CANVAS_SIZE[::-1], bool)
    outside[max(y, 0):y + h, max(x, 0):x + w] = False
    face = np.zeros_like(outside)
    face[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4] = True
    for frame in iter_video_frames(output):
        assert mean_difference(frame, canvas["pixels"], outside) < 3
        assert mean_difference(frame, canvas["pixels"], face) > 10  # the tiny random model's face is not the photo


@pytest.mark.slow
def test_max_size_caps_the_pasted_back_video_s_longest_side(canvas, speech, tmp_path):
    output = tmp_path / "small.mp4"
    result = runner.invoke(app, ["generate", "-i", str(canvas["upright"]), "-a", str(speech), "-o", str(output),
                                 *SMALL_FLAGS, "--paste-back", "--max-size", "640", "--json"])
    assert result.exit_code == 0, result.output
    info = video_info(output)
    assert (info.width, info.height) == (640, 360)
    width, height = CANVAS_SIZE  # the notes said how the photo was cut, not that the video was scaled
    assert (f"The pasted-back video is 640x360: the {width}x{height} photo scaled down to --max-size 640."
            in json.loads(result.stdout)["notes"])


def test_inspect_of_a_photo_on_its_side_reports_it_upright_and_the_box_auto_crop_would_cut(canvas):
    from vexpress_cli.jobs.inspect import inspect_image

    report = inspect_image(canvas["on_its_side"], backend="dlib")
    assert (report.width, report.height, report.exif_orientation) == (*CANVAS_SIZE, 6)
    assert_crop_around(report.crop, canvas["face_centre"])
    x, y, w, h = report.crop
    assert report.would_crop.startswith(f"would crop {w}x{h} at ({x}, {y})")


def test_retarget_frames_the_photo_on_its_side_like_generate(canvas, speech, tmp_path):
    from vexpress_cli.jobs.retarget import retarget

    result = retarget(canvas["on_its_side"], None, "fix_face", tmp_path / "fitted.safetensors", num_frames=3,
                      width=64, height=64, face_backend="dlib")
    plan = plan_for(canvas["on_its_side"], speech, tmp_path)
    assert any("EXIF orientation 6" in note for note in result.notes)
    assert any(note.startswith("Cropped") for note in result.notes)
    assert np.abs(result.reference_kps - plan.kps_track[0]).max() < 1  # the points generate's fix_face uses


def test_a_photo_stored_on_its_side_is_read_upright_with_a_note(tmp_path):
    from vexpress_cli.face import load_image_rgb
    from vexpress_cli.media.images import read_photo

    upright = np.random.default_rng(3).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    stored = tmp_path / "side.png"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(stored, exif=exif)
    assert np.array_equal(load_image_rgb(stored), upright)
    assert ["EXIF orientation 6" in note for note in read_photo(stored).notes] == [True]
    plain = tmp_path / "plain.png"
    PIL.Image.fromarray(upright).save(plain)
    assert read_photo(plain).notes == []


def test_a_max_size_below_64_is_refused(canvas, speech, tmp_path):
    with pytest.raises(InputError, match="max_size is 32"):
        plan_for(canvas["upright"], speech, tmp_path, paste_back=True, max_size=32)


def test_max_size_without_paste_back_warns_that_it_has_no_effect():
    from vexpress_cli.jobs.reference_photo import read_reference_photo
    from vexpress_cli.settings.schema import GenerationSettings

    alone = read_reference_photo(SAMPLES_DIR / "AOC" / "ref.jpg", GenerationSettings(crop="none", max_size=640))
    assert any("no effect" in warning and "max_size" in warning for warning in alone.warnings)
    pasted = read_reference_photo(SAMPLES_DIR / "AOC" / "ref.jpg",
                                  GenerationSettings(crop="none", max_size=640, paste_back=True))
    assert not any("no effect" in warning for warning in pasted.warnings)


@pytest.mark.parametrize(("reference_kps_given", "advice"), [
    (False, 'Use crop="auto", or crop it'),
    (True, 'Use crop="X,Y,W,H" (a box of that shape; the points are then in it), or crop it'),
])
def test_the_stretch_warning_offers_only_a_crop_that_the_job_uses(tmp_path, reference_kps_given, advice):
    """With reference_kps, crop auto is not used (a note says so), yet the warning advised it."""
    from vexpress_cli.errors import messages
    from vexpress_cli.jobs.reference_photo import read_reference_photo
    from vexpress_cli.settings.schema import GenerationSettings

    path = tmp_path / "tall.png"
    PIL.Image.new("RGB", (333, 517), (120, 100, 90)).save(path)
    photo = read_reference_photo(path, GenerationSettings(width=64, height=64, crop="auto" if reference_kps_given
                                                          else "none"), reference_kps_given=reference_kps_given)
    warnings = messages(photo.warnings)  # as a caller reads them
    stretched = [warning for warning in warnings if "it is stretched to 64x64" in warning]
    assert len(stretched) == 1 and advice in stretched[0]
    assert any(warning.endswith("is 333x517: its short side is under 512px; expect a blurry face.")
               for warning in warnings)


@pytest.mark.parametrize(("alpha", "warned"), [(0, True), (100, True), (128, False), (255, False)])
def test_a_transparent_photo_is_warned_that_the_colours_under_it_are_seen(tmp_path, alpha, warned):
    """A cut-out portrait's transparent pixels were used silently (their stored colours, as convert("RGB") keeps)."""
    from vexpress_cli.jobs.reference_photo import read_reference_photo
    from vexpress_cli.settings.schema import GenerationSettings

    pixels = np.full((64, 64, 4), 200, np.uint8)
    pixels[:, :32, 3] = alpha  # the left half transparent, mostly so, or half opaque and more
    path = tmp_path / "cutout.png"
    PIL.Image.fromarray(pixels, "RGBA").save(path)
    photo = read_reference_photo(path, GenerationSettings(width=64, height=64, crop="none"))
    transparent = [warning for warning in photo.warnings if "is transparent" in warning]
    assert transparent == (["50% of the reference image cutout.png is transparent or mostly so (under half opaque); "
                            "V-Express sees the colours stored under it, as the original does, often black or "
                            "leftovers. Flatten it onto a background first (any editor's 'flatten' or 'remove "
                            "alpha') if those pixels are not meant to be seen."] if warned else [])


def test_a_small_crop_warns_it_is_enlarged_but_a_wide_output_s_large_crop_does_not(tmp_path, speech):
    """A 2048x64 output warned "The crop is 15873x496 pixels, smaller than 512px; the face is enlarged", though
    the box is shrunk 7.75 times: the box's shorter side was compared with the width's limit."""
    wide = plan_for(SAMPLES_DIR / "AOC" / "ref.jpg", speech, tmp_path, width=2048, height=64)
    assert not [warning for warning in wide.warnings if "enlarged" in warning], wide.warnings
    small = tmp_path / "small.jpg"
    PIL.Image.open(SAMPLES_DIR / "AOC" / "ref.jpg").resize((200, 200)).save(small)
    plan = plan_for(small, speech, tmp_path, width=256, height=256)
    (warning,) = [warning for warning in plan.warnings if "enlarged" in warning]
    assert "smaller than 256x256; the face is enlarged and will look soft" in warning
