"""The whole manifest checked before anything runs, and what each job needs: run, redo, retry or skip.

Every job's settings are resolved here once (``defaults < user config < --preset < setting flags < the
job's preset < the job's own values``) and travel to the workers fully resolved, so a worker on another
machine runs exactly what was checked, whatever its own user config says.
"""

from __future__ import annotations

import functools
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.errors import InputError, Message, VExpressError, join_messages, parameter
from vexpress_cli.jobs.batch.manifest import (JOB_KEYS, REQUIRED_KEYS, ManifestEntry, ManifestError, Problem,
                                             read_manifest)
from vexpress_cli.jobs.generate import MODEL_SETTINGS, resolve_job_settings
from vexpress_cli.jobs.records import input_files, read_record, record_path
from vexpress_cli.file_types import IMAGE_SUFFIXES, KPS_SUFFIXES, PRESET_SUFFIXES, RECORD_SUFFIXES
from vexpress_cli.kps.io import load_kps, parse_kps_points, reference_kps_file, require_kps_file
from vexpress_cli.settings.schema import validate_value

# What a job needs, decided from its output and record (see docs/batch.md).
NEW, RETRY, REDO, FORCE, SKIP = "new", "retry", "redo", "force", "skip"


@dataclass
class BatchJob:
    """One checked job, ready for a worker (plain values only: it crosses process and machine borders)."""

    line: int
    reference_image: str
    audio: str
    output: str
    settings: dict[str, Any]  # every setting, resolved, without the Generator's device and dtype
    kps: str | None = None
    reference_kps: str | None = None
    preset: str | None = None
    action: str = NEW
    reasons: list[str] = field(default_factory=list)
    # The output as the check found it (inode, size, modified ns), for a redo: another run may replace it first.
    output_stamp: tuple[int, int, int] | None = None

    @property
    def reason(self) -> Message:
        """Why it is skipped or redone, in one line (settings named as in Python)."""
        return join_messages(*self.reasons, separator="; ")

    @property
    def overwrite(self) -> bool:
        """Whether the job may replace its output: a redo of a job whose record no longer matches, or --force."""
        return self.action in (REDO, FORCE)


def prepare_jobs(manifest: Path, *, preset: str | Path | None = None, settings: dict[str, Any] | None = None,
                 force: bool = False, loaded: list[tuple] | None = None,
                 model_files: Callable[[], tuple] | None = None) -> list[BatchJob]:
    """Every job of ``manifest``, checked and decided; :class:`ManifestError` lists every problem at once.

    ``preset`` and ``settings`` come from the command line: defaults that a job's own values override.
    Errors in them are raised as they are (they are not one line's problem). ``loaded``: the
    ``(torch.device, torch.dtype)`` each worker loads the networks with, which a job's own preset may not change.
    ``model_files()``: the files of the weights the jobs will run with, asked for when a job was done before
    (a job done with other weights is redone).
    """
    from vexpress_cli.settings.presets import load_preset

    given = {name: value for name, value in (settings or {}).items() if name not in MODEL_SETTINGS}
    for name in sorted(set(given) & set(JOB_KEYS))[:1]:
        raise InputError(f"{parameter(name)} cannot be given to the whole batch.", f"'{name}' is one job's own "
                         "key: each line of the manifest names its own.", f"Put \"{name}\" in the manifest's lines.")
    resolve_job_settings(preset, given)  # the command line's own values, checked once
    presets = functools.cache(lambda name: load_preset(name).values)
    entries, problems = read_manifest(manifest)
    outputs = _OutputsSeen()
    kps_checked: dict[Path, str | None] = {}  # a kps file's problem, once per file
    jobs = []
    for entry in entries:
        found: list[str] = []
        job_settings = _settings(entry, preset, given, presets, found)
        _check_presets_model_settings(entry.preset, presets, loaded or [], found)
        _check_inputs(entry, found, kps_checked)
        if job_settings is not None:
            _check_strategy(job_settings["retarget_strategy"], "kps" in entry.paths, found)
        if "output" in entry.paths:
            _check_output(entry, outputs, found)
        complete = all(key in entry.paths for key in REQUIRED_KEYS)
        if not found and complete and job_settings is not None and not _has_problem(problems, entry.line):
            job = BatchJob(entry.line, str(entry.paths["reference_image"]), str(entry.paths["audio"]),
                           str(entry.paths["output"]), job_settings,
                           str(entry.paths["kps"]) if "kps" in entry.paths else None, entry.reference_kps,
                           entry.preset or (str(preset) if preset is not None else None))
            _decide(job, force, found, model_files)
            jobs.append(job)
        problems.extend(Problem(entry.line, text) for text in found)
    if problems:
        raise ManifestError(Path(manifest), problems)
    return jobs


