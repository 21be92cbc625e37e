"""`vexpress generate` with bad input: one clear paragraph, exit code 2, no traceback, nothing written.

Most cases fail before the model loads; out-of-memory and Ctrl+C are simulated inside a real
generation on the tiny model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import SAMPLES_DIR, TINY_MODEL_DIR
from typer.testing import CliRunner

import vexpress_cli
from vexpress_cli.cli.app import app
from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.engine.pipeline import VExpressPipeline

pytestmark = pytest.mark.usefixtures("no_user_config", "like_the_real_command")

TYS = SAMPLES_DIR / "tys"
SMALL = ["--width", "64", "--height", "64", "--num-inference-steps", "1"]

runner = CliRunner()


class Pickled:
    """Any class: a kps file that pickles one must be refused, not unpickled."""

    def __reduce__(self):
        return (os.getcwd, ())


def write_wav(path: Path, seconds: float, amplitude: float = 0.3) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    samples = (amplitude * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    faceless = folder / "wall.png"
    PIL.Image.new("RGB", (128, 128), (128, 128, 128)).save(faceless)
    not_an_image = folder / "notes.jpg"
    not_an_image.write_text("this is not a JPEG")
    corrupt = folder / "corrupt.mp3"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = folder / "empty.mp3"
    empty.write_bytes(b"")
    no_audio = folder / "picture.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=0.5",
                    "-pix_fmt", "yuv420p", str(no_audio)], check=True)
    malformed = folder / "malformed.pth"
    torch.save(torch.zeros(4, 5), malformed)
    forbidden = folder / "forbidden.pth"
    torch.save([Pickled()], forbidden)
    broken_model = folder / "broken-model"
    for entry in TINY_MODEL_DIR.rglob("*"):  # the tiny model without two checkpoints, by symlinks
        if entry.is_file() and entry.name not in ("reference_net.bin", "v_kps_guider.bin"):
            target = broken_model / entry.relative_to(TINY_MODEL_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(entry)
    moonwalk_preset = folder / "moonwalk.toml"
    moonwalk_preset.write_text('[generate]\nretarget_strategy = "moonwalk"\n')
    return {
        "moonwalk_preset": moonwalk_preset,
        "speech": write_wav(folder / "speech.wav", 0.5),
        "click": write_wav(folder / "click.wav", 0.02),
        "faceless": faceless,
        "not_an_image": not_an_image,
        "corrupt": corrupt,
        "empty": empty,
        "no_audio": no_audio,
        "malformed": malformed,
        "forbidden": forbidden,
        "broken_model": broken_model,
    }


def run(*args):
    return runner.invoke(app, ["generate", *map(str, args)])


def assert_refused(result, output: Path, *phrases: str, code: int = 2) -> str:
    """One readable paragraph on stderr, the exit code, and nothing at (or next to) the output."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    log = " ".join(result.stderr.split())
    # Stages that finished may stay on screen; the error is the one paragraph that ends the output.
    message = log[log.find("Error: "):] if code == 2 else log
    if code == 2:
        assert log.count("Error:") == 1 and message.startswith("Error: "), log
    for phrase in phrases:
        assert phrase in message, log
    assert not output.exists()
    if output.parent.is_dir():
        assert list(output.parent.iterdir()) == [], "temp files left behind"
    return message


