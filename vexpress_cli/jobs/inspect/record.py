"""The report on a run record (``talk.mp4.json``): how its output was made, and what changed since."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vexpress_cli.errors import parameter
from vexpress_cli.jobs.inspect.report import Report
from vexpress_cli.outputs import next_free_name


# A record's settings that say what the run's machine used (cpu, float32), not what was asked (auto or not).
RAN_WITH = ("device", "dtype")


@dataclass
class RecordReport(Report):
    path: str
    status: str  # done or failed
    created: str | None
    output: str
    output_now: str  # whether the output is still the file the run wrote
    error: str | None
    seed: int | None
    strategy: str | None
    device: str | None
    dtype: str | None
    codec: str | None  # the encoder used
    frames: int | None
    fps: float | None
    duration: float | None
    seconds: float | None
    crop: list[int] | None
    model: str | None
    model_now: str
    versions: dict[str, str]
    run_warnings: list[str]
    rerun: str
    inputs: list[dict[str, Any]]  # role, path, size, now
    stages: dict[str, float]  # wall seconds per stage
    values: dict[str, Any]  # the settings that differ from the defaults (not RAN_WITH's)
    settings: dict[str, Any]  # every setting of the run
    kind: str = "record"
    warnings: list[str] = field(default_factory=list)


def inspect_record(path: str | Path) -> RecordReport:
    """A run record's job, settings and timings, with whether its output, inputs and model are unchanged."""
    from vexpress_cli.jobs.records import read_record
    from vexpress_cli.settings.schema import DEFAULTS

    record = read_record(path)
    inputs = [_input_now(role, facts) for role, facts in record.inputs.items()]
    report = RecordReport(
        path=str(path), status=record.status, created=record.created, output=record.output,
        output_now=_output_now(record), error=record.error, seed=record.seed, strategy=record.strategy,
        device=record.device, dtype=record.dtype, codec=record.codec, frames=record.frames, fps=record.fps,
        duration=record.duration,
        seconds=record.seconds, crop=record.crop, model=record.model.get("folder"), model_now=_model_now(record.model),
        versions=dict(record.versions), run_warnings=list(record.warnings),
        rerun=rerun_command(path, record.output), inputs=inputs,
        stages=dict(record.stages),
        values={name: value for name, value in record.settings.items()
                if DEFAULTS.get(name, value) != value and name not in RAN_WITH},
        settings=dict(record.settings),
    )
    report.warnings = _what_changed(report)
    return report


def rerun_command(path: str | Path, output: str) -> str:
    """The ``generate --from-record`` command that runs the record's job again, one that works as given:
    while the record's output (or anything) is there, it writes beside it (``talk-2.mp4``) rather than fail."""
    command = f"vexpress generate --from-record {shlex.quote(str(path))}"
    if not output or not os.path.lexists(output):
        return command
    return f"{command} -o {shlex.quote(str(next_free_name(Path(output))))}"


def _output_now(record) -> str:
    if record.status != "done":
        return "not written (the run failed)"
    output = Path(record.output)
    if not output.exists():
        return "missing"
    if not (output.is_file() or output.is_dir()):
        return "not a file"
    return "the file this run wrote" if record.describes_output(output) else "changed since the run"


def _input_now(role: str, facts: dict[str, Any]) -> dict[str, Any]:
    from vexpress_cli.jobs.records import file_facts

    path = Path(str(facts.get("path")))
    if not path.exists():
        now = "missing"
    elif not path.is_file():  # a device or a FIFO would be read forever, a folder hashed whole
        now = "not a file"
    else:
        now = "unchanged" if file_facts(path)["sha256"] == facts.get("sha256") else "changed since the run"
    return {"role": role, "path": str(path), "size": facts.get("size"), "now": now}


def _model_now(model: dict[str, Any]) -> str:
    from vexpress_cli.jobs.model_identity import list_model_files, same_model_files

    folder = Path(str(model.get("folder")))
    if not model.get("folder") or not folder.is_dir():
        return "missing"
    now = list_model_files(folder.absolute())  # not the cached listing: files may have changed since
    return "the files this run read" if same_model_files(model, now) else "other files (names, sizes or contents)"


def _what_changed(report: RecordReport) -> list[str]:
    from vexpress_cli.jobs.records import versions as installed

    found = []
    if report.status != "done":
        found.append(f"This run failed; `{report.rerun}` tries it again.")
    elif report.output_now == "missing":
        found.append(f"The output {report.output} is missing: `{report.rerun}` makes it again.")
    elif report.output_now != "the file this run wrote":
        found.append(f"The output {report.output} is {report.output_now}: this record no longer describes it "
                     f"(`{report.rerun}` makes it again beside it; --overwrite instead of -o, in its place).")
    for item in report.inputs:
        what = f"The {item['role'].replace('_', ' ')} {item['path']}"
        if item["now"] in ("missing", "not a file"):
            found.append(f"{what} is {item['now']}: a rerun needs it back, or another file given with "
                         f"{parameter(item['role'])}.")
        elif item["now"] != "unchanged":
            found.append(f"{what} is {item['now']}: a rerun uses it as it is now.")
    if report.model_now != "the files this run read":
        holds = "is missing" if report.model_now == "missing" else f"holds {report.model_now} than the run read"
        found.append(f"The run's model folder {report.model} {holds}: a rerun finds the weights as generate does.")
    now = installed()
    moved = [f"{name} {version} (now {now[name]})" for name, version in report.versions.items()
             if name in now and now[name] != version]
    if moved:
        found.append(f"Made with other versions: {', '.join(moved)}; a rerun may differ by float noise or more.")
    return found
