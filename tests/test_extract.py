"""Keypoint-track extraction from videos (library and `vexpress extract`), with the dlib backend.

Accuracy is measured against the kps.pth files the original V-Express ships
with its samples (made with insightface's SCRFD at 512x512).
"""

from __future__ import annotations

import re
import os
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import SAMPLES_DIR, flat
from typer.testing import CliRunner

from vexpress_cli.errors import InputError
from vexpress_cli.face import load_backend
from vexpress_cli.kps.from_video import extract_kps_sequence
from vexpress_cli.kps.io import load_kps
from vexpress_cli.media.encoding import VideoEncoding
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_writer import VideoWriter
from vexpress_cli.media.video_reader import iter_video_frames

# Mean distance to the official keypoints, per point, measured over all frames:
# AOC 2.98 / 3.74 / 3.22 px, tys 1.75 / 1.56 / 2.97 px (left eye / right eye / nose).
MEAN_ERROR_BOUND = 4.5
CLIP_FRAMES = 20
GREY = 128


@pytest.fixture(scope="module")
def dlib_backend():
    return load_backend("dlib")


@pytest.fixture(scope="module")
def tys_frames():
    frames = []
    for frame in iter_video_frames(SAMPLES_DIR / "tys" / "gt.mp4"):
        frames.append(frame)
        if len(frames) == CLIP_FRAMES:
            return frames


@pytest.fixture(scope="module")
def tys_official():
    return load_kps(SAMPLES_DIR / "tys" / "kps.pth").points


@pytest.fixture(scope="module")
def tys_clip(tmp_path_factory):
    """The first 20 frames of the tys sample, with its audio (cut by ffmpeg)."""
    clip = tmp_path_factory.mktemp("clip") / "talk.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(SAMPLES_DIR / "tys" / "gt.mp4"), "-frames:v", str(CLIP_FRAMES),
         "-c:v", "libx264", "-crf", "12", "-c:a", "aac", "-shortest", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def write_video(path, frames, fps=25):
    height, width = frames[0].shape[:2]
    with VideoWriter(path, fps=fps, width=width, height=height, encoding=VideoEncoding(crf=12)) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def mean_errors(points, official) -> np.ndarray:
    """Mean distance per point (left eye, right eye, nose), pixels."""
    return np.linalg.norm(points - official, axis=-1).mean(axis=0)


@pytest.mark.parametrize("sample", ["AOC", "tys"])
def test_dlib_track_matches_the_official_kps(sample, dlib_backend, record_property):
    points, report = extract_kps_sequence(SAMPLES_DIR / sample / "gt.mp4", dlib_backend)
    official = load_kps(SAMPLES_DIR / sample / "kps.pth").points
    assert points.shape == official.shape and points.dtype == np.float32
    assert report.frames == len(official) and report.missing_count == 0 and report.multi_face_count == 0
    assert report.backend == "dlib" and report.fps is not None and report.frames_per_second > 0
    errors = mean_errors(points, official)
    milliseconds = 1000 * report.seconds / report.frames
    record_property("mean_error_px", errors.round(2).tolist())
    record_property("ms_per_frame", round(milliseconds, 1))
    print(f"{sample}: mean error (left eye, right eye, nose) {errors.round(2)} px, {milliseconds:.1f} ms/frame")
    assert (errors < MEAN_ERROR_BOUND).all(), errors


@pytest.mark.slow
def test_frames_without_a_face_are_interpolated_and_counted(tmp_path, tys_frames, dlib_backend):
    blank = np.full_like(tys_frames[0], GREY)
    frames = list(tys_frames)
    for index in (0, 6, 7):
        frames[index] = blank
    video = write_video(tmp_path / "gaps.mp4", frames)
    progress_calls = []
    points, report = extract_kps_sequence(
        video, dlib_backend, progress=lambda stage, done, total: progress_calls.append((stage, done, total))
    )
    assert report.missing_frames == [0, 6, 7] and report.missing_count == 3
    assert progress_calls[-1] == ("faces", CLIP_FRAMES, CLIP_FRAMES) and len(progress_calls) == CLIP_FRAMES
    np.testing.assert_allclose(points[0], points[1])  # before the first face: the nearest found frame
    np.testing.assert_allclose(points[6], points[5] + (points[8] - points[5]) / 3, atol=1e-4)
    np.testing.assert_allclose(points[7], points[5] + 2 * (points[8] - points[5]) / 3, atol=1e-4)

    with pytest.raises(InputError) as raised:
        extract_kps_sequence(video, dlib_backend, strict=True)
    assert "Frame 0 of" in raised.value.what and "no face" in raised.value.what
    assert "--strict" in raised.value.fix


