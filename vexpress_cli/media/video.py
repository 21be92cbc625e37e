"""Video in and out, streamed frame by frame through the bundled ffmpeg.

Reading: :func:`video_info` (exact frame count and rational fps) and
:func:`iter_video_frames` (RGB uint8 frames from a rawvideo pipe, optionally
resized like ``cv2.resize``). Writing: :class:`VideoWriter` (H.264 + AAC mp4)
and :class:`PngFolderWriter` (numbered PNGs), both writing to a temp path that
is renamed only when everything succeeded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.media.ffmpeg import (
    PacketTiming,
    Probe,
    StreamInfo,
    ffmpeg_command,
    probe,
    run_ffmpeg,
    stderr_tail,
    stop_process,
    video_packet_timing,
)
from vexpress_cli.outputs import ensure_writable_folder, prepare_output_path

VIDEO_SUFFIXES = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


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


def video_info(path: str | Path | Probe) -> VideoInfo:
    """Size, exact fps, exact frame count, duration and codecs of a video file.

    ``path`` may also be the file's :func:`~vexpress_cli.media.ffmpeg.probe`
    result, which saves running ffmpeg once more.
    """
    source = path if isinstance(path, Probe) else probe(path, "video")
    stream = _video_stream(source)
    timing = video_packet_timing(source.path, stream.index)
    frame_count = timing.count or _count_by_decoding(source.path)
    duration = timing.duration or Fraction(source.duration or 0).limit_denominator(1000)
    width, height = _display_size(stream)
    avg_fps = frame_count / duration if duration > 0 else Fraction(0)
    return VideoInfo(
        path=source.path,
        width=width,
        height=height,
        fps=nominal_fps(timing) or avg_fps.limit_denominator(1001),
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
    )


def _video_stream(source: Probe) -> StreamInfo:
    stream = source.video
    if stream is None:
        raise InputError(
            f"{str(source.path)!r} has no video stream.",
            "ffmpeg found only audio, subtitles or a cover picture in it.",
            "Pass a video file (mp4, mov, mkv, ...).",
        )
    if not stream.width or not stream.height:
        raise InputError(
            f"Cannot tell the frame size of {str(source.path)!r}.",
            f"ffmpeg describes its video as: {', '.join(stream.details)}.",
            "Re-encode it, e.g. to H.264 mp4, and try again.",
        )
    return stream


def _display_size(stream: StreamInfo) -> tuple[int, int]:
    if stream.rotation in (90, 270):
        return stream.height, stream.width
    return stream.width, stream.height


def _count_by_decoding(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def nominal_fps(timing: PacketTiming) -> Fraction | None:
    """The frame rate the video was made at, as an exact fraction.

    Containers store rounded timestamps (mkv counts milliseconds), so the raw
    ratio of frames to time is rarely the true rate. The integer and NTSC
    (``n*1000/1001``) rates nearest the measured one are tried first, then the
    measured rate rounded to two decimals; a rate is accepted when every frame
    timestamp lies within one tick of where that rate puts it. A held last
    frame is ignored. Variable frame rate video fits none and gets its
    average rate.
    """
    pts = sorted(timing.pts)
    if len(pts) < 2 or pts[-1] == pts[0]:
        if len(timing.durations) == 1 and timing.durations[0] > 0:
            return Fraction(1) / (timing.durations[0] * timing.time_base)
        return None
    measured = (len(pts) - 1) / ((pts[-1] - pts[0]) * timing.time_base)
    standard = (
        Fraction(round(measured)),
        Fraction(round(measured * Fraction(1001, 1000)) * 1000, 1001),
    )
    for tier in (standard, (Fraction(round(measured * 100), 100),)):
        fitting = [rate for rate in tier if rate > 0 and _timestamps_fit(pts, rate, timing.time_base)]
        if fitting:  # a short clip may fit both 24 and 24000/1001: take the nearer
            return min(fitting, key=lambda rate: abs(rate - measured))
    return measured.limit_denominator(1_000_000)


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
    is dropped or duplicated to a constant rate). With ``size=(width,
    height)`` each frame is resized with ``cv2.resize`` (INTER_LINEAR), as
    the original V-Express did before face detection. Stopping early (break,
    generator close) ends the ffmpeg process. Pass the :class:`VideoInfo` of
    the file instead of its path to skip probing it again.
    """
    resize = None if size is None else _check_size(size)
    if isinstance(path, VideoInfo):
        return _stream_frames(path.path, path.stream_index, (path.width, path.height), resize)
    source = probe(path, "video")  # probed now, so a bad path fails at the call, not at next()
    stream = _video_stream(source)
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
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, bufsize=max(frame_bytes, 1 << 16)
        )
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


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(value) for value in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be (width, height) with positive values, got {size!r}")
    return width, height


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


