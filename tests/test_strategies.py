"""Retarget strategies: discovery through entry points, the built-ins' math, and plugin errors."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import SAMPLES_DIR

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.hookspecs import hookimpl
from vexpress_cli.kps import FunctionStrategy, load_kps, retarget_track
from vexpress_cli.kps.geometry import closest_pose_frame, eye_nose_ratio, nose_to_eye_line_distance
from vexpress_cli.plugins import get_plugin_manager, get_retarget_strategy, get_retarget_strategy_infos
from vexpress_cli.strategies import face

BUILTINS = ["fix_face", "no_retarget", "offset_retarget", "naive_retarget"]

# A frontal reference face: eyes 100 px apart, nose 60 px below their midpoint.
REFERENCE = np.array([[200.0, 200.0], [300.0, 200.0], [250.0, 260.0]], dtype=np.float32)


def face_at(x: float, y: float, eye_gap: float, nose_drop: float, nose_shift: float = 0.0) -> np.ndarray:
    """A face whose left eye is at (x, y); nose_shift moves the nose sideways (head yaw)."""
    return np.array([[x, y], [x + eye_gap, y], [x + eye_gap / 2 + nose_shift, y + nose_drop]], dtype=np.float32)


def test_builtins_come_through_the_entry_point():
    infos = get_retarget_strategy_infos()
    assert list(infos)[:4] == BUILTINS
    for name in BUILTINS:
        assert infos[name].plugin == "builtin_strategies"
        assert infos[name].distribution.startswith("vexpress-cli ")
    manager = get_plugin_manager()
    assert manager.get_plugin("builtin_strategies").__name__ == "vexpress_cli.strategies"
    assert get_plugin_manager() is manager  # cached


def test_unknown_strategy_lists_the_installed_ones():
    with pytest.raises(InputError) as error:
        get_retarget_strategy("wobble")
    assert "Unknown retarget strategy 'wobble'" in str(error.value)
    assert all(name in str(error.value) for name in BUILTINS)


@pytest.mark.parametrize(("typed", "meant"), [("offset", "offset_retarget"), ("fix-face", "fix_face")])
def test_an_unknown_strategy_suggests_the_one_it_begins_or_resembles(typed, meant):
    with pytest.raises(InputError) as error:
        get_retarget_strategy(typed)
    assert f"Did you mean '{meant}'?" in error.value.fix


def test_a_prefix_of_several_strategies_suggests_none():
    with pytest.raises(InputError) as error:
        get_retarget_strategy("n")  # no_retarget and naive_retarget
    assert "Did you mean" not in error.value.fix


def test_fix_face_needs_no_driving_track():
    track = retarget_track(REFERENCE, None, 6, "fix_face")
    assert track.shape == (6, 3, 2) and track.dtype == np.float32
    assert np.array_equal(track, np.repeat(REFERENCE[None], 6, axis=0))


def test_fix_face_ignores_a_driving_track():
    driving = np.stack([face_at(10 * i, 0, 50, 30) for i in range(4)])
    assert np.array_equal(retarget_track(REFERENCE, driving, 4, "fix_face")[3], REFERENCE)


def test_no_retarget_is_the_fitted_driving_track():
    driving = load_kps(SAMPLES_DIR / "AOC" / "kps.pth").points
    assert np.array_equal(retarget_track(REFERENCE, driving, 137, "no_retarget"), driving)
    assert np.array_equal(retarget_track(REFERENCE, driving, 50, "no_retarget"), driving[:50])
    assert retarget_track(REFERENCE, driving[:10], 15, "no_retarget", fit="loop")[12].tolist() == driving[2].tolist()


@pytest.mark.parametrize("name", BUILTINS[1:])
def test_strategies_that_follow_a_driving_track_require_one(name):
    with pytest.raises(InputError, match=f"'{name}' needs a driving kps track"):
        retarget_track(REFERENCE, None, 5, name)
    with pytest.raises(InputError, match="needs a driving kps track"):
        get_retarget_strategy(name).retarget(REFERENCE, None, 5)


def test_naive_retarget_scales_to_the_reference_face_and_starts_on_its_nose():
    # Driving face half the size of the reference, moving right by 4 px per frame.
    driving = np.stack([face_at(50 + 4 * i, 80, 50, 30) for i in range(5)])
    result = retarget_track(REFERENCE, driving, 5, "naive_retarget")
    np.testing.assert_allclose(result[0], REFERENCE, atol=1e-4)  # same size and place as the reference
    np.testing.assert_allclose(result[:, 2, 0] - result[0, 2, 0], [0, 8, 16, 24, 32], atol=1e-4)  # motion x2
    np.testing.assert_allclose(result[:, 2, 1], 260.0, atol=1e-4)


def test_offset_retarget_keeps_the_reference_shape_and_moves_half_as_far_mirrored_as_the_original_does():
    driving = np.stack([face_at(50 + 4 * i, 80 - 2 * i, 50, 20) for i in range(5)])
    result = retarget_track(REFERENCE, driving, 5, "offset_retarget")
    # scale x2 horizontally (eye gap 100/50) and x3 vertically (nose drop 60/20); half of it applied.
    nose_movement = np.stack([np.array([8.0 * i, -6.0 * i]) for i in range(5)])
    np.testing.assert_allclose(result, REFERENCE[None] - nose_movement[:, None, :] / 2, atol=1e-4)


def test_scale_is_measured_on_the_truly_closest_pose_frame():
    """The case where the original V-Express picks another frame (it keeps the last frame whose
    ratio delta is below the previous frame's *ratio* rather than the smallest delta)."""
    frontal_small = face_at(0, 0, 50, 30)  # ratio exactly 1, like the frontal reference
    turned_big = face_at(0, 0, 80, 40, nose_shift=12)  # ratio ~1.4: |1.4 - 1| < 1, so the original takes it
    driving = np.stack([frontal_small, turned_big])
    assert abs(eye_nose_ratio(REFERENCE) - 1.0) < 1e-6
    assert 0 < abs(eye_nose_ratio(turned_big) - 1.0) < eye_nose_ratio(frontal_small)
    assert closest_pose_frame(REFERENCE, driving) == 0
    assert face.face_scale(REFERENCE, driving) == pytest.approx((2.0, 2.0))  # from frame 0; frame 1 gives (1.25, 1.5)


def test_nose_distance_is_clamped_to_the_eye_segment():
    # Nose far to the right of the right eye: distance to the segment, not to the infinite line.
    assert nose_to_eye_line_distance(np.array([[0.0, 0.0], [10.0, 0.0], [13.0, 4.0]])) == pytest.approx(5.0)


def test_degenerate_driving_face_is_a_clear_error():
    driving = np.stack([face_at(0, 0, 0, 30), face_at(0, 0, 0, 30)])  # both eyes on one point
    with pytest.raises(InputError, match="eye distance of the driving frame 0 is zero"):
        retarget_track(REFERENCE, driving, 2, "naive_retarget")


def test_bad_reference_points_are_named_by_what_is_wrong_with_them():
    with pytest.raises(InputError, match="The reference keypoints hold NaN or infinity"):
        retarget_track(np.array([[1.0, np.nan], [2, 2], [3, 3]]), None, 2, "fix_face")
    with pytest.raises(InputError, match=r"The reference keypoints have shape \[2, 2\], not 3 \(x, y\) points"):
        retarget_track(np.array([[1.0, 1], [2, 2]]), None, 2, "fix_face")
    dot = np.array([[10.0, 10], [10, 10], [10, 10]])  # typed "10,10;10,10;10,10": fix_face drew a dot
    with pytest.raises(InputError, match="The reference keypoints put both eyes on one point"):
        retarget_track(dot, None, 2, "fix_face")
    driving = np.stack([face_at(0, 0, 30, 30)] * 2)
    assert retarget_track(dot, driving, 2, "no_retarget").shape == (2, 3, 2)  # places the face by the track


@pytest.mark.parametrize(("values", "dtype"), [(np.ones((4, 3, 2), bool), "bool"),
                                               (np.full((4, 3, 2), "12"), "<U2"),
                                               (np.ones((4, 3, 2)) * (1 + 2j), "complex128")])
def test_a_strategy_returning_bools_text_or_complex_numbers_is_told_not_read_as_points(values, dtype):
    """They were converted to float32 without a word: True as (1, 1), "12" as 12.0, 1+2j as 1."""
    odd = FunctionStrategy("odd", "Returns no numbers.", lambda ref, drv, n: values, requires_driving_kps=False)
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 4, odd)
    assert error.value.what == (f"The retarget strategy 'odd' returned an array of {dtype} values instead of numbers "
                                "(float or int) of shape [4, 3, 2].")


