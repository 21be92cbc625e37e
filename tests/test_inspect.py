"""``vexpress inspect``: model folders and every kind of input file, for humans and as JSON."""

from __future__ import annotations

import json
import math
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR, wav_bytes
from PIL import Image
from typer.testing import CliRunner

from vexpress_cli.jobs import inspect as input_report
from vexpress_cli.errors import InputError
from vexpress_cli.face import detect_reference_kps
from vexpress_cli.kps.io import KpsTrack, load_kps, save_kps
from vexpress_cli.settings.presets import load_preset
from vexpress_cli.settings.schema import resolve_settings

REPO_PRESETS = Path(__file__).resolve().parent.parent / "presets"
BUILTIN_PRESETS = sorted(path.stem for path in REPO_PRESETS.glob("*.toml"))
NESTED = ("face", "motion", "gaps", "values", "settings", "sources", "warnings", "kind")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch) -> Path:
    """No user presets from the developer's own config folder."""
    folder = tmp_path / "config"
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(folder))
    return folder


def run_cli(*args: str):
    from vexpress_cli.cli.app import app

    return CliRunner().invoke(app, ["inspect", *map(str, args)])


def inspect_json(*args) -> dict:
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def inspect_human(*args) -> str:
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert not result.stdout.lstrip().startswith("{")
    return result.stdout


def assert_same_fields(human: str, data: dict) -> None:
    """Every scalar field of the JSON report is a row of the human table."""
    from vexpress_cli.cli.inspect import _label

    for key, value in data.items():
        if key in NESTED:
            continue
        assert _label(key) in human, key
        if isinstance(value, (int, str)) and not isinstance(value, bool) and len(str(value)) < 20:
            assert str(value) in human, (key, value)


def assert_cli_error(args, *fragments: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Error:" in result.output
    assert isinstance(result.exception, SystemExit)
    message = "".join(result.output.split())  # rich wraps lines anywhere
    for fragment in fragments:
        assert "".join(fragment.split()) in message, (fragment, result.output)
    return result.output


# --- model folder (unchanged behaviour) --------------------------------------------------------


def test_model_folder_report_is_unchanged():
    data = inspect_json(TINY_MODEL_DIR)
    assert data["complete"] is True
    assert {network["status"] for network in data["networks"]} == {"ok"}
    human = inspect_human(TINY_MODEL_DIR)
    assert "V-Express networks" in human and "Other components" in human
    assert "complete" in human


# --- audio --------------------------------------------------------------------------------------


def test_audio_report_of_a_real_mp3():
    path = SAMPLES_DIR / "AOC" / "aud.mp3"
    data = inspect_json(path)
    assert data["kind"] == "audio"
    assert (data["container"], data["codec"], data["sample_rate"], data["channels"]) == ("mp3", "mp3", 44100, 2)
    assert data["duration_s"] == pytest.approx(4.5743, abs=1e-3)
    assert data["fps"] == 30.0 and data["frames"] == 137  # round(4.5744 * 30)
    assert not data["silent"] and -30 < data["peak_dbfs"] < 0
    assert data["warnings"] == []
    assert_same_fields(inspect_human(path), data)


def test_audio_frames_follow_fps():
    path = SAMPLES_DIR / "tys" / "aud.mp3"  # 64512 samples at 16 kHz = 4.032 s
    assert inspect_json(path, "--fps", "25")["frames"] == 101  # round(100.8)
    assert inspect_json(path, "--fps", "10")["frames"] == 40  # round(40.32)


@pytest.mark.parametrize("fps", ["1e308", "1e20", "0", "nan"])
def test_an_fps_generate_would_refuse_is_refused_with_its_limits(fps):
    """1e308 was an OverflowError traceback, 1e20 a report of 457437500000000016384 frames."""
    result = run_cli(str(SAMPLES_DIR / "tys" / "aud.mp3"), "--fps", fps)
    assert result.exit_code == 2
    assert "--fps is " in result.output and "from 1 to 120" in result.output.replace(".0", "")


def test_silent_audio_is_flagged(tmp_path):
    path = tmp_path / "quiet.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\0\0" * 8000)
    data = inspect_json(path)
    assert data["silent"] is True and data["peak_dbfs"] is None and data["peak"] == 0
    assert data["frames"] == 15 and data["duration_s"] == 0.5
    assert any("silent" in warning for warning in data["warnings"])
    assert "silent" in inspect_human(path)


