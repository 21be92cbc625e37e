"""Running the bundled ffmpeg binary and reading what it says about a file.

There is no ffprobe here, so :func:`probe` parses the stream summary that
``ffmpeg -i FILE`` prints on stderr, and :func:`video_packet_timing` lists the
video packets (stream copy, no decoding) to get exact frame counts and rates.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.input_files import require_regular_file
from vexpress_cli.interrupts import signals_deferred
from vexpress_cli.outputs import file_size_limit_error, hit_file_size_limit
from vexpress_cli.outputs.write_failures import DiskFullError, disk_full_fix, ffmpeg_said_disk_full

FFMPEG_ENV = "IMAGEIO_FFMPEG_EXE"  # imageio-ffmpeg runs this binary instead of its own when set


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg (or the one $IMAGEIO_FFMPEG_EXE names)."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as error:  # imageio raises RuntimeError, a broken install anything
        raise VExpressError(
            "The bundled ffmpeg binary is missing.",
            f"imageio-ffmpeg could not provide it ({error}).",
            "Reinstall it: pip install --force-reinstall imageio-ffmpeg",
        ) from None
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise ffmpeg_start_error(exe, "it is not an executable file")
    return exe


def ffmpeg_start_error(exe: str, reason: str) -> VExpressError:
    """The error for an ffmpeg binary that cannot be started (``reason`` says why)."""
    if os.environ.get(FFMPEG_ENV):
        return VExpressError(
            f"The ffmpeg that ${FFMPEG_ENV} names ({exe}) cannot be run: {reason}.",
            f"imageio-ffmpeg uses ${FFMPEG_ENV} instead of its bundled ffmpeg, and vexpress runs every "
            "decode and encode through it.",
            f"Unset it (`unset {FFMPEG_ENV}`) to use the bundled ffmpeg, or point it at an ffmpeg executable.",
        )
    return VExpressError(
        f"The bundled ffmpeg ({exe}) cannot be run: {reason}.",
        "vexpress runs every decode and encode through the ffmpeg binary that imageio-ffmpeg ships.",
        "Reinstall it: pip install --force-reinstall imageio-ffmpeg",
    )


def own_process_group() -> dict:
    """Popen arguments that start ffmpeg in a process group of its own when this process does not take Ctrl-C
    as KeyboardInterrupt (it ignores SIGINT, or has its own handler: a background job, a program that embeds
    vexpress, a batch worker). The terminal's Ctrl-C killed ffmpeg there, and the job failed as a broken
    encode. Otherwise ffmpeg stays in the terminal's group, so a kill of the whole group reaches it too."""
    from vexpress_cli.interrupts import ctrl_c_raises

    if os.name == "posix" and not ctrl_c_raises():
        return {"process_group": 0}
    return {}


def start_ffmpeg(command: list[str], **popen_arguments) -> subprocess.Popen:
    """``subprocess.Popen(command)`` (see :func:`own_process_group`); an ffmpeg that cannot be started becomes a
    VExpressError. (An executable file can still fail to start: the wrong platform's binary, a missing loader.)
    """
    try:
        return subprocess.Popen(command, **own_process_group(), **popen_arguments)
    except OSError as error:
        raise ffmpeg_start_error(command[0], error.strerror or str(error)) from None


def _run(command: list[str]) -> subprocess.CompletedProcess:
    """``subprocess.run(command)`` capturing both outputs, with the errors of :func:`start_ffmpeg`."""
    try:
        return subprocess.run(command, capture_output=True, **own_process_group())
    except OSError as error:
        raise ffmpeg_start_error(command[0], error.strerror or str(error)) from None


# What ffmpeg wraps a reason in: a "[in#0 @ 0x55...]" context prefix, then a line repeating the input's path
# (removed whole) or "Error opening input(s): " before the reason itself (which ffmpeg 7 then says twice).
_NOISE = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\] )?"
                    r"(?:Error opening input file .*|Error opening input(?: files?)?: )?")


def stderr_tail(text: str | bytes, lines: int = 6) -> str:
    """The last few distinct non-empty lines of ffmpeg's stderr, without its wrapping, for an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    kept: list[str] = []
    for line in text.splitlines():
        reason = _NOISE.sub("", line.strip(), count=1).rstrip(".")
        if reason and reason not in kept:
            kept.append(reason)
    return "; ".join(kept[-lines:]) or "(ffmpeg printed nothing)"


def ffmpeg_command(*args: str) -> list[str]:
    """An ffmpeg argument list: quiet, never reading the terminal."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]


