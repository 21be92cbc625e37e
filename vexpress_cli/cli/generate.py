"""``vexpress generate``: parse the flags, run the library's generate job, render its progress and result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vexpress_cli.cli.messages import print_note, print_warning, shown
from vexpress_cli.cli.options import (COMPATIBILITY_PANEL, complete_preset, flag_of, json_option, model_dir_option,
                                      model_option, one_of, quiet_option, with_generation_settings)
from vexpress_cli.cli.progress import stage_progress
from vexpress_cli.errors import InputError
from vexpress_cli.settings.schema import source_name
from vexpress_cli.wording import plural

console = Console(stderr=True)

EPILOG = """\
[bold]Examples[/] (each scenario of the V-Express guide has a preset)

  Lip-sync with the face still (fix_face):

    [cyan]vexpress generate -i ref.jpg -a speech.mp3 -o talk.mp4[/]

  The same person as in the driving keypoints (no_retarget):

    [cyan]vexpress generate -i ref.jpg -a aud.mp3 --kps kps.pth -o talk.mp4[/]

  Another person's head motion, toned down:

    [cyan]vexpress generate -i ref.jpg -a aud.mp3 --kps other.pth \\
        --preset slight-motion -o talk.mp4[/]

  A preset, with one of its settings changed:

    [cyan]vexpress generate --preset expressive -i ref.jpg -a aud.mp3 -o talk.mp4 \\
        --audio-attention-weight 2.5[/]

