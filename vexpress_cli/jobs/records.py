"""Run records: ``<output>.json`` beside every output, saying exactly how it was made.

A record holds the resolved settings and seed, every input file with its size and SHA-256, the strategy,
the model folder and its checkpoint files, the versions of vexpress, torch, diffusers and transformers,
the device and dtype, frames, fps, duration, the wall time of each stage, warnings and notes, and the
output's own size and SHA-256. ``Generator.run`` writes it for every generation, just before the
finished video is renamed into place, so an output never exists without the record that describes it;
a record whose output is missing or different (a run cut off between the two renames) describes nothing
and is replaced by the next run. The batch runner also records a job that failed (``status: failed``,
with the error paragraph) so that the next run retries it.

:meth:`RunRecord.differences` tells whether a record describes a job: same input contents, same
settings (the device and the dtype are the machine's, not the job's) and the same output file.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.errors import InputError, parameter, spell_parameters
from vexpress_cli.input_files import as_path
from vexpress_cli.jobs.model_identity import model_of, same_model_files
from vexpress_cli.kps.io import kps_points_text, reference_kps_file
from vexpress_cli.kps.retargeting import strategy_for
from vexpress_cli.progress import ProgressCallback, checked_callback

RECORD_FORMAT = "vexpress-run-record"
RECORD_VERSION = 1
# Settings that belong to the machine that ran a job, not to the job: they do not make two jobs differ
# (window_batch and compile change the speed, and the numbers by float noise only).
MACHINE_SETTINGS = ("device", "dtype", "window_batch", "compile")
# Settings newer than the first records, each with the value that does what vexpress did before it: a
# record that lacks one was made that way (so an upgrade redoes only the jobs whose output would change).
SETTINGS_BEFORE_THEY_EXISTED = {"crop": "none", "face_index": 0, "paste_back": False, "max_size": 0,
                                "codec": "auto", "crf": 18, "encoder_preset": "medium", "audio_bitrate": 192,
                                "scheduler": "ddim", "offload": "none"}
_HASH_CHUNK = 1 << 20


def record_path(output: str | Path) -> Path:
    """Where the record of ``output`` lives: ``talk.mp4`` -> ``talk.mp4.json`` (a frame folder ``f/`` -> ``f.json``)."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def file_facts(path: str | Path) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a file; of a frame folder, the hash covers every file's name and bytes
    (the folder's own files: frames are not in subfolders)."""
    path = Path(path).absolute()
    digest = hashlib.sha256()
    files = sorted(item for item in path.iterdir() if item.is_file()) if path.is_dir() else [path]
    size = 0
    for item in files:
        if path.is_dir():
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        with item.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return {"path": str(path), "size": size, "sha256": digest.hexdigest()}


def preset_text(preset: str | Path | None) -> str | None:
    """``preset`` as a record keeps it: a name, or the absolute path of its file (read from any folder)."""
    from vexpress_cli.settings.presets import looks_like_preset_path

    if preset is None:
        return None
    return str(Path(preset).expanduser().absolute()) if looks_like_preset_path(preset) else str(preset)


def reference_kps_text(reference_kps: Any) -> str | None:
    """``reference_kps`` as a record keeps it: an absolute kps file path, ``"x,y;x,y;x,y"``, or None."""
    if reference_kps is None:
        return None
    path = reference_kps_file(reference_kps)
    if path is not None:
        return str(path.absolute())
    if isinstance(reference_kps, str):
        return reference_kps
    return kps_points_text(reference_kps)


def input_files(reference_image: Path, audio: Path, kps: Path | None = None,
                reference_kps: Any = None) -> dict[str, dict[str, Any]]:
    """The facts of every input file of a job, by role."""
    roles = {"reference_image": reference_image, "audio": audio, "kps": kps,
             "reference_kps": reference_kps_file(reference_kps)}
    return {role: file_facts(path) for role, path in roles.items() if path is not None}


def comparable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a job what it is (without the machine's device and dtype)."""
    return {name: value for name, value in settings.items() if name not in MACHINE_SETTINGS}


class StageClock:
    """A progress callback that passes every report on and adds up the wall time of each stage.

    The time between two reports goes to the stage of the second one, unless it opens a stage
    (``done == 0``): the pauses between stages count for no stage.
    """

    def __init__(self, progress: ProgressCallback | None = None):
        self.progress = checked_callback(progress)
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
        self.progress(stage, done, total)

    def rounded(self) -> dict[str, float]:
        return {stage: round(seconds, 3) for stage, seconds in self.seconds.items()}


@functools.cache
def versions() -> dict[str, str]:
    """The versions of vexpress and of the libraries that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from vexpress_cli import __version__

    import torch

    # torch's own version names its build (2.6.0+cu124, 2.13.0+cpu); a PyPI wheel's metadata does not.
    found = {"vexpress": __version__, "torch": torch.__version__}
    for name in ("diffusers", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class RunRecord:
    """What one job was and what it made; ``to_dict()`` is the ``<output>.json`` file."""

    status: str  # "done" or "failed"
    output: str
    job: dict[str, Any]  # reference_image, audio, kps, reference_kps, preset: enough to run it again
    inputs: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    seed: int | None = None
    strategy: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)
    device: str | None = None
    dtype: str | None = None
    codec: str | None = None  # the encoder used (codec "auto" picks one per machine); None: frames, or a failed job
    frames: int | None = None
    fps: float | None = None
    duration: float | None = None
    seconds: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output_file: dict[str, Any] | None = None
    error: str | None = None
    crop: list[int] | None = None  # x, y, w, h of the photo that was animated; None: the whole photo
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        names = cls.__dataclass_fields__
        return cls(**{name: value for name, value in data.items() if name in names})

    def job_settings(self) -> dict[str, Any]:
        """The settings that made the job, settings newer than the record included."""
        return {**SETTINGS_BEFORE_THEY_EXISTED, **comparable_settings(self.settings)}

    def describes_output(self, output: Path) -> bool:
        """Whether ``output`` is still the file this run wrote (same size and SHA-256)."""
        facts = file_facts(output) if output.is_file() or output.is_dir() else {}  # not a device or a FIFO
        return (facts.get("size"), facts.get("sha256")) == tuple((self.output_file or {}).get(key)
                                                                 for key in ("size", "sha256"))

    def differences(self, inputs: dict[str, dict[str, Any]], settings: dict[str, Any],
                    reference_kps: str | None, model_files: tuple | None = None) -> list[str]:
        """Why this record does not describe the job (empty when it does), in words. ``model_files``: those of
        the weights the job runs with now (:func:`~vexpress_cli.jobs.model_identity.list_model_files`)."""
        if self.status != "done":
            return [f"it {self.status} last time"]
        found = [] if model_files is None or same_model_files(self.model, model_files) else ["the model changed"]
        for role in sorted(set(inputs) | set(self.inputs)):
            if inputs.get(role, {}).get("sha256") != self.inputs.get(role, {}).get("sha256"):
                found.append(f"{role} changed")
        before = _strategy_resolved(self.job_settings(), "kps" in self.inputs)
        now = _strategy_resolved(comparable_settings(settings), "kps" in inputs)
        for name in sorted(set(before) | set(now)):
            if before.get(name) != now.get(name):
                found.append(f"{name} changed ({before.get(name)!r} -> {now.get(name)!r})")
        if reference_kps_file(reference_kps) is None and reference_kps != self.job.get("reference_kps"):
            found.append("reference_kps changed")
        return found


def _strategy_resolved(settings: dict[str, Any], has_kps: bool) -> dict[str, Any]:
    """``settings`` with the strategy ``auto`` as what it stands for: asking for it by name is the same job."""
    if "retarget_strategy" not in settings:
        return settings
    return {**settings, "retarget_strategy": strategy_for(settings["retarget_strategy"], has_kps)}


RECORD_EXPECTED = "the .json file vexpress wrote beside an output"
# The type of each part of a record that is read, and whether it may be null; a hand-edited record must not
# crash a batch's resume or inspect.
NUMBER = (int, float)
RECORD_PARTS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "status": (str, False), "output": (str, False), "job": (dict, False), "inputs": (dict, False),
    "settings": (dict, False), "model": (dict, False), "stages": (dict, False), "versions": (dict, False),
    "warnings": (list, False), "notes": (list, False), "output_file": (dict, True), "crop": (list, True),
    "seed": (int, True), "strategy": (str, True), "device": (str, True), "dtype": (str, True),
    "codec": (str, True),
    "frames": (int, True), "fps": (NUMBER, True), "duration": (NUMBER, True), "seconds": (NUMBER, True),
    "error": (str, True), "created": (str, False),
}
KIND_WORDS = {dict: "an object", list: "a list", str: "text", int: "a whole number", NUMBER: "a number"}
MEDIA_WORDS = {"video": "a video", "image": "an image", "audio": "an audio file", "kps": "a kps file"}
REQUIRED_PARTS = ("status", "output", "job", "inputs", "settings")
# The values of "job" (text or null) that a rerun reads.
JOB_VALUES = ("reference_image", "audio", "kps", "reference_kps", "preset")


def read_record(path: str | Path) -> RunRecord:
    """Read a run record; InputError when it is missing, too large or not a vexpress run record."""
    from vexpress_cli.input_files import parsed_text, read_settings_text

    path = as_path(path, "path")
    _refuse_a_media_file(path)
    text = read_settings_text(path, "run record", RECORD_EXPECTED, text_format="JSON", missing_fix=(
        "Records are written beside each output as <output>.json, e.g. talk.mp4.json."))
    try:
        data = parsed_text(json.loads, text, parse_constant=_refuse_constant)
    except ValueError as error:
        reason = str(error)
        raise InputError(f"Cannot read the run record {path}.", f"{reason[:1].upper()}{reason[1:]}.",
                         f"Point to {RECORD_EXPECTED}.") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise InputError(f"{path} is not a vexpress run record.", f"It has no \"format\": \"{RECORD_FORMAT}\".",
                         f"Point to {RECORD_EXPECTED}.")
    if data.get("version") != RECORD_VERSION:
        raise InputError(f"The run record {path} has version {data.get('version')!r}.",
                         f"This vexpress reads version {RECORD_VERSION}.", "Upgrade vexpress.")
    damaged = _damaged_parts(data)
    if damaged:
        raise InputError(f"The run record {path} is damaged: {', '.join(damaged)}.",
                         "vexpress writes every part with its type; the file was edited or cut.",
                         "Delete the record: the next run of its job makes it again.")
    return RunRecord.from_dict(data)


def _refuse_a_media_file(path: Path) -> None:
    """The video itself given for its record (``--from-record talk.mp4``) was 'not UTF-8 text'."""
    from vexpress_cli.file_types import INPUT_KIND_SUFFIXES

    kind = next((kind for kind, suffixes in INPUT_KIND_SUFFIXES.items()
                 if kind in MEDIA_WORDS and path.suffix.lower() in suffixes), None)
    if kind is None or not path.is_file():
        return
    record = record_path(path)
    raise InputError(f"{path} is {MEDIA_WORDS[kind]}, not a run record.",
                     "A run record is the .json file vexpress writes beside each output: <output>.json.",
                     f"Did you mean {record}?" if record.is_file() else f"Pass {RECORD_EXPECTED}.")


def _damaged_parts(data: dict) -> list[str]:
    found = [f"{name} is missing" for name in REQUIRED_PARTS if name not in data]
    for name, (kind, nullable) in RECORD_PARTS.items():
        value = data.get(name)
        typed = isinstance(value, kind) and not (kind in (int, NUMBER) and isinstance(value, bool))
        if name in data and not typed and not (nullable and value is None):
            found.append(f"{name} is not {KIND_WORDS[kind]}")
    return found + _damaged_values(*(data.get(name) if isinstance(data.get(name), dict) else {}
                                     for name in ("job", "inputs", "model")))


def _damaged_values(job: dict, inputs: dict, model: dict) -> list[str]:
    """What is of the wrong type inside the parts whose values a rerun and inspect read."""
    found = [f"job.{name} is not text" for name in JOB_VALUES if not isinstance(job.get(name), (str, type(None)))]
    if not all(isinstance(facts, dict) and isinstance(facts.get("path"), str) and isinstance(facts.get("sha256"), str)
               for facts in inputs.values()):
        found.append("inputs holds something else than file facts")
    if not isinstance(model.get("folder"), (str, type(None))):
        found.append("model.folder is not text")
    files = model.get("files", [])
    if not isinstance(files, list) or not all(isinstance(item, dict) for item in files):
        found.append("model.files is not a list of objects")
    return found


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def write_record(record: RunRecord, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``record`` as JSON at ``path`` (every number finite), atomically; with ``overwrite=False``, a
    record another run wrote meanwhile is an OutputAppearedError and stays."""
    text = json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n"
    return write_text_atomically(Path(path), text, overwrite)


def write_text_atomically(path: Path, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` at ``path`` through :func:`vexpress_cli.outputs.atomic_output`: whole or not at all."""
    from vexpress_cli.outputs import atomic_output

    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def done_record(plan: Any, generator: Any, frames: int, seconds: float, stages: dict[str, float],
                finished: Path) -> RunRecord:
    """The record of a generation (a :class:`~vexpress_cli.jobs.planning.GenerationPlan` run on a
    ``Generator``) whose finished output is still at its temp name ``finished``."""
    output_file = {**file_facts(finished), "path": str(plan.output.absolute())}
    settings = settings_as_run(plan.settings.to_dict(), generator)
    return RunRecord(
        "done", str(plan.output.absolute()), job_of(plan), plan.inputs, settings,
        seed=plan.settings.seed, strategy=plan.strategy, model=model_of(generator), device=settings["device"],
        dtype=generator.dtype_name, codec=plan.encoding.codec if plan.encoding else None, frames=frames,
        fps=float(plan.fps), duration=plan.duration,
        seconds=round(seconds, 3), stages=stages, warnings=[spell_parameters(warning) for warning in plan.warnings],
        notes=[spell_parameters(note) for note in plan.notes],
        output_file=output_file, crop=plan.crop)


def settings_as_run(settings: dict[str, Any], generator: Any) -> dict[str, Any]:
    """``settings`` with the device(s) and dtype a ``Generator`` ran with, not ``auto`` or the config's."""
    return {**settings, "device": generator.device_names, "dtype": generator.dtype_name}


def job_of(plan: Any) -> dict[str, Any]:
    """The job as given, with absolute paths: what ``vexpress generate --from-record`` runs again."""
    return {"reference_image": plan.inputs["reference_image"]["path"], "audio": plan.inputs["audio"]["path"],
            "kps": str(plan.kps.absolute()) if plan.kps is not None else None,
            "reference_kps": plan.reference_kps, "preset": plan.preset}


@dataclass
class RecordedJob:
    """The job a run record describes, with what the caller gave instead (``vexpress generate --from-record``)."""

    reference_image: Path
    audio: Path
    output: Path
    kps: Path | None
    reference_kps: str | None
    settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    model_dir: Path | None = None  # the record's model folder, when it is still there
    ran_with: dict[str, str | None] = field(default_factory=dict)  # the record's dtype and codec, not settings


def rerun_warnings(ran_with: dict[str, str | None], dtype: str, codec: str | None) -> list[str]:
    """What makes a rerun of a record's job differ from it though its settings are the same: another
    precision (other frames) or another encoder (another file), which codec and dtype "auto" pick per machine."""
    found = []
    if ran_with.get("dtype") and ran_with["dtype"] != dtype:
        found.append(f"The record's run was in {ran_with['dtype']}, this one is in {dtype}, so the frames differ "
                     f"slightly. Add {parameter('dtype', ran_with['dtype'])} for the record's precision.")
    if ran_with.get("codec") and codec and ran_with["codec"] != codec:
        found.append(f"The record's video was encoded with {ran_with['codec']}, this one with {codec}. Add "
                     f"{parameter('codec', ran_with['codec'])} for the record's encoder.")
    return found


def job_from_record(record_file: str | Path, preset: str | None, settings: dict[str, Any],
                    **given: Any) -> RecordedJob:
    """The record's job; each of ``given`` (reference_image, audio, output, kps, reference_kps) and each
    setting in ``settings`` wins over it. Warns when an input is not the file the record was made with."""
    if preset is not None:
        raise InputError(f"{parameter('preset')} cannot be combined with {parameter('from_record')}.",
                         "The record already holds every setting of its job.",
                         "Give the settings to change instead.")
    record = read_record(record_file)
    values = {name: given.get(name) if given.get(name) is not None else record.job.get(name)
              for name in ("reference_image", "audio", "kps", "reference_kps")}
    output = Path(given["output"]) if given.get("output") is not None else Path(record.output)
    paths = {name: Path(values[name]) if values[name] is not None else None
             for name in ("reference_image", "audio", "kps")}
    _refuse_recorded_inputs_gone(record_file, paths, given)
    warnings = []
    if all(path is None or path.is_file() for path in paths.values()):
        now = input_files(paths["reference_image"], paths["audio"], paths["kps"], values["reference_kps"])
        warnings = [f"The {role.replace('_', ' ')} {now.get(role, facts)['path']} is not the file the record was "
                    "made with (its SHA-256 differs)." for role, facts in record.inputs.items()
                    if now.get(role, {}).get("sha256") != facts.get("sha256")]
    folder = record.model.get("folder")
    model_dir = Path(folder) if folder and Path(folder).is_dir() else None
    return RecordedJob(paths["reference_image"], paths["audio"], output, paths["kps"], values["reference_kps"],
                       {**record.job_settings(), **settings}, warnings, model_dir,
                       {"dtype": record.dtype, "codec": record.codec})


def _refuse_recorded_inputs_gone(record_file: str | Path, paths: dict[str, Path | None], given: dict) -> None:
    """An input the record names and no flag replaces, since deleted, was 'Check the spelling' of a path
    the user never typed."""
    for role, path in paths.items():
        if given.get(role) is None and path is not None and not path.exists():
            raise InputError(f"The record's {role.replace('_', ' ')} input no longer exists at {path}.",
                             f"{record_file} names the files its job was made with; this one was moved or deleted "
                             "since.", f"Pass {parameter(role)} to give another file.")