def run_ffmpeg(args: list[str], *, what: str, fix: str = "") -> bytes:
    """Run ffmpeg with ``args`` and return its stdout; a failure becomes a VExpressError.

    The last argument is the output; ffmpeg killed by the file-size limit (``ulimit -f``)
    while writing it is reported as such.
    """
    process = None
    try:
        with signals_deferred():  # no signal between ffmpeg starting and `process` holding it
            process = start_ffmpeg(ffmpeg_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = process.communicate()
    finally:
        if process is not None:
            stop_process(process)  # after an exception: before the caller removes the output
    if hit_file_size_limit(process.returncode):
        raise file_size_limit_error(args[-1])
    if process.returncode != 0:
        if ffmpeg_said_disk_full(stderr):  # not the input's fault, whatever ``fix`` says
            # The output is a temp name: its folder means more.
            raise DiskFullError(what, f"ffmpeg said: {stderr_tail(stderr)}.", disk_full_fix(Path(args[-1]).parent))
        raise VExpressError(what, f"ffmpeg said: {stderr_tail(stderr)}.", fix)
    return stdout


EXPECTED_MEDIA = {
    "audio": "a speech recording (mp3, wav, m4a, flac, ogg) or a video with sound",
    "video": "a video file (mp4, mov, mkv, avi, webm)",
}


def require_file(path: str | Path, kind: str) -> Path:
    """``path`` as an absolute Path, or an InputError unless it is a readable regular file.

    Absolute paths also keep ffmpeg from reading a name like ``-x.mp3`` as an
    option or ``http:...`` as a protocol.
    """
    expected = EXPECTED_MEDIA.get(kind, "an audio or video file")
    return require_regular_file(path, f"{kind} file", expected).resolve()


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a media file as ffmpeg describes it."""

    index: int
    kind: str  # "video", "audio", "subtitle", "data", "attachment"
    codec: str
    details: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    sample_rate: int | None = None
    channel_layout: str | None = None
    attached_picture: bool = False  # cover art inside an audio file, not a video
    rotation: int = 0  # degrees from the display matrix; ffmpeg auto-rotates when decoding


@dataclass(frozen=True)
class Probe:
    """What ``ffmpeg -i`` reports about a file."""

    path: Path
    demuxer: str  # e.g. "mp3" or "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)

    @property
    def container(self) -> str:
        """A short container name: the demuxer alias that matches the suffix, else the first."""
        names = self.demuxer.split(",")
        suffix = self.path.suffix.lower().lstrip(".")
        return suffix if suffix in names else names[0]

    @property
    def video(self) -> StreamInfo | None:
        """The first real video stream (cover art is skipped)."""
        return next(
            (s for s in self.streams if s.kind == "video" and not s.attached_picture), None
        )

    @property
    def audio(self) -> StreamInfo | None:
        return next((s for s in self.streams if s.kind == "audio"), None)


_INPUT_RE = re.compile(r"^Input #0, (?P<demuxer>[^ ]+), from ", re.M)
_DURATION_RE = re.compile(r"^\s*Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)", re.M)
_STREAM_RE = re.compile(
    r"^\s*Stream #0:(?P<index>\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: "
    r"(?P<kind>Video|Audio|Subtitle|Data|Attachment): (?P<details>.*)$"
)
_ROTATION_RE = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.I)
_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?:\s|$)")


def probe(path: str | Path, kind: str = "media") -> Probe:
    """Describe ``path`` (container, duration, streams); InputError if ffmpeg cannot open it."""
    path = require_file(path, kind)
    result = _run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)])
    text = result.stderr.decode("utf-8", errors="replace")
    match = _INPUT_RE.search(text)
    if match is None:
        raise InputError(
            f"Cannot read the {kind} file {str(path)!r}.",
            f"ffmpeg could not open it: {stderr_tail(text, 2)}.",
            "Check that the file is complete and really is audio/video; re-export or download it again.",
        )
    return Probe(path, match["demuxer"], _parse_duration(text), _parse_streams(text))


def _parse_duration(text: str) -> float | None:
    match = _DURATION_RE.search(text)
    if match is None or match.group(1) is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _parse_streams(text: str) -> tuple[StreamInfo, ...]:
    streams: list[StreamInfo] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = _STREAM_RE.match(line)
        if match is None:
            continue
        details = tuple(split_top_level(match["details"]))
        rotation = _rotation_after(lines[number + 1 :])
        streams.append(
            _stream_from_details(int(match["index"]), match["kind"].lower(), details, rotation)
        )
    return tuple(streams)


def _rotation_after(following: list[str]) -> int:
    """Rotation from the side data printed below a stream line, up to the next stream."""
    for line in following:
        if _STREAM_RE.match(line) or line.startswith(("Input #", "Output #", "At least")):
            return 0
        match = _ROTATION_RE.search(line)
        if match:
            return round(float(match.group(1))) % 360
    return 0


def _stream_from_details(index: int, kind: str, details: tuple[str, ...], rotation: int) -> StreamInfo:
    codec = details[0].split()[0] if details and details[0] else "unknown"
    info = dict(index=index, kind=kind, codec=codec, details=details)
    if kind == "video":
        info["attached_picture"] = "(attached pic)" in details[-1] if details else False
        info["rotation"] = rotation
        if len(details) > 1 and not _SIZE_RE.match(details[1]):
            info["pix_fmt"] = details[1].split("(")[0].strip()
        for part in details[1:]:
            size = _SIZE_RE.match(part)
            if size:
                info["width"], info["height"] = int(size.group(1)), int(size.group(2))
                break
    elif kind == "audio":
        for part in details[1:]:
            if part.endswith(" Hz") and part[:-3].isdigit():
                info["sample_rate"] = int(part[:-3])
            elif "channel_layout" not in info and "sample_rate" in info:
                info["channel_layout"] = part
    return StreamInfo(**info)


def split_top_level(text: str) -> list[str]:
    """Split ffmpeg's comma-separated stream details, ignoring commas inside (...) or [...]."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


@dataclass(frozen=True)
class PacketTiming:
    """Timestamps of every packet of one stream, in units of ``time_base`` seconds."""

    time_base: Fraction
    count: int  # every packet, with or without a timestamp
    pts: tuple[int, ...]  # packets that have a timestamp
    durations: tuple[int, ...]  # same order as pts

    @property
    def cut(self) -> int:
        """Packets before the start of an mp4's edit list (a trim without re-encoding: ``-ss 5 -c copy``), which
        have negative timestamps: decoded, never shown."""
        return sum(value < 0 for value in self.pts) if any(value >= 0 for value in self.pts) else 0

    @property
    def duration(self) -> Fraction:
        """From the earliest timestamp shown to the end of the last frame, in seconds."""
        if not self.pts:
            return Fraction(0)
        shown = [value for value in self.pts if value >= 0] if self.cut else self.pts
        first, last = min(shown), max(shown)
        return (last + self.durations[self.pts.index(last)] - first) * self.time_base


def video_packet_timing(path: Path, stream_index: int) -> PacketTiming:
    """List the packets of one stream without decoding (``-c copy -f framecrc``).

    Fast even for long videos, and exact: a video packet holds one frame for
    the codecs this tool meets (H.264/HEVC/VP9/AV1/MPEG-4/ProRes in mp4/mov/mkv).
    """
    out = run_ffmpeg(
        ["-i", str(path), "-map", f"0:{stream_index}", "-c", "copy", "-f", "framecrc", "pipe:1"],
        what=f"Cannot read the video frames of {str(path)!r}.",
        fix="The file may be damaged; re-export or download it again.",
    ).decode("ascii", errors="replace")
    time_base, count = Fraction(1, 1), 0
    pts: list[int] = []
    durations: list[int] = []
    for line in out.splitlines():
        if line.startswith("#tb 0:"):
            time_base = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            count += 1
            _, dts, timestamp, duration = (int(value) for value in line.split(",")[:4])
            timestamp = timestamp if timestamp != _NO_TIMESTAMP else dts
            if timestamp != _NO_TIMESTAMP:
                pts.append(timestamp)
                durations.append(max(duration, 0))
    return PacketTiming(time_base, count, tuple(pts), tuple(durations))


_NO_TIMESTAMP = -(2**63)  # AV_NOPTS_VALUE, as framecrc prints a missing timestamp


def stop_process(process: subprocess.Popen) -> None:
    """Kill ``process`` if it still runs, reap it, and close its pipes (for finally blocks)."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:  # BrokenPipeError flushing what the dead process never read
                pass
