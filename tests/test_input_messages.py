"""Bad input files and values named for what they are: an empty file, a text file under a photo's or
video's name, a crop box with a negative number. One paragraph each, exit code 2, from every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR, error_paragraph
from typer.testing import CliRunner

from vexpress_cli.cli.app import app

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

TYS = SAMPLES_DIR / "tys"
SMALL = ["--width", "64", "--height", "64", "--num-inference-steps", "1", "--model-dir", str(TINY_MODEL_DIR)]
runner = CliRunner()


@pytest.fixture
def empty_files(tmp_path) -> dict[str, Path]:
    files = {name: tmp_path / name for name in ("speech.wav", "photo.jpg", "driving.mp4", "track.pth")}
    for path in files.values():
        path.write_bytes(b"")
    return files


EMPTY_INPUTS = {
    "generate audio": lambda empty, out: ["generate", "-i", TYS / "ref.jpg", "-a", empty["speech.wav"], "-o", out,
                                          *SMALL],
    "generate photo": lambda empty, out: ["generate", "-i", empty["photo.jpg"], "-a", TYS / "aud.mp3", "-o", out,
                                          *SMALL],
    "generate kps": lambda empty, out: ["generate", "-i", TYS / "ref.jpg", "-a", TYS / "aud.mp3", "--kps",
                                        empty["track.pth"], "-o", out, *SMALL],
    "inspect audio": lambda empty, out: ["inspect", empty["speech.wav"]],
    "inspect photo": lambda empty, out: ["inspect", empty["photo.jpg"]],
    "inspect video": lambda empty, out: ["inspect", empty["driving.mp4"]],
    "inspect kps": lambda empty, out: ["inspect", empty["track.pth"]],
    "extract video": lambda empty, out: ["extract", empty["driving.mp4"], "-o", out.with_suffix(".pth")],
}


@pytest.mark.parametrize("case", EMPTY_INPUTS)
def test_an_empty_input_file_is_refused_as_empty_not_as_invalid_data(case, empty_files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    message = error_paragraph(EMPTY_INPUTS[case](empty_files, out / "talk.mp4"))
    assert "is empty (0 bytes)" in message and "Copy or export it again" in message, message
    assert "Invalid data" not in message
    assert list(out.iterdir()) == []


def test_batch_names_an_empty_audio_file_as_empty(empty_files, tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"reference_image": str(TYS / "ref.jpg"), "audio": str(empty_files["speech.wav"]),
                                    "output": str(tmp_path / "talk.mp4")}) + "\n")
    result = runner.invoke(app, ["batch", str(manifest), *SMALL])
    log = " ".join(result.output.split())
    assert result.exit_code != 0 and "is empty (0 bytes)" in log, log
    assert not (tmp_path / "talk.mp4").exists()


@pytest.fixture
def text_named_jpg(tmp_path) -> Path:
    path = tmp_path / "notes.jpg"
    path.write_text("these are notes, not a photo\n")
    return path


def test_extract_calls_a_text_file_named_jpg_not_a_video_or_image(text_named_jpg, tmp_path):
    message = error_paragraph(["extract", text_named_jpg, "--crop", "auto", "-o", tmp_path / "k.pth"])
    assert "is not a video or image that ffmpeg can decode" in message and "another kind of file" in message
    assert "Cannot tell the frame size" not in message
    assert not (tmp_path / "k.pth").exists()


@pytest.mark.parametrize("command", ["generate", "inspect"])
def test_generate_and_inspect_call_a_text_file_named_jpg_not_an_image(command, text_named_jpg, tmp_path):
    args = (["generate", "-i", text_named_jpg, "-a", TYS / "aud.mp3", "-o", tmp_path / "x.mp4", *SMALL]
            if command == "generate" else ["inspect", text_named_jpg])
    assert "It is not an image Pillow can open" in error_paragraph(args)


@pytest.mark.parametrize(("box", "wrong"), [("-10,0,100,100", "X,Y is -10,0"), ("0,0,-100,100", "W,H is -100,100"),
                                            ("0,0,0,100", "W,H is 0,100")])
def test_a_crop_box_with_a_negative_corner_or_no_size_says_which_numbers_must_be_positive(box, wrong, tmp_path):
    message = error_paragraph(["generate", "-i", TYS / "ref.jpg", "-a", TYS / "aud.mp3", "-o", tmp_path / "x.mp4",
                               f"--crop={box}", *SMALL])
    assert wrong in message and "must be 0 or more" in message and "more than 0" in message, message
    assert "must lie inside the photo" in message
    assert message.endswith("Use --crop auto, or a box such as 320,40,640,640.")  # was "Pick one of auto, none or ..."


def test_extract_allows_a_box_past_the_edge_but_says_a_size_must_be_positive(tmp_path):
    message = error_paragraph(["extract", TYS / "gt.mp4", "--crop=0,0,-100,100", "-o", tmp_path / "k.pth"])
    assert "W,H is -100,100" in message and "must be more than 0" in message, message
    assert "X,Y" not in message.split("but", 1)[1]  # a negative corner is allowed for a video box


def test_a_crop_box_number_longer_than_python_reads_is_refused_by_its_length_in_a_short_paragraph(tmp_path):
    """int() of a box's number of 5001 digits was a ValueError traceback, in generate and in extract."""
    long = "1" + "0" * 5000
    generate = error_paragraph(["generate", "-i", TYS / "ref.jpg", "-a", TYS / "aud.mp3", "-o", tmp_path / "x.mp4",
                                f"--crop={long},0,10,10", *SMALL])
    extract = error_paragraph(["extract", TYS / "gt.mp4", f"--crop=0,0,{long},10", "-o", tmp_path / "k.pth"])
    assert "X is a 5001-digit number, but X,Y,W,H are pixels of the photo, at most 1000000 (no picture is " \
        "larger). Use --crop auto" in generate, generate
    assert "W is a 5001-digit number, but X,Y,W,H are pixels of the video, at most 1000000 (no picture is " \
        "larger). Use --crop auto" in extract, extract
    assert max(len(generate), len(extract)) < 500


