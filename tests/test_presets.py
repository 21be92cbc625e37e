"""Presets: the built-ins load, precedence is defaults < preset < flags, and bad files fail clearly."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vexpress_cli.errors import InputError
from vexpress_cli.settings.presets import list_presets, load_preset
from vexpress_cli.settings.schema import DEFAULTS, SETTINGS, range_warnings, resolve_settings

REPO_PRESETS = Path(__file__).resolve().parent.parent / "presets"
BUILTIN_NAMES = sorted(path.stem for path in REPO_PRESETS.glob("*.toml"))
GUIDE_STRATEGIES = {
    "same-person": "no_retarget",
    "lip-sync": "fix_face",
    "slight-motion": "offset_retarget",
    "full-retarget": "naive_retarget",
    "expressive": "fix_face",
}


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch) -> Path:
    """A private, empty config folder so the developer's own presets never leak in."""
    folder = tmp_path / "config"
    monkeypatch.setenv("VEXPRESS_CONFIG_DIR", str(folder))
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(*args: str):
    from vexpress_cli.cli.app import app

    return CliRunner().invoke(app, list(args))


# --- built-ins ---------------------------------------------------------------------------------


def test_only_a_setting_taking_values_besides_its_choices_names_them():
    """also_named defaulted to device's 'cuda:N', which every setting's repr showed (kps_fit, seed, ...)."""
    assert "cuda:N" not in repr(SETTINGS["kps_fit"]) and SETTINGS["seed"].also_named is None
    assert {name: setting.also_named for name, setting in SETTINGS.items() if setting.also_named or
            setting.also_matching} == {"device": "cuda:N", "crop": "X,Y,W,H"}
    assert SETTINGS["device"].allowed == "auto, cuda, cpu, mps or cuda:N"


def test_builtin_presets_are_installed_and_cover_the_guide_scenarios():
    assert set(BUILTIN_NAMES) >= {*GUIDE_STRATEGIES, "long-audio"}
    listed = {info.name: info for info in list_presets()}
    assert sorted(listed) == BUILTIN_NAMES
    for name in BUILTIN_NAMES:
        info = listed[name]
        assert info.source == "builtin" and info.error is None
        assert len(info.description) > 20


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_builtin_preset_loads_and_validates(name):
    preset = load_preset(name)
    raw = tomllib.loads((REPO_PRESETS / f"{name}.toml").read_text())
    assert preset.description == raw["description"]
    assert preset.values == raw["generate"]  # validation keeps every value as written
    assert preset.values, "a preset must set something"
    assert set(preset.values) <= set(SETTINGS)
    assert range_warnings(preset.values) == []
    if name in GUIDE_STRATEGIES:
        assert preset.values["retarget_strategy"] == GUIDE_STRATEGIES[name]


def test_scenario_specific_settings():
    assert load_preset("expressive").values["reference_attention_weight"] == 0.95
    assert load_preset("expressive").values["audio_attention_weight"] == 3.0
    long_audio = load_preset("long-audio").values
    assert long_audio["save_gpu_memory"] is True
    assert long_audio["context_overlap"] < long_audio["context_frames"] <= 32


# --- precedence --------------------------------------------------------------------------------


def test_explicit_values_win_and_only_passed_keys_override():
    preset = load_preset("expressive")
    resolved = resolve_settings(preset.values, {"audio_attention_weight": 2, "seed": None})
    assert resolved.settings.audio_attention_weight == 2.0
    assert isinstance(resolved.settings.audio_attention_weight, float)
    assert resolved.settings.reference_attention_weight == 0.95  # not passed: the preset keeps it
    assert resolved.sources["seed"] == "default"  # None means "not passed"
    assert resolved.sources["audio_attention_weight"] == "explicit"
    assert resolved.sources["reference_attention_weight"] == "preset"
    assert preset.values["audio_attention_weight"] == 3.0  # the preset itself is untouched


def test_settings_layer_defaults_config_preset_explicit():
    resolved = resolve_settings(load_preset("long-audio").values, {"context_frames": 20, "fps": 25},
                                config_values={"seed": 5, "context_frames": 12})
    settings = resolved.settings.to_dict()
    assert set(settings) == set(DEFAULTS)
    assert settings["context_frames"] == 20  # explicit over preset (16) over config (12)
    assert settings["save_gpu_memory"] is True  # preset over default
    assert settings["seed"] == 5 and resolved.sources["seed"] == "config"  # config over default
    assert settings["fps"] == 25.0
    assert settings["num_inference_steps"] == DEFAULTS["num_inference_steps"] == 25
    assert resolve_settings().settings.to_dict() == DEFAULTS


