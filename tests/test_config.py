"""Config folder, config.toml and the model-folder discovery order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vexpress_cli.cli.options import flag_of
from vexpress_cli.settings.model_lookup import resolve_model_dir
from vexpress_cli.settings.user_config import config_dir, load_user_config, user_presets_dir
from vexpress_cli.errors import InputError, ModelFolderError, spell_parameters


@pytest.fixture
def env(tmp_path, monkeypatch, no_user_config) -> Path:
    """Run from an empty folder with a private config folder and no VEXPRESS_MODEL_DIR."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def make_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_dir_from_env_and_platform_default(env, monkeypatch):
    assert config_dir() == env / "config"
    assert user_presets_dir() == env / "config" / "presets"
    monkeypatch.delenv("VEXPRESS_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env / "xdg"))
    assert config_dir() == env / "xdg" / "vexpress"


def found(resolved) -> tuple[Path, str]:
    """Where the model was found, and how, as a Python caller reads it."""
    return resolved.path, spell_parameters(resolved.how)


def test_discovery_order_each_source_beats_the_later_ones(env, monkeypatch):
    default = make_dir(env / "work" / "model_ckpts")
    assert found(resolve_model_dir()) == (default, "./model_ckpts when present")

    from_config_dir = make_dir(env / "from-config-dir")
    config_path = write_config(env, f'model_dir = "{from_config_dir}"\n')
    assert found(resolve_model_dir()) == (from_config_dir, f"model_dir in {config_path}")

    from_config = make_dir(env / "from-config")
    write_config(env, f'model_dir = "{from_config_dir}"\nmodel = "{from_config}"\n')
    assert found(resolve_model_dir()) == (from_config, f"model in {config_path}")

    from_env_dir = make_dir(env / "from-env-dir")
    monkeypatch.setenv("VEXPRESS_MODEL_DIR", str(from_env_dir))
    assert found(resolve_model_dir()) == (from_env_dir, "$VEXPRESS_MODEL_DIR")

    from_env = make_dir(env / "from-env")
    monkeypatch.setenv("VEXPRESS_MODEL", str(from_env))
    assert found(resolve_model_dir()) == (from_env, "$VEXPRESS_MODEL")

    explicit = make_dir(env / "explicit")
    assert found(resolve_model_dir(explicit)) == (explicit, "model_dir")
    assert found(resolve_model_dir(model=str(explicit))) == (explicit, "model")


def test_model_and_model_dir_together_are_an_input_error(env):
    with pytest.raises(InputError, match="Both model and model_dir"):
        resolve_model_dir(env, model=str(env))


def test_relative_model_dir_in_config_is_relative_to_the_config_file(env):
    weights = make_dir(env / "config" / "weights")
    write_config(env, 'model_dir = "weights"\n')
    assert resolve_model_dir().path == weights


def test_nothing_found_lists_every_source_and_says_the_download_command_and_size(env):
    from vexpress_cli.engine.model_source import ESTIMATED_DOWNLOAD

    with pytest.raises(ModelFolderError) as caught:
        resolve_model_dir()
    message = str(caught.value)
    config = env / "config" / "config.toml"
    assert ("Looked in this order: model or model_dir: not given; $VEXPRESS_MODEL: not set; $VEXPRESS_MODEL_DIR: not set; "
            f"model in {config}: no such file; model_dir in {config}: no such file; ./model_ckpts when present: "
            "not present; default tk93/V-Express in the Hugging Face cache.") in message
    assert "Looked in this order: --model or --model-dir: not given; $VEXPRESS_MODEL: not set;" in caught.value.render(flag_of)
    assert f"Run `vexpress models download` with network access; it fetches {ESTIMATED_DOWNLOAD}" in message
    assert message.endswith("`vexpress demo` writes a tiny random-weight model and names its folder, which works as "
                            "model_dir (the video is noise, every part runs).")
    assert str(env / "empty-hf-cache") in message


def test_a_configured_but_missing_folder_is_an_error_not_a_fall_through(env, monkeypatch):
    make_dir(env / "work" / "model_ckpts")
    monkeypatch.setenv("VEXPRESS_MODEL_DIR", str(env / "gone"))
    with pytest.raises(ModelFolderError, match=r"gone \(\$VEXPRESS_MODEL_DIR\) does not exist"):
        resolve_model_dir()


def test_a_configured_hub_id_that_is_not_cached_is_an_error_not_a_fall_through(env, monkeypatch):
    make_dir(env / "work" / "model_ckpts")
    monkeypatch.setenv("VEXPRESS_MODEL", "tk93/V-Express@v2")
    with pytest.raises(ModelFolderError) as caught:
        resolve_model_dir()
    assert "`vexpress models download --revision v2`" in str(caught.value)


def test_model_dir_that_is_a_file(env):
    file = env / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(ModelFolderError, match="is a file, not a folder"):
        resolve_model_dir(file)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('model_dri = "/x"\n', "unknown key 'model_dri'. Known keys: generate, model, model_dir. Did you mean "
                                "'model_dir'?"),
        ("model_dir = 3\n", "key 'model_dir' must be a str, not int"),
        (f"model_dir = {'9' * 500}\n", "key 'model_dir' must be a str, not int (a 500-digit number)."),
        (f"model_dir = [{'1, ' * 5000}]\n", "key 'model_dir' must be a str, not list ([1, 1, 1, 1, 1, 1, ...])."),
        ('model_dir = "/x\n', "is not valid TOML"),
    ],
)
def test_bad_config_file(env, text, fragment):
    path = write_config(env, text)
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_a_whole_number_longer_than_python_reads_in_the_config_is_bad_toml_at_its_line(env):
    """seed = 1 and 5000 zeros was a ValueError traceback from tomllib (Python reads at most 4300 digits)."""
    path = write_config(env, "[generate]\nseed = 1" + "0" * 5000 + "\n")
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert caught.value.what == f"The config file {path} is not valid TOML: the whole number at line 2 has " \
        "more than 4300 digits, more than Python reads."


