"""Run records (``<output>.json``): written by every generation, describing exactly how the output was made,
never left without their output or half-written, and read back by ``vexpress generate --from-record``."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

import vexpress_cli
from vexpress_cli.cli.app import app
from vexpress_cli.jobs.records import RunRecord, input_files, read_record, record_path, write_record
from vexpress_cli.outputs.atomic import AtomicOutput
from vexpress_cli.media.video_reader import iter_video_frames, video_info

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

AOC = SAMPLES_DIR / "AOC"
REFERENCE_KPS = "22,26;42,26;32,38"
SMALL = {"width": 64, "height": 64, "num_inference_steps": 1, "reference_kps": REFERENCE_KPS}
SMALL_FLAGS = ["--width", "64", "--height", "64", "--num-inference-steps", "1", "--reference-kps", REFERENCE_KPS,
               "--model-dir", str(TINY_MODEL_DIR)]
runner = CliRunner()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frames(path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))


def cli(*args):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.mark.slow
def test_generate_writes_a_record_holding_every_fact_of_the_run(speech, tmp_path):
    output = tmp_path / "talk.mp4"
    result = vexpress_cli.generate(AOC / "ref.jpg", speech, output, model_dir=TINY_MODEL_DIR, seed=3, **SMALL)
    assert result.record == tmp_path / "talk.mp4.json" == record_path(output)
    data = json.loads(result.record.read_text())
    assert (data["format"], data["version"], data["status"], data["error"]) == ("vexpress-run-record", 1, "done", None)
    assert data["output"] == str(output) and data["output_file"]["sha256"] == sha256(output)
    assert data["inputs"] == {
        "reference_image": {"path": str(AOC / "ref.jpg"), "size": (AOC / "ref.jpg").stat().st_size,
                            "sha256": sha256(AOC / "ref.jpg")},
        "audio": {"path": str(speech), "size": speech.stat().st_size, "sha256": sha256(speech)}}
    assert data["job"] == {"reference_image": str(AOC / "ref.jpg"), "audio": str(speech), "kps": None,
                           "reference_kps": REFERENCE_KPS, "preset": None}
    assert data["seed"] == data["settings"]["seed"] == 3
    assert data["settings"]["num_inference_steps"] == 1 and data["settings"]["width"] == 64
    assert data["strategy"] == "fix_face" and data["settings"]["retarget_strategy"] == "auto"
    checkpoints = {path.relative_to(TINY_MODEL_DIR).as_posix(): path.stat().st_size
                   for path in TINY_MODEL_DIR.rglob("*") if path.suffix in (".bin", ".safetensors")}
    assert data["model"]["folder"] == str(TINY_MODEL_DIR)
    assert {item["name"]: item["size"] for item in data["model"]["files"]} == checkpoints
    assert data["versions"]["torch"] == torch.__version__ and data["versions"]["vexpress"] == vexpress_cli.__version__
    assert set(data["versions"]) == {"vexpress", "torch", "diffusers", "transformers"}
    assert (data["device"], data["dtype"]) == ("cpu", "float32")
    assert data["frames"] == video_info(output).frame_count == 12
    assert (data["fps"], data["duration"]) == (30.0, 0.4)
    assert set(data["stages"]) == {"inputs", "model", "reference", "audio", "denoise", "decode"}
    assert all(math.isfinite(seconds) and seconds >= 0 for seconds in data["stages"].values())
    assert data["warnings"] == result.warnings and data["notes"] == result.notes


def test_record_describes_only_the_same_job_and_the_same_output(speech, tmp_path):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(speech.read_bytes())
    output = tmp_path / "talk.mp4"
    vexpress_cli.generate(AOC / "ref.jpg", audio, output, model_dir=TINY_MODEL_DIR, **SMALL)
    record = read_record(record_path(output))
    inputs = input_files(AOC / "ref.jpg", audio)
    same = dict(record.settings)
    assert record.differences(inputs, same, REFERENCE_KPS) == []
    # The device and the dtype are the machine's: they do not make it another job.
    assert record.differences(inputs, {**same, "device": "cuda", "dtype": "fp16"}, REFERENCE_KPS) == []
    assert record.differences(inputs, {**same, "seed": 7}, REFERENCE_KPS) == ["seed changed (42 -> 7)"]
    assert record.differences(inputs, same, "20,26;42,26;32,38") == ["reference_kps changed"]
    audio.write_bytes(audio.read_bytes() + b"\0")
    assert record.differences(input_files(AOC / "ref.jpg", audio), same, REFERENCE_KPS) == ["audio changed"]
    assert record.describes_output(output)
    output.write_bytes(output.read_bytes()[:-1])
    assert not record.describes_output(output)


def test_a_record_from_before_a_setting_existed_describes_the_job_that_keeps_the_old_behaviour(speech, tmp_path):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(speech.read_bytes())
    output = tmp_path / "talk.mp4"
    vexpress_cli.generate(AOC / "ref.jpg", audio, output, model_dir=TINY_MODEL_DIR, crop="none", **SMALL)
    record = read_record(record_path(output))
    inputs = input_files(AOC / "ref.jpg", audio)
    now = dict(record.settings)
    older = RunRecord.from_dict({**record.to_dict(), "settings": {
        name: value for name, value in record.settings.items()
        if name not in ("crop", "codec", "crf", "encoder_preset", "audio_bitrate", "scheduler", "offload")}})
    assert older.differences(inputs, now, REFERENCE_KPS) == []
    # Before --crop existed the whole photo was used: auto is another job.
    assert older.differences(inputs, {**now, "crop": "auto"}, REFERENCE_KPS) == [
        "crop changed ('none' -> 'auto')"]


def test_output_that_cannot_take_its_place_leaves_no_record_and_no_temp_file(speech, tmp_path, monkeypatch):
    commit = AtomicOutput.commit

    def refuse_the_video(self):
        if self.path.suffix == ".mp4":
            raise OSError("disk full")
        return commit(self)

    monkeypatch.setattr(AtomicOutput, "commit", refuse_the_video)
    with pytest.raises(OSError, match="disk full"):
        vexpress_cli.generate(AOC / "ref.jpg", speech, tmp_path / "talk.mp4", model_dir=TINY_MODEL_DIR, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_record_with_a_non_finite_number_is_refused_and_nothing_is_written(tmp_path):
    record = RunRecord("done", str(tmp_path / "x.mp4"), {}, {}, {"fps": 30.0}, fps=math.nan)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_record(record, tmp_path / "x.mp4.json")
    assert list(tmp_path.iterdir()) == []


def test_vexpress_generate_writes_a_record_and_from_record_makes_the_same_video(speech, tmp_path):
    first = tmp_path / "talk.mp4"
    result = cli("generate", "-i", AOC / "ref.jpg", "-a", speech, "-o", first, *SMALL_FLAGS, "--seed", "5",
                 "--audio-attention-weight", "2", "--quiet")
    assert result.exit_code == 0, result.output
    again = tmp_path / "again.mp4"
    result = cli("generate", "--from-record", record_path(first), "-o", again, "--model-dir", TINY_MODEL_DIR,
                 "--quiet")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(frames(again), frames(first))
    original, rerun = read_record(record_path(first)), read_record(record_path(again))
    assert rerun.settings == original.settings and rerun.inputs == original.inputs
    assert rerun.settings["seed"] == 5 and rerun.settings["audio_attention_weight"] == 2.0


@pytest.mark.slow
def test_from_record_takes_the_records_model_folder_when_no_flag_names_one(speech, tmp_path):
    first = tmp_path / "talk.mp4"
    assert cli("generate", "-i", AOC / "ref.jpg", "-a", speech, "-o", first, *SMALL_FLAGS, "--quiet").exit_code == 0
    again = tmp_path / "again.mp4"
    result = cli("generate", "--from-record", record_path(first), "-o", again, "--quiet")  # no model flag
    assert result.exit_code == 0, result.output
    assert read_record(record_path(again)).model == read_record(record_path(first)).model
    np.testing.assert_array_equal(frames(again), frames(first))


@pytest.mark.slow
def test_from_record_flags_override_the_recorded_settings(speech, tmp_path):
    first = tmp_path / "talk.mp4"
    assert cli("generate", "-i", AOC / "ref.jpg", "-a", speech, "-o", first, *SMALL_FLAGS, "--quiet").exit_code == 0
    again = tmp_path / "again.mp4"
    result = cli("generate", "--from-record", record_path(first), "-o", again, "--seed", "9",
                 "--model-dir", TINY_MODEL_DIR, "--quiet")
    assert result.exit_code == 0, result.output
    rerun = read_record(record_path(again))
    assert rerun.seed == 9 and rerun.settings["width"] == 64 and rerun.job["reference_kps"] == REFERENCE_KPS
    assert not np.array_equal(frames(again), frames(first))  # another seed, other noise


@pytest.mark.slow
def test_from_record_warns_when_an_input_changed_since(speech, tmp_path):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(speech.read_bytes())
    first = tmp_path / "talk.mp4"
    assert cli("generate", "-i", AOC / "ref.jpg", "-a", audio, "-o", first, *SMALL_FLAGS, "--quiet").exit_code == 0
    audio.write_bytes(speech.read_bytes()[:-2000])
    result = cli("generate", "--from-record", record_path(first), "-o", tmp_path / "again.mp4",
                 "--model-dir", TINY_MODEL_DIR)
    assert result.exit_code == 0, result.output
    assert (f"Warning: The audio {audio} is not the file the record was made with (its SHA-256 differs)."
            in " ".join(result.stderr.split()))
    assert "1 step (record)" in " ".join(result.stderr.split())  # the plan says where its values came from


@pytest.mark.slow
def test_from_record_warns_when_the_precision_or_encoder_auto_picks_here_is_not_the_records(speech, tmp_path):
    first = tmp_path / "talk.mp4"
    here = ("--device", "cpu", "--model-dir", TINY_MODEL_DIR)  # float32 and libx264 on any machine
    assert cli("generate", "-i", AOC / "ref.jpg", "-a", speech, "-o", first, *SMALL_FLAGS, "--codec", "h264",
               "--device", "cpu", "--quiet").exit_code == 0
    record = json.loads(record_path(first).read_text())
    assert (record["dtype"], record["codec"]) == ("float32", "h264")
    record.update(dtype="bfloat16", codec="h265")  # as a machine with a GPU would have made it
    record_path(first).write_text(json.dumps(record))
    result = cli("generate", "--from-record", record_path(first), "-o", tmp_path / "again.mp4", *here)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert ("Warning: The record's run was in bfloat16, this one is in float32, so the frames differ slightly. "
            "Add --dtype bfloat16 for the record's precision.") in said
    assert "Warning: The record's video was encoded with h265, this one with h264. Add --codec h265" in said
    typed = cli("generate", "--from-record", record_path(first), "-o", tmp_path / "typed.mp4", "--codec", "h264",
                *here)
    assert typed.exit_code == 0, typed.output  # a flag typed is what the user asked for: no warning for it
    assert "encoded with" not in typed.stderr and "The record's run was in bfloat16" in " ".join(typed.stderr.split())


@pytest.mark.parametrize(("content", "extra", "message"), [
    ('{"format": "something-else"}', [], "is not a vexpress run record"),
    ("not json", [], "Cannot read the run record"),
    ('{"format": "vexpress-run-record", "version": 1, "status": "done", "x": NaN}', [], "NaN is not a JSON number"),
    ('{"format": "vexpress-run-record", "version": 1, "status": "done", "output": "o.mp4", "job": {}, '
     '"settings": {}, "inputs": {"audio": "a.wav"}}', [], "is damaged: inputs holds something else than file facts."),
    ('{"format": "vexpress-run-record", "version": 1, "status": 3, "settings": [], "output": 5, "warnings": 5}', [],
     "is damaged: job is missing, inputs is missing, status is not text, output is not text, settings is not an "
     "object, warnings is not a list."),
    ('{"format": "vexpress-run-record", "version": 1, "status": "done", "output": "o.mp4", "job": {}, '
     '"settings": {}, "inputs": {}, "frames": "many", "seed": true, "fps": [1], "duration": null, "seconds": 2}', [],
     "is damaged: seed is not a whole number, frames is not a whole number, fps is not a number."),
    (b"\xff\xfe{}", [], "is not UTF-8 text"),
    (None, ["--preset", "lip-sync"], "--preset cannot be combined with --from-record"),
])
def test_from_record_refuses_what_it_cannot_rerun(content, extra, message, tmp_path):
    record = tmp_path / "talk.mp4.json"
    if content is not None:
        record.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("generate", "--from-record", record, *extra)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output


def test_a_record_whose_job_inputs_or_model_hold_values_of_the_wrong_type_is_damaged_for_a_rerun_and_inspect(
        tmp_path):
    """"job": {"reference_image": 5} was a TypeError traceback in generate --from-record (Path(5)), and "model":
    {"files": 3} one in inspect: only the parts themselves were type-checked, not the values in them."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.jobs.inspect.record import inspect_record

    record = tmp_path / "talk.mp4.json"
    record.write_text(json.dumps({
        "format": "vexpress-run-record", "version": 1, "status": "done", "output": "o.mp4", "settings": {},
        "job": {"reference_image": 5, "audio": ["a.wav"], "kps": None, "preset": "lip-sync"},
        "inputs": {"audio": {"path": "a.wav", "sha256": "ab"}, "kps": {"path": 7, "sha256": "cd"}},
        "model": {"folder": 5, "files": 3}}))
    damaged = (f"The run record {record} is damaged: job.reference_image is not text, job.audio is not text, inputs "
               "holds something else than file facts, model.folder is not text, model.files is not a list of objects.")
    result = cli("generate", "--from-record", record)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.stderr.split()).startswith(f"Error: {damaged}")
    with pytest.raises(InputError) as caught:
        inspect_record(record)
    assert caught.value.what == damaged