def test_truncated_audio_warns_that_the_header_disagrees(tmp_path):
    path = tmp_path / "cut.mp3"
    path.write_bytes((SAMPLES_DIR / "AOC" / "aud.mp3").read_bytes()[:5000])
    data = inspect_json(path)
    assert data["duration_s"] < 1 < data["container_duration_s"]
    assert any("truncated" in warning for warning in data["warnings"])


@pytest.mark.parametrize(("counted", "held", "after", "warned"), [
    (0.1, 1.0, b"", "Its WAV header counts 0.10 s of sound, but about 0.90 s more follow in the file"),
    (1.0, 1.0, b"LIST" + (12).to_bytes(4, "little") + b"INFOISFT\0\0\0\0", None),  # tags after the sound
    (1.0, 1.0, b"", None),
    (1.0, 1.0, b"ID3\x04\0\0\0\0\0\x0a" + bytes(10) + b"\xff" * 3000, None),  # an ID3 tag appended
    (1.0, 1.0, bytes(5000), None),  # zero padding
])
def test_sound_past_the_length_a_wav_header_counts_is_warned_of_with_the_ffmpeg_fix(tmp_path, counted, held, after,
                                                                                      warned):
    """A 1 s recording whose header says 0.1 s made a 0.1 s video without a word: ffmpeg reads what it counts."""
    path = tmp_path / "speech.wav"
    path.write_bytes(wav_bytes(counted, held, after))
    data = inspect_json(path)
    assert data["duration_s"] == pytest.approx(counted, abs=1e-3)
    found = [warning for warning in data["warnings"] if "WAV header counts" in warning]
    if warned is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(warned)
        assert found[0].endswith("To use all of it: ffmpeg -ignore_length 1 -i IN.wav OUT.wav")

# --- image --------------------------------------------------------------------------------------


def test_image_report_finds_the_face_like_generate():
    path = SAMPLES_DIR / "tys" / "ref.jpg"
    data = inspect_json(path, "--backend", "dlib")
    assert data["kind"] == "image"
    assert (data["format"], data["width"], data["height"], data["mode"]) == ("JPEG", 512, 512, "RGB")
    assert data["square"] is True and data["smaller_than_512"] is False
    face = data["face"]
    assert face["backend"] == "dlib" and face["found"] is True and face["faces"] == 1
    expected = detect_reference_kps(path, 512, 512, backend="dlib")
    np.testing.assert_allclose(face["kps"], expected, atol=0.01)
    human = inspect_human(path, "--backend", "dlib")
    assert_same_fields(human, data)
    assert "kps left eye" in human and "kps nose" in human


def test_image_without_a_face_is_reported_not_an_error(tmp_path):
    path = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(path)
    data = inspect_json(path, "--backend", "dlib")
    assert data["face"]["found"] is False and data["face"]["kps"] is None
    assert data["square"] is False and data["smaller_than_512"] is True
    assert any("No face" in warning for warning in data["warnings"])
    assert any("aspect not kept" in warning for warning in data["warnings"])
    # In generate's words, which say it once the photo is framed.
    assert "The image is 300x200: its short side is under 512px; expect a blurry face." in data["warnings"]
    assert "no face found" in inspect_human(path, "--backend", "dlib")


def test_image_detection_size_follows_width_and_height():
    path = SAMPLES_DIR / "tys" / "ref.jpg"
    data = inspect_json(path, "--backend", "dlib", "--width", "256", "--height", "256")
    assert (data["face"]["detect_width"], data["face"]["detect_height"]) == (256, 256)
    full = detect_reference_kps(path, 512, 512, backend="dlib")
    np.testing.assert_allclose(np.array(data["face"]["kps"]) * 2, full, atol=8)  # same face, half the scale