def test_json_commands_report_bad_input_alike_a_paragraph_on_stderr_and_nothing_on_stdout(tmp_path, monkeypatch):
    """models path --json with no weights answers like generate/inspect/batch --json with a missing file."""
    monkeypatch.chdir(tmp_path)  # no ./model_ckpts here, and no_user_config hides the cache and settings
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"reference_image": "gone.jpg", "audio": str(TYS / "aud.mp3"),
                                    "output": "talk.mp4"}) + "\n")
    commands = {
        "models path": ["models", "path", "--json"],
        "generate": ["generate", "-i", "gone.jpg", "-a", TYS / "aud.mp3", "-o", "talk.mp4", "--json", *SMALL],
        "inspect": ["inspect", "gone.jpg", "--json"],
        "batch": ["batch", manifest, "--json", *SMALL],
    }
    for name, args in commands.items():
        message = error_paragraph(args)  # exit code 2, stdout empty, one "Error:" paragraph on stderr
        assert ("vexpress models download" if name == "models path" else "gone.jpg") in message, (name, message)


@pytest.mark.slow
def test_generate_warnings_name_settings_as_flags_on_screen_and_in_json_and_as_python_in_the_record(
        speech, tmp_path):
    flags = ["generate", "-i", TYS / "ref.jpg", "-a", speech, "--max-size", "100", "--face-backend", "dlib",
             *SMALL]
    shown = runner.invoke(app, [str(arg) for arg in [*flags, "-o", tmp_path / "a.mp4"]])
    assert shown.exit_code == 0, shown.output
    assert "Warning: --max-size only scales a pasted-back video; without --paste-back" in " ".join(
        shown.stderr.split()) and "\x1e" not in shown.output
    as_json = runner.invoke(app, [str(arg) for arg in [*flags, "-o", tmp_path / "b.mp4", "--json"]])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["warnings"][0].startswith("--max-size only scales")
    record = json.loads((tmp_path / "b.mp4.json").read_text())
    assert record["warnings"][0].startswith("max_size only scales") and "\\u001e" not in json.dumps(record)


def test_retarget_notes_name_settings_as_flags(tmp_path):
    wide = tmp_path / "wide.png"
    import PIL.Image

    PIL.Image.new("RGB", (300, 100), (90, 90, 90)).save(wide)
    result = runner.invoke(app, ["retarget", "--reference-image", str(wide), "--reference-kps", "40,40;60,40;50,60",
                                 "--kps", str(TYS / "kps.pth"), "-n", "3", "-o", str(tmp_path / "r.safetensors")])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert "--crop auto is not used with --reference-kps" in shown and "\x1e" not in result.output


@pytest.mark.slow
def test_library_results_read_warnings_with_python_names_and_the_cli_still_spells_flags(speech, tmp_path):
    import vexpress_cli
    from vexpress_cli.cli.options import flag_of

    result = vexpress_cli.generate(TYS / "ref.jpg", speech, tmp_path / "a.mp4", model_dir=TINY_MODEL_DIR,
                                   width=64, height=64, num_inference_steps=1, max_size=100, face_backend="dlib")
    warning = result.warnings[0]
    assert warning.startswith("max_size only scales a pasted-back video; without paste_back") and "\x1e" not in warning
    assert result.to_dict(flag_of)["warnings"][0].startswith("--max-size only scales")
    assert json.loads(json.dumps(result.to_dict()))["warnings"][0] == warning


