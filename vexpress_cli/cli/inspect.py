"""``vexpress inspect PATH``: what a model folder or an input file holds, checked before a long run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vexpress_cli.cli.messages import print_warning, shown
from vexpress_cli.cli.options import flag_of, json_option, setting_option, with_setting_aliases
from vexpress_cli.errors import InputError, spell_parameters
from vexpress_cli.settings.schema import DEFAULTS

console = Console()

EPILOG = """\
[bold]Examples[/]

  Networks, files and key checks of a model folder (add --json for scripts):

    [cyan]vexpress inspect model_ckpts[/]

  Codec, length and level of a speech file, and the frames it makes at 25 fps:

    [cyan]vexpress inspect aud.mp3 --fps 25[/]

  Size of a reference photo, the box generate cuts (--crop, default auto) and
  the face (3 keypoints) it uses:

    [cyan]vexpress inspect ref.jpg --face-backend dlib[/]

  Frames, coordinate range, jitter and gaps of a kps track:

    [cyan]vexpress inspect kps.pth[/]

  A preset's validated settings (or a preset file: vexpress inspect my.toml):

    [cyan]vexpress inspect --preset expressive[/]

  Codec, size, exact fps, frames, duration and audio track of a video:

    [cyan]vexpress inspect gt.mp4[/]

  How a video was made (its run record: settings, inputs, timings) and what
  changed since:

    [cyan]vexpress inspect talk.mp4.json[/]