# --- kps ----------------------------------------------------------------------------------------


def test_kps_report_of_an_original_kps_file():
    path = SAMPLES_DIR / "AOC" / "kps.pth"
    points = load_kps(path).points
    data = inspect_json(path)
    assert data["kind"] == "kps" and data["format"] == "torch"
    assert data["frames"] == 137
    assert data["fps"] is None and data["fps_assumed"] is True and data["width"] is None
    assert data["duration_s"] == pytest.approx(137 / 25, abs=1e-6)  # generate's guess without speech to go by
    assert data["frames_outside"] == 0  # of the 512x512 frame generate reads such a file in
    assert data["x_range"] == pytest.approx([points[..., 0].min(), points[..., 0].max()], abs=0.01)
    assert data["y_range"] == pytest.approx([points[..., 1].min(), points[..., 1].max()], abs=0.01)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=2)
    assert [row["point"] for row in data["motion"]] == ["left eye", "right eye", "nose"]
    assert [row["step_max_px"] for row in data["motion"]] == pytest.approx(steps.max(axis=0), abs=1e-3)
    assert [row["step_mean_px"] for row in data["motion"]] == pytest.approx(steps.mean(axis=0), abs=1e-3)
    assert data["gaps"] == [] and data["jump_frames"] == data["held_frames"] == 0
    assert 0 < data["motion"][0]["jitter_rms_px"] < 5
    human = inspect_human(path)
    assert_same_fields(human, data)
    assert "motion per point" in human

    assert inspect_json(path, "--fps", "29.97")["duration_s"] == pytest.approx(137 / 29.97, abs=1e-6)


def test_kps_gaps_held_interpolated_and_jumps(tmp_path):
    rng = np.random.default_rng(0)
    face = np.array([[200, 220], [300, 220], [250, 280]], dtype=np.float64)
    points = face + rng.normal(0, 1, (40, 3, 2))
    points[5:9] = points[4]  # no face in 5..8: held
    for frame in range(15, 20):  # no face in 15..19: filled by a straight line from 14 to 20
        weight = (frame - 14) / 6
        points[frame] = points[14] * (1 - weight) + points[20] * weight
    points[30] += 60  # a wrong face in frame 30 only: jumps there and back
    points[35, 2] = [600, 100]  # one point outside the frame
    path = save_kps(tmp_path / "track.safetensors", KpsTrack(points, fps=25.0, width=512, height=512, backend="dlib"))

    data = inspect_json(path)
    assert (data["format"], data["fps"], data["width"], data["backend"]) == ("safetensors", 25.0, 512, "dlib")
    assert data["fps_assumed"] is False and data["duration_s"] == 1.6
    assert [(gap["kind"], gap["start"], gap["end"]) for gap in data["gaps"]] == [
        ("held", 5, 8), ("interpolated", 15, 19), ("jump", 30, 31), ("jump", 35, 36),
    ]
    assert (data["held_frames"], data["interpolated_frames"], data["jump_frames"]) == (4, 5, 4)
    assert data["frames_outside"] == 1
    assert data["gaps"][2]["max_step_px"] == pytest.approx(60 * math.sqrt(2), abs=3)
    # A higher threshold keeps the 85 px jump out but not the 390 px one.
    loose = inspect_json(path, "--jump-px", "100")
    assert [(gap["start"], gap["end"]) for gap in loose["gaps"] if gap["kind"] == "jump"] == [(35, 36)]
    human = inspect_human(path)
    assert "gaps" in human and "interpolated" in human and "held" in human
    assert_same_fields(human, data)


def test_still_track_is_all_held(tmp_path):
    still = np.repeat(np.array([[[200, 220], [300, 220], [250, 280]]], dtype=np.float32), 10, axis=0)
    data = inspect_json(save_kps(tmp_path / "still.pth", KpsTrack(still)))
    assert data["held_frames"] == 9 and data["gaps"] == [
        {"kind": "held", "start": 1, "end": 9, "max_step_px": 0.0}]
    assert any("head will not move" in warning for warning in data["warnings"])


