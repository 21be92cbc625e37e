"""The Generate tab, and the generation job it shares with the ``/generate`` API endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.ui.form import (SettingsForm, bullets, checked_preset, crop_control, label_of, reference_kps_box,
                                  spell_in_page)
from vexpress_cli.ui.runtime import Job, Runtime

INTRO = """Upload a portrait and a speech clip (audio, or a video whose sound is used), pick a preset, and press
**Generate**. A driving motion (a kps file from the *Extract / retarget* tab, or a video) is optional."""
FILE_HEIGHT = 150  # an empty box's upload icon clear of its label
FILES_HEIGHT = 190  # two downloads (a video and its record) in full
DRIVING_CROP_INFO = ("Only for a driving video, as the Extract tab's crop: auto tracks the face of a wide shot and "
                     "cuts one steady square around it, like the portrait's crop; or X,Y,W,H in the video's pixels.")


@dataclass
class GenerateInputs:
    """One generation as the page or the API asks for it; files are paths in the app's upload folder."""

    reference_image: str | None
    audio: str | None
    kps: str | None = None  # a kps file, or (from the page) a driving video
    reference_kps: str | None = None  # "x,y;x,y;x,y" only: never a path
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    driving_crop: str | None = "none"  # a driving video's crop before its track is extracted (extract's crop)

    def __post_init__(self) -> None:
        self.driving_crop = (self.driving_crop or "none").strip()


@dataclass
class GenerateOutputs:
    video: Path
    record: Path
    result: Any  # vexpress_cli.GenerationResult

    def summary(self) -> str:
        result = self.result
        lines = [f"**Done**: {result.num_frames} frames at {result.fps:g} fps ({result.duration:.2f} s), "
                 f"strategy {result.strategy}, in {result.seconds:.1f} s."]
        lines.append(f"- {self.framing()}")
        lines += bullets("Warning", result.warnings) + bullets("Note", result.notes)
        return "\n".join(lines)

    def framing(self) -> str:
        """The video's size, and whether it is the whole photo (paste-back); the notes say which box was cut."""
        result = self.result
        width, height = result.size or (result.settings["width"], result.settings["height"])
        if result.settings.get("paste_back"):
            return f"Video: {width}x{height}, the whole photo with the animated part pasted back into it."
        return f"Video: {width}x{height}."


def checked_driving_crop(crop: str) -> str:
    """A driving video's crop, checked as extract's ``crop`` but named ``driving_crop`` (its control, in the page):
    the portrait's own crop is another setting."""
    from vexpress_cli.settings.schema import validate_value

    try:
        return validate_value("crop", crop, parameter("driving_crop"), within_advice=False)
    except InputError as error:
        renamed = [getattr(part, "raw", part).replace(parameter("crop"), parameter("driving_crop"))
                   .replace(parameter("crop", "").rstrip("\x1e"), parameter("driving_crop", "").rstrip("\x1e"))
                   for part in (error.what, error.why, error.fix)]
        raise InputError(*renamed) from None


def run_generation(inputs: GenerateInputs, job: Job) -> GenerateOutputs:
    """Check the inputs, extract a driving video's track if one was given, generate (with its run record)."""
    from vexpress_cli import extract
    from vexpress_cli.jobs.generate import resolved_job
    from vexpress_cli.kps import parse_kps_points
    from vexpress_cli.file_types import KPS_SUFFIXES

    for name in ("reference_image", "audio"):
        if not getattr(inputs, name):
            raise InputError(f"{parameter(name)} is missing.", why="A video needs a portrait and its speech.",
                             fix=f"Upload a file as {parameter(name)}. (A file over the page's upload limit is "
                             "refused: its box shows Error. Clear it with × and upload a smaller one.)")
    preset = checked_preset(inputs.preset)
    resolution, settings = resolved_job(preset, dict(inputs.settings))
    resolved = resolution.settings
    reference_kps = parse_kps_points(inputs.reference_kps) if inputs.reference_kps else None
    reference = Path(inputs.reference_image)
    kps = Path(inputs.kps) if inputs.kps else None
    if kps is not None and kps.suffix.lower() not in KPS_SUFFIXES:  # a driving video: its track first
        driving_crop = checked_driving_crop(inputs.driving_crop)
        kps = extract(kps, job.output(f"{kps.stem}-kps", ".safetensors"), width=resolved.width,
                      height=resolved.height, face_backend=resolved.face_backend, model_root=job.models.model_dir,
                      progress=job.progress, crop=driving_crop).kps_out
    output = job.output(f"{reference.stem}-talking", ".mp4")
    with job.models.generator(resolved.device, resolved.dtype, job.token) as generator:
        result = generator.generate(reference, inputs.audio, output, kps=kps, reference_kps=reference_kps,
                                    preset=preset, progress=job.progress, **settings)
    return GenerateOutputs(output, result.record, result)


