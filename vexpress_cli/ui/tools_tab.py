"""The Extract / retarget tab: a driving video's kps track and audio, and the retarget preview (the fitted
keypoints over the portrait, next to the driving ones) to judge the motion before spending GPU time."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from vexpress_cli.errors import InputError, parameter, spell_parameters
from vexpress_cli.settings.schema import DEFAULTS, SETTINGS, checked_setting
from vexpress_cli.ui.form import (bullets, crop_control, label_of, reference_kps_box, resolved_values, setting_control,
                                  spell_in_page, typed_values)
from vexpress_cli.ui.generate_tab import FILE_HEIGHT, FILES_HEIGHT
from vexpress_cli.ui.runtime import Job, Runtime

EXTRACT_INTRO = """**1. Extract**: a driving video in, its keypoint track (kps file) and its audio out. The track
goes to step 2, and the *Generate* tab takes both. For a wide shot, crop *auto* frames the face like the
*Generate* tab's portrait crop."""
EXTRACT_CROP_INFO = ("The part of every frame the points are measured in. auto: the face is tracked and one steady "
                     "square is cut around it (the head motion stays in the track), framed like an auto-cropped "
                     "portrait; or type X,Y,W,H, a box in the video's pixels. The kps file records it.")
RETARGET_INTRO = """**2. Retarget preview**: the track fitted to your portrait by a strategy, drawn over it next to
the driving points. Download the fitted track for the *Generate* tab (with the strategy no_retarget)."""
AUDIO_SUFFIX = ".m4a"  # the video's AAC track is copied as it is
KPS_LABEL = "Driving kps file"  # this tab's kps control ("Driving motion" is the Generate tab's)


def spell_in_tab(name: str) -> str:
    """How this tab's messages name a parameter: as :func:`spell_in_page`, but the kps as this tab's control."""
    return f"“{KPS_LABEL}”" if name == "kps" else spell_in_page(name)


def run_extract(video: str | None, face_backend: str, crop: str, with_audio: bool, job: Job):
    from vexpress_cli import extract

    if not video:
        raise InputError("No driving video was uploaded.", fix="Upload a video of a talking face first.")
    silent = not has_audio(video)
    stem = Path(video).stem
    audio_out = job.output(stem, AUDIO_SUFFIX) if with_audio and not silent else None
    result = extract(video, job.output(f"{stem}-kps", ".safetensors"), audio_out, face_backend=face_backend,
                     model_root=job.models.model_dir, progress=job.progress, crop=crop)
    report = result.report
    reason = spell_parameters(result.backend_reason, spell_in_page)
    summary = (f"**Extracted** {report.frames} frames at {float(report.fps or 0):g} fps with {report.backend} "
               f"({reason}).")
    if report.missing_frames:
        summary += f" {len(report.missing_frames)} frames had no face and were filled in from their neighbours."
    if report.multi_face_frames:
        summary += f" {len(report.multi_face_frames)} frames showed several faces; the tracked one was kept."
    if report.crop is not None:
        video_width, video_height = report.video_size
        summary += (f" Cropped to the box {report.crop} of the {video_width}x{video_height} video "
                    f"({','.join(map(str, report.crop.as_list()))}, recorded in the kps file).")
    notes = list(result.notes)
    if with_audio and silent:
        notes.append(f"{Path(video).name} has no audio track, so there was no audio to save; its kps file was "
                     "written. Generate takes the speech from another file.")
    return result, "\n".join([summary, *bullets("Warning", result.warnings), *bullets("Note", notes)])


def has_audio(video: str) -> bool:
    """Whether ``video`` has sound; a file that is no video (text under a video's name) is refused as such first,
    so that it is not reported as a video without sound."""
    from vexpress_cli.media.ffmpeg import probe
    from vexpress_cli.media.video_reader import video_info

    source = probe(video, "video")
    if source.video is None or not source.video.width or not source.video.height:
        video_info(source)  # raises the paragraph for a file with no decodable frame
    return source.audio is not None


def run_retarget(reference_image: str | None, kps: str | None, strategy: str, kps_fit: str, reference_kps: str,
                 size: tuple, face_backend: str, framing: tuple, job: Job):
    from vexpress_cli import retarget
    from vexpress_cli.kps import parse_kps_points

    if not kps:
        raise InputError(f"No driving kps file for {parameter('kps')}.",
                         why="The preview shows how a driving track moves the portrait.",
                         fix="Extract one from a video above, or upload a .safetensors or .pth kps file.")
    points = parse_kps_points(reference_kps) if reference_kps else None
    if reference_image is None and points is None and strategy not in ("auto", "no_retarget"):
        raise InputError(f"The strategy '{strategy}' fits the motion to a face, but no {parameter('reference_image')} "
                         "was uploaded.", fix=f"Upload the portrait, or give {parameter('reference_kps')}.")
    stem = Path(reference_image).stem if reference_image else Path(kps).stem
    crop, face_index = framing
    width, height, face_index = numbers({"width": size[0], "height": size[1], "face_index": face_index})
    result = retarget(reference_image, kps, strategy, job.output(f"{stem}-retargeted", ".safetensors"),
                      preview=job.output(f"{stem}-preview", ".mp4"), reference_kps=points, kps_fit=kps_fit,
                      width=width, height=height, face_backend=face_backend, model_root=job.models.model_dir,
                      progress=job.progress, crop=crop, face_index=face_index)
    summary = f"**Retargeted** {result.num_frames} frames with {result.strategy} ({result.source})."
    return result, "\n".join([summary, *bullets("Note", result.notes)])