def test_extract_warns_when_most_of_the_track_is_interpolated_not_when_a_few_frames_lack_a_face(tmp_path, tys_frames):
    """27 of 30 frames without a face (an upside-down video) gave exit 0 and one row of the table."""
    from vexpress_cli import extract

    blank = np.full_like(tys_frames[0], GREY)
    few = write_video(tmp_path / "few.mp4", [blank if index in (0, 6) else frame
                                             for index, frame in enumerate(tys_frames[:12])])
    most = write_video(tmp_path / "most.mp4", [blank if index % 4 else frame
                                               for index, frame in enumerate(tys_frames[:12])])
    assert extract(few, tmp_path / "few.safetensors", face_backend="dlib").warnings == []
    result = extract(most, tmp_path / "most.safetensors", face_backend="dlib")
    assert result.warnings == [
        "No face was found in 9 of 12 frames (75%): their keypoints are filled in from the frames around them "
        "(interpolated between two, held before the first or after the last), so much of the motion is guessed. "
        "Check that the face is upright, large and lit enough (or try another face_backend); strict fails on such a "
        "video instead."]
    cli = run_cli(most, "--backend", "dlib", "--kps-out", tmp_path / "again.safetensors")
    assert cli.exit_code == 0 and "Warning: No face was found in 9 of 12 frames (75%)" in flat(cli.output)
    assert "try another --face-backend); --strict fails" in flat(cli.output)


def test_several_faces_follow_one_face(tmp_path, tys_frames, tys_official, dlib_backend):
    """Two copies of the face; half-way the other copy becomes the larger one, the track stays put."""
    frames, expected = [], []
    for index, frame in enumerate(tys_frames[:10]):
        canvas = np.zeros((1024, 1024, 3), dtype=np.uint8)
        big, small = frame, cv2.resize(frame, (400, 400), interpolation=cv2.INTER_AREA)
        if index < 5:  # the larger copy top-left: the track starts there
            canvas[:512, :512], canvas[600:1000, 600:1000] = big, small
            expected.append(tys_official[index] * 0.5)
        else:  # the top-left copy shrinks and the other grows, the track stays top-left
            canvas[:400, :400], canvas[512:, 512:] = small, big
            expected.append(tys_official[index] * (400 / 512) * 0.5)
        frames.append(canvas)
    video = write_video(tmp_path / "two_faces.mp4", frames)
    points, report = extract_kps_sequence(video, dlib_backend, width=512, height=512)
    assert report.multi_face_count == 10 and report.missing_count == 0
    assert mean_errors(points, np.stack(expected)).max() < MEAN_ERROR_BOUND
    with pytest.raises(InputError, match="Frame 0 of .* has 2 faces"):
        extract_kps_sequence(video, dlib_backend, strict=True)


@pytest.mark.slow
def test_large_frames_are_resized_before_detection(tmp_path, tys_frames, tys_official, dlib_backend):
    frames = [cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC) for frame in tys_frames[:10]]
    video = write_video(tmp_path / "full_hd.mp4", frames)
    points, report = extract_kps_sequence(video, dlib_backend, width=512, height=512)
    assert report.frames == 10 and (report.width, report.height) == (512, 512)
    assert mean_errors(points, tys_official[:10]).max() < MEAN_ERROR_BOUND


def test_a_video_without_any_face_is_an_input_error(tmp_path, tys_frames, dlib_backend):
    video = write_video(tmp_path / "wall.mp4", [np.full_like(tys_frames[0], GREY)] * 3)
    with pytest.raises(InputError) as raised:
        extract_kps_sequence(video, dlib_backend)
    assert "No face was found in any of the 3 frames" in raised.value.what and raised.value.fix


