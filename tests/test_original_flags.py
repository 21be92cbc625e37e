"""Issue 8 item 5: every flag of the original inference.py works, mapped onto vexpress or refused with the replacement."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.cli.original_flags import check_sample_rate, device_from_gpu_id, model_dir_from_paths
from vexpress_cli.errors import InputError
from vexpress_cli.jobs.records import read_record, record_path
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.settings.presets import load_preset

# parse_args() of the original inference.py: its generation defaults.
ORIGINAL_DEFAULTS = {
    "retarget_strategy": "fix_face", "num_inference_steps": 25, "guidance_scale": 3.5, "context_frames": 12,
    "context_overlap": 4, "reference_attention_weight": 0.95, "audio_attention_weight": 3.0, "fps": 30.0,
    "width": 512, "height": 512, "seed": 42, "num_pad_audio_frames": 2,
}


def test_model_path_flags_point_to_their_model_folder():
    paths = {"--vae_path": Path("/m/sd-vae-ft-mse/"), "--reference_net_path": Path("/m/v-express/reference_net.bin"),
             "--unet_config_path": Path("/m/stable-diffusion-v1-5/unet/config.json"),
             "--insightface_model_path": Path("/m/insightface_models/")}
    assert model_dir_from_paths(None, paths) == Path("/m")
    assert model_dir_from_paths(Path("/m"), paths) == Path("/m")
    assert model_dir_from_paths(None, {"--vae_path": None}) is None


def test_model_paths_into_two_folders_are_refused():
    with pytest.raises(InputError, match="point into different folders.*--model-dir FOLDER"):
        model_dir_from_paths(None, {"--vae_path": Path("/a/sd-vae-ft-mse"),
                                    "--motion_module_path": Path("/b/v-express/motion_module.bin")})
    with pytest.raises(InputError, match="different folders"):
        model_dir_from_paths(Path("/c"), {"--vae_path": Path("/a/sd-vae-ft-mse")})


def test_a_model_path_outside_the_layout_names_the_replacement():
    with pytest.raises(InputError, match="--denoising_unet_path /x/unet.bin is not where .*Pass --model-dir"):
        model_dir_from_paths(None, {"--denoising_unet_path": Path("/x/unet.bin")})


def test_gpu_id_is_a_cuda_device_and_other_sample_rates_are_refused():
    assert device_from_gpu_id(None, 1) == "cuda:1" and device_from_gpu_id("cuda", 0) == "cuda:0"
    assert device_from_gpu_id("cpu", None) == "cpu"
    with pytest.raises(InputError, match="--gpu_id 1 and --device cpu disagree"):
        device_from_gpu_id("cpu", 1)
    with pytest.raises(InputError, match="--gpu_id -1 is not a GPU number"):
        device_from_gpu_id(None, -1)
    check_sample_rate(16000)
    with pytest.raises(InputError, match="--standard_audio_sampling_rate 22050 is not possible"):
        check_sample_rate(22050)


def test_original_defaults_preset_holds_the_original_defaults():
    preset = load_preset("original-defaults")
    assert {name: preset.values[name] for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS
    assert preset.values["kps_fit"] == "stretch"  # the original interpolated the kps sequence
    assert preset.values["crop"] == "none"  # and stretched the whole photo to the video's size


@pytest.mark.usefixtures("no_user_config", "like_the_real_command")
@pytest.mark.slow
def test_an_original_command_line_runs(tmp_path, monkeypatch):
    """The original's flags only, model files given one by one as inference.py took them."""
    monkeypatch.chdir(tmp_path)  # no ./model_ckpts to fall back on
    audio = tmp_path / "aud.wav"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-t", "0.4", "-i", str(SAMPLES_DIR / "AOC" / "aud.mp3"),
                    str(audio)], check=True)
    output = tmp_path / "out.mp4"
    model = TINY_MODEL_DIR
    result = CliRunner().invoke(app, [
        "generate", "--preset", "original-defaults", "--reference_image_path", str(SAMPLES_DIR / "AOC" / "ref.jpg"),
        "--audio_path", str(audio), "--output_path", str(output), "--image_width", "64", "--image_height", "64",
        "--num_inference_steps", "1", "--context_frames", "12", "--reference-kps", "22,26;42,26;32,38",
        "--unet_config_path", str(model / "stable-diffusion-v1-5/unet/config.json"),
        "--vae_path", str(model / "sd-vae-ft-mse") + "/", "--audio_encoder_path", str(model / "wav2vec2-base-960h"),
        "--denoising_unet_path", str(model / "v-express/denoising_unet.bin"),
        "--standard_audio_sampling_rate", "16000", "--do_multi_devices_inference", "--save_gpu_memory",
    ])
    assert result.exit_code == 0, result.output
    assert "--do_multi_devices_inference is ignored" in result.output
    video = video_info(output)
    assert (video.frame_count, video.width, video.height) == (12, 64, 64)
    settings = read_record(record_path(output)).settings  # each original flag became its setting
    assert (settings["num_inference_steps"], settings["context_frames"], settings["save_gpu_memory"]) == (1, 12, True)


@pytest.mark.parametrize(("typed", "other"), [("--num_inference_steps", "--num-inference-steps"),
                                              ("--num-inference-steps", "--num_inference_steps")])
def test_a_refused_value_is_named_by_the_spelling_typed(typed, other):
    """`--num_inference_steps 0` was refused as "--num-inference-steps is 0", a flag the user never typed."""
    result = CliRunner().invoke(app, ["generate", typed, "0", "--reference_image_path", "ref.jpg",
                                      "--audio_path", "aud.mp3", "-o", "out.mp4"])
    assert result.exit_code == 2
    assert f"{typed} is 0;" in result.output and other not in result.output


def test_warnings_and_notes_name_a_setting_as_typed_while_its_command_line_runs():
    from vexpress_cli.cli.options import flag_of, typed_args

    with typed_args(["generate", "--reference_attention_weight=1.5", "--seed", "3"]):
        assert flag_of("reference_attention_weight") == "--reference_attention_weight"
        assert flag_of("seed") == "--seed" and flag_of("retarget_strategy") == "--retarget-strategy"
    with typed_args(["generate", "--strategy", "fix_face"]):
        assert flag_of("retarget_strategy") == "--strategy"
    with typed_args(["generate", "-s", "fix_face", "--retarget_strategy", "fix_face"]):  # its own short flag wins
        assert flag_of("retarget_strategy") == "--retarget-strategy"
    assert flag_of("reference_attention_weight") == "--reference-attention-weight"  # no command line running


def test_a_refused_path_is_named_by_the_original_flag_typed_for_it(tmp_path):
    """`extract --insightface_model_path /nowhere` was refused as "--model-root /nowhere", a flag never typed."""
    video = SAMPLES_DIR / "AOC" / "gt.mp4"
    result = CliRunner().invoke(app, ["extract", "--video_path", str(video), "--insightface_model_path",
                                      str(tmp_path / "nowhere"), "-o", str(tmp_path / "k.pth")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"--insightface_model_path {tmp_path / 'nowhere'}: no such folder." in message
    assert "--model-root" not in message
    same = CliRunner().invoke(app, ["extract", "--video_path", str(video), "--kps_sequence_save_path",
                                    str(tmp_path / "a.mp3"), "--audio_save_path", str(tmp_path / "a.mp3")])
    assert "--kps_sequence_save_path and --audio_save_path name the same file." in " ".join(same.output.split())