@pytest.fixture
def output(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "talk.mp4"


def model_flags():
    return ["--model-dir", TINY_MODEL_DIR]


BAD_INPUT_CASES = {
    # name: (arguments after --output, phrases the message must contain)
    "missing image": (lambda i: ["-i", "nowhere.jpg", "-a", i["speech"], "--kps", TYS / "kps.pth"],
                      ["nowhere.jpg", "does not exist"]),
    "image is a folder": (lambda i: ["-i", i["speech"].parent, "-a", i["speech"], "--kps", TYS / "kps.pth"],
                          ["Cannot read the reference image", "JPEG or PNG"]),
    "not an image": (lambda i: ["-i", i["not_an_image"], "-a", i["speech"], "--kps", TYS / "kps.pth"],
                     ["Cannot read the reference image", "notes.jpg"]),
    "no face for fix_face": (lambda i: ["-i", i["faceless"], "-a", i["speech"], "--face-backend", "dlib"],
                             ["No face was found", "wall.png"]),
    "no face for offset_retarget": (lambda i: ["-i", i["faceless"], "-a", i["speech"], "--kps", TYS / "kps.pth",
                                               "--strategy", "offset_retarget", "--face-backend", "dlib"],
                                    ["No face was found"]),
    "missing audio": (lambda i: ["-i", TYS / "ref.jpg", "-a", "silence.mp3", "--kps", TYS / "kps.pth"],
                      ["The audio file silence.mp3 does not exist."]),
    "corrupt audio": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["corrupt"], "--kps", TYS / "kps.pth"],
                      ["Cannot read the audio file", "corrupt.mp3", "ffmpeg could not open it"]),
    "empty audio": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["empty"], "--kps", TYS / "kps.pth"],
                    ["The audio file", "empty.mp3 is empty (0 bytes)."]),
    "video without sound": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["no_audio"], "--kps", TYS / "kps.pth"],
                            ["has no audio track"]),
    "audio shorter than a frame": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["click"], "--kps", TYS / "kps.pth"],
                                   ["lasts 20 ms, shorter than one frame", "longer audio"]),
    "audio too short for wav2vec2": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["click"], "--kps", TYS / "kps.pth",
                                                "--fps", "100"],
                                     ["lasts 20 ms, too short for the speech encoder", "25 ms"]),
    "missing kps": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", "gone.pth"],
                    ["gone.pth", "does not exist"]),
    "malformed kps": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", i["malformed"]],
                      ["malformed.pth have shape [4, 5], not [frames, 3, 2]"]),
    "forbidden pickle kps": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", i["forbidden"]],
                             ["Refused to load", "forbidden.pth"]),
    "unknown strategy": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", TYS / "kps.pth",
                                    "--strategy", "moonwalk"],
                         ["Unknown retarget strategy 'moonwalk'", "fix_face", "no_retarget", "offset_retarget",
                          "naive_retarget"]),
    "unknown strategy before face detection": (lambda i: ["-i", i["faceless"], "-a", i["speech"],
                                                          "--strategy", "moonwalk", "--face-backend", "dlib"],
                                               ["Unknown retarget strategy 'moonwalk'"]),
    "unknown strategy given with -s": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "-s", "moonwalk"],
                                       ["Unknown retarget strategy 'moonwalk'"]),
    "empty preset name": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--preset", ""],
                          ["--preset was given an empty value.", "Give --preset a value, or leave it out."]),
    "empty output, as from an unset shell variable": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "-o", ""],
                                                      ["-o was given an empty value.", "(-o \"$OUT\" with OUT unset)"]),
    "empty output given with =": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--output=  "],
                                  ["--output was given an empty value."]),
    "unknown strategy from a preset": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--preset",
                                                  i["moonwalk_preset"]],
                                       ["Unknown retarget strategy 'moonwalk'. It was set from the preset."]),
    "strategy needs kps": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--strategy", "naive_retarget"],
                           ["needs a driving kps track", "--kps"]),
    "unknown preset": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--preset", "same-persn"],
                       ["no preset named 'same-persn'", "same-person"]),
    "weight beyond the hard limit": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", TYS / "kps.pth",
                                                "--audio-attention-weight", "50"],
                                     ["--audio-attention-weight", "from 0.0 to 10.0"]),
    "audio padding the model was not trained on": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps",
                                                             TYS / "kps.pth", "--num-pad-audio-frames", "3"],
                                                   ["--num-pad-audio-frames 3 does not fit the model",
                                                    "Use --num-pad-audio-frames 2."]),
    "missing model folder": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", TYS / "kps.pth",
                                        "--model-dir", i["speech"].parent / "no-model"],
                             ["no-model", "vexpress models download"]),
    "model folder missing files": (lambda i: ["-i", TYS / "ref.jpg", "-a", i["speech"], "--kps", TYS / "kps.pth",
                                              "--model-dir", i["broken_model"]],
                                   ["v-express/reference_net.bin", "v-express/v_kps_guider.bin",
                                    "vexpress models download"]),
}