def as_fps_fraction(fps: Fraction | float | int | str) -> Fraction:
    """An exact frame rate from a Fraction, int, "30000/1001" string or float.

    A float within 0.005 of an NTSC rate (29.97, 23.976, 59.94, ...) becomes
    that rate, e.g. 30000/1001; other floats use ``limit_denominator(1001)``.
    """
    if isinstance(fps, float):
        ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
        is_ntsc = fps != round(fps) and abs(ntsc - Fraction(fps)) < 0.005
        rate = ntsc if is_ntsc else Fraction(fps).limit_denominator(1001)
    else:
        rate = Fraction(fps)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _frames_array(frames: Any, width: int | None, height: int | None) -> np.ndarray:
    """``frames`` (HxWx3 or NxHxWx3 uint8, numpy or torch) as a contiguous NxHxWx3 array."""
    if hasattr(frames, "detach"):  # a torch tensor, without importing torch here
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be HxWx3 or NxHxWx3 RGB, got shape {frames.shape}")
    if width is not None and frames.shape[1:3] != (height, width):
        raise ValueError(
            f"frames must be {height}x{width} (HxW) as the writer was opened, got {frames.shape[1:3]}"
        )
    return np.ascontiguousarray(frames)


class _AtomicWriter:
    """Context-manager behaviour shared by the writers: close on success, abort on any exception."""

    def close(self, before_commit: Callable[[Path], None] | None = None) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(_AtomicWriter):
    """Encode RGB frames to H.264 (yuv420p, BT.709) + AAC in an mp4/mov/mkv file, as they come.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=Fraction(30000, 1001), width=512, height=512,
                         audio_path="speech.mp3") as writer:
            for batch in batches:
                writer.write(batch)

    The video lasts exactly the frames written; a longer audio track is cut to
    that length, a shorter one simply ends early. An odd width or height is
    padded with one black row/column (yuv420p needs even sizes); see
    ``output_size``. Nothing appears at ``path`` until :meth:`close` succeeds;
    an exception inside the ``with`` block (Ctrl+C included) kills ffmpeg and
    deletes the temp file.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | float | int | str,
        width: int,
        height: int,
        audio_path: str | Path | None = None,
        overwrite: bool = False,
        crf: int = 18,
    ):
        self.path = Path(path).expanduser().absolute()
        self.muxer = _video_muxer(self.path)
        self.fps = as_fps_fraction(fps)
        self.width, self.height = _check_size((width, height))
        self.output_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.audio_path = None if audio_path is None else _require_audio(audio_path)
        self.overwrite = overwrite
        self.frames_written = 0
        self._closed = False
        prepare_output_path(self.path, overwrite)
        stem, suffix = self.path.stem, self.path.suffix
        self._temp = self.path.with_name(f".{stem}.partial{suffix}")
        self._video_temp = (
            self.path.with_name(f".{stem}.video.partial{suffix}") if self.audio_path else self._temp
        )
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            self._encode_command(crf),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def _encode_command(self, crf: int) -> list[str]:
        fps = f"{self.fps.numerator}/{self.fps.denominator}"
        filters = "pad=ceil(iw/2)*2:ceil(ih/2)*2," if self.output_size != (self.width, self.height) else ""
        filters += (
            "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
            "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
        )
        return ffmpeg_command(
            "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", fps, "-i", "pipe:0",
            "-vf", filters, "-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)),
            "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
            "-color_trc", "bt709", "-color_range", "tv", "-r", fps,
            *self._container_flags(), "-f", self.muxer, str(self._video_temp),
        )  # fmt: skip

    def _container_flags(self) -> list[str]:
        return ["-movflags", "+faststart"] if self.muxer in ("mp4", "mov") else []

    def write(self, frames: Any) -> None:
        """Encode one RGB uint8 frame (HxWx3) or a batch (NxHxWx3), numpy or torch."""
        if self._closed:
            raise RuntimeError("write() on a closed VideoWriter")
        batch = _frames_array(frames, self.width, self.height)
        try:
            self._process.stdin.write(memoryview(batch).cast("B"))
        except (BrokenPipeError, OSError):
            self._process.wait()
            raise self._ffmpeg_error("ffmpeg stopped while encoding the video.") from None
        self.frames_written += len(batch)

    def close(self, before_commit: Callable[[Path], None] | None = None) -> None:
        """Finish encoding, add the audio, and move the file to ``path``.

        ``before_commit(finished_temp_file)`` runs just before the rename (e.g. to write a run record
        describing the file); if it raises, nothing is renamed.
        """
        if self._closed:
            return
        try:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg already exited; its return code and stderr tell why
            if self._process.wait() != 0:
                raise self._ffmpeg_error("ffmpeg could not encode the video.")
            if self.frames_written == 0:
                raise VExpressError(
                    f"No frames were written to {str(self.path)!r}.",
                    "The video would be empty.",
                    "Check that the input produced frames (e.g. a non-empty audio clip).",
                )
            if self.audio_path is not None:
                self._mux_audio()
            if before_commit is not None:
                before_commit(self._temp)
            _commit(self._temp, self.path, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._finish()

    def _mux_audio(self) -> None:
        duration = Fraction(self.frames_written) / self.fps
        run_ffmpeg(
            ["-y", "-i", str(self._video_temp), "-i", str(self.audio_path),
             "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k",
             "-t", f"{float(duration):.6f}", *self._container_flags(), "-f", self.muxer, str(self._temp)],
            what=f"Could not add the audio track to {str(self.path)!r}.",
            fix="Check the audio file, e.g. by converting it to WAV first.",
        )  # fmt: skip
        self._video_temp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop ffmpeg and delete every temp file; ``path`` is left untouched."""
        if self._closed:
            return
        stop_process(self._process)
        self._temp.unlink(missing_ok=True)
        self._video_temp.unlink(missing_ok=True)
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._stderr.close()

    def _ffmpeg_error(self, what: str) -> VExpressError:
        self._stderr.seek(0)
        return VExpressError(
            what,
            f"ffmpeg said: {stderr_tail(self._stderr.read())}.",
            "Check free disk space; if that is fine, report ffmpeg's message as a bug.",
        )



