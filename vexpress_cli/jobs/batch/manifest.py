"""The batch manifest: one job per line of a ``.jsonl`` file (a JSON object) or of a ``.csv`` file (a header row).

Keys: ``reference_image``, ``audio`` and ``output`` (required), ``kps``, ``reference_kps``, ``preset``, and
any generation setting by its schema name (``seed``, ``num_inference_steps``, ...). Relative paths are
relative to the manifest's folder. Reading never stops at the first bad line: every problem is kept with
its line number, and :class:`ManifestError` lists them all at once.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vexpress_cli.errors import InputError, Message, did_you_mean, parameter, short_repr
from vexpress_cli.input_files import (BeyondParser, parsed_text, read_settings_text, require_regular_file,
                                     whole_number)
from vexpress_cli.jobs.generate import MODEL_SETTINGS
from vexpress_cli.settings.schema import SETTINGS
from vexpress_cli.settings.values import value_from_text
from vexpress_cli.wording import plural

JOB_KEYS = ("reference_image", "audio", "output", "kps", "reference_kps", "preset")
# Arguments of the whole batch a manifest line may name by mistake (device and dtype are MODEL_SETTINGS).
BATCH_ARGUMENTS = ("model", "model_dir", "devices")
REQUIRED_KEYS = ("reference_image", "audio", "output")
PATH_KEYS = ("reference_image", "audio", "output", "kps")
MANIFEST_SUFFIXES = (".jsonl", ".csv")
MANIFEST_EXPECTED = "a .jsonl or .csv manifest (see `vexpress docs batch`)"
# A job's line is about 200 bytes: 64 MiB holds some 300,000 jobs, more than any batch runs at once.
MAX_MANIFEST_BYTES = 64 << 20
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1"), ("false", "no", "0")
# At most this many problems are listed; the count says how many there were.
MAX_LISTED_PROBLEMS = 50


@dataclass
class ManifestEntry:
    """One line of a manifest: the job's own values (paths made absolute), by key."""

    line: int
    paths: dict[str, Path]
    reference_kps: str | None
    preset: str | None
    settings: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    line: int
    text: str  # a Message where it names an argument: spelled as the caller spells it


class ManifestError(InputError):
    """Every problem of a manifest, each with its line number; nothing was run."""

    def __init__(self, manifest: Path, problems: list[Problem]):
        self.manifest = manifest
        self.problems = sorted(problems, key=lambda problem: problem.line)
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        listed = "\n".join(f"  line {problem.line}: {getattr(problem.text, 'raw', problem.text)}" for problem in shown)
        more = f"\n  ... and {len(self.problems) - len(shown)} more" if len(self.problems) > len(shown) else ""
        count = plural(len(self.problems), "problem")
        super().__init__(f"The manifest {manifest} has {count}; no job was started:\n{listed}{more}\n",
                         fix="Fix these lines and run the same command again.")

    def __reduce__(self):
        """Built again from its manifest and problems: a copy, or one pickled back from a process pool's worker."""
        return type(self), (self.manifest, self.problems), self.__dict__


def read_manifest(path: Path) -> tuple[list[ManifestEntry], list[Problem]]:
    """The jobs of a manifest, and every problem found while reading it (by line)."""
    path = require_regular_file(path, "manifest", MANIFEST_EXPECTED)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InputError(f"Cannot read the manifest {path}.", "A manifest is a .jsonl file (one JSON object per "
                         "line) or a .csv file (a header row, then one job per row).", "Rename it, or convert it.")
    text = read_settings_text(path, "manifest", MANIFEST_EXPECTED, max_bytes=MAX_MANIFEST_BYTES,
                              text_format=suffix[1:].upper(), usual_size="at most a few MB")
    rows, problems = (_csv_rows if suffix == ".csv" else _jsonl_rows)(text)
    if not rows and not problems:
        raise InputError(f"The manifest {path} holds no job.", "",
                         "Write one job per line (see `vexpress docs batch`).")
    entries = [_entry(line, values, path.absolute().parent, problems) for line, values in rows]
    return entries, problems


def _jsonl_rows(text: str) -> tuple[list[tuple[int, dict]], list[Problem]]:
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = parsed_text(json.loads, line, object_pairs_hook=_object_of_unique_keys, parse_int=whole_number)
        except json.JSONDecodeError as error:
            problems.append(Problem(number, f"not valid JSON ({error.msg} at column {error.colno})."))
            continue
        except BeyondParser as error:
            problems.append(Problem(number, f"not valid JSON ({error})."))
            continue
        except RepeatedKeys as error:
            problems.append(Problem(number, str(error)))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(number, f"a job is a JSON object {{...}}, not {_json_kind(value)}."))
            continue
        rows.append((number, value))
    return rows, problems


class RepeatedKeys(ValueError):
    """A JSON object that names a key twice (JSON takes the last value silently)."""


def _object_of_unique_keys(pairs: list[tuple[str, object]]) -> dict:
    value = dict(pairs)
    if len(value) < len(pairs):
        repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise RepeatedKeys(f"{', '.join(repr(key) for key in repeated)} given more than once: which value is meant?")
    return value