def test_explicit_values_may_leave_the_advised_range_with_a_warning_but_not_the_hard_limit():
    resolved = resolve_settings(load_preset("lip-sync").values, {"audio_attention_weight": 5.0})
    (warning,) = resolved.warnings
    assert "audio_attention_weight" in warning and "1.0-3.0" in warning
    with pytest.raises(InputError, match=r"audio_attention_weight is 11\.0; it must be from 0\.0 to 10\.0"):
        resolve_settings({}, {"audio_attention_weight": 11.0})


@pytest.mark.parametrize(("value", "message"), [
    (-1.0, "is -1.0; it must be from 0.0 to 2.0"),  # the hard limit, not advice to pass it as a flag
    (1.5, "is 1.5, outside the advised range 0.9-1.0. Presets and config files stay within the range the V-Express "
          "authors recommend. Use a value from 0.9 to 1.0, or give reference_attention_weight=1.5 explicitly"),
])
def test_a_preset_value_beyond_the_hard_limit_is_told_the_limit_and_within_it_the_advice(tmp_path, value, message):
    path = write(tmp_path / "p.toml", f"[generate]\nreference_attention_weight = {value}\n")
    with pytest.raises(InputError) as caught:
        load_preset(str(path))
    assert message in str(caught.value)


@pytest.mark.parametrize("box", ["0,0,0,0", "10,10,64,0"])
def test_a_crop_box_without_width_or_height_is_refused_when_the_preset_loads(tmp_path, box):
    """It loaded, and was refused only when a job was planned."""
    path = write(tmp_path / "p.toml", f'[generate]\ncrop = "{box}"\n')
    with pytest.raises(InputError, match=r"'generate.crop' is .*W,H is \d+,0, but"):
        load_preset(str(path))
    assert resolve_settings({}, {"crop": "10,10,64,64"}).settings.crop == "10,10,64,64"


def test_merged_context_overlap_is_checked_against_the_preset():
    with pytest.raises(InputError) as caught:
        resolve_settings(load_preset("long-audio").values, {"context_overlap": 16})
    message = str(caught.value)
    assert "context_overlap (16) must be smaller than the preset's context_frames (16)" in message


def test_context_overlap_against_the_default_context_frames_names_it_as_the_default():
    with pytest.raises(InputError) as caught:
        resolve_settings({}, {"context_overlap": 30})
    assert str(caught.value).startswith("context_overlap (30) must be smaller than the default context_frames (24).")
    with pytest.raises(InputError) as caught:  # the fix names what to set, not "the default 'context_overlap'"
        resolve_settings({}, {"context_frames": 1})
    assert str(caught.value).endswith("Lower context_overlap to at most 0, or raise context_frames.")


def test_device_accepts_a_gpu_index():
    assert resolve_settings({}, {"device": "cuda:1"}).settings.device == "cuda:1"
    with pytest.raises(InputError, match="not one of: auto, cuda, cpu, mps or cuda:N"):
        resolve_settings({}, {"device": "gpu"})


def test_unknown_setting_suggests_the_closest():
    with pytest.raises(InputError, match="Did you mean 'guidance_scale'"):
        resolve_settings({}, {"guidance_scal": 3.0})


@pytest.mark.parametrize("name", [name for name, setting in SETTINGS.items() if setting.kind is float])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_float_setting_refuses_nan_and_infinity(name, value):
    """Issue 8 item 8: comparisons with NaN are false, so NaN passed every range check."""
    with pytest.raises(InputError, match="not a finite number"):
        resolve_settings({}, {name: value})


def test_a_whole_number_past_a_floats_range_is_out_of_range_not_an_overflow_error(tmp_path):
    """guidance_scale = 1 and 400 zeros was an OverflowError traceback (float() of it); seed=10**5000 from Python
    was a ValueError traceback (its message wrote the number out)."""
    preset = write(tmp_path / "huge.toml", "[generate]\nguidance_scale = 1" + "0" * 400 + "\n")
    with pytest.raises(InputError) as caught:
        load_preset(preset)
    assert caught.value.what == f"Preset file {preset}: 'generate.guidance_scale' is a 401-digit number; it must be " \
        "from 0.0 to 20.0."
    with pytest.raises(InputError) as caught:
        resolve_settings({}, {"seed": -10**5000})
    assert caught.value.what == "seed is a 5001-digit negative number; it must be from 0 to 9223372036854775807."


