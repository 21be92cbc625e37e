"""Video in, streamed frame by frame through the bundled ffmpeg.

:func:`video_info` (exact frame count and rational fps) and :func:`iter_video_frames`
(RGB uint8 frames from a rawvideo pipe, optionally resized like ``cv2.resize``). The
writers are in :mod:`vexpress_cli.media.video_writer`.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media.ffmpeg import (
    PacketTiming,
    Probe,
    StreamInfo,
    ffmpeg_command,
    probe,
    start_ffmpeg,
    stderr_tail,
    stop_process,
    video_packet_timing,
)
from vexpress_cli.media.frames import check_frame_size

# Frames larger than 8K are refused before a frame's buffer is allocated.
MAX_VIDEO_PIXELS = 8192 * 4320


@dataclass(frozen=True)
class VideoInfo:
    """A video file's picture stream (and whether it has sound).

    ``width``/``height`` are the size of decoded frames, i.e. after the
    rotation stored in phone videos is applied. ``fps`` is the nominal rate as
    an exact fraction (29.97 is ``Fraction(30000, 1001)``); ``avg_fps`` is
    frames divided by the stream's duration and differs when the frame rate
    varies or the last frame is held longer.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    codec: str
    pix_fmt: str | None
    has_audio: bool
    audio_codec: str | None
    container: str
    avg_fps: Fraction
    rotation: int = 0
    stream_index: int = 0  # of the video stream inside the file
    stated_duration: float | None = None  # what the file's header says it lasts (its longest stream)
    # Each frame's start in seconds from the first, for a variable frame rate only (no rate fits every timestamp)
    frame_times: tuple[float, ...] | None = None

    @property
    def variable_rate(self) -> bool:
        return self.frame_times is not None

    @property
    def ends_early(self) -> str | None:
        """Why the frames may be cut short: they end well before the length the file states (a download or copy
        that did not finish decodes without an error, only shorter)."""
        frame = 1 / float(self.fps) if self.fps else 0
        if not self.stated_duration or self.stated_duration - self.duration <= max(2 * frame,
                                                                                   0.1 * self.stated_duration):
            return None
        return (f"The video's frames end at {self.duration:.2f} s, but the file says it lasts "
                f"{self.stated_duration:.2f} s: it may be cut short (a download or copy that did not finish).")


def video_info(path: str | Path | Probe) -> VideoInfo:
    """Size, exact fps, exact frame count, duration and codecs of a video file.

    ``path`` may also be the file's :func:`~vexpress_cli.media.ffmpeg.probe`
    result, which saves running ffmpeg once more.
    """
    source = path if isinstance(path, Probe) else probe(path, "video")
    stream = _video_stream(source)
    timing = video_packet_timing(source.path, stream.index)
    frame_count = (timing.count - timing.cut) or _count_by_decoding(source.path)
    duration = timing.duration or Fraction(source.duration or 0).limit_denominator(1000)
    width, height = _display_size(stream)
    avg_fps = frame_count / duration if duration > 0 else Fraction(0)
    fps = nominal_fps(timing) or avg_fps.limit_denominator(1001)
    return VideoInfo(
        path=source.path,
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        duration=float(duration),
        codec=stream.codec,
        pix_fmt=stream.pix_fmt,
        has_audio=source.audio is not None,
        audio_codec=source.audio.codec if source.audio else None,
        container=source.container,
        avg_fps=avg_fps.limit_denominator(1_000_000),
        rotation=stream.rotation,
        stream_index=stream.index,
        stated_duration=source.duration,
        frame_times=_variable_frame_times(timing, fps, frame_count),
    )


def _variable_frame_times(timing: PacketTiming, fps: Fraction, frame_count: int) -> tuple[float, ...] | None:
    """Each frame's start (seconds from the first) when no rate fits every timestamp (a phone's variable frame
    rate), else None; None too when some packets have no timestamp (the frames cannot be placed in time)."""
    pts = sorted(timing.pts)
    if len(pts) < 3 or len(pts) != frame_count or pts[0] < 0:  # < 0: packets an edit list cuts, never decoded
        return None
    if _timestamps_fit(pts, fps, timing.time_base) or _timestamps_fit(pts[:-1], fps, timing.time_base):
        return None
    return tuple(float((value - pts[0]) * timing.time_base) for value in pts)


