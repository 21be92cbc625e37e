"""`vexpress generate` end to end on the tiny random model: every scenario of the V-Express guide.

Each run goes through the real CLI (Typer's CliRunner), the real model loading, denoising and
decoding, and the real ffmpeg writer; the MP4s are then probed for codec, frame count, fps and
duration. Sizes are tiny (64x64, one denoising step, ~1 s of speech) to keep the file fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR, TINY_MODEL_DIR, wav_bytes
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.jobs.generate import resolve_job_settings
from vexpress_cli.jobs.planning import plan_inputs
from vexpress_cli.kps.fit import DEFAULT_FIT_MODE, fit_track
from vexpress_cli.kps.io import KpsTrack, load_kps, save_kps
from vexpress_cli.media.audio import load_audio
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.plugins import get_retarget_strategy
from vexpress_cli.settings.presets import list_presets
from vexpress_cli.settings.schema import DEFAULTS, SETTINGS

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

TYS, AOC = SAMPLES_DIR / "tys", SAMPLES_DIR / "AOC"
SMALL = ["--width", "64", "--height", "64", "--num_inference_steps", "1", "--model-dir", str(TINY_MODEL_DIR)]
# Eyes and nose of a face in a 64x64 frame, so strategies that need them skip face detection.
REFERENCE_KPS = "22,26;42,26;32,38"

runner = CliRunner()


def cut_audio(source, target, seconds: float, start: float = 0.0):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
                    str(target)], check=True)
    return target


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    silent = folder / "silent.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0.6",
                    str(silent)], check=True)
    return {
        "tys": cut_audio(TYS / "aud.mp3", folder / "tys.mp3", 0.6),
        "aoc": cut_audio(AOC / "aud.mp3", folder / "aoc.mp3", 0.6, start=1.0),
        "aoc_long": cut_audio(AOC / "aud.mp3", folder / "aoc_long.mp3", 1.6),
        "silent": silent,
    }


def generate(*args):
    result = runner.invoke(app, ["generate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def audio_seconds(path) -> float:
    return load_audio(path).shape[0] / 16000


def check_video(path, audio, fps: Fraction = Fraction(30), size: int = 64):
    """A real H.264 + AAC file, as long as the audio, one frame every 1/fps."""
    info = video_info(path)
    duration = audio_seconds(audio)
    assert (info.codec, info.audio_codec, info.has_audio) == ("h264", "aac", True)
    assert (info.width, info.height) == (size, size)
    assert info.fps == fps
    assert abs(info.frame_count - round(duration * fps)) <= 1
    assert abs(info.duration - duration) <= 1 / fps + 1e-6
    return info


def one_line(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


# --- the guide's scenarios ------------------------------------------------------------------

GUIDE_SCENARIOS = {
    # name: (reference image, kps file or None, audio clip, extra flags, strategy)
    "same-person": (TYS / "ref.jpg", TYS / "kps.pth", "tys", ["--retarget_strategy", "no_retarget"], "no_retarget"),
    "fix-face-no-kps": (AOC / "ref.jpg", None, "aoc", ["--retarget_strategy", "fix_face", "--face-backend", "dlib"],
                        "fix_face"),
    "offset-retarget": (AOC / "ref.jpg", TYS / "kps.pth", "aoc",
                        ["--retarget_strategy", "offset_retarget", "--face-backend", "dlib"], "offset_retarget"),
    "naive-retarget": (TYS / "ref.jpg", AOC / "kps.pth", "tys",
                       ["--retarget_strategy", "naive_retarget", "--face-backend", "dlib",
                        "--reference_attention_weight", "1.0", "--audio_attention_weight", "1.0"], "naive_retarget"),
    "custom-weights": (AOC / "ref.jpg", None, "aoc",
                       ["--retarget_strategy", "fix_face", "--reference-kps", REFERENCE_KPS,
                        "--reference_attention_weight", "0.95", "--audio_attention_weight", "3.0"], "fix_face"),
    "long-audio": (AOC / "ref.jpg", None, "aoc_long",
                   ["--save_gpu_memory", "--context_frames", "16", "--reference-kps", REFERENCE_KPS], "fix_face"),
}


@pytest.mark.parametrize("scenario", GUIDE_SCENARIOS)
def test_guide_scenario_writes_a_real_video(scenario, clips, tmp_path):
    image, kps, clip, flags, strategy = GUIDE_SCENARIOS[scenario]
    output = tmp_path / "o.mp4"
    kps_flags = ["--kps_path", kps] if kps else []
    result = generate("--reference_image_path", image, "--audio_path", clips[clip], *kps_flags,
                      "--output_path", output, *SMALL, *flags)
    check_video(output, clips[clip])
    log = one_line(result.stderr)
    assert f"Strategy: {strategy}" in log
    assert "Warning:" not in log  # every weight is within the advised range
    assert f"Wrote {output.name}" in log or f"Wrote {output}" in log
    assert re.search(r" fps, in \d+\.\d s \(and \d+\.\d s loading the model\)\.", log), log  # the whole wait
    seconds, frames, fps = re.search(r"o\.mp4: (\d+\.\d\d) s, (\d+) frames at (\d+) fps", log).groups()
    assert float(seconds) == round(int(frames) / int(fps), 2)  # the video's length, not the audio's
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o.mp4", "o.mp4.json"]  # its record, no temp files


def test_default_strategy_with_kps_is_no_retarget_at_25_fps(clips, tmp_path):
    output = tmp_path / "o.mp4"
    result = generate("-i", TYS / "ref.jpg", "-a", clips["tys"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                      "--fps", "25")
    assert "Strategy: no_retarget (a driving kps file was given)" in one_line(result.stderr)
    info = check_video(output, clips["tys"], fps=Fraction(25))
    assert info.frame_count == round(audio_seconds(clips["tys"]) * 25)


@pytest.mark.slow
def test_default_strategy_without_kps_is_fix_face_at_ntsc_rate(clips, tmp_path):
    output = tmp_path / "o.mp4"
    result = generate("-i", AOC / "ref.jpg", "-a", clips["aoc"], "-o", output, *SMALL, "--fps", "29.97",
                      "--reference-kps", REFERENCE_KPS, "--audio-attention-weight", "3.5")
    log = one_line(result.stderr)
    assert "Strategy: fix_face (no driving kps file was given)" in log
    # a flag beyond the advised range is allowed, with a warning
    assert "Warning: --audio-attention-weight 3.5 is outside the advised range 1.0-3.0" in log  # as typed
    check_video(output, clips["aoc"], fps=Fraction(30000, 1001))


@pytest.mark.slow
def test_faceless_image_and_silent_audio_work_with_no_retarget(clips, tmp_path):
    """no_retarget with a kps file and --crop none needs no face; silent audio is a warning, not an error."""
    import PIL.Image

    faceless = tmp_path / "wall.png"
    PIL.Image.new("RGB", (96, 96), (128, 128, 128)).save(faceless)
    output = tmp_path / "o.mp4"
    result = generate("-i", faceless, "-a", clips["silent"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                      "--face-backend", "dlib", "--crop", "none", "--json")
    report = json.loads(result.stdout)
    assert report["strategy"] == "no_retarget"
    assert any("is silent" in warning for warning in report["warnings"])
    assert report["frames"] == 18
    check_video(output, clips["silent"])


# --- presets --------------------------------------------------------------------------------

BUILTIN_PRESETS = sorted(info.name for info in list_presets() if info.source == "builtin")


def test_every_guide_scenario_has_a_builtin_preset():
    assert {"same-person", "lip-sync", "slight-motion", "full-retarget", "expressive", "long-audio"} <= set(
        BUILTIN_PRESETS)


@pytest.mark.parametrize("preset", BUILTIN_PRESETS)
@pytest.mark.slow
def test_builtin_preset_generates(preset, clips, tmp_path):
    info = next(info for info in list_presets() if info.name == preset)
    chosen = info.values.get("retarget_strategy")
    needs_kps = chosen is not None and get_retarget_strategy(chosen).requires_driving_kps
    output = tmp_path / "o.mp4"
    kps_flags = ["--kps", TYS / "kps.pth"] if needs_kps else []
    result = generate("--preset", preset, "-i", TYS / "ref.jpg", "-a", clips["tys"], *kps_flags, "-o", output,
                      *SMALL, "--reference-kps", REFERENCE_KPS, "--json")
    report = json.loads(result.stdout)
    assert report["strategy"] == (chosen or "fix_face")
    assert report["warnings"] == []  # presets stay within the advised ranges
    assert report["output"] == str(output)
    check_video(output, clips["tys"])


@pytest.mark.slow
def test_flag_beats_preset_beats_default(clips, tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('description = "test"\n[generate]\nretarget_strategy = "fix_face"\nfps = 25\n'
                      "audio_attention_weight = 2.0\n")
    output = tmp_path / "o.mp4"
    # With --kps the default strategy would be no_retarget: the preset's fix_face must win.
    result = generate("--preset", preset, "-i", TYS / "ref.jpg", "-a", clips["tys"], "--kps", TYS / "kps.pth",
                      "-o", output, *SMALL, "--reference-kps", REFERENCE_KPS, "--fps", "30",
                      "--audio-attention-weight", "4", "--json")
    report = json.loads(result.stdout)
    assert report["strategy"] == "fix_face"
    assert report["fps"] == 30  # the flag, not the preset's 25
    assert report["frames"] == round(audio_seconds(clips["tys"]) * 30)
    assert len(report["warnings"]) == 2 and "--audio-attention-weight 4.0" in report["warnings"][0]
    assert report["warnings"][1].startswith("The strategy fix_face does not use a driving kps track")  # the preset's
    check_video(output, clips["tys"])


def test_settings_precedence_layer_by_layer(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('description = "test"\n[generate]\nretarget_strategy = "offset_retarget"\n'
                      "guidance_scale = 2.0\nseed = 7\n")
    resolved = resolve_job_settings(str(preset), {"seed": 9, "num_inference_steps": 3})
    settings = resolved.settings
    assert settings.seed == 9  # flag over preset
    assert settings.guidance_scale == 2.0  # preset over default
    assert settings.retarget_strategy == "offset_retarget"
    assert settings.num_inference_steps == 3
    assert settings.context_frames == DEFAULTS["context_frames"] == 24  # default when nobody sets it
    chosen = {name for name in DEFAULTS if resolved.chosen(name)}
    assert chosen == {"seed", "num_inference_steps", "retarget_strategy", "guidance_scale"}


def test_kps_fit_default_is_the_fit_modules_default():
    assert SETTINGS["kps_fit"].default == DEFAULT_FIT_MODE == DEFAULTS["kps_fit"]
    assert DEFAULT_FIT_MODE in SETTINGS["kps_fit"].choices


@pytest.mark.parametrize("fit", [None, "stretch", "loop"])
def test_short_kps_track_is_fitted_with_the_chosen_mode(fit, clips, tmp_path):
    rng = np.random.default_rng(0)
    points = (20 + 24 * rng.random((10, 3, 2))).astype(np.float32)
    kps = tmp_path / "short.safetensors"
    save_kps(kps, KpsTrack(points, fps=30.0, width=64, height=64))  # filmed at the output's rate
    resolved = resolve_job_settings(None, {"width": 64, "height": 64, "retarget_strategy": "no_retarget"}
                                    | ({"kps_fit": fit} if fit else {}))
    plan = plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved, kps=kps)
    assert plan.num_frames == 18
    assert f"The 10-frame kps track was {'stretched' if fit == 'stretch' else 'lengthened by ' + (fit or DEFAULT_FIT_MODE)} to 18 frames." in plan.notes
    mode = fit or DEFAULT_FIT_MODE
    np.testing.assert_array_equal(plan.kps_track, fit_track(points, 18, mode))
    for other in {"pingpong", "stretch", "loop"} - {mode}:
        assert not np.array_equal(plan.kps_track, fit_track(points, 18, other))


# --- output modes ---------------------------------------------------------------------------


def run_real_command(tmp_path, *args) -> subprocess.CompletedProcess:
    """The installed ``vexpress`` in a fresh process: file-descriptor level output (ffmpeg's too)."""
    return subprocess.run([_vexpress(), "generate", *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=_clean_env(tmp_path))


@pytest.mark.slow
def test_json_is_the_only_thing_on_stdout_of_the_real_command(clips, tmp_path):
    output = tmp_path / "o.mp4"
    completed = run_real_command(tmp_path, "-i", TYS / "ref.jpg", "-a", clips["tys"], "--kps", TYS / "kps.pth",
                                 "-o", output, *SMALL, "--json")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) == {"output", "frames", "fps", "duration", "seconds", "strategy", "warnings", "notes",
                           "record", "stages", "settings", "crop", "size"}
    assert report["record"] == str(output) + ".json" and set(report["stages"]) >= {"inputs", "denoise", "decode"}
    assert report["frames"] == 18 and report["fps"] == 30 and report["strategy"] == "no_retarget"
    assert report["settings"]["retarget_strategy"] == "no_retarget" and report["settings"]["width"] == 64
    assert abs(report["duration"] - audio_seconds(clips["tys"])) < 1e-9
    assert report["seconds"] > 0 and report["warnings"] == []
    assert report["notes"] == ["The kps file records no frame size; assumed 512x512 (the original's extraction "
                               "size); its points are rescaled to 64x64.",
                               f"The kps file records no frame rate; assumed 25 fps ({clips['tys'].name} is not a video, "
                               "and at no common rate would the track last as long as it). Tracks saved as "
                               ".safetensors keep theirs.",
                               "The 100-frame kps track at 25 fps was resampled in time to 120 frames at 30 fps.",
                               "The 120-frame kps track was cut to 18 frames."]
    assert video_info(output).frame_count == report["frames"]


@pytest.mark.slow
def test_quiet_prints_nothing_at_all_and_overwrite_replaces(clips, tmp_path):
    output = tmp_path / "o.mp4"
    output.write_bytes(b"old")
    completed = run_real_command(tmp_path, "-i", TYS / "ref.jpg", "-a", clips["tys"], "--kps", TYS / "kps.pth",
                                 "-o", output, *SMALL, "--quiet", "--overwrite")
    assert completed.returncode == 0, completed.stderr
    assert (completed.stdout, completed.stderr) == ("", "")
    check_video(output, clips["tys"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o.mp4", "o.mp4.json"]


def _vexpress() -> str:
    import shutil

    found = shutil.which("vexpress", path=str(Path(sys.executable).parent))
    assert found, "the vexpress entry point is not installed next to this Python"
    return found


def _clean_env(tmp_path):
    import os

    env = {key: value for key, value in os.environ.items() if key != "VEXPRESS_MODEL_DIR"}
    env["VEXPRESS_CONFIG_DIR"] = str(tmp_path / "config")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_reference_kps_from_a_file_are_rescaled_to_the_output(tmp_path):
    import numpy as np

    from vexpress_cli.kps.io import KpsTrack, reference_kps_from_text, save_kps

    path = save_kps(tmp_path / "REF.SAFETENSORS", KpsTrack(np.array([[[50, 55], [78, 55], [64, 80]]]), width=128,
                                                             height=128))
    assert reference_kps_from_text(str(path), 64, 64).tolist() == [[25, 27.5], [39, 27.5], [32, 40]]


def test_kps_file_without_a_frame_rate_is_taken_as_25_fps_and_fitted_by_time(clips, tmp_path):
    """Issue 8 item 2: the original's kps.pth (no fps) at 30 fps output plays at its real speed."""
    seconds = np.arange(50, dtype=np.float32) / 25
    points = np.stack([np.stack([20 + 10 * seconds, 26 + 0 * seconds], -1)] * 3, axis=1)  # 10 px per second
    kps = tmp_path / "track.pth"
    torch.save(torch.from_numpy(points), kps)
    resolved = resolve_job_settings(None, {"width": 64, "height": 64, "retarget_strategy": "no_retarget"})
    plan = plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved, kps=kps)
    # The file records no size either: 512x512 is assumed, so the points are scaled by 64/512.
    np.testing.assert_allclose(plan.kps_track[:, 0, 0], (20 + 10 * np.arange(18) / 30) / 8, atol=1e-4)
    assert any("records no frame rate; assumed 25 fps" in note for note in plan.notes)


def test_truncated_audio_warns_before_generating(tmp_path):
    """Issue 8 item 3: a cut-off MP3 made a short video silently; generate now says what inspect says."""
    cut = tmp_path / "cut.mp3"
    cut.write_bytes((AOC / "aud.mp3").read_bytes()[:8000])
    resolved = resolve_job_settings(None, {"width": 64, "height": 64})
    plan = plan_inputs(AOC / "ref.jpg", cut, tmp_path / "o.mp4", False, resolved, reference_kps="22,26;42,26;32,38")
    (warning,) = [warning for warning in plan.warnings if "truncated" in warning]
    assert warning.startswith(f"{cut}: The header says ") and f"but {plan.duration:.2f} s decode" in warning


def test_sound_past_the_wav_headers_length_warns_before_generating(tmp_path):
    speech = tmp_path / "speech.wav"
    speech.write_bytes(wav_bytes(0.5, 1.0))
    resolved = resolve_job_settings(None, {"width": 64, "height": 64})
    plan = plan_inputs(AOC / "ref.jpg", speech, tmp_path / "o.mp4", False, resolved, reference_kps="22,26;42,26;32,38")
    assert plan.duration == pytest.approx(0.5, abs=1e-3)
    (warning,) = [warning for warning in plan.warnings if "WAV header" in warning]
    assert warning.startswith(f"{speech}: Its WAV header counts 0.50 s of sound, but about 0.50 s more follow")


def test_a_speech_video_whose_sound_ends_before_its_picture_is_not_called_truncated(tmp_path):
    """The header's length is the picture's there: 1.3 s of sound in a 2 s video warned "may be truncated"."""
    video = tmp_path / "speech.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=gray:size=64x64:duration=2:rate=25",
                    "-i", str(AOC / "aud.mp3"), "-t", "2", "-map", "0:v", "-map", "1:a", "-af", "atrim=0:1.3",
                    "-c:v", "libx264", "-c:a", "aac", str(video)], check=True)
    resolved = resolve_job_settings(None, {"width": 64, "height": 64})
    plan = plan_inputs(AOC / "ref.jpg", video, tmp_path / "o.mp4", False, resolved, reference_kps="22,26;42,26;32,38")
    assert plan.duration == pytest.approx(1.3, abs=0.05)
    assert not [warning for warning in plan.warnings if "truncated" in warning], plan.warnings