def test_a_strategy_returning_garbage_is_reported_as_its_bug():
    broken = FunctionStrategy(
        "broken", "Returns the wrong shape.", lambda ref, drv, n: np.zeros((n, 2)), requires_driving_kps=False
    )
    with pytest.raises(VExpressError, match="'broken' returned an array of shape \\[4, 2\\]"):
        retarget_track(REFERENCE, None, 4, broken)


@pytest.mark.parametrize("returned, named", [(None, "None"), ("hello", "a str"), ({"x": 1}, "a dict")])
def test_a_strategy_returning_no_array_is_told_what_it_returned(returned, named):
    broken = FunctionStrategy("broken", "Returns no array.", lambda ref, drv, n: returned, requires_driving_kps=False)
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 4, broken)
    assert error.value.what == f"The retarget strategy 'broken' returned {named} instead of an array of numbers of " \
                               "shape [4, 3, 2]."


def test_a_strategy_placing_every_point_outside_the_frame_is_reported_as_its_bug():
    away = FunctionStrategy("away", "Moves the face off the picture.",
                            lambda ref, drv, n: np.full((n, 3, 2), -5000.0), requires_driving_kps=False)
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 2, away, frame=(512, 512))
    assert error.value.what == ("The retarget strategy 'away' put every keypoint outside the 512x512 frame (x from "
                                "-5000 to -5000, y from -5000 to -5000), given keypoints inside it.")
    assert "bug in the strategy" in error.value.why


