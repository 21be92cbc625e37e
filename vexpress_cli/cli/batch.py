"""``vexpress batch``: run a manifest of jobs with the library's batch job; draw the jobs and their stages."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from vexpress_cli.cli.messages import print_warning, shown
from vexpress_cli.cli.options import (BATCH_SETTINGS_PANEL, complete_preset, flag_of, json_option, model_dir_option,
                                      model_option, quiet_option, with_generation_settings)
from vexpress_cli.cli.progress import STAGE_LABELS, StageLog, draws_live
from vexpress_cli.errors import InputError
from vexpress_cli.wording import extra_install_command, plural

console = Console(stderr=True)
MANIFEST_SUFFIXES = (".jsonl", ".csv")

EPILOG = """\
A manifest holds one job per line: reference_image, audio, output (required), kps, reference_kps, preset \
and any setting but device and dtype by its name (seed, num_inference_steps, ...); relative paths are \
relative to the manifest. \
A line of jobs.jsonl:

  {"reference_image": "alice.jpg", "audio": "hello.wav",
   "output": "out/hello.mp4", "seed": 7}

[bold]Examples[/]

  Run it (run it again to resume):

    [cyan]vexpress batch jobs.jsonl --preset lip-sync[/]

  One worker per GPU, and a report of every job:

    [cyan]vexpress batch jobs.csv --devices all --report report.json[/]

  Ray actors on a local Ray instance, or on a running Ray cluster (see
  vexpress docs batch):

    [cyan]vexpress batch jobs.jsonl --ray[/]
    [cyan]vexpress batch jobs.jsonl --ray 10.0.0.1:6379[/]