def test_a_folder_that_is_not_a_model_is_refused_before_the_inputs_are_read(output, tmp_path):
    """A folder without the model's files started loading, after the plan, and failed 15-20 s later; its list
    left out motion_module.bin, so copying the listed files gave a second error."""
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    result = run("-i", "nowhere.jpg", "-a", "nowhere.wav", "-o", output, "--model-dir", folder)
    assert assert_refused(result, output) == (
        f"Error: The model folder {folder} lacks stable-diffusion-v1-5/unet/config.json, sd-vae-ft-mse/config.json, "
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors, wav2vec2-base-960h/config.json, "
        "wav2vec2-base-960h/preprocessor_config.json, wav2vec2-base-960h/model.safetensors, "
        "v-express/reference_net.bin, v-express/denoising_unet.bin, v-express/v_kps_guider.bin, "
        "v-express/audio_projection.bin, v-express/motion_module.bin. V-Express needs every part of the released "
        "model. Run `vexpress models download` or copy the files from the released model.")


def test_insightface_without_its_detector_points_into_the_model_folder_and_names_no_model_root(inputs, output):
    """generate has no --model-root, yet its message said to pass it, and said the detector was not found
    under the model folder itself."""
    from vexpress_cli.errors import ModelFolderError
    from vexpress_cli.jobs.generate import Generator

    with pytest.raises(ModelFolderError) as error:
        Generator(TINY_MODEL_DIR).plan(TYS / "ref.jpg", inputs["speech"], output, face_backend="insightface",
                                       width=64, height=64)
    expected = TINY_MODEL_DIR / "insightface_models" / "models" / "buffalo_l" / "det_10g.onnx"
    assert str(error.value) == (
        f"The insightface face detector was not found under {TINY_MODEL_DIR / 'insightface_models'}. "
        f"The insightface face backend needs the SCRFD detector of buffalo_l, expected at {expected}. "
        "`vexpress models download` fetches it with the model (17 MB); or get buffalo_l.zip from "
        f"https://github.com/deepinsight/insightface/releases and put its det_10g.onnx at {expected}; "
        'or use face_backend="dlib", which needs no download.')
    cli = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "-o", output, "--face-backend", "insightface",
              *model_flags(), *SMALL)
    assert "model-root" not in assert_refused(cli, output, "--face-backend dlib")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_from_the_user_config_is_named_where_it_was_set_not_as_a_flag(inputs, output, tmp_path):
    """generate said "CUDA was asked for ... Use --device cpu" for the config's device = "cuda", a flag never typed."""
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text('[generate]\ndevice = "cuda"\n')
    cli = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "-o", output, *model_flags(), *SMALL)
    message = assert_refused(cli, output, "CUDA was asked for but is not available.")
    assert 'It was set in the user config: device = "cuda" under [generate] in /' in message  # the path may wrap
    assert "Change or remove that line" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_from_a_preset_is_named_as_the_preset_s_in_the_cli_and_the_library(inputs, output, tmp_path):
    """The CLI and generate() passed a preset's device to the Generator as if typed: "Use --device cpu", no preset."""
    preset = tmp_path / "on-gpu.toml"
    preset.write_text('[generate]\ndevice = "cuda"\n')
    cli = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "-o", output, "--preset", preset, *model_flags(), *SMALL)
    assert "It was set from the preset." in assert_refused(cli, output, "CUDA was asked for but is not available.")
    with pytest.raises(vexpress_cli.VExpressError, match="It was set from the preset."):
        vexpress_cli.generate(TYS / "ref.jpg", inputs["speech"], output, preset=preset, model_dir=TINY_MODEL_DIR)


def test_a_face_backend_from_the_user_config_is_named_where_it_was_set(inputs, output, tmp_path):
    from vexpress_cli.errors import ModelFolderError
    from vexpress_cli.jobs.generate import Generator

    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text('[generate]\nface_backend = "insightface"\n')
    with pytest.raises(ModelFolderError, match="It was set in the user config: face_backend = .insightface."):
        Generator(TINY_MODEL_DIR).plan(TYS / "ref.jpg", inputs["speech"], output, width=64, height=64)
    cli = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "-o", output, *model_flags(), *SMALL)
    assert "--face-backend insightface" not in assert_refused(cli, output, "face_backend = \"insightface\"")


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_is_refused_cleanly(case, inputs, output):
    arguments, phrases = BAD_INPUT_CASES[case]
    given = arguments(inputs)
    model = [] if "--model-dir" in given else model_flags()
    assert_refused(run(*given, "-o", output, *SMALL, *model), output, *phrases)


