"""Fitting a driving track to the video length."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLES_DIR

from vexpress_cli.errors import InputError
from vexpress_cli.kps import DEFAULT_FIT_MODE, FIT_MODES, fit_track
from vexpress_cli.kps.fit import fit_track_in_time, resample_in_time


def numbered_track(frames: int) -> np.ndarray:
    """A track whose every value is its frame index, so outputs show which frame they came from."""
    return np.repeat(np.arange(frames, dtype=np.float32), 6).reshape(frames, 3, 2)


def frame_ids(points: np.ndarray) -> list[float]:
    return points[:, 0, 0].tolist()


@pytest.mark.parametrize("mode", FIT_MODES)
def test_same_length_is_identity(mode):
    track = np.random.default_rng(1).normal(size=(7, 3, 2)).astype(np.float32)
    assert np.array_equal(fit_track(track, 7, mode), track)


@pytest.mark.parametrize("mode", FIT_MODES)
def test_longer_track_is_cut(mode):
    assert frame_ids(fit_track(numbered_track(10), 4, mode)) == [0, 1, 2, 3]


def test_loop():
    assert frame_ids(fit_track(numbered_track(3), 8, "loop")) == [0, 1, 2, 0, 1, 2, 0, 1]


def test_pingpong_turns_without_repeating_the_end_frames():
    assert frame_ids(fit_track(numbered_track(4), 12, "pingpong")) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]


def test_pingpong_and_loop_of_a_single_frame():
    for mode in ("pingpong", "loop"):
        assert frame_ids(fit_track(numbered_track(1), 3, mode)) == [0, 0, 0]


def test_pingpong_is_the_default_and_never_jumps():
    assert DEFAULT_FIT_MODE == "pingpong"
    rng = np.random.default_rng(0)
    track = np.cumsum(rng.normal(size=(20, 3, 2)), axis=0).astype(np.float32)
    fitted = fit_track(track, 95)
    largest_original_step = np.abs(np.diff(track, axis=0)).max()
    assert np.abs(np.diff(fitted, axis=0)).max() <= largest_original_step


def test_stretch_two_frames_to_four():
    # align_corners=False samples at (i + 0.5) * 2/4 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    track = np.stack([np.zeros((3, 2)), np.full((3, 2), 8.0)]).astype(np.float32)
    assert frame_ids(fit_track(track, 4, "stretch")) == [0.0, 2.0, 6.0, 8.0]


def independent_linear_resample(track: np.ndarray, size: int) -> np.ndarray:
    length = track.shape[0]
    source = np.maximum((np.arange(size) + 0.5) * length / size - 0.5, 0.0)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, length - 1)
    weight = (source - lower)[:, None, None]
    return (1 - weight) * track[lower] + weight * track[upper]


def test_stretch_matches_linear_resampling_on_a_real_track():
    from vexpress_cli.kps import load_kps

    track = load_kps(SAMPLES_DIR / "tys" / "kps.pth").points  # 100 frames
    stretched = fit_track(track, 137, "stretch")
    assert stretched.shape == (137, 3, 2) and stretched.dtype == np.float32
    np.testing.assert_allclose(stretched, independent_linear_resample(track.astype(np.float64), 137), atol=1e-3)
    np.testing.assert_array_equal(stretched[0], track[0])


def test_errors():
    with pytest.raises(InputError, match="Unknown kps fit mode 'bounce'"):
        fit_track(numbered_track(3), 5, "bounce")
    with pytest.raises(InputError, match="0 frames"):
        fit_track(numbered_track(3), 0)


# --- fitting by time (issue 8 item 2) ------------------------------------------------------------


def moving_track(frames: int, fps: float) -> np.ndarray:
    """Every point moves 100 px per second along x: a frame's x says the time it was filmed at."""
    seconds = np.arange(frames, dtype=np.float32) / fps
    return np.repeat((100 * seconds)[:, None, None], 6, axis=1).reshape(frames, 3, 2)


def test_resampling_in_time_keeps_the_speed():
    """Issue 8 item 2: a 25 fps track at 30 fps shows the pose at each 1/30 s, not frame by frame."""
    timed = resample_in_time(moving_track(100, 25), 25, 30)
    assert len(timed) == 120  # 4 s either way
    np.testing.assert_allclose(timed[:, 0, 0], np.minimum(100 * np.arange(120) / 30, 100 * 99 / 25), atol=1e-3)
    np.testing.assert_array_equal(resample_in_time(moving_track(10, 30), 30, 30), moving_track(10, 30))


def test_fit_in_time_cuts_at_the_right_moment_and_says_what_it_did():
    """Issue 8 item 2: extract at 25 fps, generate at 30 fps: 18 frames show the first 0.6 s, at real speed."""
    points, notes = fit_track_in_time(moving_track(100, 25), 25.0, 30.0, 18)
    np.testing.assert_allclose(points[:, 0, 0], 100 * np.arange(18) / 30, atol=1e-3)
    assert notes == ["The 100-frame kps track at 25 fps was resampled in time to 120 frames at 30 fps.",
                     "The 120-frame kps track was cut to 18 frames."]


