"""The ``/generate`` API endpoint: the generate job for ``gradio_client`` scripts, with the library's
parameter names (``reference_image``, ``audio``, ``kps``, ``preset``, ``reference_kps`` and every generation
setting by its schema name). ``kps`` may also be a driving video: its track is extracted first, cropped
by ``driving_crop`` (extract's ``crop``: ``"none"``, the default, ``"auto"`` or ``"X,Y,W,H"``). A setting
left out (None) comes from the preset, the user config or the default, as with ``vexpress_cli.generate``.
It returns the video first, then the job's record and the result as a dict::

    from gradio_client import Client, handle_file

    client = Client("http://127.0.0.1:7860/")
    video, record, result = client.predict(reference_image=handle_file("me.jpg"), audio=handle_file("hi.wav"),
                                           preset="lip-sync", seed=7, api_name="/generate")
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import gradio as gr

from vexpress_cli.errors import InputError, parameter
from vexpress_cli.settings.schema import SETTINGS
from vexpress_cli.ui.generate_tab import GenerateInputs, run_generation
from vexpress_cli.ui.runtime import Runtime

API_NAME = "generate"
# The job's own parameters, before the settings.
JOB_PARAMETERS = ("reference_image", "audio", "kps", "reference_kps", "preset")
# After the settings, so that the settings keep their positions for callers who pass arguments in order.
LATER_PARAMETERS = ("driving_crop",)


def add_generate_endpoint(runtime: Runtime) -> None:
    """Register ``/generate`` on the Blocks being built."""
    gr.api(generate_endpoint(runtime), api_name=API_NAME, concurrency_id="generate", concurrency_limit=1)


def generate_endpoint(runtime: Runtime):
    """An async function whose signature is the endpoint's: Gradio reads names and types from it."""
    from gradio.data_classes import FileData

    annotations: dict[str, Any] = {"reference_image": FileData, "audio": FileData, "kps": FileData | None,
                                   "reference_kps": str | None, "preset": str | None, "driving_crop": str | None}
    annotations |= {name: setting.kind | None for name, setting in SETTINGS.items()}
    annotations["request"] = gr.Request
    annotations["return"] = tuple[FileData, FileData, dict[str, Any]]
    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=inspect.Parameter.empty if name in ("reference_image", "audio") else None)
                  for name in (*JOB_PARAMETERS, *SETTINGS, *LATER_PARAMETERS)]
    parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
    signature = inspect.Signature(parameters, return_annotation=annotations["return"])

    async def generate(*args, **kwargs):
        values = signature.bind(*args, **kwargs).arguments
        request = values.pop("request")
        try:
            uploads = [_upload(values[name], name, runtime.uploads) for name in ("reference_image", "audio", "kps")]
        except InputError as error:
            raise runtime.page_error(error) from None
        inputs = GenerateInputs(*uploads, values["reference_kps"], values["preset"],
                                {name: values.get(name) for name in SETTINGS if values.get(name) is not None},
                                values["driving_crop"])
        outputs = await runtime.run(request, lambda job: run_generation(inputs, job))
        # Files named by their names, not by the server's temp paths: the result's record, inputs and messages.
        result = runtime.page_values({**outputs.result.to_dict(), "output": outputs.video.name})
        return FileData(path=str(outputs.video)), FileData(path=str(runtime.clean_record(outputs.record))), result

    generate.__signature__ = signature
    generate.__annotations__ = annotations
    generate.__doc__ = ("Generate a talking-portrait video: a portrait, speech (audio or a video) and optionally "
                        "a driving kps file or video (a video's crop: driving_crop); a preset name and any "
                        "generation setting by its name. Returns the video, the job's JSON record and the result.")
    return generate


def _upload(file: Any, name: str, uploads: Path) -> str | None:
    """The server path of an uploaded file; any other path (of the server, or of another session's job) is
    refused before any file is touched, in the same words whether or not it exists.

    Gradio checks only the paths of file objects it recognises, and allows the app's whole folder (it serves
    the outputs from there); a plain string or a dict without Gradio's marker passes through as it came.
    """
    if file is None:
        return None
    path = file.get("path") if isinstance(file, dict) else getattr(file, "path", None)
    if isinstance(path, str) and (resolved := Path(path).resolve()).is_relative_to(uploads):
        return str(resolved)
    raise InputError(f"{parameter(name)} is not a file uploaded to this app.",
                     why="The app reads only the files sent to it, never another file of the server.",
                     fix=f"Send the file itself: with gradio_client, {name}=handle_file(PATH) uploads it.")