def test_a_strategy_keeping_points_that_were_outside_the_frame_is_not_blamed():
    outside = REFERENCE + 1000  # e.g. a track read in a frame smaller than the one it was extracted in
    track = retarget_track(outside, np.repeat(outside[None], 2, 0), 2, "no_retarget", frame=(512, 512))
    np.testing.assert_array_equal(track, np.repeat(outside[None], 2, 0))  # the caller names the input instead


def plugin_module(name: str, *strategies) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def register_retarget_strategies(register):
        for strategy in strategies:
            register(strategy)

    module.register_retarget_strategies = register_retarget_strategies
    return module


@pytest.fixture
def extra_plugin():
    manager = get_plugin_manager()
    registered = []

    def add(module):
        manager.register(module, name=module.__name__)
        registered.append(module)

    yield add
    for module in registered:
        manager.unregister(module)


def test_a_registered_plugin_adds_strategies(extra_plugin):
    mirror = FunctionStrategy(
        "mirror", "Mirror the reference.", lambda ref, drv, n: np.repeat(ref[None], n, 0) * [-1, 1], False
    )
    extra_plugin(plugin_module("mirror_plugin", mirror))
    info = get_retarget_strategy_infos()["mirror"]
    assert (info.plugin, info.distribution) == ("mirror_plugin", None)
    assert retarget_track(REFERENCE, None, 2, "mirror")[1, 0, 0] == -200.0


def test_a_plugin_using_a_builtin_name_is_told_to_rename_its_strategy(extra_plugin):
    copy = FunctionStrategy("fix_face", "An impostor.", face.fix_face, False)
    extra_plugin(plugin_module("impostor_plugin", copy))
    with pytest.raises(VExpressError) as error:
        get_retarget_strategies_for_test()
    assert error.value.what == ("The plugin impostor_plugin registers a retarget strategy named 'fix_face', the "
                                "name of a built-in strategy.")
    assert error.value.fix.startswith("The plugin must give its strategy another name")


def test_the_plugin_taking_a_builtin_name_is_named_whichever_registered_first():
    from vexpress_cli.plugins import StrategyInfo, _name_clash

    builtin = StrategyInfo(get_retarget_strategy("fix_face"), "builtin_strategies", "vexpress-cli 0.1.0")
    impostor = StrategyInfo(FunctionStrategy("fix_face", "An impostor.", face.fix_face, False), "impostor", None)
    for earlier, later in ((builtin, impostor), (impostor, builtin)):
        assert _name_clash(earlier, later).what == ("The plugin impostor registers a retarget strategy named "
                                                    "'fix_face', the name of a built-in strategy.")