def test_track_without_a_frame_size_is_taken_at_512_and_rescaled(clips, tmp_path):
    """The original's kps.pth records no size: at 64x64 its points are scaled by 1/8, and the plan says so."""
    resolved = resolve_job_settings(None, {"width": 64, "height": 64, "retarget_strategy": "no_retarget"})
    plan = plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved, kps=TYS / "kps.pth")
    original = load_kps(TYS / "kps.pth").points  # a legacy pickle of numpy arrays, read safely
    np.testing.assert_allclose(plan.kps_track[0], original[0] / 8, rtol=1e-5)
    assert ("The kps file records no frame size; assumed 512x512 (the original's extraction size); its points are "
            "rescaled to 64x64.") in plan.notes


def test_keypoints_outside_the_frame_warn_and_none_inside_is_refused(clips, tmp_path):
    """Issue 8 item 14: a track off the picture gave a face-less video with exit 0."""
    resolved = resolve_job_settings(None, {"width": 64, "height": 64, "retarget_strategy": "no_retarget"})
    points = np.tile(np.array([[20, 26], [42, 26], [32, 38]], dtype=np.float32), (18, 1, 1))
    points[9:] -= 100  # the second half leaves the frame
    half_out, all_out = tmp_path / "half.safetensors", tmp_path / "out.safetensors"
    save_kps(half_out, KpsTrack(points, fps=30.0, width=64, height=64))
    save_kps(all_out, KpsTrack(points - 100, fps=30.0, width=64, height=64))
    plan = plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved, kps=half_out)
    drawn = "the keypoint track (as drawn: rescaled and retargeted)"
    assert any(warning.startswith(f"9 of 18 frames of {drawn} have keypoints outside the 64x64 frame")
               for warning in plan.warnings)
    with pytest.raises(InputError, match=re.escape(f"No keypoint of {drawn} lies inside the 64x64 frame")):
        plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved, kps=all_out)