The original inference.py's flags work too: --reference_image_path, \
--audio_path, --kps_path, --output_path, ...
"""


@with_generation_settings
def generate_command(
    reference_image: Path = typer.Option(None, "--reference-image", "-i", help="Photo with a face, any shape (cut "
                                         "around the face: --crop). Required, unless --from-record.",
                                         show_default=False),
    audio: Path = typer.Option(None, "--audio", "-a", help="Speech: mp3, wav, m4a, flac, ogg or a video. Required, "
                               "unless --from-record.",
                               show_default=False),
    output: Path = typer.Option(None, "--output", "-o", help="Output .mp4/.mov/.mkv, or a folder for PNG frames. "
                                "Required, unless --from-record.", show_default=False),
    kps: Path = typer.Option(None, "--kps", help="Driving V-Kps track (`vexpress extract`).", show_default=False),
    reference_kps: str = typer.Option(None, "--reference-kps", show_default=False,
                                      help='Reference keypoints "x,y;x,y;x,y" (left eye; right eye; nose, in pixels '
                                      'of the output frame: the photo, or its --crop X,Y,W,H box, resized to --width '
                                      'x --height) or a kps file, instead of detecting them; --crop auto then keeps '
                                      'the whole photo.'),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML path; flags override it.",
                               autocompletion=complete_preset),
    model: str = model_option(),
    model_dir: Path = model_dir_option(),
    devices: str = typer.Option(None, "--devices", help="Split the video across devices, one process each: "
                                "cuda:0,cuda:1 or all (every GPU); cpu,cpu on the CPU. Wins over --device.",
                                show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
    from_record: Path = typer.Option(None, "--from-record", help="Run the job of a run record (talk.mp4.json) "
                                     "again: its inputs and settings; flags override them (not with --preset).",
                                     show_default=False),
    original_reference_image: Path = typer.Option(None, "--reference_image_path", rich_help_panel=COMPATIBILITY_PANEL,
                                                  help="Same as --reference-image.", show_default=False),
    original_audio: Path = typer.Option(None, "--audio_path", rich_help_panel=COMPATIBILITY_PANEL,
                                        help="Same as --audio.", show_default=False),
    original_output: Path = typer.Option(None, "--output_path", rich_help_panel=COMPATIBILITY_PANEL,
                                         help="Same as --output.", show_default=False),
    original_kps: Path = typer.Option(None, "--kps_path", rich_help_panel=COMPATIBILITY_PANEL,
                                      help="Same as --kps.", show_default=False),
    settings: dict | None = None,
    original: dict | None = None,
) -> None:
    """Generate a talking-portrait video: reference photo + speech (+ optional driving kps)."""
    reference_image = one_of(reference_image, original_reference_image, "--reference-image", "--reference_image_path")
    audio = one_of(audio, original_audio, "--audio", "--audio_path")
    output = one_of(output, original_output, "--output", "--output_path")
    kps = one_of(kps, original_kps, "--kps", "--kps_path")
    settings = dict(settings or {})
    recorded: set[str] = set()  # settings taken from --from-record's record, not from a flag
    ran_with: dict[str, str | None] = {}  # and the dtype and codec its run had
    if from_record is not None:
        from vexpress_cli.jobs.records import job_from_record

        job = job_from_record(from_record, preset, settings, reference_image=reference_image, audio=audio,
                              output=output, kps=kps, reference_kps=reference_kps)
        for warning in job.warnings:
            print_warning(console, warning)
        reference_image, audio, output, kps = job.reference_image, job.audio, job.output, job.kps
        recorded = set(job.settings) - set(settings)
        ran_with = {name: value for name, value in job.ran_with.items() if name not in settings}  # not typed
        reference_kps, settings = job.reference_kps, job.settings
        if model is None and model_dir is None:  # the record's weights, unless flags name others
            model_dir = job.model_dir
    for value, flag in ((reference_image, "--reference-image"), (audio, "--audio"), (output, "--output")):
        if value is None:
            raise InputError(f"{flag} is required.", "", f"Pass {flag} PATH (see `vexpress generate --help`).")
    settings, model_dir = apply_original_flags(original or {}, settings, model_dir)
    run_generate(reference_image, audio, output, settings, kps=kps, reference_kps=reference_kps, preset=preset,
                 model_dir=model_dir, model=model, overwrite=overwrite, quiet=quiet, as_json=as_json,
                 devices=devices, given_by=dict.fromkeys(recorded, "record"), ran_with=ran_with)


def apply_original_flags(original: dict, settings: dict, model_dir: Path | None) -> tuple[dict, Path | None]:
    """The original's model-path, GPU and sample-rate flags as vexpress's model folder and device."""
    from vexpress_cli.cli import original_flags

    original_flags.check_sample_rate(original.get("--standard_audio_sampling_rate"))
    if original.get("--do_multi_devices_inference"):
        print_note(console, "--do_multi_devices_inference is ignored: --devices spreads the work across GPUs.")
    device = original_flags.device_from_gpu_id(settings.get("device"), original.get("--gpu_id"))
    if device is not None:
        settings["device"] = device
    paths = {flag: original.get(flag) for flag in original_flags.MODEL_PATH_FLAGS}
    return settings, original_flags.model_dir_from_paths(model_dir, paths)


def run_generate(reference_image: Path, audio: Path, output: Path, given: dict, *, kps: Path | None = None,
                 reference_kps: str | None = None, preset: str | None = None, model_dir: Path | None = None,
                 model: str | None = None, overwrite: bool = False, quiet: bool = False,
                 as_json: bool = False, devices: str | None = None, given_by: Mapping[str, str] | None = None,
                 ran_with: dict[str, str | None] | None = None) -> None:
    """Plan the job (inputs checked, nothing loaded), show the plan, run it, show the result.

    ``given_by``: where settings of ``given`` that no flag gave came from ("record", "demo"), for the plan;
    ``ran_with``: that record's dtype and codec, which a rerun is told it does not repeat.
    """
    from vexpress_cli.cli.json_output import stdout_kept_for_json
    from vexpress_cli.jobs.generate import Generator, resolved_job
    from vexpress_cli.jobs.records import rerun_warnings

    resolved, job_settings = resolved_job(preset, given, devices)
    show = not quiet and not as_json
    generator = Generator(model_dir, resolved.settings.device, resolved.settings.dtype, devices, model=model)
    with generator, stage_progress(console, enabled=show) as progress, stdout_kept_for_json(as_json):
        plan = generator.plan(reference_image, audio, output, kps=kps, reference_kps=reference_kps, preset=preset,
                              overwrite=overwrite, progress=progress, **job_settings)
        codec = plan.encoding.codec if plan.encoding else None
        plan.warnings = [*plan.warnings, *rerun_warnings(ran_with or {}, generator.dtype_name, codec)]
        if show:
            for warning in plan.warnings:
                print_warning(console, warning)
            for note in plan.notes:
                print_note(console, note)
            console.print(status_line(plan, given_by or {}))
        result = generator.run(plan, progress)

    if as_json:
        print(json.dumps(result.to_dict(flag_of)))
    elif not quiet:
        loading = result.stages.get("model", 0.0)
        # the video's length: the audio's, to the nearest frame (the audio is cut to the frames)
        console.print(f"[green]Wrote[/] {escape(str(result.output))}: {result.num_frames / result.fps:.2f} s, "
                      f"{plural(result.num_frames, 'frame')} at {result.fps:g} fps, in {result.seconds:.1f} s"
                      + (f" (and {loading:.1f} s loading the model)." if loading >= 0.05 else "."))


def status_line(plan, given_by: Mapping[str, str] | None = None) -> str:
    """What is about to run, and where the main values came from (``given_by``: a setting's source other than
    a flag, e.g. a run record)."""
    settings, sources = plan.settings, plan.sources

    def origin(*names: str) -> str:
        """Each value's source in the order the values are shown ("preset/flag"), once when they share one."""
        words = [(given_by or {}).get(name) or _source_word(sources[name]) for name in names]
        return words[0] if len(set(words)) == 1 else "/".join(words)

    return (f"Strategy: [bold]{shown(plan.strategy)}[/] ({shown(plan.strategy_reason)}); "
            f"{plural(plan.num_frames, 'frame')} at {float(plan.fps):g} fps ({origin('fps')}) "
            f"for {plan.duration:.2f} s of audio; "
            f"{plural(settings.num_inference_steps, 'step')} ({origin('num_inference_steps')}), "
            f"weights {settings.reference_attention_weight:g}/{settings.audio_attention_weight:g} "
            f"({origin('reference_attention_weight', 'audio_attention_weight')}), "
            f"{settings.width}x{settings.height} ({origin('width', 'height')}).")


def _source_word(source: str) -> str:
    """Where a value came from, as the CLI says it: a value given explicitly came from a flag."""
    return "flag" if source == "explicit" else source_name(source)


def register(app: typer.Typer) -> None:
    app.command("generate", epilog=EPILOG)(generate_command)