def _video_muxer(path: Path) -> str:
    muxer = VIDEO_SUFFIXES.get(path.suffix.lower())
    if muxer is None:
        raise InputError(
            f"Cannot write video as {path.suffix!r} ({str(path)!r}).",
            "The output format is chosen from the file suffix.",
            "Use .mp4, .mov or .mkv, or a folder path (no suffix) for PNG frames.",
        )
    return muxer


def _require_audio(audio_path: str | Path) -> Path:
    from vexpress_cli.media.audio import probe_audio

    return probe_audio(audio_path).path


def _commit(temp: Path, path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:  # appeared while we were encoding
        raise InputError(
            f"The output file {str(path)!r} already exists.",
            "It was created by something else while this video was being written.",
            "Pass --overwrite to replace it, or choose another name.",
        )
    os.replace(temp, path)


class PngFolderWriter(_AtomicWriter):
    """Write frames as ``frame_000001.png``, ``frame_000002.png``, ... into a folder.

    Same interface as :class:`VideoWriter`. Frames go into a hidden
    ``.<name>.partial`` folder next to ``path`` that is renamed on success.
    With ``audio_path`` (and ``fps``) the audio is saved as ``audio.wav`` in
    the folder, cut to the frames' duration, for editors. ``overwrite=True``
    only replaces a folder that looks like an earlier output (frame PNGs and
    audio.wav), never an arbitrary one.
    """

    def __init__(
        self,
        path: str | Path,
        overwrite: bool = False,
        *,
        fps: Fraction | float | int | str | None = None,
        width: int | None = None,
        height: int | None = None,
        audio_path: str | Path | None = None,
    ):
        self.path = Path(path).expanduser().absolute()
        self.fps = None if fps is None else as_fps_fraction(fps)
        self.width, self.height = (width, height) if width and height else (None, None)
        self.audio_path = None if audio_path is None else _require_audio(audio_path)
        self.overwrite = overwrite
        self.frames_written = 0
        self._closed = False
        _check_png_target(self.path, overwrite)
        ensure_writable_folder(self.path.parent)
        self._temp = self.path.with_name(f".{self.path.name}.partial")
        shutil.rmtree(self._temp, ignore_errors=True)  # a leftover of a killed run
        self._temp.mkdir()

    def write(self, frames: Any) -> None:
        if self._closed:
            raise RuntimeError("write() on a closed PngFolderWriter")
        batch = _frames_array(frames, self.width, self.height)
        for frame in batch:
            self.frames_written += 1
            target = self._temp / f"frame_{self.frames_written:06d}.png"
            if not cv2.imwrite(str(target), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise VExpressError(
                    f"Could not write {str(target)!r}.",
                    "OpenCV failed to save the PNG.",
                    "Check free disk space.",
                )

    def close(self, before_commit: Callable[[Path], None] | None = None) -> None:
        """Write the audio and rename the folder into place (``before_commit`` as for :class:`VideoWriter`)."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise VExpressError(
                    f"No frames were written to {str(self.path)!r}.",
                    "The frame folder would be empty.",
                    "Check that the input produced frames.",
                )
            if self.audio_path is not None:
                self._write_audio()
            _check_png_target(self.path, self.overwrite)
            if before_commit is not None:
                before_commit(self._temp)
            if self.path.exists():
                shutil.rmtree(self.path)
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _write_audio(self) -> None:
        limit = [] if self.fps is None else ["-t", f"{float(self.frames_written / self.fps):.6f}"]
        run_ffmpeg(
            ["-y", "-i", str(self.audio_path), "-map", "0:a:0", *limit,
             "-c:a", "pcm_s16le", "-f", "wav", str(self._temp / "audio.wav")],
            what=f"Could not save the audio next to the frames in {str(self.path)!r}.",
            fix="Check the audio file, e.g. by converting it to WAV first.",
        )  # fmt: skip

    def abort(self) -> None:
        if self._closed:
            return
        shutil.rmtree(self._temp, ignore_errors=True)
        self._closed = True



def _check_png_target(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not overwrite:
        raise InputError(
            f"The output folder {str(path)!r} already exists.",
            "Existing outputs are never replaced silently.",
            "Pass --overwrite to replace it, or choose another name.",
        )
    if not path.is_dir() or not _looks_like_frame_folder(path):
        raise InputError(
            f"Will not replace {str(path)!r} with a frame folder.",
            "It is a file, or a folder holding more than frame_*.png files and audio.wav.",
            "Choose another output folder name; nothing there was changed.",
        )


def _looks_like_frame_folder(path: Path) -> bool:
    return all(
        entry.is_file()
        and (entry.name == "audio.wav" or (entry.name.startswith("frame_") and entry.suffix == ".png"))
        for entry in path.iterdir()
    )


def open_video_writer(
    path: str | Path,
    fps: Fraction | float | int | str,
    width: int,
    height: int,
    audio_path: str | Path | None = None,
    overwrite: bool = False,
    crf: int = 18,
) -> VideoWriter | PngFolderWriter:
    """A :class:`PngFolderWriter` for a path without suffix or ending in '/', else a :class:`VideoWriter`.

    Video suffixes: .mp4, .mov, .mkv; anything else raises InputError.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or not Path(text).suffix:
        return PngFolderWriter(
            text, overwrite, fps=fps, width=width, height=height, audio_path=audio_path
        )
    return VideoWriter(text, fps, width, height, audio_path=audio_path, overwrite=overwrite, crf=crf)