def build_generate_tab(runtime: Runtime, strategies: dict[str, str], blocks: gr.Blocks | None = None) -> None:
    """The tab's controls and events (inside a ``gr.Tab`` of ``blocks``, whose page load lists the presets
    again: one added or changed while the app runs is there without a restart)."""
    from vexpress_cli.ui.form import preset_choices

    form = SettingsForm(strategies)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            with gr.Row():
                portrait = gr.File(label=label_of("reference_image"), elem_id="portrait", height=FILE_HEIGHT)
                speech = gr.File(label=f"{label_of('audio')} (audio, or a video with sound)", elem_id="speech",
                                 height=FILE_HEIGHT)
            driving = gr.File(label=f"{label_of('kps')} (optional: a kps file or a driving video)", elem_id="driving",
                              height=FILE_HEIGHT)
            driving_crop = crop_control("none", "video", label=label_of("driving_crop"), elem_id="driving-crop",
                                        info=DRIVING_CROP_INFO)
            reference_kps = reference_kps_box("reference-kps")
            preset = gr.Dropdown(choices=preset_choices(), value="", label=label_of("preset"), elem_id="preset",
                                 info="Fills the settings below; change any of them afterwards.")
            form.render_main()
            # Above the settings below, which run 3000 px down with Advanced open: pressed there, the progress and
            # the result at the top of the other column were off screen.
            with gr.Row():
                start = gr.Button("Generate", variant="primary", elem_id="generate")
                cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
            with gr.Accordion("Framing: crop around the face, paste back into the photo", open=True,
                              elem_id="framing"):
                form.render_framing()
            with gr.Accordion("Advanced: every generation setting", open=False, elem_id="advanced"):
                form.render_advanced()
        with gr.Column():
            video = gr.Video(label="Result", interactive=False, elem_id="result-video")
            downloads = gr.File(label="Download: the video and its record", file_count="multiple",
                                interactive=False, elem_id="result-files", height=FILES_HEIGHT)
            summary = gr.Markdown(elem_id="result-summary")
            waiting = gr.State(False)  # Generate was pressed and its job has not ended: it may wait in the queue

    def fill(preset_name: str, error_shown: bool):
        """The form filled from the preset; a preset that does not load leaves it as it is and says why where the
        summary is, as every error of the page (a pop-up is easily missed), until a preset loads."""
        try:
            return [*form.fill(preset_name), "" if error_shown else gr.update(), False]
        except Exception as error:  # noqa: BLE001 - page_paragraph words a bug as one too
            return [*(gr.update() for _ in form.inputs), runtime.page_paragraph(error, spell_in_page), True]

    # .select, not .change: the page load's new list of choices is no choice of the user's, and filling the form
    # then reset what was typed meanwhile
    preset_error = gr.State(False)  # the summary shows why a preset does not load
    preset.select(fill, inputs=[preset, preset_error], outputs=[*form.inputs, summary, preset_error],
                  api_visibility="private", concurrency_limit=None)
    if blocks is not None:
        blocks.load(lambda: gr.update(choices=preset_choices()), outputs=preset, api_visibility="private",
                    concurrency_limit=None)

    async def generate_in_page(data: dict, request: gr.Request, progress=gr.Progress()):
        inputs = GenerateInputs(data[portrait], data[speech], data[driving], (data[reference_kps] or "").strip(),
                                data[preset], form.values(data), data[driving_crop])
        yield {video: None, downloads: None, summary: ""}  # the last result goes as soon as a job starts
        outputs, error = await runtime.run_in_page(request, lambda job: run_generation(inputs, job),
                                                   progress=progress, spell=spell_in_page)
        if error:
            yield {summary: error}
            return
        record = runtime.clean_record(outputs.record)
        yield {video: str(outputs.video), downloads: [str(outputs.video), str(record)],
               summary: runtime.page_message(outputs.summary())}

    start.click(lambda: True, outputs=waiting, queue=False, api_visibility="private")
    event = start.click(generate_in_page, inputs={portrait, speech, driving, driving_crop, reference_kps, preset,
                                                       *form.inputs},
                        outputs=[video, downloads, summary], api_visibility="private", concurrency_id="generate",
                        concurrency_limit=1)
    event.then(lambda: False, outputs=waiting, queue=False, api_visibility="private")  # however the job ended

    def cancelled(was_waiting: bool, request: gr.Request):
        if not (was_waiting or runtime.sessions.busy(request.session_hash)):
            return gr.update(), False  # nothing was running or queued: the last result stays
        return "**Cancelled**: nothing was written; press Generate to start again.", False

    cancel.click(cancelled, inputs=waiting, outputs=[summary, waiting], cancels=[event], api_visibility="private",
                 concurrency_limit=None)