def test_no_face_offers_insightface_only_where_its_detector_is(tmp_path, tys_frames, dlib_backend):
    """It was always offered, and without det_10g.onnx (the tiny model has none) it then failed as 'not found'."""
    video = write_video(tmp_path / "wall.mp4", [np.full_like(tys_frames[0], GREY)] * 3)
    with_detector = tmp_path / "with"
    with_detector.mkdir()
    (with_detector / "det_10g.onnx").write_bytes(b"onnx")
    for root, offered in ((tmp_path / "without", False), (with_detector, True)):
        with pytest.raises(InputError) as raised:
            extract_kps_sequence(video, dlib_backend, model_root=root)
        assert raised.value.fix.endswith("roughly frontal face, or try face_backend=\"insightface\"." if offered
                                         else "roughly frontal face."), raised.value.fix


# --- vexpress extract ------------------------------------------------------------------------


def run_cli(*args: str):
    from vexpress_cli.cli.app import app

    return CliRunner().invoke(app, ["extract", *map(str, args)])


@pytest.mark.parametrize(("args", "message"), [
    (["."], "Cannot read the video .: it is not a file but a folder."),  # was a ValueError traceback
    (["/"], "Cannot read the video /: it is not a file but a folder."),
    ([str(SAMPLES_DIR / "AOC" / "gt.mp4"), "-o", ""], "-o was given an empty value."),
    ([str(SAMPLES_DIR / "AOC" / "gt.mp4"), "--kps-out="], "--kps-out was given an empty value."),
])
def test_a_folder_as_the_video_or_an_empty_output_is_one_error(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.stderr.split()).startswith(f"Error: {message}")


def test_cli_writes_kps_with_metadata_and_audio(tmp_path, tys_clip, tys_official):
    kps_out, audio_out = tmp_path / "talk.safetensors", tmp_path / "talk.mp3"
    result = run_cli(tys_clip, "--backend", "dlib", "--kps-out", kps_out, "--audio-out", audio_out)
    assert result.exit_code == 0, result.output
    summary = re.sub(r"[\s│]", "", result.stdout)
    for expected in ("frames20framesat25fps", "missingfacesnone", "backenddlib", "chosenwith--face-backend", "frames/s", "audio"):
        assert expected in summary, result.stdout
    track = load_kps(kps_out)
    assert track.num_frames == CLIP_FRAMES and (track.width, track.height) == (512, 512)
    assert track.backend == "dlib" and track.fps == pytest.approx(25.0, rel=0.05)
    assert mean_errors(track.points, tys_official[:CLIP_FRAMES]).max() < MEAN_ERROR_BOUND

    from vexpress_cli.media.audio import audio_info

    assert audio_info(audio_out).duration > 0.5


@pytest.mark.slow
def test_cli_json_is_the_only_thing_on_stdout_and_quiet_prints_nothing(tmp_path, tys_clip, monkeypatch):
    import json

    monkeypatch.chdir(tys_clip.parent)  # relative paths are reported as given, the video like the outputs
    result = run_cli(tys_clip.name, "--backend", "dlib", "--json", "--kps-out", "a.safetensors")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["video"], data["kps_out"]) == (tys_clip.name, "a.safetensors")
    assert (data["frames"], data["backend"]) == (CLIP_FRAMES, "dlib")
    assert data["backend_reason"] == "chosen with --face-backend"  # the CLI names settings by their flags
    assert result.stderr == ""
    quiet = run_cli(tys_clip, "--backend", "dlib", "--quiet", "--kps-out", tmp_path / "b.safetensors")
    assert quiet.exit_code == 0 and quiet.output == ""
    assert load_kps(tmp_path / "b.safetensors").num_frames == CLIP_FRAMES


def test_a_pth_extracted_at_another_size_than_512_is_read_back_in_place_like_a_safetensors_file(tys_clip, tmp_path):
    """A .pth records no frame size and every reader takes it as 512x512: one written at 256x256 came back at
    half size, the face drawn in the top-left quarter."""
    for suffix in (".pth", ".safetensors"):
        result = run_cli(tys_clip, "--backend", "dlib", "--width", "256", "--height", "192",
                         "--kps-out", tmp_path / f"t{suffix}")
        assert result.exit_code == 0, result.output
    pth, kept = (load_kps(tmp_path / f"t{suffix}").in_frame(256, 192)[0].points for suffix in (".pth", ".safetensors"))
    np.testing.assert_allclose(pth, kept, atol=1e-4)
    assert kept.max() > 64  # not all near the corner, where both could agree by chance


