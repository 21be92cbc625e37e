"""The web app: the page (three tabs and the ``/generate`` endpoint), its temporary folder, and its launch.

Everything the app writes lives in one temporary folder, removed by :meth:`WebApp.close`: Gradio's
upload cache (``gradio/``, set through ``GRADIO_TEMP_DIR`` while the app lives) and one folder per
session for the outputs (``sessions/``), removed when its page closes. The server serves files from
there only (``allowed_paths``), takes uploads up to ``max_upload_mb``, and listens on 127.0.0.1 unless
told otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from vexpress_cli.errors import VExpressError, parameter
from vexpress_cli.input_files import optional_path
from vexpress_cli.settings.model_lookup import resolve_model_dir
from vexpress_cli.ui.network import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT
from vexpress_cli.ui.runtime import Runtime

TITLE = "vexpress: talking portraits"
# Files of Gradio's cache (uploads and served copies of outputs) older than this are deleted, hourly.
CACHE_MAX_AGE_SECONDS = 6 * 3600
# System fonts: the page fetches nothing from other sites.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
CSS = "#result-summary, #extract-summary, #retarget-summary, #status-summary {min-height: 1.5em}"


def upload_limit_words(max_upload_mb: float) -> str:
    """The upload limit as the intro says it, with Gradio's unit too for a limit under 1 MB (its refusal says
    "10.2 Kb" for 0.01 MB), and what a refused file looks like."""
    size = f"{max_upload_mb:g} MB"
    if max_upload_mb < 1:
        size += f" ({max_upload_mb * 1024:.1f} KB)"
    return (f"Uploads up to {size} per file (`vexpress ui --max-upload-mb` sets the limit); a larger file is "
            "refused and its box shows Error: clear it with × and upload a smaller one.")


class WebApp:
    """The ``vexpress ui`` app: build it, :meth:`launch` it, :meth:`close` it (or use ``with``)."""

    def __init__(self, model_dir: str | Path | None = None, *, model: str | None = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
        # Weights named on purpose are checked now: the first Generate is too late to learn they are missing.
        named = model_dir is not None or model is not None
        self.model_dir = resolve_model_dir(optional_path(model_dir, "model_dir"), model=model).path if named else None
        self.max_upload_mb = max_upload_mb
        self.root = Path(tempfile.mkdtemp(prefix="vexpress-ui-")).resolve()
        self.runtime = Runtime(self.root, self.model_dir)
        self._gradio_temp = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.runtime.uploads)
        self.url: str | None = None
        self.share_url: str | None = None
        try:
            self.blocks = self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> gr.Blocks:
        from vexpress_cli.ui.api import add_generate_endpoint
        from vexpress_cli.ui.form import installed_strategies
        from vexpress_cli.ui.generate_tab import build_generate_tab
        from vexpress_cli.ui.status_tab import build_status_tab
        from vexpress_cli.ui.tools_tab import build_tools_tab

        strategies = installed_strategies()
        with gr.Blocks(title=TITLE, analytics_enabled=False,
                       delete_cache=(3600, CACHE_MAX_AGE_SECONDS)) as blocks:
            gr.Markdown(f"# {TITLE}\nOne portrait and a speech clip in, a talking video out "
                        "([V-Express](https://github.com/tencent-ailab/V-Express)). "
                        f"{upload_limit_words(self.max_upload_mb)}",
                        elem_id="intro")
            with gr.Tabs():
                with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                    build_generate_tab(self.runtime, strategies, blocks)
                with gr.Tab("Extract / retarget", id="tools", elem_id="tab-tools"):
                    build_tools_tab(self.runtime, strategies)
                with gr.Tab("Status", id="status", elem_id="tab-status") as status:
                    build_status_tab(self.runtime, status)
            add_generate_endpoint(self.runtime)

            def session_closed(request: gr.Request) -> None:
                self.runtime.sessions.close(request.session_hash)

            blocks.unload(session_closed)
        blocks.queue(default_concurrency_limit=1)
        return blocks

    def launch(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, auth: tuple[str, str] | None = None,
               share: bool = False, open_browser: bool = False) -> str:
        """Start serving (in a background thread) and return the local URL."""
        try:
            _, self.url, self.share_url = self.blocks.launch(
                server_name=host, server_port=port, auth=auth, share=share, inbrowser=open_browser,
                prevent_thread_lock=True, quiet=True, show_error=True, allowed_paths=[str(self.root)],
                max_file_size=int(self.max_upload_mb * 1024 * 1024), ssr_mode=False, pwa=False, mcp_server=False,
                enable_monitoring=False, footer_links=["api"], theme=gr.themes.Default(font=SYSTEM_FONTS,
                                                                                        font_mono=MONO_FONTS),
                css=CSS)
        except OSError:  # Gradio's message speaks of its own environment variables: ours speaks of the flags
            raise VExpressError(
                f"Cannot listen on {host}:{port}.",
                why=f"Another program (or another vexpress ui) uses that port, or {host} is not an address of "
                "this machine.",
                fix=f"Pick another {parameter('port')} or {parameter('host')}, or stop the other program.",
            ) from None
        return self.url

    def wait(self) -> None:
        """Block until the server stops or Ctrl-C (which returns here: a script ends without a traceback)."""
        try:
            while self.blocks.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            return

    def close(self) -> None:
        """Stop the server, free the models and remove every file the app wrote."""
        blocks = getattr(self, "blocks", None)
        if blocks is not None:
            blocks.close(verbose=False)
        self.runtime.close()
        shutil.rmtree(self.root, ignore_errors=True)
        if os.environ.get("GRADIO_TEMP_DIR") == str(self.runtime.uploads):
            if self._gradio_temp is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = self._gradio_temp

    def __enter__(self) -> "WebApp":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