def _has_problem(problems: list[Problem], line: int) -> bool:
    return any(problem.line == line for problem in problems)


def _settings(entry: ManifestEntry, preset, given: dict[str, Any], presets, found: list[str]) -> dict | None:
    """The job's resolved settings; the command line's flags give way to the job's own preset and values."""
    checks = [functools.partial(validate_value, name, value, f"'{name}'", within_advice=False)
              for name, value in entry.settings.items()]
    if entry.preset is not None:
        checks.append(functools.partial(presets, entry.preset))
    for check in checks:  # each one, so that a line's problems are all listed at once
        try:
            check()
        except VExpressError as error:
            found.append(error.render())
    if found:
        return None
    flags = dict(given)
    try:
        if entry.preset is not None:
            flags = {name: value for name, value in flags.items() if name not in presets(entry.preset)}
        resolved = resolve_job_settings(entry.preset or preset, {**flags, **entry.settings})
    except VExpressError as error:
        found.append(error.render())
        return None
    # window_batch and compile too: they do not make the job another (comparable_settings), but the worker runs them
    return {name: value for name, value in resolved.settings.to_dict().items() if name not in MODEL_SETTINGS}


def _check_presets_model_settings(preset, presets, loaded: list[tuple], found: list[str]) -> None:
    """A job's own preset setting a device or dtype a worker does not load the networks with (Generator's rule,
    :func:`~vexpress_cli.engine.devices.runs_with`): it would be ignored."""
    from vexpress_cli.engine.devices import runs_with

    if preset is None or found:
        return
    for name, value in presets(preset).items():
        for device, dtype in loaded if name in MODEL_SETTINGS else ():
            if not runs_with(name, value, device, dtype):
                running = str(dtype).removeprefix("torch.") if name == "dtype" else str(device)
                found.append(f"its preset '{preset}' sets {name} = {value!r}, but the batch runs with {running}: "
                             f"{name} is the whole batch's ({parameter(name)} or the batch's preset), as the "
                             "networks are loaded once per worker.")
                break


def _check_strategy(name: str, has_kps: bool, found: list[str]) -> None:
    """That the strategy is installed and, when it needs one, has a driving track, as generate checks first."""
    from vexpress_cli.kps.retargeting import checked_strategy

    _caught(found, checked_strategy, name, has_kps)


def _check_inputs(entry: ManifestEntry, found: list[str], kps_checked: dict[Path, str | None]) -> None:
    files = {key: entry.paths[key] for key in ("reference_image", "audio", "kps") if key in entry.paths}
    kps_file = reference_kps_file(entry.reference_kps)
    if kps_file is not None:
        files["reference_kps"] = kps_file
    for key, path in files.items():
        if not _caught(found, _require_input, key, path):
            continue
        if key == "reference_image":
            _check_image_header(path, found)
        elif key == "audio":
            _check_audio_kind(path, found)
        else:
            _check_kps_file(path, found, kps_checked)
    if isinstance(entry.reference_kps, str) and kps_file is None:
        _caught(found, parse_kps_points, entry.reference_kps)


def _require_input(key: str, path: Path) -> None:
    """The first check the job's own loader makes of the input (a missing, special, empty or unreadable file),
    so that the batch refuses it in generate's words."""
    from vexpress_cli.media.ffmpeg import require_file
    from vexpress_cli.media.images import require_image_file

    if key == "reference_image":
        require_image_file(path, "reference image")
    elif key == "audio":
        require_file(path, "audio")
    else:
        require_kps_file(path)


def _caught(found: list[str], check, *args) -> bool:
    """Run one cheap check; its error paragraph becomes one of the line's problems. Whether it passed."""
    try:
        check(*args)
    except VExpressError as error:
        found.append(error.render())
        return False
    return True


def _check_audio_kind(path: Path, found: list[str]) -> None:
    """What can be told without decoding (each line stays cheap): not an image, kps or preset file; a WAV
    header that holds samples. Anything else ffmpeg reads is tried when the job runs."""
    suffix = path.suffix.lower()
    if suffix in (*IMAGE_SUFFIXES, *KPS_SUFFIXES, *PRESET_SUFFIXES, *RECORD_SUFFIXES):
        found.append(f"'audio' {path} is a {suffix} file, not a speech recording (mp3, wav, m4a, flac, ogg) "
                     "or a video with sound.")
    elif suffix == ".wav":
        try:
            with wave.open(str(path), "rb") as header:
                samples = header.getnframes()
        except (wave.Error, EOFError, OSError):
            return  # not a plain PCM WAV (ffmpeg reads more kinds): decoded when the job runs
        if samples == 0:
            found.append(f"'audio' {path} holds no samples (an empty WAV file): pass a recording of speech.")