def _video_stream(source: Probe) -> StreamInfo:
    stream = source.video
    if stream is None:
        raise InputError(
            f"{str(source.path)!r} has no video stream.",
            "ffmpeg found only audio, subtitles or a cover picture in it.",
            "Pass a video file (mp4, mov, mkv, ...).",
        )
    if not stream.width or not stream.height:
        # ffmpeg guesses a stream from the name (a .jpg is "mjpeg") but decodes no frame: no size.
        raise InputError(
            f"{str(source.path)!r} is not a video or image that ffmpeg can decode.",
            f"ffmpeg found no frame in it, only a guess from its name ({', '.join(stream.details)}, no frame "
            "size): it is another kind of file under a video's or image's name, or it is damaged.",
            "Pass a video file (mp4, mov, mkv, avi, webm); if this one plays in a video player, re-encode it, "
            "e.g. to H.264 mp4, and try again.",
        )
    return stream


def _check_frame_pixels(path: Path, frame_size: tuple[int, int]) -> None:
    """Frames larger than 8K are refused before a frame's buffer is allocated (a small file can declare any
    size); probing such a video (its size, rate and length) is fine."""
    width, height = frame_size
    if width * height > MAX_VIDEO_PIXELS:
        raise InputError(
            f"Cannot read the video {str(path)!r}: its frames are {width} x {height} pixels, larger than 8K "
            "(8192 x 4320).",
            f"Each frame would take {width * height * 3 / 1e6:,.0f} MB of memory to decode (a small file can "
            "declare any size), and V-Express works at 512 x 512 anyway.",
            "Downscale it first, e.g. `ffmpeg -i in.mp4 -vf scale=-2:1080 out.mp4`, and pass out.mp4.",
        )


def _display_size(stream: StreamInfo) -> tuple[int, int]:
    if stream.rotation in (90, 270):
        return stream.height, stream.width
    return stream.width, stream.height


