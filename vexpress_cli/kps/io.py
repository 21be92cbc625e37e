"""Read and write keypoint tracks (kps files). The design is in docs/kps-files.md.

Formats, picked by the file suffix:

``.safetensors`` (ours, preferred)
    One float32 tensor ``kps`` of shape ``[F, 3, 2]`` plus string metadata in
    the safetensors header: ``fps``, ``width``, ``height``, ``backend``, and
    for a cropped extraction ``crop`` (``x,y,w,h``) and ``source_size``
    (``WxH``, the video's own size). The
    file is self-describing, so no sidecar file can go missing or stale.
    Reading also accepts a file whose only tensor has another name, and any
    dtype (bfloat16 included).

``.pth`` / ``.pt``
    What we write: a bare float32 tensor ``[F, 3, 2]``, which the original
    V-Express ``inference.py`` also reads, in the 512x512 frame the original
    extracts at and every reader assumes for a file that records no size (a
    track of another size is rescaled to it). What we read, in addition: the
    original's own kps files, a pickled list of numpy ``[3, 2]`` float32
    arrays. These are loaded with ``torch.load(weights_only=True)`` and an
    allow-list of exactly the numpy globals needed to rebuild arrays, so a
    malicious pickle cannot run code; such files carry no metadata.

Points are (x, y) pixels of left eye, right eye and nose, in the frame size
the track was extracted at (``width`` x ``height``, 512x512 by default).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vexpress_cli.errors import InputError, described, parameter, short_repr
from vexpress_cli.file_types import KPS_PICKLE_SUFFIXES, KPS_SAFETENSORS_SUFFIX, KPS_SUFFIXES
from vexpress_cli.input_files import require_regular_file
from vexpress_cli.kps.limits import MAX_FRAME_SIDE, MAX_TRACK_FPS, MIN_TRACK_FPS
from vexpress_cli.kps.readers import KPS_TENSOR_NAME, read_safetensors, read_torch_file
from vexpress_cli.outputs import atomic_output, check_output, file_size_limit_error, hit_file_size_limit

# The frame size of a kps file that records none: the original extracts at 512x512.
ASSUMED_SIZE = 512
# The frame rate of a kps file that records none and comes with no video: the original samples' rate.
ASSUMED_FPS = 25.0
FORMAT_NAME = "vexpress-kps"
FORMAT_VERSION = "1"


@dataclass
class KpsTrack:
    """A keypoint track: ``points`` is float32 ``[F, 3, 2]`` (left eye, right eye, nose; x, y).

    ``fps``, ``width``, ``height`` (the frame size the points refer to) and
    ``backend`` (the face detector that produced them) are ``None`` when the
    file did not record them, as with the original V-Express kps files.
    ``crop`` is the box ``(x, y, w, h)`` cut from each video frame (of ``source_size``,
    the video's width and height) before the points were found; None: the whole frame.
    """

    points: np.ndarray
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    backend: str | None = None
    source: Path | None = field(default=None, compare=False)
    crop: tuple[int, int, int, int] | None = None
    source_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        if self.fps is not None and not (math.isfinite(self.fps) and MIN_TRACK_FPS <= self.fps <= MAX_TRACK_FPS):
            # Caught here, before anything is written: a track saved with fps inf cannot be read back.
            raise InputError(
                f"A kps track's frame rate must be from {MIN_TRACK_FPS:g} to {MAX_TRACK_FPS:g} fps, not {self.fps}.",
                why="The fps says how many of the track's frames make one second of video.",
                fix=f"Give a frame rate in that range, such as 25 or 30 ({parameter('fps', '25')}).",
            )

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    def in_frame(self, width: int, height: int) -> tuple["KpsTrack", str | None]:
        """The track in a ``width`` x ``height`` frame, and a note saying what that took (None: nothing).

        A file that records no frame size (the original's kps.pth) is taken as made at
        512x512, the size the original extracts at.
        """
        known = self if self.width and self.height else replace(self, width=ASSUMED_SIZE, height=ASSUMED_SIZE)
        rescaled = known.rescaled_to(width, height)
        if rescaled is known:
            return rescaled, None
        made_at = (f"was extracted at {self.width}x{self.height}" if known is self
                   else f"records no frame size; assumed {ASSUMED_SIZE}x{ASSUMED_SIZE} (the original's extraction size)")
        return rescaled, f"The kps file {made_at}; its points are rescaled to {width}x{height}."

    def rescaled_to(self, width: int, height: int) -> "KpsTrack":
        """The track in a ``width`` x ``height`` frame (unchanged when its own size is unknown or equal)."""
        if not (self.width and self.height) or (self.width, self.height) == (width, height):
            return self
        scale = np.array([width / self.width, height / self.height], dtype=np.float32)
        return replace(self, points=self.points * scale, width=width, height=height)


def require_kps_file(path: str | Path) -> Path:
    """:func:`~vexpress_cli.input_files.require_regular_file` for a kps file, in the words :func:`load_kps` uses."""
    return require_regular_file(path, "kps file", "a .safetensors or .pth kps file",
                                missing_fix="Check the spelling, or create the track with `vexpress extract VIDEO`.")


def load_kps(path: str | Path) -> KpsTrack:
    """Load a kps file (``.safetensors``, ``.pth`` or ``.pt``) and check its contents.

    Raises InputError for a missing or unreadable file, an unknown suffix, a
    pickle holding anything but arrays, a wrong shape, no frames, or NaN/inf.
    """
    path = require_kps_file(path)
    suffix = path.suffix.lower()
    if suffix == KPS_SAFETENSORS_SUFFIX:
        points, metadata = read_safetensors(path)
    elif suffix in KPS_PICKLE_SUFFIXES:
        points, metadata = read_torch_file(path), {}
    else:
        raise InputError(
            f"Cannot read kps file {path}: unknown file type '{path.suffix or '(none)'}'.",
            why=f"kps files are {', '.join(KPS_SUFFIXES)}.",
            fix="Pass a file written by `vexpress extract` or `vexpress retarget`, or an original V-Express kps.pth.",
        )
    points = validate_track_points(points, origin=str(path))
    return KpsTrack(points=points, source=path, **_parse_metadata(metadata, path))


def save_kps(path: str | Path, track: KpsTrack, overwrite: bool = True) -> Path:
    """Write ``track`` to ``path`` (``.safetensors`` with metadata, or ``.pth``/``.pt`` as a bare tensor).

    Written through :func:`vexpress_cli.outputs.atomic_output`: an interrupted save never
    leaves a half-written file. An existing file is replaced (as ``torch.save`` would) unless
    ``overwrite=False``. A bad suffix, a folder that cannot be created or written, or a
    failing write raises InputError.
    """
    validate_track_points(track.points, origin="the track to save")  # before any folder is made
    path = check_output(path, overwrite, "kps", folder_made_later=True)
    data = kps_file_bytes(path.suffix, track)
    try:
        with atomic_output(path, overwrite) as temporary:
            temporary.write_bytes(data)
    except OSError as error:  # disk full, path vanished, a folder in the way, ...
        raise kps_write_error(path, error) from None
    return path


def kps_write_error(path: Path, error: OSError) -> InputError:
    """The InputError for an OSError while writing the kps file ``path`` (or its temporary file)."""
    if hit_file_size_limit(error=error):
        return file_size_limit_error(path)
    return InputError(
        f"Cannot write the kps file {path}.",
        why=f"{error.strerror or error}.",
        fix="Choose an output path in a folder you can write to, with free space.",
    )


def write_kps(path: str | Path, track: KpsTrack) -> None:
    """Write ``track`` to ``path`` as it is, in the format its suffix names.

    No checks on the path and no temporary name: for writing into the temporary path of
    :func:`vexpress_cli.outputs.atomic_outputs` (the kps file and the audio of ``extract``).
    """
    Path(path).write_bytes(kps_file_bytes(Path(path).suffix, track))


def kps_file_bytes(suffix: str, track: KpsTrack) -> bytes:
    """The contents of a kps file with ``suffix``; InputError for bad points."""
    points = validate_track_points(track.points, origin="the track to save")
    if suffix.lower() == KPS_SAFETENSORS_SUFFIX:
        from safetensors.numpy import save

        return save({KPS_TENSOR_NAME: points}, metadata=_metadata_of(track))
    import torch

    if track.width and track.height:  # no size is recorded: the points go in the frame readers will assume
        points = replace(track, points=points).rescaled_to(ASSUMED_SIZE, ASSUMED_SIZE).points
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(points.copy()), buffer)
    return buffer.getvalue()


def validate_track_points(points, origin: str) -> np.ndarray:
    """Return ``points`` as float32 ``[F, 3, 2]``; a single ``[3, 2]`` frame becomes one frame."""
    try:
        array = np.asarray(points)
        if np.iscomplexobj(array):
            raise TypeError("they are complex numbers")
        array = array.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as error:  # OverflowError: an int past float64's range
        raise InputError(
            f"The keypoints in {origin} are not a numeric array.",
            why=f"They could not be read as real numbers ({error}).",
            fix="A kps track is a float array of shape [frames, 3, 2].",
        ) from None
    if array.shape == (3, 2):
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (3, 2):
        hint = (
            " Keep the first three points (eyes, nose) of each frame."
            if array.ndim == 3 and array.shape[2] == 2 and array.shape[1] > 3
            else ""
        )
        raise InputError(
            f"The keypoints in {origin} have shape {list(array.shape)}, not [frames, 3, 2].",
            why="Each frame needs exactly three (x, y) points: left eye, right eye, nose.",
            fix=f"Re-extract the track with `vexpress extract`.{hint}",
        )
    if array.shape[0] == 0:
        raise InputError(
            f"The kps track in {origin} has no frames.",
            why="A video needs at least one keypoint frame to follow.",
            fix="Re-extract the track from a video in which a face is visible.",
        )
    with np.errstate(over="ignore"):
        single = array.astype(np.float32)  # a float64 beyond 3.4e38 becomes infinite here
    if not np.isfinite(single).all():
        bad_frame = int(np.argwhere(~np.isfinite(single))[0][0])
        overflow = bool(np.isfinite(array).all())
        what = "values too large for float32" if overflow else "NaN or infinite values"
        raise InputError(
            f"The kps track in {origin} holds {what} (first in frame {bad_frame}).",
            why="Keypoints must be finite pixel positions.",
            fix="Re-extract the track, or fill the frames where no face was found.",
        )
    return single


def reference_kps_from_text(text: str, width: int, height: int) -> np.ndarray:
    """Reference keypoints given on the command line: a kps file (its first frame, in a
    ``width`` x ``height`` frame) or ``"x,y;x,y;x,y"``."""
    candidate = reference_kps_file(text)
    if candidate is not None:
        return load_kps(candidate).in_frame(width, height)[0].points[0]
    return parse_kps_points(text)


def reference_kps_points(reference_kps, width: int, height: int) -> np.ndarray:
    """``reference_kps`` as a job takes it: a kps file or ``"x,y;x,y;x,y"`` (:func:`reference_kps_from_text`), or
    numbers (a list, tuple or array, checked for their ``[3, 2]`` shape later) as float32; InputError otherwise."""
    if isinstance(reference_kps, (str, Path)):
        return reference_kps_from_text(str(reference_kps), width, height)
    try:
        return np.asarray(reference_kps, dtype=np.float32)
    except (TypeError, ValueError):  # a dict, a set, a ragged list, text among the numbers
        raise InputError(f"{parameter('reference_kps')} is {described(reference_kps)}.",
                         "They are the portrait's left eye, right eye and nose: three x,y points in pixels.",
                         "Give them as numbers [[x, y], [x, y], [x, y]] (a list or a [3, 2] array), as text "
                         "\"x,y;x,y;x,y\", or as a kps file.") from None


def reference_kps_file(reference_kps) -> Path | None:
    """The kps file a ``reference_kps`` value names (a kps suffix, or an existing path), or None for points."""
    if not isinstance(reference_kps, (str, Path)):
        return None
    candidate = Path(reference_kps).expanduser()
    return candidate if candidate.suffix.lower() in KPS_SUFFIXES or candidate.exists() else None


def kps_points_text(points, spec: str = "g") -> str:
    """Three points as ``"x,y;x,y;x,y"``, what :func:`parse_kps_points` reads; ``spec`` formats each number
    (``"g"``: as short as exact, ``".1f"``: one decimal)."""
    return ";".join(f"{float(x):{spec}},{float(y):{spec}}" for x, y in np.asarray(points))


def parse_kps_points(text: str) -> np.ndarray:
    """Parse ``"x,y;x,y;x,y"`` (left eye; right eye; nose) into a float32 ``[3, 2]`` array of finite numbers."""
    # nan and inf are read too, so that they are refused by name rather than as a wrong layout.
    number = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity))\s*"
    pairs = [part for part in text.strip().split(";")]
    values = [re.fullmatch(number + "," + number, pair, re.IGNORECASE) for pair in pairs]
    if len(pairs) != 3 or not all(values):
        raise InputError(
            f"Cannot read keypoints from '{text}'.",
            why="Expected three x,y pairs separated by semicolons: left eye; right eye; nose.",
            fix='Write them like "185.5,218.6;278.9,215.4;224.6,271.4", or pass a kps file.',
        )
    written = [value for match in values for value in match.groups()]
    with np.errstate(over="ignore"):  # past float32's range (1e39) is inf: refused below like inf itself
        points = np.array([float(value) for value in written], dtype=np.float64).astype(np.float32)
    _check_finite_points(text, [value for value, point in zip(written, points) if not np.isfinite(point)])
    return points.reshape(3, 2)


def _check_finite_points(text: str, bad: list[str]) -> None:
    if bad:
        raise InputError(
            f"The keypoints '{text}' hold '{bad[0]}', which is not a finite number.",
            why="Every coordinate is a pixel position, a finite 32-bit number: nan, inf and values beyond "
            "3.4e38 are not.",
            fix='Write them with ordinary numbers, like "185.5,218.6;278.9,215.4;224.6,271.4", or pass a kps file.',
        )


def _metadata_of(track: KpsTrack) -> dict[str, str]:
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    if track.fps is not None:
        metadata["fps"] = repr(float(track.fps))
    if track.width is not None:
        metadata["width"] = str(int(track.width))
    if track.height is not None:
        metadata["height"] = str(int(track.height))
    if track.backend is not None:
        metadata["backend"] = str(track.backend)
    if track.crop is not None:
        metadata["crop"] = ",".join(str(int(value)) for value in track.crop)
    if track.source_size is not None:
        metadata["source_size"] = "x".join(str(int(value)) for value in track.source_size)
    return metadata


# A recorded crop box or source frame, in pixels: past any video's side (ffmpeg's codecs stop at 65,535; extract
# reads at most 8K's pixel count, however its sides are shaped), a crop reaching past the frame's edges included.
MAX_RECORDED_PIXELS = 1 << 16
MAX_BACKEND_NAME = 64  # characters of the recorded face detector's name


def _parse_metadata(metadata: dict[str, str], path: Path) -> dict:
    _check_format_version(metadata, path)
    parsed: dict = {}
    try:
        if "fps" in metadata:
            parsed["fps"] = _parsed_value(metadata, "fps", float)
            if not (math.isfinite(parsed["fps"]) and MIN_TRACK_FPS <= parsed["fps"] <= MAX_TRACK_FPS):
                raise ValueError(f"fps {metadata['fps']}")
        for key in ("width", "height"):
            if key in metadata:
                parsed[key] = _parsed_value(metadata, key, int)
                if not 0 < parsed[key] <= MAX_FRAME_SIDE:
                    raise ValueError(f"{key} {metadata[key]}")
        for key, separator, count in (("crop", ",", 4), ("source_size", "x", 2)):
            if key in metadata:
                parsed[key] = _parsed_value(metadata, key, lambda text, sep=separator: tuple(map(int, text.split(sep))))
                if (len(parsed[key]) != count or min(parsed[key][-2:]) <= 0
                        or max(map(abs, parsed[key])) > MAX_RECORDED_PIXELS):
                    raise ValueError(f"{key} {metadata[key]}")
        backend = metadata.get("backend", "")
        if not (backend.isprintable() and len(backend) <= MAX_BACKEND_NAME):
            raise ValueError(f"backend {short_repr(backend)}")
    except ValueError as error:
        raise InputError(
            f"The kps file {path} has invalid metadata ({error}).",
            why=f"fps must be a number from {MIN_TRACK_FPS:g} to {MAX_TRACK_FPS:g}, width/height whole numbers from 1 "
            f"to {MAX_FRAME_SIDE}, crop x,y,w,h and source_size WxH with positive sizes within "
            f"{MAX_RECORDED_PIXELS:,} pixels, backend a name of at most {MAX_BACKEND_NAME} printable characters.",
            fix="Re-create the file with `vexpress extract` or `vexpress retarget`.",
        ) from None
    if "backend" in metadata:
        parsed["backend"] = metadata["backend"]
    return parsed


def _parsed_value(metadata: dict[str, str], key: str, parse):
    """``parse`` of one metadata value; a ValueError naming the key, not Python's "invalid literal" text."""
    try:
        return parse(_ascii(metadata[key]))
    except ValueError:
        raise ValueError(f"{key} {metadata[key]!r}") from None


def _check_format_version(metadata: dict[str, str], path: Path) -> None:
    """A file of this format from a later version may mean its points or metadata differently: refused."""
    version = metadata.get("format_version", FORMAT_VERSION)
    if metadata.get("format") == FORMAT_NAME and version != FORMAT_VERSION:
        raise InputError(f"The kps file {path} is of {FORMAT_NAME} format version {version!r}.",
                         why=f"This vexpress reads version {FORMAT_VERSION}; another version may mean its points "
                         "or metadata differently.",
                         fix="Upgrade vexpress, or re-create the file with this one (`vexpress extract`).")


def _ascii(text: str) -> str:
    """``text`` if it is ASCII: Python's int() and float() also read other scripts' digits ("٥١٢" is 512)."""
    if not text.isascii():
        raise ValueError(repr(text))
    return text
