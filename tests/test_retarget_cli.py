"""`vexpress retarget` end to end, through the real Typer app."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR
from test_kps_fit import independent_linear_resample
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.kps import KpsTrack, load_kps, save_kps

AOC_KPS = SAMPLES_DIR / "AOC" / "kps.pth"
REFERENCE_TEXT = "200,200;300,200;250,260"
REFERENCE = np.array([[200, 200], [300, 200], [250, 260]], dtype=np.float32)


def vexpress(*arguments: str):
    return CliRunner().invoke(app, [str(argument) for argument in arguments], terminal_width=200)


def assert_input_error(result, *phrases: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = " ".join(result.output.split())  # rich wraps the paragraph
    for phrase in phrases:
        assert phrase in message, message
    assert "Traceback" not in result.output


def test_help_explains_with_examples():
    result = vexpress("retarget", "--help")
    assert result.exit_code == 0
    for text in (
        "--reference-image",
        "--reference-kps",
        "--kps-fit",
        "--preview",
        "Examples",
        "vexpress retarget --reference-kps",
    ):
        assert text in result.output


def test_fix_face_from_typed_points(tmp_path):
    output = tmp_path / "still.safetensors"
    result = vexpress(
        "retarget",
        "--reference-kps",
        REFERENCE_TEXT,
        "--strategy",
        "fix_face",
        "--num-frames",
        12,
        "--fps",
        25,
        "--output",
        output,
    )
    assert result.exit_code == 0, result.output
    track = load_kps(output)
    assert track.points.shape == (12, 3, 2)
    assert np.array_equal(track.points, np.repeat(REFERENCE[None], 12, 0))
    assert (track.fps, track.width, track.height) == (25.0, 512, 512)


def test_json_prints_only_the_result_on_stdout_and_quiet_prints_nothing(tmp_path):
    import json

    args = ["retarget", "--reference-kps", REFERENCE_TEXT, "--strategy", "fix_face", "-n", 5, "--fps", 25]
    as_json = vexpress(*args, "--json", "--output", tmp_path / "a.safetensors")
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)  # the whole of stdout is the JSON document
    assert (result["output"], result["frames"], result["strategy"]) == (str(tmp_path / "a.safetensors"), 5, "fix_face")
    assert as_json.stderr == ""
    quiet = vexpress(*args, "--quiet", "--output", tmp_path / "b.safetensors")
    assert quiet.exit_code == 0 and quiet.output == ""
    assert load_kps(tmp_path / "b.safetensors").points.shape == (5, 3, 2)


def test_no_retarget_on_the_original_sample_writes_a_pth_the_original_reads(tmp_path):
    output = tmp_path / "out.pth"
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, "--output", output)
    assert result.exit_code == 0, result.output
    assert "137 frames" in result.output
    written = torch.load(output, weights_only=True)
    assert isinstance(written, torch.Tensor) and written.shape == (137, 3, 2)
    assert np.array_equal(written.numpy(), load_kps(AOC_KPS).points)


def test_longer_video_pingpongs_by_default_and_stretches_on_request(tmp_path):
    driving = load_kps(SAMPLES_DIR / "tys" / "kps.pth").points  # 100 frames
    for mode in ("pingpong", "stretch"):
        output = tmp_path / f"{mode}.safetensors"
        arguments = ["--kps-fit", mode] if mode == "stretch" else []
        result = vexpress(
            "retarget",
            "--reference-kps",
            REFERENCE_TEXT,
            "--kps",
            SAMPLES_DIR / "tys" / "kps.pth",
            "--num-frames",
            150,
            *arguments,
            "--output",
            output,
        )
        assert result.exit_code == 0, result.output
        points = load_kps(output).points
        assert points.shape == (150, 3, 2)
        if mode == "pingpong":
            assert np.array_equal(points[100], driving[98]) and np.array_equal(points[149], driving[49])
        else:
            np.testing.assert_allclose(points, independent_linear_resample(driving.astype(np.float64), 150), atol=1e-3)


def test_naive_retarget_with_a_reference_kps_file(tmp_path):
    reference_file = tmp_path / "ref.safetensors"
    save_kps(reference_file, KpsTrack(REFERENCE[None], width=512, height=512))
    output = tmp_path / "naive.safetensors"
    result = vexpress(
        "retarget",
        "--reference-kps",
        reference_file,
        "--kps",
        AOC_KPS,
        "--strategy",
        "naive_retarget",
        "--output",
        output,
    )
    assert result.exit_code == 0, result.output
    points = load_kps(output).points
    np.testing.assert_allclose(points[0, 2], REFERENCE[2], atol=1e-3)  # starts on the reference nose


def test_driving_track_of_another_frame_size_is_rescaled(tmp_path):
    driving = tmp_path / "drive256.safetensors"
    small = np.repeat(np.array([[[50, 60], [100, 60], [75, 90]]], np.float32), 3, axis=0)
    save_kps(driving, KpsTrack(small, fps=30, width=256, height=256))
    output = tmp_path / "out.safetensors"
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--kps", driving, "--output", output)
    assert result.exit_code == 0, result.output
    track = load_kps(output)
    assert np.array_equal(track.points, small * 2) and track.fps == 30.0


@pytest.mark.parametrize(
    ("arguments", "phrases"),
    [
        (["--kps", AOC_KPS, "--strategy", "offset_retarget"], ["No reference face given", "--reference-image"]),
        (
            ["--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, "--strategy", "wobble"],
            ["Unknown retarget strategy 'wobble'", "fix_face, no_retarget"],
        ),
        (
            ["--reference-kps", REFERENCE_TEXT, "--strategy", "offset_retarget"],
            ["'offset_retarget' needs a driving kps track", "--kps"],
        ),
        (["--reference-kps", REFERENCE_TEXT, "--strategy", "fix_face"], ["How many frames?", "--num-frames"]),
        (["--reference-kps", REFERENCE_TEXT, "--kps", "/nonexistent/kps.pth"], ["does not exist"]),
        (["--reference-kps", "1,2;3,4", "--kps", AOC_KPS], ["three x,y pairs"]),
        (
            ["--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, "--kps-fit", "bounce"],
            ["--kps-fit is 'bounce', which is not one of", "pingpong"],
        ),
        (["--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, "--preview", "p.gif"], ["unknown file type '.gif'", "a video is .mp4, .mov or .mkv"]),
        (["--reference-image", "/nonexistent/me.jpg", "--kps", AOC_KPS], ["does not exist"]),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, arguments, phrases):
    output = tmp_path / "out.safetensors"
    assert_input_error(vexpress("retarget", *arguments, "--output", output), *phrases)
    assert list(tmp_path.iterdir()) == []


def test_unknown_output_suffix(tmp_path):
    assert_input_error(
        vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, "--output", tmp_path / "o.json"),
        "Cannot write the kps file", "unknown file type '.json'",
    )


def test_existing_output_needs_overwrite(tmp_path):
    output = tmp_path / "out.safetensors"
    output.write_bytes(b"keep me")
    arguments = ["retarget", "--reference-kps", REFERENCE_TEXT, "--strategy", "fix_face", "-n", 3, "--output", output]
    assert_input_error(vexpress(*arguments), "already exists", "--overwrite")
    assert output.read_bytes() == b"keep me"
    assert vexpress(*arguments, "--overwrite").exit_code == 0
    assert load_kps(output).num_frames == 3


def test_forbidden_pickle_as_driving_track(tmp_path):
    import os

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save([Exploit()], tmp_path / "evil.pth")
    result = vexpress(
        "retarget", "--reference-kps", REFERENCE_TEXT, "--kps", tmp_path / "evil.pth", "--output", tmp_path / "o.pth"
    )
    assert_input_error(result, "Refused to load")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "o.pth").exists()


def test_preview_video(tmp_path):
    from vexpress_cli.media.video_reader import iter_video_frames, video_info

    output, preview = tmp_path / "out.safetensors", tmp_path / "preview.mp4"
    result = vexpress(
        "retarget", "--reference-image", SAMPLES_DIR / "AOC" / "ref.jpg", "--reference-kps", "185,218;279,215;224,271",
        "--kps", AOC_KPS, "--strategy", "offset_retarget", "--num-frames", 6, "--output", output, "--preview", preview,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = video_info(preview)
    assert (info.width, info.height, info.frame_count) == (1024, 512, 6)
    first = next(iter(iter_video_frames(preview)))
    left, right = first[:, :512].astype(int), first[:, 512:].astype(int)
    assert left.mean() > 3 * right.mean() > 0  # the dimmed photo on the left; black + keypoints on the right
    # Each panel shows its own track in V-Kps colours: blue noses where the tracks put them.
    for panel, points in ((left, load_kps(output).points[0]), (right, load_kps(AOC_KPS).points[0])):
        x, y = points[2].astype(int)
        red, green, blue = panel[y, x]
        assert blue > 200 and red < 60 and green < 60
    # Each panel is labelled (issue 8 item 6): white text in its top-left corner, nowhere else white on the right.
    right_corner, right_rest = first[:40, 512:700], first[60:, 512:]
    assert (right_corner.min(axis=2) > 200).sum() > 50 and (right_rest.min(axis=2) > 200).sum() == 0
    assert (first[:40, :200].min(axis=2) > 200).sum() > 50


def test_reference_image_detection(tmp_path):
    output = tmp_path / "out.safetensors"
    result = vexpress(
        "retarget", "--reference-image", SAMPLES_DIR / "tys" / "ref.jpg", "--kps", SAMPLES_DIR / "tys" / "kps.pth",
        "--strategy", "offset_retarget", "--num-frames", 8, "--output", output,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Reference keypoints:" in result.output
    points = load_kps(output).points
    from vexpress_cli.face import detect_reference_kps

    detected = detect_reference_kps(SAMPLES_DIR / "tys" / "ref.jpg", 512, 512)
    # offset_retarget starts exactly on the reference face (no motion yet in frame 0).
    np.testing.assert_allclose(points[0], detected, atol=1e-4)
    left_eye, right_eye, nose = detected
    assert right_eye[0] - left_eye[0] > 60 and nose[1] > max(left_eye[1], right_eye[1])


def test_no_retarget_needs_no_reference_face(tmp_path):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app
    from vexpress_cli.kps.io import load_kps

    from conftest import SAMPLES_DIR

    output = tmp_path / "same.safetensors"
    result = CliRunner().invoke(app, ["retarget", "--kps", str(SAMPLES_DIR / "tys" / "kps.pth"),
                                      "--strategy", "no_retarget", "--output", str(output)])
    assert result.exit_code == 0, result.output
    original = load_kps(SAMPLES_DIR / "tys" / "kps.pth").points
    assert (load_kps(output).points == original).all()


@pytest.mark.parametrize("option", ["--output", "--preview"])
def test_output_under_a_file_fails_before_any_work(tmp_path, option, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the driving track was read although an output cannot be written")

    monkeypatch.setattr("vexpress_cli.jobs.retarget.load_kps", no_loading)
    (tmp_path / "afile").write_text("a file, not a folder")
    outputs = {"--output": tmp_path / "out.pth", "--preview": tmp_path / "p.mp4"}
    outputs[option] = tmp_path / "afile" / outputs[option].name
    arguments = ["--reference-kps", REFERENCE_TEXT, "--kps", AOC_KPS, *(str(v) for kv in outputs.items() for v in kv)]
    assert_input_error(vexpress("retarget", *arguments), "Cannot create the output folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_reference_kps_file_of_another_size_is_rescaled(tmp_path):
    reference_file = tmp_path / "ref.pth"
    save_kps(tmp_path / "ref.safetensors", KpsTrack(REFERENCE[None] / 2, width=256, height=256))
    save_kps(reference_file, KpsTrack(REFERENCE[None] / 2))  # no size recorded: used as it is
    for source, expected in ((tmp_path / "ref.safetensors", REFERENCE), (reference_file, REFERENCE / 2)):
        output = tmp_path / "still.safetensors"
        arguments = ["--reference-kps", source, "--strategy", "fix_face", "-n", 2, "--output", output, "--overwrite"]
        result = vexpress("retarget", *arguments)
        assert result.exit_code == 0, result.output
        np.testing.assert_allclose(load_kps(output).points[1], expected)


def test_reference_photo_without_a_face_is_named(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(blank)
    result = vexpress("retarget", "--reference-image", blank, "--backend", "dlib", "--kps", AOC_KPS,
                      "--strategy", "offset_retarget", "--output", tmp_path / "o.pth")  # fmt: skip
    assert_input_error(result, f"No face was found in {blank}")
    assert not (tmp_path / "o.pth").exists()


def test_an_infinite_fps_is_refused_before_anything_is_written(tmp_path):
    """Issue 8 item 9: `retarget --fps inf --preview` crashed in the video writer (OverflowError), and
    without --preview wrote a track whose fps no reader accepts. The settings check refuses it now; a
    KpsTrack refuses a non-finite or non-positive fps too, for library callers that build one."""
    output, preview = tmp_path / "out.safetensors", tmp_path / "preview.mp4"
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--strategy", "fix_face", "--num-frames", 3,
                      "--fps", "inf", "--output", output, "--preview", preview)
    assert_input_error(result, "--fps is inf")
    assert not output.exists() and not preview.exists()
    for fps in (float("inf"), float("nan"), 0.0, -25.0, 1e-300, 0.001, 1001.0):
        with pytest.raises(InputError, match="must be from 0.01 to 1000 fps") as error:
            KpsTrack(REFERENCE[None], fps=fps)
        assert "(fps=25)" in str(error.value)


def test_a_track_with_no_point_inside_the_frame_is_refused_as_generate_would_refuse_it_and_creates_nothing(tmp_path):
    output = tmp_path / "new" / "away.safetensors"
    result = vexpress("retarget", "--reference-kps", "200,200;300,200;250,260", "-n", "3", "-s", "fix_face",
                      "--width", "64", "--height", "64", "-o", output)
    assert_input_error(result, "No keypoint of the retargeted track lies inside the 64x64 frame",
                       "--reference-kps are pixels of the 64x64 output frame", "or a larger --width and --height")
    assert not (tmp_path / "new").exists()  # checked as creatable, created only when written


def test_fix_face_with_a_driving_track_says_the_track_sets_no_keypoint(tmp_path):
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--strategy", "fix_face", "--kps", AOC_KPS,
                      "--output", tmp_path / "still.safetensors", "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    # named as typed: --strategy
    assert "The strategy fix_face does not use a driving kps track: the keypoints are the same without --kps. " \
           "To move the head with the track, use --strategy offset_retarget" in " ".join(notes)


def test_a_folder_given_as_the_driving_track_gets_the_message_every_command_gives(tmp_path):
    """Typer's own check answered with 'Invalid value for '--kps': ... is a directory' in a box, with no fix."""
    (tmp_path / "tracks.pth").mkdir()
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "--kps", tmp_path / "tracks.pth",
                      "--output", tmp_path / "out.safetensors")
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (f"Error: Cannot read the kps file {tmp_path / 'tracks.pth'}: it is not "
                                               "a file but a folder. Pass the path of a .safetensors or .pth kps file "
                                               "in it.")