@pytest.mark.slow
def test_shortest_audio_the_speech_encoder_takes_still_works(tmp_path):
    from vexpress_cli.media.video_reader import video_info

    audio = write_wav(tmp_path / "blip.wav", 0.025)  # 400 samples: one wav2vec2 window
    output = tmp_path / "blip.mp4"
    result = run("-i", TYS / "ref.jpg", "-a", audio, "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                 *model_flags(), "--fps", "60", "--quiet")
    assert result.exit_code == 0, result.output
    assert video_info(output).frame_count == 2  # round(0.025 * 60)


def test_missing_required_option(inputs, output):
    assert_refused(run("-a", inputs["speech"], "-o", output), output, "--reference-image is required")


def test_existing_output_is_kept_without_overwrite(inputs, output):
    output.write_bytes(b"precious")
    result = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output,
                 *SMALL, *model_flags())
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "already exists" in message and "--overwrite" in message
    assert output.read_bytes() == b"precious"
    assert [path.name for path in output.parent.iterdir()] == ["talk.mp4"]


@pytest.mark.slow
def test_missing_output_folder_is_created_when_the_video_is_written(inputs, tmp_path):
    output = tmp_path / "not" / "there" / "talk.mp4"
    result = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output,
                 *SMALL, *model_flags())
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in output.parent.iterdir()) == ["talk.mp4", "talk.mp4.json"]  # video, record
    assert output.stat().st_size > 0


def guider_weights_all(value: float, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the tiny model whose V-Kps guider weights are all ``value``; the model and the guider's file."""
    model = tmp_path_factory.mktemp("models") / "spoilt-model"
    shutil.copytree(TINY_MODEL_DIR, model)
    guider = model / "v-express" / "v_kps_guider.bin"
    torch.save({key: torch.full_like(tensor, value) for key, tensor in
                torch.load(guider, weights_only=True).items()}, guider)
    return model, guider


def test_weights_holding_nan_stop_the_job_at_load(inputs, tmp_path, tmp_path_factory):
    model, guider = guider_weights_all(float("nan"), tmp_path_factory)
    output = tmp_path / "talk.mp4"
    assert_refused(run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                       "--model-dir", model), output, f"Error: The weights in {guider} hold NaN in conv_in.weight.",
                   "vexpress models download")


@pytest.mark.slow
def test_weights_that_overflow_stop_the_job_instead_of_writing_black_frames(inputs, tmp_path, tmp_path_factory):
    model, _ = guider_weights_all(1e38, tmp_path_factory)  # finite, so they load; the features overflow
    output = tmp_path / "talk.mp4"
    assert_refused(run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                       "--model-dir", model), output, "The generated frames 0-", "hold NaN or infinite values",
                   "--dtype fp32", "vexpress models download")


def test_refused_job_creates_no_output_folder(inputs, tmp_path):
    output = tmp_path / "not" / "there" / "talk.mp4"
    assert_refused(run("-i", inputs["not_an_image"], "-a", inputs["speech"], "-o", output, *SMALL,
                       *model_flags()), output, "notes.jpg")
    assert not (tmp_path / "not").exists()  # checked as creatable, created only when the work starts


def test_output_inside_a_file(inputs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    output = blocker / "talk.mp4"
    assert_refused(run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output,
                       *SMALL, *model_flags()), output, "is a file, not a folder")


def test_output_folder_not_writable(inputs, tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        folder = Path("/sys")
        if not folder.is_dir():
            pytest.skip("needs /sys when running as root")
        output = folder / "vexpress-test-talk.mp4"
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        output = folder / "talk.mp4"
    result = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                 *model_flags())
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert "is not writable" in message and "Choose an output path" in message
    assert not output.exists()


def test_issue8_item15_an_output_named_only_by_its_suffix_is_refused(inputs, output):
    """Issue 8 item 15: `-o .mp4` is refused clearly; no hidden folder of PNG frames is written."""
    target = output.parent / ".mp4"
    assert_refused(run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", target,
                       *SMALL, *model_flags()), target, "'.mp4'", "is only a file suffix", "e.g. 'talk.mp4'")


