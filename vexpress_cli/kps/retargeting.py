"""Strategies made from functions, and the one function that turns a driving track into the video's track.

A retarget strategy decides where the face's keypoints go in each frame of
the generated video, given the reference photo's keypoints and (optionally) a
driving track extracted from another video. Strategies come from plugins (see
docs/plugins.md and :mod:`vexpress_cli.plugins`); the built-in ones live in
:mod:`vexpress_cli.strategies`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vexpress_cli.errors import InputError, VExpressError, parameter
from vexpress_cli.hookspecs import RetargetStrategy
from vexpress_cli.kps.fit import DEFAULT_FIT_MODE, fit_track
from vexpress_cli.wording import with_article

EXAMPLE_KPS = "x,y;x,y;x,y"


RetargetFunction = Callable[[np.ndarray, "np.ndarray | None", int], np.ndarray]


@dataclass(frozen=True)
class FunctionStrategy:
    """A strategy made from a plain function: the easiest way for a plugin to provide one.

    ``FunctionStrategy("mirror", "Mirror the driving track.", mirror_function)``.
    When ``requires_driving_kps`` is true, ``retarget`` raises InputError for
    a missing driving track before the function is called.
    """

    name: str
    description: str
    function: RetargetFunction
    requires_driving_kps: bool = True
    uses_reference_kps: bool = True

    def retarget(self, reference_kps: np.ndarray, driving_kps: np.ndarray | None, num_frames: int) -> np.ndarray:
        require_driving_kps(self, driving_kps is not None)
        return self.function(reference_kps, driving_kps, num_frames)


def auto_strategy(has_driving_kps: bool) -> str:
    """What the strategy ``auto`` stands for: ``no_retarget`` with a driving kps file, ``fix_face`` without."""
    return "no_retarget" if has_driving_kps else "fix_face"


def strategy_for(name: str, has_driving_kps: bool) -> str:
    """The strategy a setting's ``name`` stands for: ``auto`` is :func:`auto_strategy`'s, any other itself."""
    from vexpress_cli.settings.schema import AUTO_STRATEGY  # not at the top: the settings import vexpress_cli.kps

    return auto_strategy(has_driving_kps) if name == AUTO_STRATEGY else name


def checked_strategy(name: str, has_driving_kps: bool) -> RetargetStrategy:
    """The installed strategy ``name`` stands for (:func:`strategy_for`), with the driving track it needs;
    InputError for an unknown name or a missing track."""
    from vexpress_cli.plugins import get_retarget_strategy

    strategy = get_retarget_strategy(strategy_for(name, has_driving_kps))
    require_driving_kps(strategy, has_driving_kps)
    return strategy


def uses_reference_kps(strategy: RetargetStrategy) -> bool:
    """Whether the strategy places the face by the reference photo's keypoints.

    Optional for plugins (``uses_reference_kps = False`` on the strategy); when false, a
    reference photo without a detectable face is fine.
    """
    return getattr(strategy, "uses_reference_kps", True)


def needs_driving_kps(strategy: RetargetStrategy) -> bool:
    """Whether the strategy needs a driving track (the protocol's ``requires_driving_kps``, true when absent)."""
    return bool(getattr(strategy, "requires_driving_kps", True))


def require_driving_kps(strategy: RetargetStrategy, has_driving_kps: bool) -> None:
    """InputError when the strategy needs a driving track and there is none (checked early by the jobs)."""
    if not has_driving_kps and needs_driving_kps(strategy):
        raise missing_driving_kps_error(strategy.name)


def missing_driving_kps_error(strategy_name: str) -> InputError:
    return InputError(
        f"The retarget strategy '{strategy_name}' needs a driving kps track, and none was given.",
        why="It moves the face along the head motion of a driving video.",
        fix=f"Give {parameter('kps', 'DRIVING.safetensors')} (make one with `vexpress extract VIDEO`), "
        f"or use {parameter('retarget_strategy', 'fix_face')}.",
    )


def retarget_track(
    reference_kps: np.ndarray,
    driving_kps: np.ndarray | None,
    num_frames: int,
    strategy: str | RetargetStrategy = "no_retarget",
    fit: str = DEFAULT_FIT_MODE,
    frame: tuple[int, int] | None = None,
) -> np.ndarray:
    """Keypoints for every frame of the video: fit the driving track, then retarget it.

    ``strategy`` is a strategy object or the name of an installed one. The
    result is checked, float32 ``[num_frames, 3, 2]``, ready for drawing. With
    ``frame`` (width, height), a strategy that puts every keypoint outside it,
    given keypoints inside it, is reported as the strategy's bug.
    """
    if isinstance(strategy, str):
        from vexpress_cli.plugins import get_retarget_strategy

        strategy = get_retarget_strategy(strategy)
    reference_kps = np.asarray(reference_kps, dtype=np.float32)
    problem = _reference_problem(reference_kps, uses_reference_kps(strategy))
    if problem:
        raise InputError(
            f"The reference keypoints {problem}.",
            why="Retargeting needs the left eye, right eye and nose of the reference face, in pixels.",
            fix=f"Pass {parameter('reference_image')} (the face is found in it) or "
            f"{parameter('reference_kps', EXAMPLE_KPS)} with three finite points.",
        )
    require_driving_kps(strategy, driving_kps is not None)
    fitted = None if driving_kps is None else fit_track(driving_kps, num_frames, fit)
    from vexpress_cli.plugins import plugin_output_on_stderr

    try:
        with plugin_output_on_stderr():
            result = strategy.retarget(reference_kps.copy(), fitted, num_frames)
    except VExpressError:
        raise  # the strategy's own clear message (e.g. a missing driving track)
    except (Exception, SystemExit) as error:  # a bug in the strategy; sys.exit() must not end the caller
        happened = (f"called sys.exit({error.code!r})" if isinstance(error, SystemExit)
                    else f"failed with {type(error).__name__}: {error}")
        raise _strategy_bug(strategy, happened) from error
    points = _checked_result(result, strategy, num_frames)
    if frame is not None:
        _check_placed_in_frame(points, strategy, frame, given=[reference_kps, fitted])
    return points


def ignored_driving_track(strategy: RetargetStrategy, reference_kps: np.ndarray, driving_kps: np.ndarray | None,
                          num_frames: int, result: np.ndarray) -> str | None:
    """A warning when a strategy that needs no driving track (fix_face) gave ``result`` without it too: the
    track the user gave changed nothing."""
    if driving_kps is None or needs_driving_kps(strategy):
        return None
    if not np.array_equal(retarget_track(reference_kps, None, num_frames, strategy), result):
        return None
    return (f"The strategy {strategy.name} does not use a driving kps track: the keypoints are the same without "
            f"{parameter('kps')}. To move the head with the track, use "
            f"{parameter('retarget_strategy', 'offset_retarget')} (or no_retarget for the same person and framing).")


def _check_placed_in_frame(points: np.ndarray, strategy: RetargetStrategy, frame: tuple[int, int],
                           given: list[np.ndarray | None]) -> None:
    from vexpress_cli.kps.bounds import points_outside

    width, height = frame
    if not points_outside(points, width, height).all():
        return
    if all(not points_outside(kps, width, height).all() for kps in given if kps is not None):
        x, y = points[..., 0], points[..., 1]
        raise _strategy_bug(strategy, f"put every keypoint outside the {width}x{height} frame (x from {x.min():.6g} "
                            f"to {x.max():.6g}, y from {y.min():.6g} to {y.max():.6g}), given keypoints inside it")


def _strategy_bug(strategy: RetargetStrategy, happened: str) -> VExpressError:
    from vexpress_cli.plugins import strategy_source

    source = strategy_source(strategy)
    origin = f" (from the plugin {source})" if source else ""
    return VExpressError(
        f"The retarget strategy '{strategy.name}'{origin} {happened}.",
        why="This is a bug in the strategy (or the plugin that provides it), not in your input.",
        fix=f"Try another {parameter('retarget_strategy')}, and tell the plugin's author "
        "(`vexpress strategies` names the plugin).",
    )


def _reference_problem(reference_kps: np.ndarray, placed_by_it: bool) -> str | None:
    """What is wrong with the reference keypoints, in words; None when nothing is. Eyes on one point (typed
    "10,10;10,10;10,10") are wrong only for a strategy that places the face by them: it would draw a dot."""
    if reference_kps.shape != (3, 2):
        return f"have shape {list(reference_kps.shape)}, not 3 (x, y) points"
    if not np.isfinite(reference_kps).all():
        return "hold NaN or infinity"
    if placed_by_it and np.linalg.norm(reference_kps[0] - reference_kps[1]) < MIN_EYE_DISTANCE:
        return "put both eyes on one point"
    return None


# Eyes closer than this (pixels) are one point: no face to draw.
MIN_EYE_DISTANCE = 0.5


def _checked_result(result, strategy: RetargetStrategy, num_frames: int) -> np.ndarray:
    try:
        raw = None if result is None or isinstance(result, (str, bytes)) else np.asarray(result)
        # bools, text and complex numbers would convert to float32 without a word (True as 1.0, "12" as 12.0)
        points = raw.astype(np.float32) if raw is not None and raw.dtype.kind in "iuf" else None
    except (TypeError, ValueError, RuntimeError):
        raw = points = None
    problem = None
    if points is None and raw is not None and raw.dtype.kind not in "O":
        problem = f"an array of {raw.dtype} values instead of numbers (float or int) of shape [{num_frames}, 3, 2]"
    elif points is None:
        problem = f"{_a(type(result).__name__)} instead of an array of numbers of shape [{num_frames}, 3, 2]"
    elif points.shape != (num_frames, 3, 2):
        problem = f"an array of shape {list(points.shape)} instead of [{num_frames}, 3, 2]"
    elif not np.isfinite(points).all():
        problem = "NaN or infinite keypoints"
    if problem:
        raise _strategy_bug(strategy, f"returned {problem}")
    return points


def _a(noun: str) -> str:
    return "None" if noun == "NoneType" else with_article(noun)