@pytest.mark.parametrize("requires", [np.bool_(False), 0, 1])
def test_requires_driving_kps_may_be_a_numpy_bool_or_0_or_1(extra_plugin, requires):
    strategy = types.SimpleNamespace(name="lenient", description="A strategy.", requires_driving_kps=requires,
                                     retarget=face.fix_face)
    extra_plugin(plugin_module("lenient_plugin", strategy))
    assert "lenient" in get_retarget_strategy_infos()


def test_the_fix_names_a_distribution_that_failed_twice():
    from vexpress_cli.plugins import PluginLoadFailure, plugin_fix

    failures = [PluginLoadFailure(name, name, "odd-plugins", "ImportError: x") for name in ("one", "two")]
    assert plugin_fix(failures) == ("Upgrade or uninstall odd-plugins (`pip uninstall odd-plugins`), or tell its "
                                    "author.")


def test_two_plugins_registering_one_name_are_both_named(extra_plugin):
    extra_plugin(plugin_module("first_plugin", FunctionStrategy("same", "One.", face.fix_face, False)))
    extra_plugin(plugin_module("second_plugin", FunctionStrategy("same", "Two.", face.fix_face, False)))
    with pytest.raises(VExpressError) as error:
        get_retarget_strategies_for_test()
    assert error.value.what == "Two plugins register a retarget strategy named 'same': first_plugin and second_plugin."


def test_a_plugin_registering_one_name_twice_is_named_once(extra_plugin):
    module = types.ModuleType("stutter_plugin")

    @hookimpl
    def register_retarget_strategies(register):
        for _ in range(2):
            register(FunctionStrategy("stutter", "Twice.", face.fix_face, False))

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    with pytest.raises(VExpressError) as error:
        get_retarget_strategies_for_test()
    assert error.value.what == "The plugin stutter_plugin registers the retarget strategy 'stutter' twice."


def get_retarget_strategies_for_test():
    from vexpress_cli.plugins import get_retarget_strategies

    return get_retarget_strategies()


def test_invalid_strategy_objects_are_rejected(extra_plugin):
    extra_plugin(plugin_module("sloppy_plugin", types.SimpleNamespace(name="Bad Name", description=None)))
    with pytest.raises(VExpressError, match="'sloppy_plugin' registered an invalid retarget strategy"):
        get_retarget_strategy_infos()


@pytest.mark.parametrize("name, requires, description, problem", [
    ("2mirror", False, "A strategy.", "its name '2mirror' does not start with a lower-case letter followed only by "
                                      "lower-case letters, digits, '_' and '-'"),
    ("auto", False, "A strategy.", "its name 'auto' is reserved (--strategy auto picks a built-in strategy)"),
    ("mirror", "no", "A strategy.", "its requires_driving_kps is 'no', not True or False"),
    ("mirror", 2, "A strategy.", "its requires_driving_kps is 2, not True or False"),
    ("mirror", {"uses_reference_kps": "no"}, "A strategy.", "its uses_reference_kps is 'no', not True or False"),
    # plugins.md calls a strategy without a description invalid; an empty or blank one was listed as ''.
    ("mirror", False, " ", "its description is ' ', not one line of text"),
    ("mirror", False, "Two\nlines.", "its description is 'Two\\nlines.', not one line of text"),
], ids=["digit first", "reserved", "truthy string", "two", "uses reference: truthy string", "blank description",
        "two-line description"])
def test_each_invalid_strategy_attribute_is_named(extra_plugin, name, requires, description, problem):
    switches = requires if isinstance(requires, dict) else {"requires_driving_kps": requires}
    strategy = types.SimpleNamespace(name=name, description=description, retarget=face.fix_face, **switches)
    extra_plugin(plugin_module("picky_plugin", strategy))
    with pytest.raises(VExpressError) as error:
        get_retarget_strategy_infos()
    assert error.value.what == f"The plugin 'picky_plugin' registered an invalid retarget strategy: {problem}."