def test_a_text_file_named_wav_is_refused_with_ffmpegs_reason_once_and_no_wrapping(tmp_path):
    (tmp_path / "speech.wav").write_text("hello, not audio\n")
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "speech.wav")])
    message = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "ffmpeg could not open it: Invalid data found when processing input. Check that" in message
    assert "Error opening input" not in message and "@ 0x" not in message and " | " not in message


def test_an_existing_output_names_the_switch_as_each_caller_spells_it(tmp_path):
    import vexpress_cli

    (tmp_path / "talk.mp4").write_bytes(b"mine")
    result = CliRunner().invoke(app, ["generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a",
                                      str(SAMPLES_DIR / "AOC" / "aud.mp3"), "-o", str(tmp_path / "talk.mp4"),
                                      "--model-dir", str(TINY_MODEL_DIR)])
    assert result.exit_code == 2 and "Allow overwriting (--overwrite), or choose another name." in " ".join(
        result.output.split())
    with pytest.raises(vexpress_cli.InputError) as raised:
        vexpress_cli.generate(SAMPLES_DIR / "AOC" / "ref.jpg", SAMPLES_DIR / "AOC" / "aud.mp3", tmp_path / "talk.mp4",
                              model_dir=TINY_MODEL_DIR)
    assert raised.value.fix == "Allow overwriting (overwrite=True), or choose another name."
    assert (tmp_path / "talk.mp4").read_bytes() == b"mine"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_extract_refuses_a_photo_as_a_still_image_not_a_video(tmp_path, suffix):
    from PIL import Image

    photo = tmp_path / f"room{suffix}"
    Image.open(SAMPLES_DIR / "AOC" / "ref.jpg").save(photo)
    message = error_paragraph(["extract", photo, "-o", tmp_path / "k.pth"])
    assert message.startswith(f"Error: {photo} is a still image, not a video.")
    assert not (tmp_path / "k.pth").exists()


def test_extract_with_a_box_holding_no_face_names_the_box_first(tmp_path):
    message = error_paragraph(["extract", SAMPLES_DIR / "AOC" / "gt.mp4", "--crop", "0,0,40,40", "--backend", "dlib",
                               "--width", "64", "--height", "64", "-o", tmp_path / "k.pth"])
    assert "No face was found in any of the" in message
    assert "Check that the box --crop 0,0,40,40 holds the face, or use --crop auto. Use a video with" in message
    assert not (tmp_path / "k.pth").exists()


def test_an_error_shows_control_characters_of_a_file_name_as_escapes():
    from vexpress_cli.errors import InputError as Error

    error = Error("Cannot read evil\x1b[31mRED\x1b[0m\r.png.", "Its first line\nand a tab\there.")
    assert error.render() == "Cannot read evil\\x1b[31mRED\\x1b[0m\\r.png. Its first line\nand a tab\there."


@pytest.mark.parametrize("named", ["ref.jpg", "speech.mp3"])
def test_a_photo_given_as_the_speech_is_called_a_photo_and_the_swap_is_named(named, tmp_path):
    """It said only "has no audio track. ffmpeg found no audio stream in it" (also for a photo named .mp3)."""
    photo = tmp_path / named
    photo.write_bytes((TYS / "ref.jpg").read_bytes())
    message = error_paragraph(["generate", "-i", TYS / "aud.mp3", "-a", photo, "-o", tmp_path / "x.mp4", *SMALL])
    assert message.startswith(f"Error: '{photo}' is a JPEG photo, not a speech recording.")
    assert "If the photo and the recording were swapped, give the photo as --reference-image instead." in message
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(("command", "label"), [("generate", "reference image"), ("inspect", "image")])
def test_a_photo_cut_short_is_called_damaged_not_something_other_than_a_photo(command, label, tmp_path):
    """It said "not an image Pillow can open ... Pass a JPEG or PNG photo" of a JPEG whose copy had not finished."""
    cut = tmp_path / "cut.jpg"
    whole = (TYS / "ref.jpg").read_bytes()
    cut.write_bytes(whole[:len(whole) // 2])
    args = (["generate", "-i", cut, "-a", TYS / "aud.mp3", "-o", tmp_path / "x.mp4", *SMALL]
            if command == "generate" else ["inspect", cut])
    message = error_paragraph(args)
    assert message.startswith(f"Error: Cannot read the {label} {cut}: it starts as a JPEG photo, but the rest cannot "
                              "be decoded")
    assert "damaged or cut short" in message and "Pass a JPEG or PNG" not in message