def test_a_whole_number_longer_than_python_reads_is_bad_toml_at_its_line(tmp_path):
    """seed = 1 and 5000 zeros was a ValueError traceback from tomllib: Python reads at most 4300 digits. A crop box
    of 5000 digits before it, in quotes, is text, not the number meant."""
    preset = write(tmp_path / "huge.toml", '[generate]\ncrop = "1' + "0" * 5000 + ',0,10,10"\nseed = 1' + "0" * 5000
                   + "\n")
    with pytest.raises(InputError) as caught:
        load_preset(preset)
    assert caught.value.what == f"Preset file {preset} is not valid TOML: the whole number at line 3 has more than " \
        "4300 digits, more than Python reads."


def test_a_crop_box_of_5000_digits_in_a_preset_is_refused_by_its_length(tmp_path):
    """int() of each of the box's numbers was a ValueError traceback past 4300 digits."""
    preset = write(tmp_path / "huge.toml", '[generate]\ncrop = "1' + "0" * 5000 + ',0,10,10"\n')
    with pytest.raises(InputError) as caught:
        load_preset(preset)
    assert caught.value.why == "X is a 5001-digit number, but X,Y,W,H are pixels of the photo, at most 1000000 (no " \
        "picture is larger)."
    assert caught.value.what.startswith(f"Preset file {preset}: 'generate.crop' is '1000") and \
        caught.value.what.endswith("0000,0,10,10', which is not one of: auto, none or X,Y,W,H.")
    assert len(caught.value.what) < 200 + len(str(preset))


# --- user presets ------------------------------------------------------------------------------