def test_a_plugin_whose_hook_is_misnamed_is_named_with_the_function(extra_plugin):
    from vexpress_cli.plugins import get_plugin_load_failures

    module = types.ModuleType("typo_plugin")

    @hookimpl
    def register_retarget_strategy(register):  # one letter short of the hook's name
        register(FunctionStrategy("typo", "Never registered.", face.fix_face, False))

    module.register_retarget_strategy = register_retarget_strategy
    extra_plugin(module)
    assert "typo" not in get_retarget_strategy_infos()
    assert ("The vexpress plugin 'typo_plugin' (typo_plugin) loaded, but it has no register_retarget_strategies hook; "
            "its hook register_retarget_strategy() is not a vexpress hook (the function needs exactly that name "
            "and @hookimpl, from vexpress_cli.hookspecs import hookimpl).") in [
                failure.message for failure in get_plugin_load_failures()]


def test_a_hook_that_returns_its_strategies_instead_of_registering_them_is_named(extra_plugin):
    from vexpress_cli.plugins import get_plugin_load_failures

    module = types.ModuleType("returning_plugin")

    @hookimpl
    def register_retarget_strategies(register):
        return [FunctionStrategy("returned", "Never registered.", face.fix_face, False)]

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    assert "returned" not in get_retarget_strategy_infos()
    assert ("The vexpress plugin 'returning_plugin' (returning_plugin) loaded, but its register_retarget_strategies "
            "hook registered no strategy (call register(strategy) once for each; what the hook returns is "
            "ignored).") in [failure.message for failure in get_plugin_load_failures()]


def broken_distribution(site) -> None:
    """A real installed distribution (just its metadata) whose entry point module does not exist."""
    dist_info = site / "broken_plugin-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[vexpress]\nbroken = no_such_module_anywhere\n")


def test_a_plugin_that_fails_to_import_is_named_and_skipped(tmp_path):
    broken_distribution(tmp_path)
    code = (
        "from vexpress_cli.plugins import get_plugin_load_failures, get_retarget_strategy\n"
        "print(get_retarget_strategy('offset_retarget').name)\n"
        "print(get_plugin_load_failures()[0].message)\n"
        "try:\n    get_retarget_strategy('smooth')\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env_with_path(tmp_path), timeout=60
    )
    assert result.returncode == 0, result.stderr
    found, failure, unknown = result.stdout.splitlines()
    assert found == "offset_retarget"  # the built-ins still load
    assert "'broken' (no_such_module_anywhere, from broken-plugin) failed to load: ModuleNotFoundError" in failure
    assert unknown.startswith("InputError Unknown retarget strategy 'smooth'")
    assert "'broken' (no_such_module_anywhere, from broken-plugin)" in unknown and "pip uninstall" in unknown