A folder of frame PNGs (generate -o NAME) is reported as frames, any other folder as a model folder; \
a file by its suffix (audio .mp3 .wav .m4a .aac .flac .ogg .opus; \
image .jpg .jpeg .png .webp .bmp .tif .tiff .gif .avif .heic .heif; kps .pth .pt .safetensors; preset .toml; \
run record .json; video .mp4 .mov .mkv .avi .webm), else by its first bytes (a photo's win over a video suffix). \
Details: vexpress docs inspect.
"""


def inspect_command(
    path: str | None = typer.Argument(  # a str: typer would turn "" into Path("."), the current folder
        None, help="A model folder or frame folder, or an audio, image, kps, preset (.toml), run record (.json) or "
        "video file.",
        show_default=False
    ),
    as_json: bool = json_option("the report"),
    preset: str | None = typer.Option(
        None, "--preset", help="Inspect a named preset (built-in or user) instead of PATH.", show_default=False
    ),
    fps: float | None = setting_option(
        "fps", meaning="Audio: frame rate of the video to make. kps: frame rate to assume when the file records none.",
        default_words=f"your config's, else {DEFAULTS['fps']:g}"),
    backend: str | None = setting_option("face_backend", "--backend"),
    width: int | None = setting_option("width", meaning="Image: the generation width the photo is framed to.",
                                       default_words=f"your config's, else {DEFAULTS['width']}"),
    height: int | None = setting_option("height", meaning="Image: the generation height the photo is framed to.",
                                        default_words=f"your config's, else {DEFAULTS['height']}"),
    crop: str | None = setting_option("crop"),
    face_index: int | None = setting_option("face_index"),
    model_root: Path | None = typer.Option(
        None, "--model-root", help="Image: insightface model root holding models/buffalo_l/det_10g.onnx.",
        show_default=False,
    ),
    jump_px: float = typer.Option(
        30.0, "--jump-px", help="kps: a point moving more than this many px between two frames is a jump."
    ),
) -> None:
    """Show what a model folder, speech file, photo, kps track, preset, run record or video holds, in seconds."""
    from vexpress_cli.jobs import inspect as input_report

    if preset is not None:
        if path is not None:
            raise InputError(f"Both PATH ({path}) and --preset {preset} were given.",
                             why="inspect reports one thing at a time.", fix="Drop one of them.")
        report_input(input_report.inspect_preset(preset), as_json)
        return
    if path is None:
        raise InputError("Nothing to inspect.", why="No PATH and no --preset was given.",
                         fix="Run `vexpress inspect PATH` or `vexpress inspect --preset NAME` "
                         "(see `vexpress inspect --help`).")
    if input_report.input_kind(path) == "model_folder":
        report_model_folder(Path(path).expanduser(), as_json)
        return
    report = input_report.inspect_input(path, fps=fps, backend=backend, width=width, height=height,
                                        model_root=model_root, jump_px=jump_px, crop=crop, face_index=face_index)
    report_input(report, as_json)


# --- input files ------------------------------------------------------------------------------

NESTED_TABLES = ("face", "motion", "gaps", "values", "settings", "sources", "inputs", "stages", "run_warnings")
MAX_GAP_ROWS = 20


def report_input(report, as_json: bool) -> None:
    data = report.to_dict(flag_of)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    title = f"{data['kind']}: {data.get('path') or data.get('name')}"
    console.print(_fields_table(title, {key: value for key, value in data.items()
                                        if key not in (*NESTED_TABLES, "kind", "warnings")}))
    if "face" in data:
        console.print(_face_table(data["face"]))
    if "motion" in data:
        console.print(_motion_table(data["motion"]))
    if data.get("gaps"):
        console.print(_gaps_table(data["gaps"]))
    if "inputs" in data:
        console.print(_rows_table("inputs", data["inputs"]))
    if data.get("stages"):
        console.print(_rows_table("wall time per stage (s)", [{"stage": stage, "seconds": seconds}
                                                                for stage, seconds in data["stages"].items()]))
    if "settings" in data:
        console.print(_settings_table(data))
    for warning in data.get("run_warnings", []):
        console.print(f"[dim]The run warned:[/] {escape(warning)}", highlight=False)
    for warning in data["warnings"]:
        print_warning(console, warning)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_show(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{escape(str(key))} {_show(item)}" for key, item in value.items())
    return escape(str(value))


LABELS = {"jump_px": "jump threshold px"}  # a setting shown beside measurements: say it is one


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def _fields_table(title: str, fields: dict[str, Any]) -> Table:
    table = Table(title=escape(title), title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in fields.items():
        table.add_row(_label(key), _show(value))
    return table


def _face_table(face: dict[str, Any]) -> Table:
    scalars = {key: value for key, value in face.items() if key != "kps"}
    table = _fields_table("face", scalars)
    names = ("left eye", "right eye", "nose")
    for name, point in zip(names, face["kps"] or []):
        table.add_row(f"kps {name}", f"x {point[0]}, y {point[1]}")
    if not face["found"]:
        table.add_row("kps", "[yellow]no face found[/]")
    return table


def _motion_table(motion: list[dict[str, Any]]) -> Table:
    table = Table(title="motion per point (px)", title_justify="left")
    for key in motion[0]:
        table.add_column(_label(key), justify="left" if key == "point" else "right")
    for row in motion:
        table.add_row(*(_show(value) for value in row.values()))
    return table


def _gaps_table(gaps: list[dict[str, Any]]) -> Table:
    shown = gaps[:MAX_GAP_ROWS]
    more = f" (first {MAX_GAP_ROWS} of {len(gaps)})" if len(gaps) > MAX_GAP_ROWS else ""
    table = Table(title=f"gaps{more}", title_justify="left")
    colors = {"held": "yellow", "interpolated": "cyan", "jump": "red"}
    for key in shown[0]:
        table.add_column(_label(key), justify="left" if key == "kind" else "right")
    for row in shown:
        table.add_row(f"[{colors.get(row['kind'], 'white')}]{row['kind']}[/]",
                      *(_show(value) for key, value in row.items() if key != "kind"))
    return table


def _rows_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for key in rows[0] if rows else ():
        table.add_column(_label(key))
    for row in rows:
        table.add_row(*(_show(value) for value in row.values()))
    return table


def _settings_table(data: dict[str, Any]) -> Table:
    """A run's settings (those not at their default marked), or a preset's with where each comes from."""
    from vexpress_cli.settings.schema import source_name

    run = data["kind"] == "record"
    title = "settings of this run" if run else f"generate settings with this {data['kind']}"
    table = Table(title=title, title_justify="left")
    table.add_column("setting", style="bold")
    table.add_column("value")
    table.add_column("from")
    for key, value in data["settings"].items():
        source = _run_source(key, data["values"]) if run else data["sources"][key]
        shown = f"[dim]{source}[/]" if source in ("default", "as run") else f"[green]{source_name(source)}[/]"
        table.add_row(key, _show(value), shown)
    return table


def _run_source(key: str, values: dict[str, Any]) -> str:
    from vexpress_cli.jobs.inspect.record import RAN_WITH

    return "as run" if key in RAN_WITH else "not default" if key in values else "default"


# --- model folders ------------------------------------------------------------------------------


def report_model_folder(path: Path, as_json: bool) -> None:
    from vexpress_cli.jobs.inspect import inspect_model_folder

    report = inspect_model_folder(path)
    if as_json:
        print(json.dumps(report.to_dict(_model_folder_spelling), indent=2))
    else:
        _print_model_folder(report)
    if not report.complete:  # like doctor's failed checks: the whole report, then exit code 2
        raise typer.Exit(2)


def _model_folder_spelling(name: str) -> str:
    """inspect is given the model folder as PATH: it has no --model-dir to point elsewhere."""
    return "PATH" if name == "model_dir" else flag_of(name)


def _print_model_folder(report) -> None:
    if report.networks_error:
        why = spell_parameters(report.networks_error, _model_folder_spelling)
        console.print(f"[yellow]Networks not described:[/] {escape(why)}")
    else:
        console.print(_networks_table(report))
    console.print(_components_table(report))
    for network in report.networks:
        if network.damaged:
            console.print(f"[red]{network.name}[/]: {escape(network.damaged)}")
        if network.lacks:
            console.print(f"[red]{network.name}[/]: lacks {escape(network.lacks)}")
        if network.status == "mismatch":
            console.print(f"[red]{network.name}[/]: {len(network.missing)} missing, {len(network.unexpected)} "
                          f"unexpected, {len(network.mismatched)} wrong-shape tensors; first ones:")
            for key in (network.missing + network.unexpected)[:5]:
                console.print(f"  {shown(key)}")
            for key, want, got in network.mismatched[:5]:
                console.print(f"  {shown(key)}: expects {want}, has {got}")
    verdict = "[green]complete[/]" if report.complete else "[yellow]incomplete[/] (see `vexpress models download`)"
    console.print(f"Model folder {shown(report.root)}: {verdict}")


def _networks_table(report) -> Table:
    table = Table(title="V-Express networks")
    for column in ("network", "tensors", "parameters", "files", "status"):
        table.add_column(column)
    colors = {"ok": "green", "absent": "yellow", "mismatch": "red", "damaged": "red"}
    for network in report.networks:
        table.add_row(network.name, str(network.expected_tensors), f"{network.expected_elements / 1e6:.1f} M",
                      shown(", ".join(network.files)) or "-", f"[{colors[network.status]}]{network.status}[/]")
    return table


def _components_table(report) -> Table:
    table = Table(title="Other components")
    table.add_column("component")
    table.add_column("path")
    table.add_column("present")
    for component in report.components:
        table.add_row(component.name, shown(component.path), _presence(component))
    return table


def _presence(component) -> str:
    if component.present:
        return f"[red]yes, but {escape(component.problem)}[/]" if component.problem else "[green]yes[/]"
    return "no (optional)" if not component.required else "[yellow]no[/]"


def register(app: typer.Typer) -> None:
    app.command("inspect", epilog=EPILOG)(with_setting_aliases(inspect_command))
