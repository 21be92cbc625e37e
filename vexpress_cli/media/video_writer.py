"""Video out: :class:`VideoWriter` (H.264 + AAC mp4/mov/mkv) and :class:`PngFolderWriter` (numbered PNGs).

Both take frames as they come and write through :class:`vexpress_cli.outputs.AtomicOutput`:
nothing appears at the output path until everything succeeded, an exception (Ctrl-C and
termination signals included) leaves nothing behind, and a run never replaces an output
that another run wrote meanwhile unless overwriting was allowed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from vexpress_cli.errors import VExpressError
from vexpress_cli.file_types import FRAME_FOLDER_AUDIO, FRAME_SUFFIX, VIDEO_OUTPUT_MUXERS
from vexpress_cli.interrupts import signals_deferred
from vexpress_cli.media.encoding import VideoEncoding
from vexpress_cli.media.ffmpeg import ffmpeg_command, run_ffmpeg, start_ffmpeg, stderr_tail, stop_process
from vexpress_cli.media.frames import as_fps_fraction, check_frame_size, frames_array
from vexpress_cli.outputs import (
    Transaction,
    atomic_output,
    check_output,
    file_size_limit_error,
    hit_file_size_limit,
    output_kind,
)
from vexpress_cli.outputs.write_failures import disk_full_error, ffmpeg_said_disk_full


class _FrameWriter(Transaction):
    """An output written frame by frame: ``with`` gives the writer itself, which started writing when made.

    ``commit(before_commit)`` calls ``before_commit(finished_temp_path)`` just before the output is
    moved into place (e.g. to write a run record describing it); if it raises, nothing is moved.
    A failure discards what was written (:meth:`Transaction.discard_after`: a full disk is a DiskFullError
    naming ``path``).
    """

    path: Path

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def start(self) -> _FrameWriter:
        return self


class VideoWriter(_FrameWriter):
    """Encode RGB frames to H.264 or H.265 (yuv420p, BT.709) + AAC in an mp4/mov/mkv file, as they come.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=Fraction(30000, 1001), width=512, height=512,
                         audio_path="speech.mp3") as writer:
            for batch in batches:
                writer.write(batch)

    The video lasts exactly the frames written; a longer audio track is cut to
    that length, a shorter one simply ends early. An odd width or height is
    padded with one black row/column (yuv420p needs even sizes); see
    ``output_size``. Nothing appears at ``path`` until :meth:`commit` succeeds;
    an exception inside the ``with`` block (Ctrl+C included) kills ffmpeg and
    deletes the temp files. ``encoding`` (a :class:`~vexpress_cli.media.encoding.VideoEncoding`)
    chooses the codec, CRF, preset and audio bitrate; without it, libx264 medium at CRF 18.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | float | int | str,
        width: int,
        height: int,
        audio_path: str | Path | None = None,
        overwrite: bool = False,
        encoding: VideoEncoding | None = None,
    ):
        self.path = check_output(path, overwrite, "video_file", folder_made_later=True)
        self.encoding = encoding or VideoEncoding()
        self.muxer = VIDEO_OUTPUT_MUXERS[self.path.suffix.lower()]
        self.fps = as_fps_fraction(fps)
        self.width, self.height = check_frame_size((width, height))
        self.output_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.audio_path = None if audio_path is None else _require_audio(audio_path)
        self.overwrite = overwrite
        self.frames_written = 0
        self._closed = False
        self._output = atomic_output(self.path, overwrite)
        try:
            self._temp = self._output.start()
            self._video_temp = self._output.scratch("video") if self.audio_path else self._temp
            self._stderr = tempfile.TemporaryFile()
            with signals_deferred():  # no signal between ffmpeg starting and self._process holding it
                self._process = start_ffmpeg(self._encode_command(), stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException as error:
            if hasattr(self, "_process"):
                stop_process(self._process)  # before the temp goes: ffmpeg would create it again
            self._output.discard_after(error)
            raise

    def _encode_command(self) -> list[str]:
        fps = f"{self.fps.numerator}/{self.fps.denominator}"
        filters = "pad=ceil(iw/2)*2:ceil(ih/2)*2," if self.output_size != (self.width, self.height) else ""
        filters += (
            "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
            "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
        )
        return ffmpeg_command(
            "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", fps, "-i", "pipe:0",
            "-vf", filters, *self.encoding.video_arguments(self.muxer),
            "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
            "-color_trc", "bt709", "-color_range", "tv", "-r", fps,
            *self._container_flags(), "-f", self.muxer, str(self._video_temp),
        )  # fmt: skip

    def _container_flags(self) -> list[str]:
        return ["-movflags", "+faststart"] if self.muxer in ("mp4", "mov") else []

    def write(self, frames: Any) -> None:
        """Encode one RGB uint8 frame (HxWx3) or a batch (NxHxWx3), numpy or torch."""
        if self._closed:
            raise RuntimeError("write() on a finished VideoWriter")
        batch = frames_array(frames, self.width, self.height)
        try:
            self._process.stdin.write(memoryview(batch).cast("B"))
        except (BrokenPipeError, OSError):
            self._process.wait()
            error = self._ffmpeg_error("ffmpeg stopped while encoding the video.")
            self.discard_after(error)
            raise error from None
        self.frames_written += len(batch)

    def commit(self, before_commit: Callable[[Path], None] | None = None) -> None:
        """Finish encoding, add the audio, and move the file to ``path``."""
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
            self._output.commit()
        except BaseException as error:
            self.discard_after(error)
            raise
        self._finish()

    def _mux_audio(self) -> None:
        duration = Fraction(self.frames_written) / self.fps
        run_ffmpeg(
            ["-y", "-i", str(self._video_temp), "-i", str(self.audio_path),
             "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", FROM_FIRST_SAMPLE,
             *self.encoding.audio_arguments(),
             "-t", f"{float(duration):.6f}", *self._container_flags(), "-f", self.muxer, str(self._temp)],
            what=f"Could not add the audio track to {str(self.path)!r}.",
            fix="Check the audio file, e.g. by converting it to WAV first.",
        )  # fmt: skip
        self._video_temp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Stop ffmpeg and delete every temp file; ``path`` is left untouched."""
        if self._closed:
            return
        stop_process(self._process)
        self._output.discard()
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._stderr.close()

    def _ffmpeg_error(self, what: str) -> VExpressError:
        if hit_file_size_limit(self._process.returncode):
            return file_size_limit_error(self.path)
        self._stderr.seek(0)
        stderr = self._stderr.read()
        if ffmpeg_said_disk_full(stderr):
            return disk_full_error(self.path)
        return VExpressError(
            what,
            f"ffmpeg said: {stderr_tail(stderr)}.",
            "Check free disk space; if that is fine, report ffmpeg's message as a bug.",
        )


# The speech from its first sample, at the video's start, as the frames were made for it (load_audio reads it so):
# a speech video whose sound starts after its picture kept that delay, the lips leading the sound.
FROM_FIRST_SAMPLE = "asetpts=PTS-STARTPTS"


def _require_audio(audio_path: str | Path) -> Path:
    from vexpress_cli.media.audio import probe_audio

    return probe_audio(audio_path).path


class PngFolderWriter(_FrameWriter):
    """Write frames as ``frame_000001.png``, ``frame_000002.png``, ... into a folder.

    Same interface as :class:`VideoWriter`. Frames go into a temporary folder next
    to ``path`` that is renamed on success. With ``audio_path`` (and ``fps``) the
    audio is saved as ``audio.wav`` in the folder, cut to the frames' duration,
    for editors. ``overwrite=True`` only replaces a folder that looks like an
    earlier output (frame PNGs and audio.wav), never an arbitrary one.
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
        self.path = check_output(path, overwrite, "frames", folder_made_later=True)
        self.fps = None if fps is None else as_fps_fraction(fps)
        self.width, self.height = (width, height) if width and height else (None, None)
        self.audio_path = None if audio_path is None else _require_audio(audio_path)
        self.overwrite = overwrite
        self.frames_written = 0
        self._closed = False
        self._output = atomic_output(self.path, overwrite, folder=True)
        try:
            self._temp = self._output.start()
        except OSError as error:
            self._output.discard_after(error)
            raise

    def write(self, frames: Any) -> None:
        if self._closed:
            raise RuntimeError("write() on a finished PngFolderWriter")
        batch = frames_array(frames, self.width, self.height)
        for frame in batch:
            target = self._temp / f"frame_{self.frames_written + 1:06d}{FRAME_SUFFIX}"
            encoded, data = cv2.imencode(FRAME_SUFFIX, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if not encoded:
                raise VExpressError(
                    f"Could not encode frame {self.frames_written + 1} as PNG.",
                    "OpenCV's PNG encoder failed.",
                    "Report this as a bug in vexpress-cli, with the frame size.",
                )
            try:
                target.write_bytes(data)
            except OSError as error:
                self.discard_after(error)
                raise self._write_error(error) from None
            self.frames_written += 1

    def _write_error(self, error: OSError) -> VExpressError:
        if hit_file_size_limit(error=error):
            return file_size_limit_error(self.path)
        return VExpressError(
            f"Could not write frame {self.frames_written + 1} into {str(self.path)!r}.",
            f"{error.strerror or error}.",
            "Check that the output's folder is still there and writable.",
        )

    def commit(self, before_commit: Callable[[Path], None] | None = None) -> None:
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
            if self.overwrite:  # what is there now must still be an earlier frame output
                check_output(self.path, True, "frames")
            if before_commit is not None:
                before_commit(self._temp)
            self._output.commit()
        except BaseException as error:
            self.discard_after(error)
            raise
        self._closed = True

    def _write_audio(self) -> None:
        limit = [] if self.fps is None else ["-t", f"{float(self.frames_written / self.fps):.6f}"]
        run_ffmpeg(
            ["-y", "-i", str(self.audio_path), "-map", "0:a:0", "-af", FROM_FIRST_SAMPLE, *limit,
             "-c:a", "pcm_s16le", "-f", "wav", str(self._temp / FRAME_FOLDER_AUDIO)],
            what=f"Could not save the audio next to the frames in {str(self.path)!r}.",
            fix="Check the audio file, e.g. by converting it to WAV first.",
        )  # fmt: skip

    def discard(self) -> None:
        if self._closed:
            return
        self._output.discard()
        self._closed = True


def open_video_writer(
    path: str | Path,
    fps: Fraction | float | int | str,
    width: int,
    height: int,
    audio_path: str | Path | None = None,
    overwrite: bool = False,
    encoding: VideoEncoding | None = None,
) -> VideoWriter | PngFolderWriter:
    """A :class:`PngFolderWriter` for a path without suffix or ending in '/', else a :class:`VideoWriter`.

    Video suffixes: .mp4, .mov, .mkv; anything else raises InputError, and so does a name that
    is only a suffix (``.mp4``), which would otherwise become a hidden folder of frames.
    ``encoding`` applies to video files only: PNG frames are lossless.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or output_kind(text, "video") == "frames":
        return PngFolderWriter(text, overwrite, fps=fps, width=width, height=height, audio_path=audio_path)
    if Path(text).suffix.lower() not in VIDEO_OUTPUT_MUXERS:
        check_output(text, overwrite, "video")  # raises; unlike VideoWriter's, its fix offers a folder of frames
    return VideoWriter(text, fps, width, height, audio_path=audio_path, overwrite=overwrite, encoding=encoding)
