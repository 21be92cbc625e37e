"""`vexpress inspect talk.mp4.json`: how a video was made, and what changed since (no generation needed)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from test_inspect import assert_cli_error, inspect_human, inspect_json

from vexpress_cli.jobs.inspect import inspect_record
from vexpress_cli.jobs.model_identity import model_of
from vexpress_cli.jobs.records import RunRecord, file_facts, record_path, versions, write_record
from vexpress_cli.settings.schema import DEFAULTS


class _Generator:
    def __init__(self, model_dir):
        self.model_dir = model_dir


def write_run(tmp_path, status="done", **settings):
    """A record as Generator.run writes it, for files made here."""
    image, audio, output = tmp_path / "ref.png", tmp_path / "speech.wav", tmp_path / "talk.mp4"
    model = tmp_path / "model" / "v-express"
    model.mkdir(parents=True)
    (model / "denoising_unet.bin").write_bytes(b"weights")
    for path, data in ((image, b"photo"), (audio, b"speech"), (output, b"video")):
        path.write_bytes(data)
    record = RunRecord(status, str(output), {"reference_image": str(image), "audio": str(audio)},
                       {"reference_image": file_facts(image), "audio": file_facts(audio)},
                       {**DEFAULTS, **settings}, seed=7, strategy="fix_face", model=model_of(_Generator(tmp_path / "model")),
                       frames=60, fps=30.0, duration=2.0, seconds=3.5, stages={"denoise": 3.0},
                       warnings=["The speech is quiet."], output_file=file_facts(output) if status == "done" else None,
                       error=None if status == "done" else "The job failed: out of memory.")
    return write_record(record, record_path(output)), image, audio, output


def test_an_untouched_run_reports_its_settings_timings_and_that_nothing_changed(tmp_path):
    record, image, audio, output = write_run(tmp_path, num_inference_steps=10, width=256)
    report = inspect_record(record)
    assert (report.status, report.seed, report.strategy, report.frames) == ("done", 7, "fix_face", 60)
    assert report.output_now == "the file this run wrote"
    assert report.model_now == "the files this run read"
    assert [(item["role"], item["now"]) for item in report.inputs] == [("reference_image", "unchanged"),
                                                                     ("audio", "unchanged")]
    assert report.values == {"num_inference_steps": 10, "width": 256}
    assert report.stages == {"denoise": 3.0} and report.run_warnings == ["The speech is quiet."]
    assert report.versions == versions() and report.warnings == []
    assert report.rerun == f"vexpress generate --from-record {record} -o {tmp_path / 'talk-2.mp4'}"


def test_changed_output_inputs_and_model_are_each_named_with_what_a_rerun_does(tmp_path):
    record, image, audio, output = write_run(tmp_path)
    output.write_bytes(b"another video")
    image.unlink()
    audio.write_bytes(b"other speech")
    (tmp_path / "model" / "v-express" / "denoising_unet.bin").write_bytes(b"newer weights")
    report = inspect_record(record)
    assert report.output_now == "changed since the run" and report.model_now == "other files (names, sizes or contents)"
    assert [item["now"] for item in report.inputs] == ["missing", "changed since the run"]
    assert report.to_dict()["warnings"] == [
        f"The output {output} is changed since the run: this record no longer describes it "
        f"(`vexpress generate --from-record {record} -o {tmp_path / 'talk-2.mp4'}` makes it again beside it; "
        "--overwrite instead of -o, in its place).",
        f"The reference image {image} is missing: a rerun needs it back, or another file given with "
        "reference_image.",
        f"The audio {audio} is changed since the run: a rerun uses it as it is now.",
        f"The run's model folder {tmp_path / 'model'} holds other files (names, sizes or contents) than the run "
        "read: a rerun finds the weights as generate does.",
    ]


def test_the_rerun_writes_beside_an_output_still_there_and_in_its_place_once_it_is_gone(tmp_path):
    """Audit item 6: the rerun shown for the usual record (its output still there) failed: "already exists"."""
    record, _, _, output = write_run(tmp_path)
    (tmp_path / "talk-2.mp4").write_bytes(b"an earlier rerun")
    assert inspect_record(record).rerun == f"vexpress generate --from-record {record} -o {tmp_path / 'talk-3.mp4'}"
    output.unlink()
    report = inspect_record(record)
    assert report.rerun == f"vexpress generate --from-record {record}"
    assert report.warnings == [f"The output {output} is missing: `{report.rerun}` makes it again."]


@pytest.mark.slow
@pytest.mark.usefixtures("no_user_config", "like_the_real_command")
def test_the_rerun_that_inspect_shows_for_a_real_run_works_as_given(speech, tmp_path):
    from conftest import SAMPLES_DIR, TINY_MODEL_DIR
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    output = tmp_path / "talk.mp4"
    flags = ["--width", "64", "--height", "64", "--num-inference-steps", "1", "--reference-kps", "22,26;42,26;32,38",
             "--model-dir", str(TINY_MODEL_DIR), "--quiet"]
    result = CliRunner().invoke(app, ["generate", "-i", str(SAMPLES_DIR / "AOC" / "ref.jpg"), "-a", str(speech),
                                      "-o", str(output), *flags])
    assert result.exit_code == 0, result.output
    command = shlex.split(inspect_record(record_path(output)).rerun)
    assert command[:2] == ["vexpress", "generate"]
    result = CliRunner().invoke(app, [*command[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "talk-2.mp4").is_file() and output.is_file()


def test_the_cli_shows_a_record_as_tables_and_as_json(tmp_path):
    record, *_ = write_run(tmp_path, status="failed")
    data = inspect_json(record)
    assert data["kind"] == "record" and data["status"] == "failed"
    assert data["error"] == "The job failed: out of memory."
    assert data["output_now"] == "not written (the run failed)"
    assert data["warnings"] == [f"This run failed; `vexpress generate --from-record {record} -o "
                                f"{tmp_path / 'talk-2.mp4'}` tries it again."]  # a file is there: not the run's
    human = " ".join(inspect_human(record).split())
    for shown in ("│ status │ failed │", "settings of this run", "wall time per stage (s)",
                  "The run warned: The speech is quiet.", "reference_image", "unchanged"):
        assert shown in human, shown


def test_a_json_file_that_is_not_a_record_or_is_damaged_is_one_paragraph(tmp_path):
    other = tmp_path / "package.json"
    other.write_text(json.dumps({"name": "web"}))
    assert_cli_error([other], f"{other} is not a vexpress run record.")
    record, *_ = write_run(tmp_path)
    data = json.loads(record.read_text())
    data["inputs"] = ["ref.png"]
    record.write_text(json.dumps(data))
    assert_cli_error([record], "is damaged: inputs is not an object", "Delete the record")
    record.write_bytes(b" " * (1 << 20) + b"{}")
    assert_cli_error([record], "is larger than 1 MiB")


def test_a_video_vexpress_made_names_its_record_instead_of_advice_for_driving_videos(tmp_path):
    import subprocess

    import imageio_ffmpeg

    video = tmp_path / "wide.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10",
                    "-t", "1", "-pix_fmt", "yuv420p", str(video)], check=True)
    as_driving = inspect_json(video)
    assert as_driving["run_record"] is None
    assert any("is not square; extract stretches" in warning for warning in as_driving["warnings"])
    assert any("No audio track" in warning for warning in as_driving["warnings"])

    record = RunRecord("done", str(video), {}, {}, dict(DEFAULTS), output_file=file_facts(video))
    write_record(record, record_path(video))
    made = inspect_json(video)
    assert made["run_record"] == str(record_path(video)) and made["warnings"] == []

    record.output_file = {**file_facts(video), "sha256": "0" * 64}  # a record of another file of that name
    write_record(record, record_path(video))
    assert inspect_json(video)["run_record"] is None


def test_a_record_naming_a_device_a_fifo_or_a_folder_reports_not_a_file_without_reading_it(tmp_path):
    """/dev/zero or a FIFO would be read forever, a folder hashed whole: a damaged or hand-made record is
    reported, in a child process that must end."""
    record, image, audio, output = write_run(tmp_path)
    fifo = tmp_path / "speech.fifo"
    os.mkfifo(fifo)
    data = json.loads(record.read_text())
    data["inputs"]["audio"]["path"] = str(fifo)
    data["inputs"]["reference_image"]["path"] = str(tmp_path / "model")
    data["output"] = "/dev/zero"
    record.write_text(json.dumps(data))
    script = ("import json, sys; from vexpress_cli.jobs.inspect import inspect_record; "
              "print(json.dumps(inspect_record(sys.argv[1]).to_dict()))")
    done = subprocess.run([sys.executable, "-c", script, str(record)], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    assert report["output_now"] == "not a file"
    assert [(item["role"], item["now"]) for item in report["inputs"]] == [("reference_image", "not a file"),
                                                                        ("audio", "not a file")]
    assert f"The audio {fifo} is not a file: a rerun needs it back, or another file given with audio." in (
        report["warnings"])


def test_the_device_and_dtype_a_run_used_are_shown_as_run_not_as_settings_changed_from_the_default(tmp_path):
    """A record keeps what ran (cpu, float32), not whether auto was asked: they are not 'not default'."""
    record, *_ = write_run(tmp_path, device="cpu", dtype="float32", width=256)
    assert inspect_record(record).values == {"width": 256}
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in inspect_human(record).splitlines()
            if line.count("│") == 4}
    assert (rows["device"], rows["dtype"], rows["width"], rows["height"]) == ("as run", "as run", "not default",
                                                                             "default")