def _check_kps_file(path: Path, found: list[str], known: dict[Path, str | None]) -> None:
    """A driving or reference track loads as generate will load it (once per file and check: jobs share them)."""
    key = path.resolve()
    if key not in known:
        known[key] = None
        try:
            load_kps(path)
        except InputError as error:
            known[key] = error.render()
    if known[key] is not None:
        found.append(known[key])


def _check_image_header(path: Path, found: list[str]) -> None:
    """That the portrait is an image Pillow opens, as generate checks first (its header only: cheap per line)."""
    _caught(found, _open_image_header, path)


def _open_image_header(path: Path) -> None:
    from vexpress_cli.media.images import opened_image

    with opened_image(path, "reference image"):
        pass


@dataclass
class _OutputsSeen:
    """The outputs of the lines checked so far, by real path (links followed), and every folder above one."""

    files: dict[Path, int] = field(default_factory=dict)  # output -> the first line writing it
    folders: dict[Path, int] = field(default_factory=dict)  # folder -> the first line writing inside it


def _check_output_overlap(output: Path, line: int, seen: _OutputsSeen, found: list[str]) -> None:
    """Two jobs may not write one file, however it is spelled, nor one inside the other's frame folder."""
    key = Path(os.path.normcase(_real_folder(Path(output).parent) / Path(output).name))
    holder = next((folder for folder in key.parents if folder in seen.files), None)
    if key in seen.files:
        found.append(f"'output' {output} is also the output of line {seen.files[key]}: two jobs cannot write one file.")
    elif key in seen.folders:
        found.append(f"'output' {output} is a folder holding the output of line {seen.folders[key]}.")
    elif holder is not None:
        found.append(f"'output' {output} is inside {str(holder)!r}, the output of line {seen.files[holder]}.")
    seen.files.setdefault(key, line)
    for folder in key.parents:
        seen.folders.setdefault(folder, line)


def _real_folder(folder: Path) -> Path:
    """``folder`` with its links followed (a link as the output itself is replaced, not followed), or as written
    where that fails (a link loop)."""
    try:
        return folder.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(folder))


def _check_output(entry: ManifestEntry, outputs: _OutputsSeen, found: list[str]) -> None:
    from vexpress_cli.outputs import check_output, input_it_would_replace

    output = entry.paths["output"]
    _check_output_overlap(output, entry.line, outputs, found)
    if input_it_would_replace(output, {name: path for name, path in entry.paths.items() if name != "output"}):
        found.append(f"'output' {output} is also one of the job's inputs.")
    try:
        # Whether an existing output is redone is decided by its record; its folder is made when the job runs.
        check_output(output, True, "video", folder_made_later=True)
    except InputError as error:
        found.append(error.render())


def _decide(job: BatchJob, force: bool, found: list[str], model_files: Callable[[], tuple] | None) -> None:
    """Run it, redo it (its record no longer matches), retry it (it failed), or skip it (done, same job)."""
    output, record_file = Path(job.output), record_path(job.output)
    if force and output.exists():
        job.action, job.reasons = FORCE, [f"{parameter('force')} was given"]
        return
    record, unreadable = None, "it is not a file"
    if record_file.is_file():
        try:
            record = read_record(record_file)
        except InputError as error:
            unreadable = (error.why.raw or error.what.raw).rstrip(".")
    if not output.exists():
        failed = record is not None and record.status == "failed"
        job.action, job.reasons = (RETRY, ["it failed last time"]) if failed else (NEW, [])
        return
    if not record_file.exists():
        found.append(_not_replaced(output, f"exists and has no run record ({record_file.name}), so vexpress did "
                                           "not make it"))
        return
    if record is None:
        found.append(_not_replaced(output, f"exists and its run record {record_file.name} cannot be read "
                                           f"({unreadable}), so vexpress cannot tell it made it"))
        return
    if record.status == "done" and not record.describes_output(output):
        found.append(_not_replaced(output, f"changed since vexpress wrote it (it is not the file {record_file.name} "
                                           "describes)"))
        return
    inputs = input_files(Path(job.reference_image), Path(job.audio), Path(job.kps) if job.kps else None,
                         job.reference_kps)
    job.reasons = record.differences(inputs, job.settings, job.reference_kps,
                                     model_files() if model_files is not None else None)
    job.action = REDO if job.reasons else SKIP
    job.output_stamp = file_stamp(output)
    if not job.reasons:
        job.reasons = ["done before with the same inputs and settings"]


def file_stamp(path: str | Path) -> tuple[int, int, int] | None:
    """Which file is at ``path`` now (inode, size, modified ns; a replaced file differs), or None for none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _not_replaced(output: Path, why: str) -> str:
    """A manifest problem: an output vexpress will not replace without ``force``, and ``why``."""
    return (f"{output} {why}; it will not be replaced. Move it away, pick another 'output', or give "
            f"{parameter('force')}.")