def _count_by_decoding(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


# A rate of a small fraction (100/3 = 33.333 fps) is tried before the measured one rounded to two decimals: in a
# millisecond clock (mkv) both fit, and a video is made at 100/3, not at 3333/100.
SIMPLE_RATE_DENOMINATOR = 12


def nominal_fps(timing: PacketTiming) -> Fraction | None:
    """The frame rate the video was made at, as an exact fraction.

    Containers store rounded timestamps (mkv counts milliseconds), so the raw
    ratio of frames to time is rarely the true rate. The integer and NTSC
    (``n*1000/1001``) rates nearest the measured one are tried first, then the
    measured rate rounded to two decimals; a rate is accepted when every frame
    timestamp lies within one tick of where that rate puts it. A held last
    frame is ignored, whether it lasts longer or starts late (the one before
    it held). Variable frame rate video fits none and gets its average rate.
    """
    pts = sorted(timing.pts)
    if len(pts) < 2 or pts[-1] == pts[0]:
        if len(timing.durations) == 1 and timing.durations[0] > 0:
            return Fraction(1) / (timing.durations[0] * timing.time_base)
        return None
    fitted = _fitted_rate(pts, timing.time_base)
    if fitted is None and len(pts) > 3:
        fitted = _fitted_rate(pts[:-1], timing.time_base)
    return fitted or ((len(pts) - 1) / ((pts[-1] - pts[0]) * timing.time_base)).limit_denominator(1_000_000)


def _fitted_rate(pts: list[int], time_base: Fraction) -> Fraction | None:
    """The standard, simple-fraction (100/3, 50/3) or two-decimal rate every timestamp of ``pts`` (sorted) fits,
    None when none does."""
    measured = (len(pts) - 1) / ((pts[-1] - pts[0]) * time_base)
    standard = (
        Fraction(round(measured)),
        Fraction(round(measured * Fraction(1001, 1000)) * 1000, 1001),
    )
    simple = (measured.limit_denominator(SIMPLE_RATE_DENOMINATOR),)
    for tier in (standard, simple, (Fraction(round(measured * 100), 100),)):
        fitting = [rate for rate in tier if rate > 0 and _timestamps_fit(pts, rate, time_base)]
        if fitting:  # a short clip may fit both 24 and 24000/1001: take the nearer
            return min(fitting, key=lambda rate: abs(rate - measured))
    return None


def _timestamps_fit(pts: list[int], rate: Fraction, time_base: Fraction) -> bool:
    ticks_per_frame = 1 / (rate * time_base)
    first = pts[0]
    return all(abs(value - first - index * ticks_per_frame) <= 1 for index, value in enumerate(pts))


def iter_video_frames(
    path: str | Path | VideoInfo, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Iterate over the frames of ``path`` as RGB uint8 arrays of shape (H, W, 3).

    Frames stream from an ffmpeg pipe, so memory stays at one frame whatever
    the video's length or size. Every decoded frame is yielded once (no frame
    is dropped or duplicated to a constant rate), except for the :class:`VideoInfo`
    of a variable-rate video: its frames are then taken at its steady average
    rate by their timestamps (:func:`at_steady_rate`). With ``size=(width,
    height)`` each frame is resized with ``cv2.resize`` (INTER_LINEAR), as
    the original V-Express did before face detection. Stopping early (break,
    generator close) ends the ffmpeg process. Pass the :class:`VideoInfo` of
    the file instead of its path to skip probing it again.
    """
    resize = None if size is None else check_frame_size(size)
    if isinstance(path, VideoInfo):
        _check_frame_pixels(path.path, (path.width, path.height))
        frames = _stream_frames(path.path, path.stream_index, (path.width, path.height), resize)
        return at_steady_rate(frames, path) if path.variable_rate else frames
    source = probe(path, "video")  # probed now, so a bad path fails at the call, not at next()
    stream = _video_stream(source)
    _check_frame_pixels(source.path, _display_size(stream))
    return _stream_frames(source.path, stream.index, _display_size(stream), resize)


def _stream_frames(
    path: Path, stream_index: int, frame_size: tuple[int, int], size: tuple[int, int] | None
) -> Iterator[np.ndarray]:
    width, height = frame_size
    command = ffmpeg_command(
        "-i", str(path), "-map", f"0:{stream_index}", "-an", "-sn", "-dn",
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    )  # fmt: skip
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as stderr:
        process = start_ffmpeg(command, stdout=subprocess.PIPE, stderr=stderr, bufsize=max(frame_bytes, 1 << 16))
        try:
            while True:
                frame = _read_frame(process.stdout, frame_bytes)
                if frame is None:
                    break
                frame = frame.reshape(height, width, 3)
                if size is not None and size != (width, height):
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
                yield frame
            if process.wait() != 0:
                stderr.seek(0)
                raise InputError(
                    f"Cannot decode the video {str(path)!r}.",
                    f"ffmpeg said: {stderr_tail(stderr.read())}.",
                    "The file may be damaged; re-encode it (e.g. to H.264 mp4) and try again.",
                )
        finally:
            stop_process(process)


def at_steady_rate(frames: Iterator[np.ndarray], info: VideoInfo) -> Iterator[np.ndarray]:
    """The frames of a variable-rate video at its average rate ``info.fps``, as many as it has: frame ``k`` is
    the one on screen at ``k / fps``, so a frame is repeated where the video slowed and skipped where it sped up,
    and a track made from them keeps time with the video's sound."""
    times, rate = info.frame_times, float(info.fps)
    current, shown = None, -1
    try:
        for k in range(info.frame_count):
            while shown + 1 < len(times) and times[shown + 1] <= k / rate + 1e-9:
                current, shown = next(frames, current), shown + 1
            if current is None:  # nothing decoded: the caller reports an empty video
                return
            yield current
    finally:
        frames.close()


def _read_frame(pipe, frame_bytes: int) -> np.ndarray | None:
    """One frame's bytes from the pipe (a fresh, writable array), or None at the end."""
    buffer = bytearray(frame_bytes)
    view = memoryview(buffer)
    filled = 0
    while filled < frame_bytes:
        got = pipe.readinto(view[filled:])
        if not got:
            break
        filled += got
    if filled == 0:
        return None
    if filled < frame_bytes:
        raise VExpressError(
            "The video decoder stopped in the middle of a frame.",
            f"Got {filled} of {frame_bytes} bytes; the frame size read from the file may be wrong.",
            "Re-encode the video (e.g. to H.264 mp4) and try again.",
        )
    return np.frombuffer(buffer, dtype=np.uint8)