def test_docs_batch_md_describes_every_field_of_a_record():
    import dataclasses

    from conftest import REPO_ROOT

    section = (REPO_ROOT / "docs" / "batch.md").read_text().split("## Run records")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for line in table for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert {"format", "version", *(field.name for field in dataclasses.fields(RunRecord))} <= named


def test_a_records_preset_file_is_kept_by_its_absolute_path_and_a_name_as_given(tmp_path, monkeypatch):
    """A relative preset path in a record named nothing once read from another folder."""
    from vexpress_cli.jobs.records import preset_text

    monkeypatch.chdir(tmp_path)
    assert preset_text("mine dir/my.toml") == str(tmp_path / "mine dir" / "my.toml")
    assert preset_text("lip-sync") == "lip-sync" and preset_text(None) is None


def test_from_record_given_the_video_or_a_photo_says_what_it_is_and_names_the_videos_record(tmp_path, monkeypatch):
    """The video itself (talk.mp4 for talk.mp4.json), a JPEG or a WAV were 'not UTF-8 text ... Save it as UTF-8'."""
    from vexpress_cli.errors import InputError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t1.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\xff")
    (tmp_path / "t1.mp4.json").write_text("{}")
    (tmp_path / "ref.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    why = "A run record is the .json file vexpress writes beside each output: <output>.json."
    with pytest.raises(InputError) as video:
        read_record("t1.mp4")
    assert str(video.value) == f"t1.mp4 is a video, not a run record. {why} Did you mean t1.mp4.json?"
    with pytest.raises(InputError) as photo:
        read_record("ref.jpg")
    assert str(photo.value) == (f"ref.jpg is an image, not a run record. {why} "
                                "Pass the .json file vexpress wrote beside an output.")
    result = cli("generate", "--from-record", "t1.mp4", "-o", "again.mp4")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.stderr.split()) == f"Error: {video.value}"


