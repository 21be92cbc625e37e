"""How long a keypoint track may be and how large its frame: checked before anything is allocated."""

from __future__ import annotations

import numpy as np

from vexpress_cli.errors import InputError, described, parameter

# 24 hours at 60 fps. A file's declared shape is checked against this before any frame is read:
# a 1.5 KB .pth can hold a repeated (stride-0) tensor that declares 20 million frames.
MAX_FRAMES = 24 * 3600 * 60
# A track's frame rate: from a slideshow's (a frame every 100 s) to a high-speed camera's. 1e-300 fps was a
# traceback wherever the rate became a fraction (a preview video's), 1e300 an ffmpeg failure.
MIN_TRACK_FPS, MAX_TRACK_FPS = 0.01, 1000.0
# The frame a track's points are pixels of: at least a few pixels, at most 8K (a frame of that size is drawn).
MIN_FRAME_SIDE, MAX_FRAME_SIDE = 8, 8192


def check_video_fps(fps, video: object) -> None:
    """Refuse, before its faces are looked for, a video whose frame rate a kps track cannot record."""
    if not fps or MIN_TRACK_FPS <= float(fps) <= MAX_TRACK_FPS:  # 0 or None: unknown, the track records none
        return
    raise InputError(
        f"The video {video} plays at {float(fps):g} fps, outside the {MIN_TRACK_FPS:g} to {MAX_TRACK_FPS:g} fps a "
        "kps track can record.",
        why="A track's fps says how many of its frames make one second; generate fits the track to the speech by it.",
        fix='Re-time the video so that its frames play at a usual rate, every frame kept, and extract that: e.g. '
        '`ffmpeg -i IN.mp4 -vf "setpts=N/(30*TB)" -r 30 OUT.mp4` (30 fps).',
    )


def checked_frame_side(name: str, value) -> int:
    """``width`` or ``height`` of a track's frame (extract): a whole number of pixels within limits."""
    number = _whole_number_within(value, MIN_FRAME_SIDE, MAX_FRAME_SIDE)
    if number is None:
        raise InputError(f"{parameter(name)} is {_shown(value)}.",
                         why=f"It is the size in pixels of the frame the points refer to: a whole number from "
                         f"{MIN_FRAME_SIDE} to {MAX_FRAME_SIDE}.",
                         fix=f"Give the size generate will use, e.g. {parameter(name, '512')}.")
    return number


def checked_frame_count(value) -> int | None:
    """``num_frames`` of a track to make (retarget): None (the driving track's length), or a whole number of
    frames a kps track may have."""
    if value is None:
        return None
    number = _whole_number_within(value, 1, MAX_FRAMES)
    if number is None:
        raise InputError(f"{parameter('num_frames')} is {_shown(value)}.",
                         why=f"It is the length of the track: a whole number from 1 to {MAX_FRAMES:,} "
                         "(24 hours at 60 fps).",
                         fix=f"Give {parameter('num_frames', 'N')}, e.g. the audio's duration times the fps, "
                         "or leave it out to keep the driving track's length.")
    return number


def _shown(value) -> str:
    """A whole number as it is (0, not "int 0"); anything else with its type."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else described(value)


def _whole_number_within(value, low: int, high: int) -> int | None:
    """``value`` as an int (a numpy integer too) when it is a whole number from ``low`` to ``high``, else None."""
    value = int(value) if isinstance(value, np.integer) else value
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value