@pytest.mark.parametrize("input_flag", ["--kps", "--reference-kps"])
def test_overwrite_never_replaces_the_track_the_job_reads(tmp_path, input_flag):
    """`retarget --kps t.pth -o t.pth --overwrite` wrote over the driving track; generate refuses the same."""
    track = tmp_path / "t.pth"
    track.write_bytes(AOC_KPS.read_bytes())
    driving = ["--kps", str(AOC_KPS)] if input_flag == "--reference-kps" else []
    result = vexpress("retarget", "-s", "offset_retarget", input_flag, str(track), *driving, "-o", str(tmp_path / "." / "t.pth"),
                      "--overwrite", *(["--reference-kps", "200,200;300,200;250,260"] if input_flag == "--kps" else []))
    assert_input_error(result, f"is also the job's {input_flag}", "Choose another output path")
    assert track.read_bytes() == AOC_KPS.read_bytes()


def test_a_track_needing_a_frame_count_names_the_strategy_auto_chose():
    assert_input_error(vexpress("retarget", "--reference-kps", "200,200;300,200;250,260", "-o", "x.pth"),
                       "The strategy 'fix_face' builds the track from the reference alone")


def test_a_driving_track_without_a_frame_rate_is_said_to_give_an_output_without_one(tmp_path):
    """retarget said nothing while generate notes the rate it assumes; the preview played at 25 fps unsaid."""
    result = vexpress("retarget", "-s", "offset_retarget", "--kps", str(AOC_KPS), "--reference-kps",
                      "200,200;300,200;250,260", "-o", str(tmp_path / "r.safetensors"), "--preview",
                      str(tmp_path / "p.mp4"), "-n", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fps"] is None and load_kps(tmp_path / "r.safetensors").fps is None
    assert ("The kps file records no frame rate, so neither does the output; the preview plays at 25 fps. Give --fps "
            "N to record one (generate times a track without one by the speech).") in data["notes"]


def test_a_track_outside_the_frame_with_a_detected_reference_blames_the_driving_track(tmp_path):
    """The fix spoke of --reference-kps, which the user had not given (the photo's points are inside the frame)."""
    driving = tmp_path / "away.safetensors"
    save_kps(driving, KpsTrack(np.full((3, 3, 2), 2000.0, np.float32), fps=25.0, width=512, height=512))
    result = vexpress("retarget", "--reference-image", SAMPLES_DIR / "AOC" / "ref.jpg", "--kps", driving,
                      "-s", "no_retarget", "--face-backend", "dlib", "-o", tmp_path / "r.safetensors")
    assert_input_error(result, "No keypoint of the retargeted track lies inside the 512x512 frame",
                       "For the driving track, re-extract it with `vexpress extract`")
    assert "--reference-kps" not in result.output


def test_settings_left_out_take_the_user_configs_generate_values_and_flags_win(tmp_path, monkeypatch):
    """retarget shares width, height and the strategy with generate: your config's [generate] defaults count for
    both, or a track made for a 320x288 video came out at 512x512."""
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        '[generate]\nwidth = 320\nheight = 288\nretarget_strategy = "fix_face"\n')
    configured = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "-n", 3, "--json", "-o", tmp_path / "a.pth")
    assert configured.exit_code == 0, configured.output
    assert {key: json.loads(configured.stdout)[key] for key in ("width", "height", "strategy")} == {
        "width": 320, "height": 288, "strategy": "fix_face"}
    flagged = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "-n", 3, "--width", 400, "--strategy",
                       "naive_retarget", "--kps", AOC_KPS, "-o", tmp_path / "b.safetensors")
    assert flagged.exit_code == 0, flagged.output
    track = load_kps(tmp_path / "b.safetensors")
    assert (track.width, track.height) == (400, 288)


def test_no_output_is_one_paragraph_naming_the_option_and_the_formats():
    result = vexpress("retarget", "--reference-kps", REFERENCE_TEXT, "-n", 3)
    assert_input_error(result, "Error: No output given.", "Pass --output PATH: .safetensors", "or .pth")
    assert "╭" not in result.output  # not click's boxed usage error