def test_fit_in_time_makes_only_the_frames_it_keeps(monkeypatch):
    """A track at 1.5 fps fitted to 15 frames at 30 fps: 2000 frames are named in the note, 15 are made (a
    track at 1e-6 fps made 60 million, 6 GB, then cut them to 15)."""
    import vexpress_cli.kps.fit as fit

    made = []
    timing = fit.resample_in_time
    monkeypatch.setattr(fit, "resample_in_time", lambda *args, **kwargs: made.append(timing(*args, **kwargs))
                        or made[-1])
    points, notes = fit_track_in_time(moving_track(100, 25), 1.5, 30.0, 15)
    assert [len(frames) for frames in made] == [15]
    assert points.shape == (15, 3, 2)
    np.testing.assert_array_equal(points, resample_in_time(moving_track(100, 25), 1.5, 30.0)[:15])
    assert notes[0].endswith("resampled in time to 2000 frames at 30 fps.")
    assert notes[1] == "The 2000-frame kps track was cut to 15 frames."
    assert len(resample_in_time(moving_track(100, 25), 1.5, 30.0, max_frames=15)) == 15


def test_fit_in_time_lengthens_by_the_mode_and_stretch_keeps_the_original_frame_indexing():
    points, notes = fit_track_in_time(numbered_track(10), 30.0, 30.0, 25, "pingpong")
    assert notes == ["The 10-frame kps track was lengthened by pingpong to 25 frames."]
    np.testing.assert_array_equal(points, fit_track(numbered_track(10), 25, "pingpong"))
    stretched, notes = fit_track_in_time(numbered_track(10), 25.0, 30.0, 25, "stretch")
    np.testing.assert_array_equal(stretched, fit_track(numbered_track(10), 25, "stretch"))
    assert notes == ["The 10-frame kps track was stretched to 25 frames."]


@pytest.mark.parametrize(("kps", "audio", "assumed"), [
    # The original's sample: its track was extracted from the speech's 29.97 fps video, 137 frames in 4.57 s.
    ("AOC", "AOC", "assumed 29.97 fps (its 137 frames last as long as aud.mp3)"),
    ("tys", "tys", "assumed 25 fps (its 100 frames last as long as aud.mp3)"),
    # Another clip's track: 100 frames over 4.57 s of speech is no common rate, so 25 fps.
    ("tys", "AOC", "assumed 25 fps (aud.mp3 is not a video, and at no common rate would the track last as long as "
                   "it)"),
])
def test_a_track_without_a_frame_rate_is_timed_by_the_speech_it_spans(kps, audio, assumed):
    import vexpress_cli
    from conftest import TINY_MODEL_DIR

    generator = vexpress_cli.Generator(TINY_MODEL_DIR, device="cpu")
    plan = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", SAMPLES_DIR / audio / "aud.mp3", "unused.mp4",
                          kps=SAMPLES_DIR / kps / "kps.pth", width=64, height=64, reference_kps="22,26;42,26;32,38")
    (note,) = [note for note in plan.notes if note.startswith("The kps file records no frame rate")]
    assert f"; {assumed}. " in note
    if kps == audio:  # the whole track spans the video: its last pose lands on the last frame, none is cut
        assert not any("was cut" in note for note in plan.notes)


@pytest.mark.parametrize("strategy", ["fix_face", "offset_retarget"])
def test_a_driving_track_the_strategy_does_not_use_is_a_warning_not_a_fitting_note(strategy):
    """fix_face with --kps kept the head still while the notes said the track was cut to the video's length."""
    import vexpress_cli
    from conftest import TINY_MODEL_DIR

    generator = vexpress_cli.Generator(TINY_MODEL_DIR, device="cpu")
    plan = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", SAMPLES_DIR / "AOC" / "aud.mp3", "unused.mp4",
                          kps=SAMPLES_DIR / "tys" / "kps.pth", width=64, height=64, reference_kps="22,26;42,26;32,38",
                          retarget_strategy=strategy)
    ignored = [warning for warning in plan.warnings if "does not use a driving kps track" in warning]
    if strategy == "fix_face":
        assert ignored == ["The strategy fix_face does not use a driving kps track: the keypoints are the same "
                           "without kps. To move the head with the track, use retarget_strategy=\"offset_retarget\" "
                           "(or no_retarget for the same person and framing)."]
        assert not any("kps" in note for note in plan.notes)
    else:
        assert ignored == [] and any(note.startswith("The kps file records no frame rate") for note in plan.notes)


def test_a_track_under_a_tenth_of_the_speech_is_warned_of_unless_stretched_or_unused(tmp_path):
    """A 5-frame track pingponged over 10 minutes was only a note: likely the wrong file."""
    import vexpress_cli
    from conftest import TINY_MODEL_DIR

    from vexpress_cli.kps import KpsTrack, load_kps, save_kps

    full = load_kps(SAMPLES_DIR / "AOC" / "kps.pth")
    short = tmp_path / "short.safetensors"
    save_kps(short, KpsTrack(full.points[:5], fps=25.0, width=512, height=512))
    generator = vexpress_cli.Generator(TINY_MODEL_DIR, device="cpu")

    def warnings(kps, strategy="offset_retarget", **settings):
        plan = generator.plan(SAMPLES_DIR / "AOC" / "ref.jpg", SAMPLES_DIR / "AOC" / "aud.mp3", "unused.mp4",
                              kps=kps, width=64, height=64, reference_kps="22,26;42,26;32,38",
                              retarget_strategy=strategy, **settings)
        return [warning for warning in plan.warnings if "under a tenth of the speech" in warning]

    assert warnings(short) == ["The kps track short.safetensors lasts 0.2 s, under a tenth of the speech's 4.6 s: "
                               "its motion repeats about 23 times (kps_fit=\"pingpong\"). Check that it is the "
                               "driving track meant for this speech."]
    assert warnings(short, kps_fit="stretch") == [] and warnings(SAMPLES_DIR / "AOC" / "kps.pth") == []
    assert warnings(short, "fix_face") == []  # the track is not used: told so, not how often it repeats