# --- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_PRESETS)
def test_builtin_presets_by_name(name):
    data = inspect_json("--preset", name)
    preset = load_preset(name)
    assert data["kind"] == "preset" and data["name"] == name and data["source"] == "builtin"
    assert data["values"] == preset.values
    assert data["settings"] == resolve_settings(preset.values).settings.to_dict()


def test_a_presets_settings_include_the_user_config_under_the_preset_as_generate_and_presets_show_resolve_them(
        isolated_config):
    isolated_config.mkdir()
    (isolated_config / "config.toml").write_text('[generate]\nseed = 7\naudio_attention_weight = 2.0\n')
    data = inspect_json("--preset", "lip-sync")  # which sets audio_attention_weight = 1.0 itself
    assert data["settings"]["seed"] == 7 and data["sources"]["seed"] == "config"
    assert data["settings"]["audio_attention_weight"] == 1.0 and data["sources"]["audio_attention_weight"] == "preset"
    assert data["sources"]["fps"] == "default"
    rows = {line.split("│")[1].strip(): line for line in inspect_human("--preset", "lip-sync").splitlines()
            if line.count("│") >= 4}
    assert "user config" in rows["seed"] and "preset" in rows["audio_attention_weight"] and "default" in rows["fps"]


def test_preset_file_by_path():
    path = REPO_PRESETS / "expressive.toml"
    data = inspect_json(path)
    assert data["source"] == "file"
    assert data["values"]["audio_attention_weight"] == 3.0
    human = inspect_human(path)
    assert "generate settings with this preset" in human and "preset" in human and "default" in human
    assert_same_fields(human, data)


def test_invalid_preset_file_is_an_input_error(tmp_path):
    path = tmp_path / "loud.toml"
    path.write_text("[generate]\naudio_attention_weight = 9.0\n", encoding="utf-8")
    assert_cli_error([path], "outside the advised range")


def test_the_user_config_is_reported_as_the_user_config_not_as_a_preset(isolated_config):
    """`inspect config.toml` said "Preset file ...: unknown key 'model'"; with [generate] only, a preset "config"."""
    isolated_config.mkdir()
    path = isolated_config / "config.toml"
    path.write_text(f'model_dir = "{TINY_MODEL_DIR}"\n[generate]\nseed = 7\n')
    data = inspect_json(path)
    assert data["kind"] == "config" and data["in_use"] is True and data["model_dir"] == str(TINY_MODEL_DIR)
    assert data["values"] == {"seed": 7} and data["sources"]["seed"] == "config" and data["sources"]["fps"] == "default"
    assert "vexpress doctor" in data["checked_with"] and data["warnings"] == []
    human = inspect_human(path)
    assert "config:" in human and "generate settings with this config" in human
    assert_same_fields(human, data)
    path.write_text("[generate]\nseed = 7\n")  # by its name alone
    assert inspect_json(path)["kind"] == "config"


def test_a_toml_file_setting_model_is_a_user_config_validated_by_the_config_loader(tmp_path, isolated_config):
    path = tmp_path / "mine.toml"
    path.write_text('model = "/data/weights"\n')
    data = inspect_json(path)
    assert data["kind"] == "config" and data["in_use"] is False and data["model"] == "/data/weights"
    assert data["warnings"] == [f"This is not the config file vexpress reads, which is {isolated_config}/config.toml "
                                "(set $VEXPRESS_CONFIG_DIR to the folder of this one to use it)."]
    path.write_text('model = "/data/weights"\n[generate]\nnum_inference_step = 3\n')
    assert_cli_error([path], f"The config file {path}: unknown key 'generate.num_inference_step'")


# --- video --------------------------------------------------------------------------------------


def test_video_report_with_exact_fps():
    path = SAMPLES_DIR / "AOC" / "gt.mp4"
    data = inspect_json(path)
    assert data["kind"] == "video"
    assert (data["codec"], data["width"], data["height"]) == ("h264", 512, 512)
    assert data["fps"] == "30000/1001" and data["fps_float"] == pytest.approx(29.97003, abs=1e-5)
    assert data["frames"] == 137 and data["duration_s"] == pytest.approx(137 * 1001 / 30000, abs=1e-3)
    assert data["has_audio"] is True and data["audio_codec"] == "aac"
    assert_same_fields(inspect_human(path), data)