def numbers(raw: dict) -> list:
    """Number boxes' values checked as the Generate tab's: a cleared box or one outside the limits is refused."""
    return [checked_setting(name, value) for name, value in typed_values(raw).items()]


def build_tools_tab(runtime: Runtime, strategies: dict[str, str]) -> None:
    initial = resolved_values(None)  # defaults < config.toml, as in the Generate tab and vexpress retarget

    def control(name: str, value=None, elem_prefix: str = "tools"):
        return setting_control(SETTINGS[name], initial[name] if value is None else value, strategies, elem_prefix)

    with gr.Row():
        with gr.Column():
            gr.Markdown(EXTRACT_INTRO)
            video = gr.File(label="Driving video", elem_id="extract-video", height=FILE_HEIGHT)
            face_backend = control("face_backend")
            extract_crop = crop_control("none", "video", label=label_of("crop"), info=EXTRACT_CROP_INFO,
                                        elem_id="extract-crop")
            with_audio = gr.Checkbox(value=True, label=label_of("audio_out"), elem_id="extract-audio")
            extract_button = gr.Button("Extract", variant="primary", elem_id="extract")
            extracted = gr.File(label="Download: kps file and audio", file_count="multiple", interactive=False,
                                elem_id="extract-files", height=FILES_HEIGHT)
            extract_summary = gr.Markdown(elem_id="extract-summary")
        with gr.Column():
            gr.Markdown(RETARGET_INTRO)
            reference = gr.File(label=label_of("reference_image"), elem_id="retarget-portrait", height=FILE_HEIGHT)
            kps = gr.File(label=f"{KPS_LABEL} (filled by step 1)", elem_id="retarget-kps", height=FILE_HEIGHT)
            strategy = control("retarget_strategy", "offset_retarget" if "offset_retarget" in strategies else None)
            kps_fit = control("kps_fit")
            reference_kps = reference_kps_box("retarget-reference-kps")
            with gr.Row():
                crop = control("crop", elem_prefix="retarget")
                face_index = control("face_index", elem_prefix="retarget")
            with gr.Row():
                width, height = control("width"), control("height")
            retarget_button = gr.Button("Preview retargeting", variant="primary", elem_id="retarget")
            preview = gr.Video(label="Preview", interactive=False, elem_id="retarget-video")
            retargeted = gr.File(label="Download: the fitted kps file", interactive=False, elem_id="retarget-file",
                                 height=FILE_HEIGHT)
            retarget_summary = gr.Markdown(elem_id="retarget-summary")

    async def extract_in_page(video_path, backend, crop_text, audio_wanted, request: gr.Request,
                              progress=gr.Progress()):
        yield None, gr.update(), ""  # the last result goes as soon as a job starts
        done, error = await runtime.run_in_page(
            request, lambda job: run_extract(video_path, backend, (crop_text or "none").strip(), audio_wanted, job),
            progress=progress, spell=spell_in_page)
        if error:
            yield None, gr.update(), error  # a kps file already in step 2 stays
            return
        result, summary = done
        files = [str(result.kps_out)] + ([str(result.audio_out)] if result.audio_out else [])
        yield files, str(result.kps_out), runtime.page_message(summary)

    async def retarget_in_page(reference_path, kps_path, strategy_name, fit, points_text, width_value, height_value,
                               backend, crop_text, face_number, request: gr.Request, progress=gr.Progress()):
        size = (width_value, height_value)
        framing = ((crop_text or DEFAULTS["crop"]).strip(), face_number)
        yield None, None, ""  # the last result goes as soon as a job starts
        done, error = await runtime.run_in_page(
            request, lambda job: run_retarget(reference_path, kps_path, strategy_name, fit, (points_text or "").strip(),
                                              size, backend, framing, job),
            progress=progress, spell=spell_in_tab)
        if error:
            yield None, None, error
            return
        result, summary = done
        yield str(result.preview), str(result.output), runtime.page_message(summary)

    extract_button.click(extract_in_page, inputs=[video, face_backend, extract_crop, with_audio],
                         outputs=[extracted, kps, extract_summary], api_visibility="private", concurrency_id="tools")
    retarget_button.click(retarget_in_page,
                          inputs=[reference, kps, strategy, kps_fit, reference_kps, width, height, face_backend, crop,
                                  face_index],
                          outputs=[preview, retargeted, retarget_summary], api_visibility="private",
                          concurrency_id="tools")