def test_two_distributions_with_one_entry_point_name_are_both_named(tmp_path):
    """The second was blamed alone ("another plugin already uses this entry-point name"), the first never named."""
    for name in ("first", "second"):
        (tmp_path / f"{name}_mirror.py").write_text("")
        dist_info = tmp_path / f"{name}_mirror-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-mirror\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(f"[vexpress]\nmirror = {name}_mirror\n")
    code = ("import json\nfrom vexpress_cli.plugins import get_plugin_load_failures, get_retarget_strategy_infos\n"
            "get_retarget_strategy_infos()\n"
            "print(json.dumps([failure.message for failure in get_plugin_load_failures()\n"
            "                  if 'entry-point name' in failure.message]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env_with_path(tmp_path),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    (message,) = json.loads(result.stdout)
    loaded, refused = ("first", "second") if "(second_mirror, from second-mirror)" in message else ("second", "first")
    assert f"'mirror' ({refused}_mirror, from {refused}-mirror) failed to load: ValueError: {loaded}-mirror 1.0 " \
           "already uses the entry-point name 'mirror'" in message


def test_a_plugin_exiting_or_printing_while_imported_neither_ends_the_command_nor_reaches_json_stdout(tmp_path):
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit('plugin exiting at import')\n")
    (tmp_path / "chatty_plugin.py").write_text(
        "print('hello from plugin import')\n"
        "from vexpress_cli.hookspecs import hookimpl\nfrom vexpress_cli.kps import FunctionStrategy\n"
        "from vexpress_cli.strategies.face import fix_face\n"
        "@hookimpl\ndef register_retarget_strategies(register):\n"
        "    print('hello from the hook')\n    register(FunctionStrategy('chatty', 'Talks.', fix_face, False))\n")
    dist_info = tmp_path / "odd_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-plugins\nVersion: 1.0\n")
    # chatty_again names the module chatty names: a packaging slip whose strategies are still listed once.
    (dist_info / "entry_points.txt").write_text(
        "[vexpress]\nexiting = exiting_plugin\nchatty = chatty_plugin\nchatty_again = chatty_plugin\n")
    entry = "import sys; sys.argv[0] = 'vexpress'; from vexpress_cli.cli.app import main; main()"
    env = dict(_env_with_path(tmp_path), COLUMNS="200")
    result = subprocess.run([sys.executable, "-c", entry, "strategies", "--json"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(row["name"] for row in json.loads(result.stdout)) == sorted([*BUILTINS, "chatty"])
    warnings = " ".join(result.stderr.split())
    assert ("Warning: The vexpress plugin 'exiting' (exiting_plugin, from odd-plugins) failed to load: SystemExit: "
            "plugin exiting at import.") in warnings and warnings.count("Warning:") == 1
    assert "hello from plugin import" in result.stderr and "hello from the hook" in result.stderr


def test_strategies_command_warns_about_a_broken_plugin(tmp_path):
    broken_distribution(tmp_path)
    entry = "import sys; sys.argv[0] = 'vexpress'; from vexpress_cli.cli.app import main; main()"
    command = [sys.executable, "-c", entry]
    env = dict(_env_with_path(tmp_path), COLUMNS="200")
    result = subprocess.run([*command, "strategies", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)][:4] == BUILTINS
    warning = " ".join(result.stderr.split())
    assert "Warning: The vexpress plugin 'broken' (no_such_module_anywhere, from broken-plugin)" in warning
    assert "failed to load: ModuleNotFoundError" in warning
    assert "pip uninstall" in warning


def test_a_plugin_whose_hook_raises_is_skipped_and_named(extra_plugin):
    """Issue 8 item 9: a plugin whose register_retarget_strategies raises no longer disables every
    strategy: it is skipped (with what it registered before raising) and recorded like an import failure."""
    from vexpress_cli.plugins import get_plugin_load_failures

    module = types.ModuleType("crashing_plugin")
    early = FunctionStrategy("early", "Registered just before the crash.", face.fix_face, False)

    @hookimpl
    def register_retarget_strategies(register):
        register(early)
        raise RuntimeError("boom")

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    assert get_retarget_strategy("fix_face").name == "fix_face"
    assert "early" not in get_retarget_strategy_infos()
    failures = [failure.message for failure in get_plugin_load_failures()]
    assert ("The vexpress plugin 'crashing_plugin' (crashing_plugin) loaded, but its register_retarget_strategies "
            "hook raised RuntimeError: boom, so none of its strategies is listed.") in failures
    with pytest.raises(InputError) as error:
        get_retarget_strategy("early")
    assert "crashing_plugin" in str(error.value) and "boom" in str(error.value)


def test_a_plugin_whose_hook_raises_vexpress_s_own_error_is_skipped_and_named_like_any_other(extra_plugin):
    """A hook raising InputError ("needs a licence key") stopped every command, fix_face and `strategies`
    included, without naming the plugin, and the web app could not start."""
    from vexpress_cli.plugins import get_plugin_load_failures

    module = types.ModuleType("licensed_plugin")

    @hookimpl
    def register_retarget_strategies(register):
        raise InputError("My plugin needs a licence key.", fix="Set VEXPRESS_FOO_KEY.")

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    assert get_retarget_strategy("fix_face").name == "fix_face"
    failures = [failure.message for failure in get_plugin_load_failures()]
    assert any(message.startswith("The vexpress plugin 'licensed_plugin' (licensed_plugin) loaded, but its "
                                  "register_retarget_strategies hook raised InputError: My plugin needs a licence "
                                  "key.") for message in failures), failures


def test_a_hook_failure_is_forgotten_once_the_plugin_is_gone(extra_plugin):
    """Issue 8 item 9: hook failures describe the plugins installed now, not a stale earlier listing."""
    from vexpress_cli.plugins import get_plugin_load_failures

    module = types.ModuleType("flaky_plugin")

    @hookimpl
    def register_retarget_strategies(register):
        raise SystemExit(3)

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    get_retarget_strategy_infos()
    assert any("flaky_plugin" in failure.message and "SystemExit" in failure.message
               for failure in get_plugin_load_failures())
    get_plugin_manager().unregister(module)
    get_retarget_strategy_infos()
    assert not any("flaky_plugin" in failure.message for failure in get_plugin_load_failures())
    get_plugin_manager().register(module, name="flaky_plugin")  # for the fixture's unregister


def crashing_strategy_plugin(behaviour) -> types.ModuleType:
    return plugin_module("crashy_strategies", FunctionStrategy("crashy", "Fails when used.", behaviour, False))


@pytest.mark.parametrize("behaviour, words", [
    (lambda ref, drv, n: 1 / 0, "failed with ZeroDivisionError: division by zero"),
    (lambda ref, drv, n: sys.exit(4), "called sys.exit(4)"),
], ids=["raises", "exits"])
def test_a_strategy_that_raises_or_exits_is_named_with_its_plugin(extra_plugin, behaviour, words):
    """Issue 8 item 9: a plugin strategy whose retarget() raises or calls sys.exit gives a VExpressError
    naming the strategy and the plugin (not a traceback, not a silent exit)."""
    extra_plugin(crashing_strategy_plugin(behaviour))
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 3, "crashy")
    message = str(error.value)
    assert f"The retarget strategy 'crashy' (from the plugin crashy_strategies) {words}." in message
    assert "bug in the strategy" in message and "Try another retarget_strategy" in message


def test_what_a_strategy_prints_while_retargeting_goes_to_stderr(capsys):
    def chatty(ref, drv, n):
        print("thinking aloud")
        return np.repeat(ref[None], n, 0)

    retarget_track(REFERENCE, None, 2, FunctionStrategy("chatty", "Talks.", chatty, requires_driving_kps=False))
    assert capsys.readouterr() == ("", "thinking aloud\n")


def test_a_strategy_built_anew_by_each_hook_call_is_still_named_with_its_plugin(extra_plugin):
    module = types.ModuleType("fresh_strategies")

    @hookimpl
    def register_retarget_strategies(register):  # as plugins/vexpress-smooth does: a new object per listing
        register(FunctionStrategy("fresh", "Fails when used.", lambda ref, drv, n: 1 / 0, False))

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 3, "fresh")
    assert "The retarget strategy 'fresh' (from the plugin fresh_strategies) failed with" in str(error.value)