def test_from_record_whose_recorded_input_was_deleted_names_the_role_and_the_flag_that_replaces_it(tmp_path,
                                                                                                  monkeypatch):
    """A recorded input deleted since was the generic 'Check the spelling' of a path the user never typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.jpg").write_bytes((AOC / "ref.jpg").read_bytes())
    record = tmp_path / "talk.mp4.json"
    record.write_text(json.dumps({"format": "vexpress-run-record", "version": 1, "status": "done",
                                  "output": "talk.mp4", "job": {"reference_image": "ref.jpg", "audio": "gone.wav"},
                                  "inputs": {}, "settings": {}}))
    result = cli("generate", "--from-record", "talk.mp4.json", "-o", "again.mp4")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.stderr.split()) == (
        "Error: The record's audio input no longer exists at gone.wav. talk.mp4.json names the files its job was "
        "made with; this one was moved or deleted since. Pass --audio to give another file.")
    (tmp_path / "ref.jpg").unlink()
    given_audio = cli("generate", "--from-record", "talk.mp4.json", "-o", "again.mp4", "-a", AOC / "aud.mp3")
    assert "Pass --reference-image to give another file." in " ".join(given_audio.stderr.split())


def test_a_record_from_before_fingerprints_compares_its_model_by_names_and_sizes():
    from vexpress_cli.jobs.model_identity import same_model_files

    now = (("v-express/denoising_unet.bin", 300, "f1"), ("vae.safetensors", 200, "f2"))
    old = {"files": [{"name": "v-express/denoising_unet.bin", "size": 300}, {"name": "vae.safetensors", "size": 200}]}
    assert same_model_files(old, now)
    assert not same_model_files(old, (now[0], ("vae.safetensors", 201, "f2")))
    fingerprinted = {"files": [{"name": name, "size": size, "fingerprint": print_} for name, size, print_ in now]}
    assert same_model_files(fingerprinted, now)
    assert not same_model_files(fingerprinted, (now[0], ("vae.safetensors", 200, "other")))


def test_the_model_files_are_listed_through_linked_folders(tmp_path):
    """A model folder whose networks are links to folders elsewhere listed no file, so no change was seen."""
    from conftest import TINY_MODEL_DIR

    from vexpress_cli.jobs.model_identity import list_model_files

    linked = tmp_path / "model"
    linked.mkdir()
    for part in TINY_MODEL_DIR.iterdir():
        (linked / part.name).symlink_to(part, target_is_directory=part.is_dir())
    assert list_model_files(linked) == list_model_files(TINY_MODEL_DIR) != ()
    (linked / "back-up").symlink_to(linked, target_is_directory=True)  # a loop is walked once
    assert list_model_files(linked) == list_model_files(TINY_MODEL_DIR)
