"""``vexpress generate``: a talking-portrait video from a photo and a speech clip."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vexpress_cli.cli.progress import StageProgress
from vexpress_cli.errors import InputError

console = Console(stderr=True)

EPILOG = """Examples (each scenario of the V-Express guide has a preset, see `vexpress presets`):

  vexpress generate -i ref.jpg -a speech.mp3 -o talk.mp4                       # lip-sync, face still (fix_face)

  vexpress generate -i ref.jpg -a aud.mp3 --kps kps.pth -o talk.mp4            # same person, driving kps (no_retarget)

  vexpress generate -i ref.jpg -a aud.mp3 --kps other.pth --preset slight-motion -o talk.mp4

  vexpress generate --preset expressive -i ref.jpg -a aud.mp3 -o talk.mp4 --audio-attention-weight 2.5

  python inference.py flags work too: --reference_image_path --audio_path --kps_path --output_path ...
"""

# Options whose value is None were not given: only given ones override a preset.
SETTING_OPTIONS = (
    "retarget_strategy", "num_inference_steps", "guidance_scale", "context_frames", "context_overlap",
    "reference_attention_weight", "audio_attention_weight", "save_gpu_memory", "fps", "width", "height", "seed",
    "dtype", "device", "kps_fit", "num_pad_audio_frames", "postprocess",
)


def generate_command(
    reference_image: Path = typer.Option(None, "--reference-image", "-i", "--reference_image_path",
                                         help="Portrait photo (square, face centred, 512px or more)."),
    audio: Path = typer.Option(None, "--audio", "-a", "--audio_path", help="Speech: mp3, wav, m4a, flac, ogg or a video."),
    output: Path = typer.Option(None, "--output", "-o", "--output_path",
                                help="Output .mp4/.mov/.mkv, or a folder for PNG frames."),
    kps: Path = typer.Option(None, "--kps", "--kps_path", help="Driving V-Kps track (`vexpress extract`)."),
    reference_kps: str = typer.Option(None, "--reference-kps",
                                      help='Reference keypoints "x,y;x,y;x,y" or a kps file, instead of detecting them.'),
    preset: str = typer.Option(None, "--preset", "-p", help="Preset name or TOML path; flags override it."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Model folder (default: $VEXPRESS_MODEL_DIR, config, ./model_ckpts)."),
    retarget_strategy: str = typer.Option(None, "--retarget-strategy", "--strategy", "--retarget_strategy",
                                          help="Default: no_retarget with --kps, fix_face without."),
    num_inference_steps: int = typer.Option(None, "--num-inference-steps", "--num_inference_steps", help="Default 25."),
    guidance_scale: float = typer.Option(None, "--guidance-scale", "--guidance_scale", help="Default 3.5."),
    context_frames: int = typer.Option(None, "--context-frames", "--context_frames", help="Default 24 (max 32)."),
    context_overlap: int = typer.Option(None, "--context-overlap", "--context_overlap", help="Default 4."),
    reference_attention_weight: float = typer.Option(None, "--reference-attention-weight",
                                                     "--reference_attention_weight", help="Default 1.0 (advised 0.9-1.0)."),
    audio_attention_weight: float = typer.Option(None, "--audio-attention-weight", "--audio_attention_weight",
                                                 help="Default 1.0 (advised 1.0-3.0)."),
    save_gpu_memory: bool = typer.Option(None, "--save-gpu-memory/--no-save-gpu-memory", "--save_gpu_memory",
                                         help="Offload networks once done (long audio, small GPUs)."),
    fps: float = typer.Option(None, "--fps", help="Output frame rate (default 30; 29.97 means exactly 30000/1001)."),
    width: int = typer.Option(None, "--width", "--image_width", help="Default 512."),
    height: int = typer.Option(None, "--height", "--image_height", help="Default 512."),
    seed: int = typer.Option(None, "--seed", help="Default 42 (same seed, same video as the original)."),
    device: str = typer.Option(None, "--device", help="auto, cuda, cuda:N, mps or cpu."),
    dtype: str = typer.Option(None, "--dtype", help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16 or fp32."),
    kps_fit: str = typer.Option(None, "--kps-fit", help="Fit a kps track of another length: pingpong, loop or stretch."),
    num_pad_audio_frames: int = typer.Option(None, "--num-pad-audio-frames", "--num_pad_audio_frames", hidden=True),
    postprocess: bool = typer.Option(None, "--postprocess/--no-postprocess", help="3x3x3 median filter (default on)."),
    face_backend: str = typer.Option("auto", "--face-backend", help="Reference kps detector: auto, insightface or dlib."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress; print only errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Generate a talking-portrait video: reference photo + speech (+ optional driving kps)."""
    for value, flag in ((reference_image, "--reference-image"), (audio, "--audio"), (output, "--output")):
        if value is None:
            raise InputError(f"{flag} is required.", "", f"Pass {flag} PATH (see `vexpress generate --help`).")
    given = {name: value for name, value in locals().items() if name in SETTING_OPTIONS and value is not None}
    run_generate(reference_image, audio, output, given, kps=kps, reference_kps=reference_kps, preset=preset,
                 model_dir=model_dir, face_backend=face_backend, overwrite=overwrite, quiet=quiet, as_json=as_json)