def test_a_strategy_whose_class_is_defined_inside_the_hook_is_still_named_with_its_plugin(extra_plugin):
    module = types.ModuleType("inner_class_strategies")

    @hookimpl
    def register_retarget_strategies(register):
        class Inner:  # a new class at each listing
            name, description, requires_driving_kps = "inner", "Fails when used.", False

            def retarget(self, reference_kps, driving_kps, num_frames):
                raise RuntimeError("inner trouble")

        register(Inner())

    module.register_retarget_strategies = register_retarget_strategies
    extra_plugin(module)
    with pytest.raises(VExpressError) as error:
        retarget_track(REFERENCE, None, 3, "inner")
    assert "The retarget strategy 'inner' (from the plugin inner_class_strategies) failed with" in str(error.value)


def test_a_crashing_strategy_through_the_cli_is_an_error_paragraph(extra_plugin, tmp_path):
    """Issue 8 item 9: `vexpress retarget --strategy crashy` exits 2 with that message."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    extra_plugin(crashing_strategy_plugin(lambda ref, drv, n: sys.exit(0)))
    result = CliRunner().invoke(app, ["retarget", "--reference-kps", "200,200;300,200;250,260", "--strategy",
                                      "crashy", "--num-frames", "3", "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2, result.output
    assert "'crashy' (from the plugin crashy_strategies) called sys.exit(0)" in " ".join(result.output.split())
    assert not (tmp_path / "out.safetensors").exists()


def _env_with_path(path) -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return env


def test_strategies_command_json():
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["fix_face"]["requires_driving_kps"] is False
    assert rows["naive_retarget"]["requires_driving_kps"] is True
    assert rows["offset_retarget"]["plugin"] == "builtin_strategies"


def test_strategies_command_table():
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["strategies"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in BUILTINS:
        assert name in result.output
    assert "vexpress-cli" in result.output and "needs --kps" in result.output
