"""The README's first command: `vexpress demo` on the built-in tiny model."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.jobs.inspect import inspect_model_folder
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.tiny.model import ensure_tiny_model


def test_tiny_model_has_the_released_layout_and_fits_the_architecture_and_is_written_silently(tmp_path, capfd):
    folder = ensure_tiny_model(tmp_path / "tiny")
    assert capfd.readouterr() == ("", "")  # no library progress bar or note
    report = inspect_model_folder(folder)
    assert report.complete
    assert {network.status for network in report.networks} == {"ok"}
    # Motion modules live in their own file, as released.
    denoising = next(network for network in report.networks if network.name == "denoising_unet")
    assert denoising.files == ["v-express/denoising_unet.bin", "v-express/motion_module.bin"]


def test_demo_writes_a_real_video(tmp_path):
    output = tmp_path / "demo.mp4"
    result = CliRunner().invoke(app, ["demo", "--output", str(output), "--seconds", "1", "--size", "64",
                                      "--model-dir", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert "2 steps (demo), weights 1/1 (default), 64x64 (flag)." in " ".join(result.output.split())
    info = video_info(output)
    assert (info.codec, info.audio_codec, info.width, info.height) == ("h264", "aac", 64, 64)
    assert info.frame_count == 30
    # The next step without weights: the tiny model, by its folder.
    assert f"add --model-dir {tmp_path / 'tiny'} to `vexpress generate`" in " ".join(result.output.split())


def test_the_tiny_model_never_replaces_a_folder_with_other_files(tmp_path):
    import pytest

    from vexpress_cli.errors import VExpressError

    weights = tmp_path / "model_ckpts" / "v-express" / "denoising_unet.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"real weights")
    with pytest.raises(VExpressError, match="not a tiny model folder"):
        ensure_tiny_model(tmp_path / "model_ckpts")
    assert weights.read_bytes() == b"real weights"


@pytest.mark.parametrize(("flags", "expected"), [
    (["--seconds", "0"], "Error: --seconds is 0.0; it must be from 0.1 to 600. The length of the synthetic speech, "
                         "in seconds. Use a value from 0.1 to 600."),
    (["--seconds", "nan"], "Error: --seconds is nan, not a finite number. The length of the synthetic speech, in "
                           "seconds. Use a number from 0.1 to 600."),
    (["--seconds", "inf"], "Error: --seconds is inf, not a finite number. The length of the synthetic speech, in "
                           "seconds. Use a number from 0.1 to 600."),
    (["--num-inference-steps", "0"], "Error: --num-inference-steps is 0; it must be from 1 to 100. The denoising "
                                     "steps. Use a value from 1 to 100."),
    (["--size", "2000"], "Error: --size is 2000; it must be from 64 to 1024. The width and height of the video, in "
                         "pixels. Use a value from 64 to 1024."),
])
def test_demo_numbers_out_of_range_are_one_paragraph_errors_not_clicks_box(tmp_path, flags, expected):
    result = CliRunner().invoke(app, ["demo", *flags, "--output", str(tmp_path / "d.mp4")])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == expected
    assert list(tmp_path.iterdir()) == []


def test_demo_names_its_own_size_flag_when_the_size_is_no_multiple_of_8(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--size", "100", "--output", str(tmp_path / "d.mp4")])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == ("Error: --size is 100; it must be a multiple of 8. The VAE downsamples "
                                               "images by 8 in each direction. Use 96 or 104.")
    assert "--width" not in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_runs_again_in_the_same_folder_under_the_next_free_name(tmp_path, monkeypatch):
    """Issue 8 item 4: the README's first command works every time it is run."""
    monkeypatch.chdir(tmp_path)
    arguments = ["demo", "--seconds", "0.5", "--size", "64", "--num-inference-steps", "1", "--model-dir",
                 str(tmp_path / "tiny")]
    for _ in range(2):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.glob("*.mp4")) == ["vexpress-demo-2.mp4", "vexpress-demo.mp4"]
    assert video_info(tmp_path / "vexpress-demo-2.mp4").frame_count == 15


def test_demo_model_folder_that_cannot_be_written_is_one_clean_error(tmp_path):
    """Issue 8 item 9: an unwritable --model-dir was a traceback (a file in the way fails like a read-only disk)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["demo", "--model-dir", str(blocker / "tiny"), "--output",
                                      str(tmp_path / "d.mp4")])
    assert result.exit_code == 2, result.output
    assert "Cannot write the tiny model into" in result.output and "--model-dir" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "d.mp4").exists()


@pytest.mark.parametrize("empty_folder_first", [True, False])
def test_a_tiny_model_made_by_another_run_meanwhile_is_used_not_an_error(tmp_path, monkeypatch, empty_folder_first):
    """Audit item 4: while this run wrote, another one published the same model; rmdir said "Directory not empty"."""
    import vexpress_cli.tiny.model as tiny

    target = tmp_path / "tiny"
    if empty_folder_first:
        target.mkdir()

    def other_run_wins(staging, seed):
        (staging / "mine").write_text("this run's")
        if target.is_dir():
            target.rmdir()
        other = tmp_path / "other-staging"
        other.mkdir()
        (other / "theirs").write_text("the other run's")
        (other / tiny.TINY_MARKER).write_text("done")
        other.rename(target)

    monkeypatch.setattr(tiny, "write_tiny_model", other_run_wins)
    assert ensure_tiny_model(target) == target
    assert sorted(path.name for path in target.iterdir()) == sorted([tiny.TINY_MARKER, "theirs"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny"]