def test_the_status_line_names_each_values_source_in_the_order_the_values_are_shown():
    """`-p expressive --audio-attention-weight 2.5` read "weights 0.95/2.5 (flag/preset)": the sources sorted."""
    from types import SimpleNamespace

    from vexpress_cli.cli.generate import status_line

    resolved = resolve_job_settings("expressive", {"audio_attention_weight": 2.5, "height": 256})
    plan = SimpleNamespace(settings=resolved.settings, sources=resolved.sources, strategy="fix_face",
                           strategy_reason="from the preset", num_frames=30, fps=Fraction(30), duration=1.0)
    line = status_line(plan)
    assert "weights 0.95/2.5 (preset/flag)" in line and "512x256 (default/flag)" in line
    assert "25 steps (default)" in line


def test_typed_reference_points_off_the_frame_are_blamed_as_photo_pixels_not_a_driving_track(clips, tmp_path):
    """Points typed in the 512x512 photo's own pixels for a 64x64 video: the error told to re-extract a driving
    track that does not exist; it names reference_kps and the frame its points are pixels of."""
    resolved = resolve_job_settings(None, {"width": 64, "height": 64, "retarget_strategy": "fix_face"})
    with pytest.raises(InputError) as raised:
        plan_inputs(TYS / "ref.jpg", clips["tys"], tmp_path / "o.mp4", False, resolved,
                    reference_kps="200,220;300,220;250,280")
    message = str(raised.value)
    assert message.startswith("No keypoint of the keypoint track (as drawn: rescaled and retargeted) lies inside the "
                              "64x64 frame")
    assert ("reference_kps are pixels of the 64x64 output frame (the photo resized to it, or the crop box's frame), "
            "not of the photo itself") in message
    assert "Give reference_kps inside the frame" in message and "Re-extract the track" not in message