"""


@with_generation_settings(panel=BATCH_SETTINGS_PANEL)
def batch_command(
    jobs: Path = typer.Argument(None, metavar="JOBS", help="The manifest: .jsonl (one JSON object per line) or "
                                ".csv (a header row).", show_default=False),
    ray_address: str = typer.Argument(None, metavar="RAY_ADDRESS", show_default=False,
                                      help="With --ray: the Ray cluster (HOST:PORT, ray://HOST:10001 or auto)."),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML path for every job; a job's own "
                               "preset and values override it.", autocompletion=complete_preset),
    model: str = model_option(),
    model_dir: Path = model_dir_option(),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes on one device (e.g. the CPU), "
                                "at most one per CPU core, or CPU actors on Ray."),
    devices: str = typer.Option(None, "--devices", show_default=False,
                                help="One worker process per device: cuda:0,cuda:1 or all."),
    ray: bool = typer.Option(False, "--ray", help="Run on Ray actors, one per GPU: a local Ray instance, or the "
                             "cluster at RAY_ADDRESS. Needs Ray: " + escape(extra_install_command("ray")) + "."),
    force: bool = typer.Option(False, "--force", help="Redo every job, even those already done."),
    quiet: bool = quiet_option("failures"),
    as_json: bool = json_option("the summary"),
    report: Path = typer.Option(None, "--report", help="Also write the JSON summary to this file (an existing file "
                                "only if it is a previous report).", show_default=False),
    settings: dict | None = None,
    original: dict | None = None,
) -> None:
    """Run many jobs from a manifest with the model loaded once per worker; run it again to resume."""
    from vexpress_cli.cli.generate import apply_original_flags
    from vexpress_cli.cli.json_output import stdout_kept_for_json
    from vexpress_cli.interrupts import reported
    from vexpress_cli.jobs.batch import LOCAL_RAY, BatchInterrupted, batch

    jobs, ray_address = _manifest_first(jobs, ray_address)
    if jobs is None:
        raise InputError("JOBS is required.", "", "Pass the manifest: vexpress batch jobs.jsonl (see --help).")
    if ray_address is not None and not ray:
        raise InputError(f"Got a second argument ({ray_address}) without --ray.", "It is read as a Ray address.",
                         "Add --ray, or remove it.")
    if report is not None:
        report = check_report(report, jobs)
    settings, model_dir = apply_original_flags(original or {}, dict(settings or {}), model_dir)
    display = BatchDisplay(console, enabled=not quiet and not as_json)
    exit_code = None
    try:
        with display, stdout_kept_for_json(as_json):
            summary = batch(jobs, preset=preset, model_dir=model_dir, model=model, workers=workers, devices=devices,
                            ray=(ray_address or LOCAL_RAY) if ray else None, force=force, on_event=display,
                            **settings)
    except BatchInterrupted as interrupted:
        summary, exit_code = interrupted.summary, interrupted.exit_code
    if as_json:
        print(json.dumps(summary.to_dict(flag_of), allow_nan=False))
    print_summary(summary, quiet=quiet)  # on stderr: with --json too, stdout holds only the JSON
    if report is not None:  # after the summary, which a report that cannot be written must not take away
        from vexpress_cli.jobs.records import write_text_atomically

        write_text_atomically(report, json.dumps(summary.to_dict(flag_of), indent=2, allow_nan=False) + "\n")
    exit_code = summary.exit_code if exit_code is None else exit_code
    reported(exit_code)
    raise typer.Exit(exit_code)


def check_report(report: Path, manifest: Path) -> Path:
    """Before any job runs: ``--report`` must be a writable file path that is none of the files the batch reads or
    writes (the manifest, a job's input, output or run record); returned absolute."""
    from vexpress_cli.jobs.batch.manifest import read_manifest
    from vexpress_cli.jobs.records import record_path
    from vexpress_cli.outputs import check_output, input_it_would_replace

    if report.is_dir():
        raise InputError(f"{flag_of('report')} {report} is a folder.", "The report is one JSON file.",
                         f"Name the file, e.g. {flag_of('report')} {report / 'report.json'}.")
    report = check_output(report, overwrite=True, folder_made_later=True)  # rewritten by each run, like the records
    entries, _ = read_manifest(manifest)  # its problems are the batch's to report
    files = {"the manifest": manifest}
    for entry in entries:
        for key, path in entry.paths.items():
            files[f"the {key} of line {entry.line}"] = path
        if entry.reference_kps is not None and Path(entry.reference_kps).is_absolute():  # a file, not points
            files[f"the reference_kps of line {entry.line}"] = entry.reference_kps
        if "output" in entry.paths:
            files[f"the run record of line {entry.line}"] = record_path(entry.paths["output"])
    name = input_it_would_replace(report, files)
    where = f"also {name}" if name is not None else _frame_folder_holding(report, files)
    if where is not None:
        raise InputError(f"{flag_of('report')} {report} is {where}.",
                         "Writing the report would replace a file the batch reads or writes.",
                         "Choose another report path.")
    _refuse_replacing_another_file(report)
    return report


# What every batch report holds (BatchSummary.to_dict): a file with these keys is a previous report, replaced.
REPORT_KEYS = ("manifest", "counts", "jobs")
MAX_REPORT_BYTES = 64 * 1024 * 1024


def _refuse_replacing_another_file(report: Path) -> None:
    """InputError when ``report`` exists and is not a previous batch report: only a report is rewritten unasked."""
    if not report.is_file() or _is_batch_report(report):
        return  # nothing there (or no plain file: check_output's to judge), or the last run's report
    raise InputError(f"{flag_of('report')} {report} already exists and is not a batch report.",
                     "Each run rewrites its report, so only a previous report (a JSON object with "
                     f"{', '.join(REPORT_KEYS)}) is replaced; any other file is kept.",
                     "Choose another report path, or move that file away first.")


def _is_batch_report(path: Path) -> bool:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and all(key in data for key in REPORT_KEYS)


def _frame_folder_holding(report: Path, files: dict[str, Path | str]) -> str | None:
    """The output (a frame folder: no suffix) that ``report`` would be written inside, if any."""
    folders = {name: Path(path).absolute() for name, path in files.items()
               if name.startswith("the output") and not Path(path).suffix}
    return next((f"inside {name}, a folder of frames" for name, folder in folders.items() if folder in report.parents),
                None)


def _manifest_first(jobs: Path | None, address: str | None) -> tuple[Path | None, str | None]:
    """``--ray ADDRESS JOBS`` puts the address first: put the manifest back in its place."""
    if jobs is not None and address is not None and jobs.suffix.lower() not in MANIFEST_SUFFIXES \
            and Path(address).suffix.lower() in MANIFEST_SUFFIXES:
        return Path(address), str(jobs)
    return jobs, address


class BatchDisplay:
    """A bar for the jobs (done / failed / total, ETA) and one for each worker's running job and stage.

    An instance is the batch's ``on_event`` callback.
    """

    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self.log = StageLog(console) if not draws_live(console) else None  # lines instead of bars
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=console, disable=not enabled or self.log is not None, transient=True)
        self.jobs_task = None
        self.workers: dict[str, int] = {}
        self.done = self.failed = self.skipped = self.taken = 0  # taken: skipped at its turn, made by another run

    def __enter__(self) -> "BatchDisplay":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.__exit__(*exc_info)

    def __call__(self, event) -> None:
        handler = getattr(self, f"_{event.kind}", None)
        if handler is not None and self.enabled:
            handler(event)

    def _checked(self, event) -> None:
        self.skipped = event.done
        if event.done:
            self.console.print(f"Skipping {plural(event.done, 'job')} already done with the same inputs and "
                               f"settings ({flag_of('force')} redoes them).")
        self.jobs_task = self.progress.add_task(self._jobs_text(), total=event.total - event.done)

    def _started(self, event) -> None:
        job = _job_name(event)
        if event.reason:  # said before the job runs: a changed setting may make it long
            self.console.print(f"Running {escape(job)} again: {shown(event.reason)}")
        elif self.log is not None:
            self.console.print(f"Started {escape(job)}")
        self._worker_bar(event.worker, job, 0, None)

    def _stage(self, event) -> None:
        if self.log is not None:
            self.log((event.line, event.stage), event.stage, event.done, event.total, prefix=f"{_job_name(event)}: ")
        label = STAGE_LABELS.get(event.stage, event.stage)
        self._worker_bar(event.worker, f"{_job_name(event)}: {label}", event.done, event.total)

    def _finished(self, event) -> None:
        outcome = event.outcome
        if outcome.status == "skipped":  # at its turn: another run of the manifest has it
            self.taken += 1
            self.console.print(f"Skipped line {outcome.line}: {escape(outcome.output)}: {escape(outcome.reason)}")
        elif outcome.status == "done":
            self.done += 1
            self.console.print(f"[green]Done[/] line {outcome.line}: {escape(outcome.output)} in "
                               f"{outcome.seconds:.1f} s")
        elif outcome.status == "failed":
            self.failed += 1
            self.console.print(f"[red]Failed[/] line {outcome.line}: {escape(outcome.output)}: "
                               f"{shown(outcome.reason)}")
        if event.worker in self.workers:  # hidden until the worker takes its next job
            self.progress.update(self.workers[event.worker], visible=False)
        self.progress.update(self.jobs_task, completed=self.done + self.failed + self.taken,
                             description=self._jobs_text())

    def _worker_bar(self, worker: str, text: str, done: int, total: int | None) -> None:
        description = f"  {escape(worker)}: {escape(text)}"
        if worker not in self.workers:
            self.workers[worker] = self.progress.add_task(description, total=total)
        self.progress.update(self.workers[worker], description=description, completed=done, total=total,
                             visible=True)

    def _jobs_text(self) -> str:
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"[bold]Jobs[/]: {self.done} done{failed}"