def test_user_preset_folder_from_env_and_shadowing(isolated_config):
    write(isolated_config / "presets" / "lip-sync.toml",
          'description = "Mine"\n[generate]\nretarget_strategy = "my_plugin_strategy"\n')
    write(isolated_config / "presets" / "studio.toml",
          'description = "Studio"\n[generate]\nnum_inference_steps = 40\nwidth = 640\n')
    listed = {info.name: info for info in list_presets()}
    assert listed["lip-sync"].source == "user" and listed["lip-sync"].shadows_builtin
    assert listed["studio"].source == "user" and not listed["studio"].shadows_builtin
    assert listed["expressive"].source == "builtin"
    preset = load_preset("lip-sync")
    # Unknown strategy names are the caller's business (plugins); the loader keeps them.
    assert preset.values == {"retarget_strategy": "my_plugin_strategy"} and preset.shadows_builtin
    assert load_preset("studio").values == {"num_inference_steps": 40, "width": 640}

    result = run_cli("presets", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["lip-sync"]["source"] == "user" and rows["lip-sync"]["shadows_builtin"] is True
    table = run_cli("presets")
    assert table.exit_code == 0 and "user*:auserpresetthatreplacesthebuilt-in" in "".join(table.stdout.split())


def test_broken_user_preset_is_listed_with_its_error(isolated_config):
    write(isolated_config / "presets" / "broken.toml", 'description = "x"\n[generate]\nseed = "one"\n')
    listed = {info.name: info for info in list_presets()}
    assert "must be an integer" in listed["broken"].error
    assert listed["expressive"].error is None


def test_a_user_preset_that_is_a_link_leading_nowhere_is_listed_and_named(isolated_config):
    """It was left out of `presets list` and `presets show dang` said there is no such preset."""
    (isolated_config / "presets").mkdir(parents=True, exist_ok=True)
    (isolated_config / "presets" / "dang.toml").symlink_to(isolated_config / "gone.toml")
    listed = {info.name: info for info in list_presets()}
    assert listed["dang"].error == (f"The preset file {isolated_config / 'presets' / 'dang.toml'} is a link to "
                                    f"{isolated_config / 'gone.toml'}, which does not exist. The link leads nowhere: "
                                    "what it pointed to was moved or deleted. Point the link at a .toml preset file, "
                                    "or pass that file's path instead.")
    with pytest.raises(InputError, match="is a link to .*, which does not exist"):
        load_preset("dang")


def test_hidden_files_in_the_presets_folder_are_not_presets_so_an_editor_lock_file_does_not_fail_doctor(
        isolated_config):
    """Audit item 7: Emacs' lock link `.#mine.toml` was listed as a broken preset and made doctor exit 2."""
    folder = isolated_config / "presets"
    write(folder / "mine.toml", 'description = "Mine."\n[generate]\nseed = 3\n')
    (folder / ".#mine.toml").symlink_to("root@host.1234:1700000000")
    write(folder / ".mine.toml.toml", "not toml at all [")
    assert [info.name for info in list_presets() if info.source == "user"] == ["mine"]
    from vexpress_cli.jobs.doctor.plugins import _presets_check

    assert _presets_check().status == "ok"


def test_a_preset_naming_a_strategy_not_installed_is_flagged_by_show_and_list(isolated_config):
    """`presets show` printed it as fine; only doctor said so, and generate refused it later."""
    write(isolated_config / "presets" / "mine.toml", '[generate]\nretarget_strategy = "nosuch_plugin"\n')
    shown = run_cli("presets", "show", "mine")
    assert shown.exit_code == 0
    assert "retarget strategy 'nosuch_plugin', which is not installed" in " ".join(shown.stderr.split())
    assert "nosuch_plugin (not installed)" in shown.stdout  # audit item 16: marked in the table, as list marks it
    assert json.loads(run_cli("presets", "show", "mine", "--json").stdout)["uninstalled_strategy"] == "nosuch_plugin"
    listed = {entry["name"]: entry for entry in json.loads(run_cli("presets", "--json").stdout)}
    assert listed["mine"]["uninstalled_strategy"] == "nosuch_plugin"
    assert listed["expressive"]["uninstalled_strategy"] is None
    assert "nosuch_plugin (not installed)" in run_cli("presets", "list").stdout


def test_a_preset_name_in_other_case_is_suggested():
    with pytest.raises(InputError, match="Did you mean 'lip-sync'"):
        load_preset("LIP-SYNC")


def test_preset_by_path(tmp_path):
    path = write(tmp_path / "mine.toml", 'description = "d"\n[generate]\nguidance_scale = 2\n')
    preset = load_preset(str(path))
    assert (preset.name, preset.source, preset.values) == ("mine", "file", {"guidance_scale": 2.0})


# --- errors through the CLI --------------------------------------------------------------------


def assert_cli_error(args: list[str], *fragments: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # The console wraps lines anywhere (even inside paths), so compare without whitespace.
    message = "".join(result.output.split())
    for fragment in fragments:
        assert "".join(fragment.split()) in message, result.output
    return result.output


BAD_PRESETS = {
    "unknown-key": ('description = "x"\n[generate]\naudio_atention_weight = 2.0\n',
                    ["unknown key 'generate.audio_atention_weight'",
                     "Did you mean 'generate.audio_attention_weight'"]),
    "unknown-top-level": ('descripton = "x"\n', ["unknown key 'descripton'", "Did you mean 'description'"]),
    "wrong-type": ('description = "x"\n[generate]\nnum_inference_steps = "25"\n',
                   ["'generate.num_inference_steps' must be an integer, not '25'"]),
    "bool-for-number": ('[generate]\nguidance_scale = true\n', ["'generate.guidance_scale' must be a number"]),
    "out-of-advice": ('description = "x"\n[generate]\nreference_attention_weight = 0.8\n',
                      ["'generate.reference_attention_weight' is 0.8, outside the advised range 0.9-1.0",
                       "--reference-attention-weight 0.8"]),
    "audio-out-of-advice": ('[generate]\naudio_attention_weight = 3.5\n',
                            ["'generate.audio_attention_weight' is 3.5, outside the advised range 1.0-3.0"]),
    "steps": ('[generate]\nnum_inference_steps = 0\n', ["'generate.num_inference_steps' is 0; it must be from 1"]),
    "context": ('[generate]\ncontext_frames = 40\n', ["'generate.context_frames' is 40; it must be from 1 to 32",
                                                      "position encoding covers 32 frames"]),
    "overlap": ('[generate]\ncontext_frames = 8\ncontext_overlap = 8\n',
                ["'generate.context_overlap' (8) must be smaller than 'generate.context_frames' (8)"]),
    "width": ('[generate]\nwidth = 500\n', ["'generate.width' is 500; it must be a multiple of 8", "Use 496"]),
    "choice": ('[generate]\ndtype = "fp8"\n', ["'generate.dtype' is 'fp8', which is not one of: auto, fp16"]),
    "bad-toml": ('description = "x"\n[generate\nseed = 1\n', ["is not valid TOML", "line 2"]),
    "not-a-table": ('generate = 3\n', ["'generate' must be a table"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_bad_preset_file_exits_2_naming_file_and_key(tmp_path, case):
    text, fragments = BAD_PRESETS[case]
    path = write(tmp_path / f"{case}.toml", text)
    assert_cli_error(["presets", "show", str(path)], f"Preset file {path}", *fragments)


def test_missing_preset_file_and_unknown_name_exit_2(tmp_path):
    missing = tmp_path / "nope.toml"
    assert_cli_error(["presets", "show", str(missing)], f"preset file {missing} does not exist")
    assert_cli_error(["presets", "show", "lipsync"], "no preset named 'lipsync'", "Did you mean 'lip-sync'")


def test_a_preset_file_over_one_mib_is_refused_before_it_is_read(tmp_path):
    path = write(tmp_path / "huge.toml", 'description = "' + "a" * (1 << 20) + '"\n')
    assert_cli_error(["presets", "show", str(path)], f"The preset file {path} is larger than 1 MiB.")


def test_a_preset_saved_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'description = "d"\n[generate]\nseed = 3\n')
    assert load_preset(str(path)).values == {"seed": 3}


def test_a_preset_that_is_not_utf8_says_how_to_save_it(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "Café"\n'.encode("latin-1"))
    assert_cli_error(["presets", "show", str(path)],
                     f"Cannot read the preset file {path}: it is not UTF-8 text (at byte offset 18).",
                     "Save it as UTF-8 text")


def test_an_empty_preset_name_is_refused_not_ignored():
    with pytest.raises(InputError, match="The preset name is empty."):
        load_preset("")


def test_a_preset_name_given_with_toml_is_told_to_drop_the_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_cli_error(["presets", "show", "lip-sync.toml"], "There is a preset named 'lip-sync': pass its name, "
                     "lip-sync, without '.toml'.")


def test_presets_show_prints_file_and_values():
    result = run_cli("presets", "show", "expressive", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["values"]["audio_attention_weight"] == 3.0
    assert shown["effective"]["num_inference_steps"] == 25
    assert shown["effective"]["audio_attention_weight"] == 3.0
    text = run_cli("presets", "show", "expressive")
    assert text.exit_code == 0 and "audio_attention_weight = 3.0" in text.stdout
    assert "its flag is the same name with dashes" in " ".join(text.stdout.split())


def test_every_setting_flag_is_its_preset_key_with_dashes_as_presets_show_says():
    from vexpress_cli.settings.schema import SETTINGS

    assert all(setting.flag == "--" + name.replace("_", "-") for name, setting in SETTINGS.items())


def test_presets_show_prints_the_file_unwrapped_on_a_narrow_terminal_so_a_copy_stays_valid_toml():
    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["presets", "show", "expressive"], env={"COLUMNS": "60", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    file_text = load_preset("expressive").text.rstrip()
    shown = result.stdout.splitlines()
    start = shown.index(file_text.splitlines()[0])
    assert "\n".join(shown[start:start + len(file_text.splitlines())]) == file_text
    assert max(map(len, file_text.splitlines())) > 60  # the test has a line to wrap


def test_the_docs_table_of_built_in_presets_lists_every_one():
    import re

    text = (REPO_PRESETS.parent / "docs" / "presets.md").read_text()
    section = text.split("## Built-in presets", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE))
    assert documented == {path.stem for path in REPO_PRESETS.glob("*.toml")}


def test_presets_list_shows_each_descriptions_first_clause_and_they_tell_the_presets_apart():
    """At 80 columns the full descriptions wrapped the list into about 80 lines."""
    from vexpress_cli.cli.app import app
    from vexpress_cli.cli.presets import _summary

    assert _summary("Stronger mouth motion: lowers the weight. More.") == "Stronger mouth motion"
    assert _summary("Ends with a version 1.5 number. Then more") == "Ends with a version 1.5 number"
    summaries = [_summary(info.description) for info in list_presets()]
    assert len(set(summaries)) == len(summaries), summaries
    listed = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and len(listed.output.splitlines()) < 40


@pytest.mark.parametrize("args", [["presets", "--json", "list"], ["presets", "list", "--json"], ["presets", "--json"]])
def test_presets_json_before_or_after_list_prints_json(args):
    """Audit item 12: `presets --json list` printed the table, exit 0: the group's --json was dropped."""
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "lip-sync" in [entry["name"] for entry in json.loads(result.stdout)]


def test_presets_json_before_show_prints_json():
    result = run_cli("presets", "--json", "show", "lip-sync")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "lip-sync"


def test_the_settings_table_of_docs_presets_md_is_the_schemas():
    """The table is written from the schema (python -m vexpress_cli.settings.docs_table docs/presets.md); a setting
    added, renamed or given other limits without rewriting it fails here."""
    from vexpress_cli.settings.docs_table import END, START, with_table
    from vexpress_cli.settings.schema import SETTINGS

    text = (REPO_PRESETS.parent / "docs" / "presets.md").read_text(encoding="utf-8")
    assert START in text and END in text
    assert with_table(text) == text
    assert all(f"| `{name}` |" in text for name in SETTINGS)