def test_extract_tells_that_a_pth_file_does_not_keep_a_frame_rate_other_than_25_fps(tys_clip, tmp_path):
    at_30 = tmp_path / "at-30.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(tys_clip), "-r", "30", "-c:v", "libx264", str(at_30)],
                   check=True)
    pth = run_cli(at_30, "--backend", "dlib", "--kps-out", tmp_path / "t.pth", "--json")
    assert json.loads(pth.stdout)["notes"] == [
        "A .pth file holds only the points (in the 512x512 frame), not the frame rate (30 fps; generate then takes "
        "the rate of its speech's video, or guesses one from the speech's length, else 25 fps); write .safetensors "
        "to keep them."]
    kept = run_cli(at_30, "--backend", "dlib", "--kps-out", tmp_path / "t.safetensors", "--json")
    assert json.loads(kept.stdout)["notes"] == [] and load_kps(tmp_path / "t.safetensors").fps == 30


def test_cli_default_output_and_no_silent_overwrite(tys_clip):
    default = tys_clip.with_name("talk_kps.pth")
    result = run_cli(tys_clip, "--backend", "dlib", "--width", "256", "--height", "256")
    assert result.exit_code == 0, result.output
    first = load_kps(default).points
    assert first.shape == (CLIP_FRAMES, 3, 2) and first.max() < 512  # a .pth holds the 512x512 frame's points
    stamp = default.stat().st_mtime_ns

    again = run_cli(tys_clip, "--backend", "dlib")
    assert again.exit_code == 2 and "already exists" in flat(again.output) and "--overwrite" in again.output
    assert default.stat().st_mtime_ns == stamp

    replaced = run_cli(tys_clip, "--backend", "dlib", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert load_kps(default).points.max() > 256  # now at the default 512x512
    default.unlink()


def test_cli_accepts_the_original_scripts_flags(tmp_path, tys_clip):
    kps_out, audio_out = tmp_path / "kps.pth", tmp_path / "aud.wav"
    result = run_cli("--video_path", tys_clip, "--kps_sequence_save_path", kps_out,
                     "--audio_save_path", audio_out, "--backend", "dlib")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_kps(kps_out).num_frames == CLIP_FRAMES and audio_out.stat().st_size > 1000


def test_cli_errors_are_one_paragraph_and_write_nothing(tmp_path, tys_clip):
    kps_out = tmp_path / "k.pth"
    missing_model = run_cli(tys_clip, "--backend", "insightface", "--model-root", tmp_path, "--kps-out", kps_out)
    assert missing_model.exit_code == 2
    assert "det_10g.onnx" in missing_model.output and "--face-backend dlib" in flat(missing_model.output)
    assert "Traceback" not in missing_model.output

    no_video = run_cli(tmp_path / "nope.mp4", "--kps-out", kps_out)
    assert no_video.exit_code == 2 and "does not exist" in flat(no_video.output)

    bad_suffix = run_cli(tys_clip, "--kps-out", tmp_path / "k.json")
    assert bad_suffix.exit_code == 2 and "unknown file type" in flat(bad_suffix.output)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--model-root", "--insightface_model_path"])
def test_a_model_root_that_is_no_folder_is_refused_instead_of_falling_back_to_dlib(tmp_path, tys_clip, flag):
    kps_out = tmp_path / "k.pth"
    missing = run_cli(tys_clip, flag, tmp_path / "nope", "--kps-out", kps_out)
    assert missing.exit_code == 2
    assert flat(missing.output) == (f"Error: {flag} {tmp_path / 'nope'}: no such folder. A folder named on "
                                    "purpose is used as given; vexpress does not look elsewhere instead. Check the "
                                    f"spelling, or leave {flag} out to use the default place.")  # named as typed
    (tmp_path / "file").write_text("x")
    a_file = run_cli(tys_clip, flag, tmp_path / "file", "--kps-out", kps_out)
    assert a_file.exit_code == 2
    assert f"{flag} {tmp_path / 'file'} is a file, not a folder or a .onnx file." in flat(a_file.output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_cli_unwritable_outputs_fail_before_any_frame_is_read(tmp_path, tys_clip, monkeypatch):
    def no_detection(*args, **kwargs):
        raise AssertionError("the frames were read although an output cannot be written")

    monkeypatch.setattr("vexpress_cli.kps.from_video.extract_kps_sequence", no_detection)
    (tmp_path / "afile").write_text("a file, not a folder")
    cases = [
        ("--kps-out", tmp_path / "afile" / "k.pth"),
        ("--audio-out", tmp_path / "afile" / "a.mp3"),
    ]
    for option, path in cases:
        arguments = ["--kps-out", tmp_path / "k.pth"] if option == "--audio-out" else []
        result = run_cli(tys_clip, "--backend", "dlib", option, path, *arguments)
        assert result.exit_code == 2, result.output
        assert "Cannot create the output folder" in flat(result.output) and "Traceback" not in result.output
    (tmp_path / "a.mp3").write_text("old")
    outputs = ["--kps-out", tmp_path / "k.pth", "--audio-out", tmp_path / "a.mp3"]
    existing = run_cli(tys_clip, "--backend", "dlib", *outputs)
    assert existing.exit_code == 2 and "already exists" in flat(existing.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp3", "afile"]


@pytest.mark.parametrize("failure", [InputError("Cannot write the kps file."), KeyboardInterrupt()])
def test_cli_leaves_no_audio_when_the_keypoints_cannot_be_saved(tmp_path, tys_clip, monkeypatch, failure):
    def failing_save(path, track):
        raise failure

    monkeypatch.setattr("vexpress_cli.kps.io.write_kps", failing_save)
    result = run_cli(tys_clip, "--backend", "dlib", "--kps-out", tmp_path / "k.pth", "--audio-out", tmp_path / "a.mp3")
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_kps_file_stopped_by_the_file_size_limit_is_one_paragraph_and_leaves_nothing(tmp_path, tys_clip):
    """`ulimit -f` (EFBIG), like a full disk (ENOSPC), ended extract in an OSError traceback."""
    resource = pytest.importorskip("resource")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run([sys.executable, "-m", "vexpress_cli", "extract", str(tys_clip), "--backend", "dlib",
                             "--kps-out", str(tmp_path / "k.pth"), "--audio-out", str(tmp_path / "a.m4a")],
                            capture_output=True, text=True, preexec_fn=limited, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"Error: Writing '{tmp_path / 'k.pth'}' stopped at the file-size limit of 512 bytes" in flat(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_video_that_is_a_fifo_or_a_folder_is_named_as_such(tmp_path):
    """extract said "... is not a file. Check the spelling of the path." where other commands name the kind."""
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "folder.mp4").mkdir()
    for name, expected in (("pipe.mp4", "is not a regular file but a named pipe (FIFO)"),
                           ("folder.mp4", "it is not a file but a folder")):
        result = run_cli(tmp_path / name, "--kps-out", tmp_path / "k.pth")
        assert result.exit_code == 2 and expected in flat(result.output), result.output
    assert not (tmp_path / "k.pth").exists()


def test_cli_runs_ffmpeg_on_the_video_once_per_need(tmp_path, tys_clip, monkeypatch):
    """One probe, one packet listing (frame count and fps), one decode, one audio copy."""
    import vexpress_cli.media.ffmpeg as ffmpeg_module

    commands = []
    popen = subprocess.Popen

    def recording_popen(command, *args, **kwargs):  # subprocess.run goes through Popen too
        commands.append(list(map(str, command)))
        return popen(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    result = run_cli(tys_clip, "--backend", "dlib", "--kps-out", tmp_path / "k.pth", "--audio-out", tmp_path / "a.m4a")
    assert result.exit_code == 0, result.output
    on_video = [command for command in commands
                if command[0] == ffmpeg_module.ffmpeg_exe() and str(tys_clip.resolve()) in command]
    probes = [command for command in on_video if command[-2:] == ["-i", str(tys_clip.resolve())]]
    packet_listings = [command for command in on_video if "framecrc" in command]
    decodes = [command for command in on_video if "rawvideo" in command]
    assert (len(probes), len(packet_listings), len(decodes), len(on_video)) == (1, 1, 1, 4), on_video


def test_cli_strict_stops_at_the_first_bad_frame(tmp_path, tys_frames):
    frames = list(tys_frames[:4])
    frames[2] = np.full_like(frames[0], GREY)
    video = write_video(tmp_path / "gap.mp4", frames)
    result = run_cli(video, "--backend", "dlib", "--strict")
    assert result.exit_code == 2 and "Frame 2 of" in flat(result.output)
    assert not (tmp_path / "gap_kps.pth").exists()


def test_cli_help_explains_itself():
    result = run_cli("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for expected in ("--kps-out", "--audio-out", "--backend", "--model-root", "--strict", "Examples"):
        assert expected in text
    assert "--video_path" in text  # shown in the examples, hidden as an option


def test_cli_audio_out_of_a_silent_video_fails_first(tmp_path, tys_frames):
    video = write_video(tmp_path / "mute.mp4", list(tys_frames[:2]))
    result = run_cli(video, "--backend", "dlib", "--audio-out", tmp_path / "a.mp3")
    assert result.exit_code == 2 and "has no audio track" in flat(result.output)
    assert "Finding faces" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mute.mp4"]


@pytest.mark.slow
def test_a_video_cut_short_is_extracted_with_a_note_saying_so(tmp_path, tys_clip):
    """The first half of an mkv decodes without an error, only shorter: the track had a fifth of the frames and
    nothing said why."""
    whole = tmp_path / "whole.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(tys_clip), "-an", "-c:v", "copy", str(whole)], check=True)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    result = run_cli(cut, "-o", tmp_path / "cut.pth", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["frames"] < CLIP_FRAMES / 2
    assert data["notes"] == [f"The video's frames end at {data['frames'] / 25:.2f} s, but the file says it lasts "
                             f"{CLIP_FRAMES / 25:.2f} s: it may be cut short (a download or copy that did not finish). "
                             f"The track has {data['frames']} frames. If the video plays longer in a player, re-encode "
                             "it (ffmpeg -i VIDEO -c:v libx264 fixed.mp4) and extract again."]
    whole_run = run_cli(whole, "-o", tmp_path / "whole.pth", "--json")
    assert json.loads(whole_run.stdout)["notes"] == []


def test_cli_size_and_backend_left_out_take_the_user_configs_generate_values(tmp_path, tys_clip, monkeypatch):
    """The points are for the size you generate at: your config's [generate] width and height, not 512x512."""
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[generate]\nwidth = 256\nheight = 192\nface_backend = "dlib"\n')
    result = run_cli(tys_clip, "--kps-out", tmp_path / "k.safetensors", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backend"] == "dlib"
    track = load_kps(tmp_path / "k.safetensors")
    assert (track.width, track.height) == (256, 192)
    assert track.points[..., 0].max() < 256 and track.points[..., 1].max() < 192


def test_a_frame_where_only_the_other_persons_face_is_found_is_missing_not_a_jump_to_them(tmp_path, tys_frames):
    """With two people side by side, a frame where the detector missed the followed face took the other one, and the
    track stayed on the other person for the rest of the video, without a word."""
    import PIL.Image

    from vexpress_cli import extract

    height, width = tys_frames[0].shape[:2]
    other = np.asarray(PIL.Image.open(SAMPLES_DIR / "AOC" / "ref.jpg").convert("RGB").resize((width, height)))
    blank = np.full_like(tys_frames[0], GREY)
    frames = [np.hstack([tys_frames[index] if index < 6 else blank, other]) for index in range(10)]
    video = write_video(tmp_path / "two.mp4", frames)
    result = extract(video, tmp_path / "two.safetensors", face_backend="dlib", width=2 * 256, height=256)
    report = result.report
    assert report.multi_face_frames == [0, 1, 2, 3, 4, 5] and report.other_face_frames == [6, 7, 8, 9]
    assert report.missing_frames == [6, 7, 8, 9]
    noses = load_kps(tmp_path / "two.safetensors").points[:, 2, 0]
    assert (noses < 256).all()  # the followed face, left, held where it was last seen
    assert result.warnings[0].startswith("In 4 of 10 frames (6, 7, 8, 9) only another person's face was found")