def test_a_config_that_is_a_pipe_a_folder_or_a_link_loop_is_refused_not_ignored(env):
    """is_file() was false for each, so the config was silently not read."""
    path = env / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert caught.value.what == f"The config file {path} is not a regular file but a named pipe (FIFO)."
    path.unlink()
    path.mkdir()
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert caught.value.what == f"Cannot read the config file {path}: it is not a file but a folder."
    path.rmdir()
    path.symlink_to(path)
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert (caught.value.what, caught.value.why) == (f"Cannot read the config file {path}.",
                                                     "Too many levels of symbolic links.")
    path.unlink()
    path.write_text("")
    assert load_user_config() == {}  # an empty config sets nothing, and no config at all neither
    path.unlink()
    assert load_user_config() == {}


def test_explicit_model_dir_skips_a_broken_config_file(env):
    write_config(env, "not toml at all = = =\n")
    explicit = make_dir(env / "explicit")
    assert resolve_model_dir(explicit).path == explicit


def test_models_path_command(env, monkeypatch):
    from vexpress_cli.cli.app import app

    runner = CliRunner()
    folder = make_dir(env / "from-env")
    monkeypatch.setenv("VEXPRESS_MODEL_DIR", str(folder))
    result = runner.invoke(app, ["models", "path", "--json"])
    assert result.exit_code == 2, result.output  # the folder is empty: no weights to use
    found = json.loads(result.stdout)
    assert found.pop("lacks")[:2] == ["stable-diffusion-v1-5/unet/config.json", "sd-vae-ft-mse/config.json"]
    assert found == {"path": str(folder), "how": "$VEXPRESS_MODEL_DIR", "source": str(folder),
                     "skipped": ["--model or --model-dir: not given", "$VEXPRESS_MODEL: not set"]}

    monkeypatch.delenv("VEXPRESS_MODEL_DIR")
    missing = runner.invoke(app, ["models", "path"])
    assert missing.exit_code == 2, missing.output
    assert "Traceback" not in missing.output
    assert "vexpressmodelsdownload" in "".join(missing.output.split())


@pytest.mark.parametrize("under", [False, True])
def test_a_config_dir_that_is_a_file_is_an_error_not_ignored(env, monkeypatch, under):
    from vexpress_cli.cli.app import app

    photo = env / "ref.jpg"
    photo.write_text("not a folder")
    folder = photo / "config" if under else photo
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env / "xdg"))
    where = f"is under {photo}, which is not a folder" if under else "is not a folder"
    result = CliRunner().invoke(app, ["presets"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert " ".join(result.stderr.split()) == (
        f"Error: $VEXPRESS_CONFIG_DIR ({folder}) {where}. It names the folder of config.toml and your presets; none "
        f"of them can be read there. Point VEXPRESS_CONFIG_DIR at a folder, or unset it for the default "
        f"({env / 'xdg' / 'vexpress'}).")


@pytest.mark.parametrize("text", ['model_dir = ""\n', 'model = "  "\n'])
def test_an_empty_model_or_model_dir_in_the_config_is_refused_not_taken_as_the_config_folder(env, text):
    """model_dir = "" named the config folder itself, and the fix offered a 9.7 GB download into it."""
    path = write_config(env, text)
    key = text.split(" ")[0]
    with pytest.raises(InputError) as caught:
        resolve_model_dir()
    assert caught.value.what.startswith(f"The config file {path}: key '{key}' is empty")
    assert "remove the line" in caught.value.fix
    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["models", "path"])
    assert result.exit_code == 2 and "Traceback" not in result.output and f"key '{key}' is empty" in result.stderr


def test_a_config_that_cannot_be_read_is_fixed_by_editing_or_removing_it_not_by_passing_a_path(env):
    """No flag takes a config path, yet the fix said "Pass the path of a TOML config file"."""
    path = env / "config" / "config.toml"
    path.mkdir(parents=True)
    with pytest.raises(InputError) as caught:
        load_user_config()
    assert "pass" not in caught.value.fix.lower()
    assert caught.value.fix == (f"Make {path} a UTF-8 TOML text file (`vexpress docs presets`), or remove it: the "
                                "config file is optional.")


def test_the_model_lookup_reads_the_model_keys_without_the_generate_table(env):
    """A typo among the generation settings made `vexpress models path` fail, though the lookup does not use them."""
    model = make_dir(env / "weights")
    write_config(env, f'model_dir = "{model}"\n[generate]\nnum_inference_step = 3\n')
    assert resolve_model_dir().path == model.resolve()
    with pytest.raises(InputError, match="num_inference_step"):
        load_user_config()  # generate, which reads [generate], still refuses it


def test_where_set_names_the_config_line_a_value_came_from_and_leaves_a_flag_s_error_as_it_is(env):
    from vexpress_cli.settings.user_config import where_set

    error = InputError("CUDA was asked for but is not available.", "No GPU.", "Use a GPU.")
    assert where_set(error, "device", "cuda", "explicit") is error
    worded = where_set(error, "device", "cuda", "config")
    assert isinstance(worded, InputError) and worded.what == error.what
    assert worded.why == f'It was set in the user config: device = "cuda" under [generate] in ' \
        f'{env / "config" / "config.toml"}. No GPU.'
    assert worded.fix == "Change or remove that line (every run reads it). Use a GPU."
    assert where_set(error, "device", "cuda", "preset").why == "It was set from the preset. No GPU."