def test_video_with_a_held_last_frame_warns():
    data = inspect_json(SAMPLES_DIR / "tys" / "gt.mp4")
    assert data["fps"] == "25/1" and data["frames"] == 100
    assert any("Average rate" in warning for warning in data["warnings"])


# --- picking the kind ---------------------------------------------------------------------------


def test_kind_by_content_when_the_suffix_is_unknown(tmp_path):
    path = tmp_path / "speech"
    shutil.copy(SAMPLES_DIR / "tys" / "aud.mp3", path)
    assert inspect_json(path)["kind"] == "audio"
    image = tmp_path / "photo.dat"
    Image.new("RGB", (64, 64)).save(image, format="PNG")
    assert input_report.input_kind(image) == "image"


def test_library_reports_are_plain_json():
    report = input_report.inspect_input(SAMPLES_DIR / "tys" / "gt.mp4")
    assert isinstance(report, input_report.VideoReport)
    json.dumps(report.to_dict(), allow_nan=False)
    assert input_report.input_kind(TINY_MODEL_DIR) == "model_folder"


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_cli_error([tmp_path / "nothing.mp3"], "does not exist", "Check the spelling")


def test_a_loop_of_links_is_named_as_such_not_as_missing(tmp_path):
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    output = assert_cli_error([tmp_path / "a.wav"], f"Cannot read {tmp_path / 'a.wav'}.",
                              "Too many levels of symbolic links.")
    assert "does not exist" not in output


def test_a_preset_name_as_the_path_points_to_the_preset_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_cli_error(["lip-sync"], "lip-sync does not exist", "There is a preset named 'lip-sync': inspect it with "
                     "`vexpress inspect --preset lip-sync`.")


def test_a_hub_id_as_the_path_points_to_its_cached_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_cli_error(["tk93/V-Express"], "tk93/V-Express looks like a hub id, and inspect reads folders",
                     '`vexpress inspect "$(vexpress models path --model tk93/V-Express)"`')


def test_a_missing_file_in_a_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = assert_cli_error(["photos/me.jpg"], "photos/me.jpg does not exist", "Check the spelling")
    assert "hub id" not in output