def run_generate(reference_image: Path, audio: Path, output: Path, given: dict, *, kps: Path | None = None,
                 reference_kps: str | None = None, preset: str | None = None, model_dir: Path | None = None,
                 face_backend: str = "auto", overwrite: bool = False, quiet: bool = False,
                 as_json: bool = False) -> None:
    """The command's work, given the settings that were set on purpose (``given``)."""
    from vexpress_cli.settings.user_config import resolve_model_dir
    from vexpress_cli.engine.devices import resolve_device, resolve_dtype
    from vexpress_cli.jobs.generate import GenerationRequest, default_strategy, plan_generation, run_generation
    from vexpress_cli.kps.io import reference_kps_from_text
    from vexpress_cli.settings.presets import range_warnings

    settings, explicit = resolve_settings(preset, given)
    strategy, reason = default_strategy(settings, explicit, kps is not None)
    # Everything that can be checked cheaply is checked before the long work.
    check_output(output, overwrite)
    model_folder = resolve_model_dir(model_dir).path
    device = resolve_device(settings["device"])
    dtype = resolve_dtype(settings["dtype"], device)
    request = GenerationRequest(
        reference_image=reference_image, audio=audio, output=output, settings=settings, kps=kps,
        reference_kps=reference_kps_from_text(reference_kps, settings["width"], settings["height"])
        if reference_kps else None, face_backend=face_backend,
        face_model_root=model_folder, overwrite=overwrite,
    )

    show = not quiet and not as_json
    with StageProgress(console, enabled=show) as progress, unfinished_bars_removed_on_error(progress):
        progress.start("inputs", "Reading inputs")
        # Presets stay within the advised ranges, so only flags can leave them.
        plan = plan_generation(request, strategy, reason, warnings=range_warnings(given))
        progress.finish("inputs")
        if show:
            for warning in plan.warnings:
                console.print(f"[yellow]Warning:[/] {escape(warning)}")
            console.print(f"Strategy: [bold]{plan.strategy}[/] ({plan.strategy_reason}); {plan.num_frames} frames "
                          f"at {float(plan.fps):g} fps for {plan.duration:.2f} s of audio.")
        progress.start("model", "Loading model")
        pipeline = load_pipeline(model_folder, device, dtype, settings)
        progress.finish("model")
        result = run_generation(pipeline, plan, request, progress=progress.update)

    if as_json:
        print(json.dumps(result.to_dict()))
    elif not quiet:
        console.print(f"[green]Wrote[/] {escape(str(result.output))}: {result.duration:.2f} s, {result.num_frames} "
                      f"frames at {result.fps:g} fps, in {result.seconds:.1f} s.")


@contextmanager
def unfinished_bars_removed_on_error(progress: StageProgress):
    """On failure, leave the finished stages on screen but not a half-drawn bar above the error."""
    try:
        yield
    except BaseException:
        for task in list(progress.progress.tasks):
            if not task.finished:
                progress.progress.remove_task(task.id)
        raise


def resolve_settings(preset_name: str | None, given: dict) -> tuple[dict, set[str]]:
    """Defaults < preset < flags; also which settings were chosen on purpose (preset or flag)."""
    from vexpress_cli.settings.presets import generation_settings, load_preset

    preset = load_preset(preset_name) if preset_name else None
    settings = generation_settings(preset, given)
    explicit = set(given) | set(preset.values if preset else {})
    return settings, explicit


def check_output(output: Path, overwrite: bool) -> None:
    """Fail before the long work, not after it: the output must be new (or --overwrite) and writable."""
    from vexpress_cli.outputs import ensure_writable_folder
    from vexpress_cli.file_types import VIDEO_OUTPUT_SUFFIXES as VIDEO_SUFFIXES

    if output.suffix and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"Cannot write a video named {output}.", "The output format is chosen from the suffix.",
                         "Use .mp4, .mov or .mkv, or a folder path without suffix for PNG frames.")
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists.", "vexpress does not replace files unless asked.",
                         "Pass --overwrite or choose another --output.")
    folder = output.absolute().parent
    if folder.exists() and not folder.is_dir():
        raise InputError(f"Cannot write {output}: {folder} is a file, not a folder.", "",
                         "Pick an --output inside an existing folder.")
    if not folder.is_dir():
        raise InputError(f"The output folder {folder} does not exist.", "",
                         f"Create it first (mkdir -p {folder}) or pick another --output.")
    ensure_writable_folder(folder)


def load_pipeline(model_folder: Path, device, dtype, settings: dict):
    import torch

    from vexpress_cli import VExpressPipeline
    from vexpress_cli.jobs.generate import out_of_memory_error

    try:
        return VExpressPipeline.from_pretrained(model_folder, device=device, dtype=dtype)
    except torch.cuda.OutOfMemoryError:
        raise out_of_memory_error(settings, "while loading the model") from None


def register(app: typer.Typer) -> None:
    app.command("generate", epilog=EPILOG)(generate_command)