def test_unsupported_output_suffix(inputs, output):
    target = output.with_suffix(".avi")
    assert_refused(run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", target,
                       *SMALL, *model_flags()), target, ".mp4, .mov or .mkv")


def test_cuda_out_of_memory_suggests_smaller_settings(inputs, output, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(VExpressPipeline, "denoise_to_store", out_of_memory)
    message = assert_refused(
        run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
            *model_flags()),
        output, "ran out of memory", "--save-gpu-memory", "--context-frames")
    assert "24 context frames at 64x64" in message


@pytest.mark.parametrize("new_folders", [False, True])
@pytest.mark.slow
def test_ctrl_c_mid_stream_leaves_nothing(inputs, output, monkeypatch, new_folders):
    """Not even the folders the run made for its output (they were left behind, empty)."""
    if new_folders:
        output = output.parent / "new" / "sub" / output.name
    real_iter_frames = VExpressPipeline.iter_frames
    written = []

    def interrupted(self, *args, **kwargs):
        frames = real_iter_frames(self, *args, **kwargs)
        chunk = next(frames)  # the real first chunk reaches the encoder...
        written.append(len(chunk))
        yield chunk
        raise KeyboardInterrupt  # ...then the user presses Ctrl+C

    monkeypatch.setattr(VExpressPipeline, "iter_frames", interrupted)
    result = run("-i", TYS / "ref.jpg", "-a", inputs["speech"], "--kps", TYS / "kps.pth", "-o", output, *SMALL,
                 *model_flags(), "--quiet")
    assert written and written[0] > 0
    message = assert_refused(result, output, code=130)
    assert "Interrupted; nothing was written." in message
    out = output.parents[2] if new_folders else output.parent  # the folder the fixture made: it stays
    assert not (out / "new").exists() and out.is_dir()


def test_a_parameter_with_a_value_reads_as_a_python_argument_or_a_flag():
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.errors import InputError, parameter

    error = InputError(f"{parameter('devices', 'all')} found no GPU.", "",
                       f"Use {parameter('workers', 'N')}, {parameter('fps', 25)} or {parameter('crop', 'X,Y,W,H')}.")
    assert str(error) == 'devices="all" found no GPU. Use workers=N, fps=25 or crop="X,Y,W,H".'
    assert error.render(flag_of) == "--devices all found no GPU. Use --workers N, --fps 25 or --crop X,Y,W,H."


def test_an_errors_parts_read_as_python_and_still_render_as_flags_after_pickling():
    import pickle

    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.errors import InputError, parameter

    error = InputError(f"{parameter('seed', 3)} is out of range.", f"{parameter('max_size')} too.",
                       f"Lower {parameter('context_frames')}.")
    assert (error.what, error.why, error.fix) == ("seed=3 is out of range.", "max_size too.", "Lower context_frames.")
    for copy in (error, pickle.loads(pickle.dumps(error))):  # as it comes back from a worker process
        assert copy.render(flag_of) == "--seed 3 is out of range. --max-size too. Lower --context-frames."


def test_joined_message_parts_keep_a_reference_at_their_start():
    from vexpress_cli.cli.options import flag_of
    from vexpress_cli.errors import join_messages, parameter, spell_parameters

    joined = join_messages(f" {parameter('force')} was given ", "", f"{parameter('seed', 3)} too", separator="; ")
    assert joined == "force was given; seed=3 too"
    assert spell_parameters(joined, flag_of) == "--force was given; --seed 3 too"



def test_files_typed_without_their_options_are_told_the_options_that_take_them():
    """`vexpress generate ref.jpg s.wav out.mp4` said only 'Got unexpected extra argument(s)'."""
    result = CliRunner().invoke(app, ["generate", "ref.jpg", "s.wav", "out.mp4"])
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert ("Got unexpected extra argument(s) (ref.jpg s.wav out.mp4). generate takes each file with its option, "
            "e.g. `vexpress generate -i photo.jpg -a speech.wav -o talk.mp4`; `vexpress generate -h` lists them."
            ) in message