def test_unknown_kind(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("just some text\n")
    assert_cli_error([path], "Cannot tell what kind of input", "'.xyz'", "kps .pth .pt .safetensors")


@pytest.mark.parametrize(
    ("name", "source", "fragment"),
    [
        ("cut.jpg", SAMPLES_DIR / "tys" / "ref.jpg", "Cannot read the image"),
        ("cut.mp4", SAMPLES_DIR / "tys" / "gt.mp4", "Cannot read the video file"),
        ("cut.pth", SAMPLES_DIR / "tys" / "kps.pth", "could not be read as a torch file"),
        ("noise.wav", None, "Cannot read the audio file"),
        ("noise.safetensors", None, "not a valid safetensors file"),
    ],
)
def test_corrupt_files(tmp_path, name, source, fragment):
    path = tmp_path / name
    path.write_bytes(source.read_bytes()[:3000] if source else b"this is not a media file at all" * 10)
    assert_cli_error([path, "--backend", "dlib"], fragment)


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "aud.mp3"
    shutil.copy(SAMPLES_DIR / "tys" / "aud.mp3", path)
    # chmod 000 does not stop root
    monkeypatch.setattr("vexpress_cli.jobs.inspect.report._is_readable", lambda path: False)
    assert_cli_error([path], "cannot be read", "Permission denied")


def test_path_and_preset_together_or_neither():
    assert_cli_error([REPO_PRESETS / "expressive.toml", "--preset", "lip-sync"], "Both PATH")
    assert_cli_error([], "Nothing to inspect")
    assert_cli_error(["--preset", "lip-sinc"], "no preset named 'lip-sinc'", "Did you mean 'lip-sync'")


def test_library_raises_input_error_for_a_bad_jump_threshold():
    with pytest.raises(InputError, match="jump_px is 0"):
        input_report.inspect_kps(SAMPLES_DIR / "tys" / "kps.pth", jump_px=0)


def test_an_empty_path_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the current folder is an (incomplete) model folder to fall for
    output = assert_cli_error([""], "The path to inspect is empty", "vexpress models path")
    assert "Model folder" not in output
    assert_cli_error(["--json", ""], "The path to inspect is empty")  # --json takes no value: "" is not its
    with pytest.raises(InputError, match="The path to inspect is empty"):
        input_report.inspect_input("")


def test_an_incomplete_model_folder_is_reported_whole_and_exits_2(tmp_path):
    result = run_cli(tmp_path)
    assert result.exit_code == 2, result.output
    assert "incomplete" in result.stdout and "UNet config" in result.stdout
    assert "Point PATH at" in " ".join(result.stdout.split())  # the missing-layout reason in inspect's spelling
    as_json = run_cli(tmp_path, "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["complete"] is False


def test_a_checkpoint_that_is_a_dangling_link_is_named_not_only_counted_as_missing_tensors(tmp_path):
    """A motion_module.bin link leading nowhere read only as "338 missing tensors" of denoising_unet."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR, folder)
    (folder / "v-express" / "motion_module.bin").unlink()
    (folder / "v-express" / "motion_module.bin").symlink_to(tmp_path / "gone.bin")
    (folder / "v-express" / "reference_net.bin").unlink()
    as_json = run_cli(folder, "--json")
    assert as_json.exit_code == 2
    networks = {network["name"]: network for network in json.loads(as_json.stdout)["networks"]}
    assert networks["denoising_unet"]["lacks"] == ("v-express/motion_module.bin (a link that leads nowhere is in its "
                                                   "place)")
    assert networks["reference_net"]["lacks"] == "v-express/reference_net.bin"
    assert networks["audio_projection"]["lacks"] is None
    assert "denoising_unet: lacks v-express/motion_module.bin (a link" in " ".join(run_cli(folder).stdout.split())


def test_a_single_held_frame_is_worded_in_the_singular(tmp_path):
    from vexpress_cli.kps.io import KpsTrack, save_kps

    rng = np.random.default_rng(0)
    points = (200 + np.cumsum(rng.normal(0, 1, (12, 3, 2)), axis=0)).astype(np.float32)
    points[6] = points[5]  # one frame held
    save_kps(tmp_path / "one.safetensors", KpsTrack(points, fps=25.0, width=512, height=512))
    warnings = inspect_json(tmp_path / "one.safetensors")["warnings"]
    assert any(warning.startswith("1 frame repeats the previous one") for warning in warnings), warnings


@pytest.mark.parametrize(("suffix", "guess"), [(".pth", " (an original V-Express kps.pth?)"), (".safetensors", "")])
def test_a_track_without_fps_is_guessed_to_be_the_originals_only_when_it_is_a_torch_file(tmp_path, suffix, guess):
    path = save_kps(tmp_path / f"track{suffix}", KpsTrack(np.full((4, 3, 2), 200.0, np.float32)))
    (warning,) = [text for text in inspect_json(path)["warnings"] if "records no fps" in text]
    assert warning.startswith(f"The file records no fps{guess}; the duration assumes 25 fps")


def test_a_folder_without_the_layout_is_pointed_at_by_path_as_inspect_has_no_model_dir(tmp_path):
    result = run_cli(tmp_path, "--json")
    assert result.exit_code == 2, result.output
    config = tmp_path / "stable-diffusion-v1-5" / "unet" / "config.json"
    assert json.loads(result.stdout)["networks_error"] == (
        f"Cannot find the Stable Diffusion 1.5 UNet config at {config}. The model folder does not have the released "
        "V-Express layout. Point PATH at the folder that holds stable-diffusion-v1-5/, sd-vae-ft-mse/, "
        "wav2vec2-base-960h/ and v-express/, or run `vexpress models download`.")


def write_frame_folder(folder: Path, count: int = 3, size=(64, 48)) -> Path:
    folder.mkdir()
    for number in range(1, count + 1):
        Image.new("RGB", size, (number * 40, 0, 0)).save(folder / f"frame_{number:06d}.png")
    with wave.open(str(folder / "audio.wav"), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(16000)
        audio.writeframes(b"\0\0" * 1600)
    return folder


def test_a_frame_folder_generate_wrote_is_reported_as_frames_with_the_fps_of_its_record(tmp_path):
    """Audit item 8: `generate -o frames` then `inspect frames` said "Model folder frames: incomplete", exit 2."""
    from vexpress_cli.jobs.records import RunRecord, file_facts, record_path, write_record
    from vexpress_cli.settings.schema import DEFAULTS

    folder = write_frame_folder(tmp_path / "frames")
    write_record(RunRecord("done", str(folder), {}, {}, dict(DEFAULTS), frames=3, fps=25.0,
                           output_file=file_facts(folder)), record_path(folder))
    data = inspect_json(folder)
    assert {key: data[key] for key in ("kind", "frames", "width", "height", "has_audio", "fps", "duration",
                                       "missing", "run_record")} == {
        "kind": "frames", "frames": 3, "width": 64, "height": 48, "has_audio": True, "fps": 25.0,
        "duration": 0.12, "missing": 0, "run_record": str(tmp_path / "frames.json")}
    assert data["warnings"] == []
    assert "frames: " in inspect_human(folder)


def test_a_frame_folder_without_a_record_is_reported_with_its_fps_unknown(tmp_path):
    folder = write_frame_folder(tmp_path / "out", count=2)
    (folder / "frame_000002.png").rename(folder / "frame_000004.png")
    data = inspect_json(folder)
    assert (data["kind"], data["frames"], data["fps"], data["missing"]) == ("frames", 2, None, 2)
    assert data["warnings"] == ["2 frame numbers between 1 and 4 are missing.",
                                "No run record that describes this folder (out.json): its fps is unknown."]


def test_a_photo_and_a_speech_file_are_inspected_with_the_framing_and_fps_of_your_config_as_generate_uses_them(
        isolated_config):
    """Audit item 5: with [generate] crop = "none", width 256, height 128, fps 25, inspect still said 512x512 auto."""
    isolated_config.mkdir(parents=True, exist_ok=True)
    (isolated_config / "config.toml").write_text('[generate]\ncrop = "none"\nwidth = 256\nheight = 128\nfps = 25\n'
                                                 'face_backend = "dlib"\n')
    photo = inspect_json(SAMPLES_DIR / "tys" / "ref.jpg")
    assert photo["crop"] is None and photo["would_crop"] == "none: the whole photo, stretched to 256x128"
    assert (photo["face"]["backend"], photo["face"]["detect_width"], photo["face"]["detect_height"]) == (
        "dlib", 256, 128)
    flags = inspect_json(SAMPLES_DIR / "tys" / "ref.jpg", "--crop", "auto", "--width", "512", "--height", "512")
    assert flags["would_crop"].startswith("would crop") and flags["face"]["detect_width"] == 512  # flags win
    assert inspect_json(SAMPLES_DIR / "tys" / "aud.mp3")["fps"] == 25.0
    # The library's inspect_input takes them the same way: the command used to layer your config itself.
    library = input_report.inspect_input(SAMPLES_DIR / "tys" / "ref.jpg")
    assert (library.would_crop, library.face.backend) == ("none: the whole photo, stretched to 256x128", "dlib")
    assert input_report.inspect_input(SAMPLES_DIR / "tys" / "aud.mp3").fps == 25.0


def test_a_folder_named_like_a_speech_file_is_not_reported_as_a_model_folder(tmp_path):
    (tmp_path / "talk.wav").mkdir()
    result = run_cli(tmp_path / "talk.wav")
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (f"Error: Cannot read the input {tmp_path / 'talk.wav'}: it is not a "
                                               "file but a folder. Pass the path of the .wav file in it.")
    assert input_report.input_kind(TINY_MODEL_DIR) == "model_folder"