def _csv_rows(text: str) -> tuple[list[tuple[int, dict]], list[Problem]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # a quoted cell may hold a line break
    try:
        header = [name.strip() for name in reader.fieldnames or []]
    except csv.Error as error:
        return [], [Problem(1, f"the header is not valid CSV ({error}).")]
    reader.fieldnames = header
    if not header:
        return [], []  # an empty file: "holds no job"
    problems = _header_problems(header)
    if problems:  # every row would repeat them
        return [], problems
    rows = []
    while True:
        first_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(Problem(first_line, f"not valid CSV from here on ({error}): a quote left open, or text "
                                                "after a closing quote?"))
            break
        if None in row:
            problems.append(Problem(reader.line_num, "this row has more cells than the header has columns."))
            continue
        values = {name: _from_cell(name, cell.strip()) for name, cell in row.items() if name and (cell or "").strip()}
        if values:
            rows.append((reader.line_num, values))
    return rows, problems


def _header_problems(header: list[str]) -> list[Problem]:
    """The header row's problems, on line 1: a column named twice, an unknown one, a missing required one."""
    if len(header) == 1 and ";" in header[0]:
        return [Problem(1, f"the header {header[0]!r} is one column: columns are separated by commas, not "
                           "semicolons.")]
    found = []
    header = [name for name in header if name]  # a spreadsheet's trailing comma: an unnamed, unused column
    if len(set(header)) != len(header):
        found.append(f"the header names a column twice ({', '.join(header)}).")
    found += [f"the header's column '{name}' is not a known key. {did_you_mean(name, [*JOB_KEYS, *SETTINGS])}".rstrip()
              for name in header if name not in (*JOB_KEYS, *SETTINGS, *MODEL_SETTINGS, *BATCH_ARGUMENTS)]
    found += [f"the header has no '{key}' column (every job needs {', '.join(REQUIRED_KEYS)})."
              for key in REQUIRED_KEYS if key not in header]
    return [Problem(1, text) for text in found]


def _from_cell(name: str, cell: str) -> Any:
    """A CSV cell as the setting's type, read as a flag's text is (left as text when it does not parse: the
    check says why)."""
    if name not in SETTINGS:
        return cell
    if SETTINGS[name].kind is bool and cell.lower() in TRUE_WORDS + FALSE_WORDS:
        return cell.lower() in TRUE_WORDS
    return value_from_text(SETTINGS[name], cell)


def _entry(line: int, values: dict[str, Any], folder: Path, problems: list[Problem]) -> ManifestEntry:
    """The job of one line, with its problems added: what is usable of it is kept so that its other
    values are checked too (every problem of a line is listed at once)."""
    found = []
    for key in values:
        if key in (*MODEL_SETTINGS, *BATCH_ARGUMENTS):
            given_as = f"{parameter(key)} or {parameter('devices')}" if key == "device" else parameter(key)
            found.append(Message(f"'{key}' belongs to the whole batch ({given_as}), not to one job: the networks "
                                 "are loaded once per worker."))
        elif key not in JOB_KEYS and key not in SETTINGS:
            found.append(f"unknown key '{key}'. {did_you_mean(key, [*JOB_KEYS, *SETTINGS])}".rstrip())
    for key in REQUIRED_KEYS:
        if key not in values:
            found.append(f"'{key}' is missing (every job needs {', '.join(REQUIRED_KEYS)}).")
    for key in (*PATH_KEYS, "reference_kps", "preset"):
        if key not in values:
            continue
        value = values[key]
        if not isinstance(value, str) or not value.strip():
            found.append(f"'{key}' must be a non-empty text, not {short_repr(value)}.")
        elif "\0" in value:
            found.append(f"'{key}' holds a NUL character (\\x00), which no path can contain: {value}.")
        else:
            continue
        values = {name: other for name, other in values.items() if name != key}
    problems.extend(Problem(line, text) for text in found)
    paths = {key: _absolute(values[key], folder) for key in PATH_KEYS if key in values}
    return ManifestEntry(line, paths, _reference_kps(values.get("reference_kps"), folder),
                         _preset(values.get("preset"), folder),
                         {key: value for key, value in values.items() if key in SETTINGS})


def _absolute(text: str, folder: Path) -> Path:
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else folder / path


def _reference_kps(value: str | None, folder: Path) -> str | None:
    """Points stay text; a kps file becomes an absolute path (decided as ``vexpress_cli.kps.io`` decides)."""
    from vexpress_cli.kps.io import reference_kps_file

    if value is None:
        return None
    candidate = _absolute(value, folder)
    return str(candidate) if reference_kps_file(candidate) is not None else value


def _preset(value: str | None, folder: Path) -> str | None:
    """A preset name stays a name; a ``.toml`` path is made absolute."""
    from vexpress_cli.settings.presets import looks_like_preset_path

    if value is None:
        return None
    return str(_absolute(value, folder)) if looks_like_preset_path(value) else value


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words: an array, a string, a number, true/false, null."""
    if isinstance(value, bool):
        return "true/false"
    kinds = {list: "an array [...]", str: "a string", int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)
