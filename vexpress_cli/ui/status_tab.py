"""The Status tab: the ``vexpress doctor`` report (device, memory, ffmpeg, model folder, face detection,
plugins, presets) as a table, and the models this app holds loaded."""

from __future__ import annotations

import gradio as gr

from vexpress_cli.errors import spell_parameters
from vexpress_cli.ui.form import spell_in_page
from vexpress_cli.ui.runtime import Job, Runtime

HEADERS = ["check", "status", "detail", "fix"]
# Tall enough for the whole report: no scrolling inside the table.
TABLE_MAX_HEIGHT = 4000
STATUS_WORDS = {"ok": "ok", "warning": "warning", "failure": "FAILURE"}


def run_status(deep: bool, job: Job) -> tuple[list[list[str]], str]:
    """The doctor's rows, and a one-line summary."""
    from vexpress_cli.jobs.doctor import DoctorOptions, counted, run_checks, status_counts

    checks = run_checks(DoctorOptions(model_dir=job.models.model_dir, deep=deep))
    rows = [[check.name, STATUS_WORDS[check.status], spell_parameters(check.detail, spell_in_page),
             spell_parameters(check.fix, spell_in_page)] for check in checks]
    loaded = ", ".join(job.models.loaded_devices) or "none yet (the first generation loads it)"
    summary = f"**{', '.join(counted(status_counts(checks)).values())}.** Model loaded on: {loaded}."
    return rows, summary


def build_status_tab(runtime: Runtime, tab) -> None:
    gr.Markdown("What `vexpress doctor` reports about this server: a fix for every problem.")
    with gr.Row():
        deep = gr.Checkbox(value=False, label="Deep: compare every checkpoint tensor with the architecture",
                           elem_id="status-deep")
        button = gr.Button("Run the checks", variant="primary", elem_id="status-run")
    summary = gr.Markdown(elem_id="status-summary")
    table = gr.Dataframe(headers=HEADERS, datatype="str", interactive=False, wrap=True, elem_id="status-table",
                         column_widths=["14%", "8%", "48%", "30%"], max_height=TABLE_MAX_HEIGHT)

    async def status_in_page(deep_checks: bool, request: gr.Request):
        rows, text = await runtime.run(request, lambda job: run_status(deep_checks, job), spell=spell_in_page)
        return rows, text

    for trigger in (button.click, tab.select):
        trigger(status_in_page, inputs=deep, outputs=[table, summary], api_visibility="private",
                concurrency_id="status")