def _job_name(event) -> str:
    return f"line {event.line} {Path(event.output).name}"


def print_summary(summary, quiet: bool = False) -> None:
    """The counts, then each failed job with its line and reason (failures are shown even when quiet)."""
    counts = [f"{summary.count(status)} {status}" for status in ("done", "skipped", "failed", "interrupted", "not run")
              if summary.count(status)]
    if not quiet:
        state = "[yellow]Interrupted[/] after" if summary.interrupted else "Finished in"
        console.print(f"{state} {summary.seconds:.1f} s: {plural(len(summary.outcomes), 'job')}: {', '.join(counts)}.")
        if summary.interrupted:
            console.print("Run the same command again, with the same options, to finish: the jobs done are skipped.")
        for outcome in summary.outcomes:
            for warning in outcome.warnings:
                print_warning(console, warning, about=f"line {outcome.line} ({outcome.output})")
    if summary.failed:
        table = Table(title="Failed jobs", title_justify="left", show_lines=True)
        table.add_column("line", justify="right")
        table.add_column("output")
        table.add_column("reason", overflow="fold")
        for outcome in summary.failed:
            table.add_row(str(outcome.line), escape(outcome.output), shown(outcome.reason))
        console.print(table)
        console.print("Run the same command again to retry the failed jobs; the others are skipped.")


def register(app: typer.Typer) -> None:
    app.command("batch", epilog=EPILOG)(batch_command)
