"""``vexpress ui``: the whole toolkit as a local web app (Gradio), on the same public API as the CLI.

    from vexpress_cli.ui import create_app

    with create_app(model_dir="model_ckpts") as app:
        url = app.launch()          # 127.0.0.1:7860 unless told otherwise
        app.wait()                  # until Ctrl-C

Gradio is an optional extra (``pip install -e ".[ui]"`` in a clone); :func:`require_gradio` says how to
install it when it is missing. One module per part: :mod:`.app` (the page, the launch, the temp
folder), :mod:`.runtime` (sessions, the loaded models, cancellable jobs, progress and errors in the
page), :mod:`.form` (the generation settings as controls, from the schema), :mod:`.generate_tab`,
:mod:`.api` (the ``/generate`` endpoint), :mod:`.tools_tab` (extract and retarget) and
:mod:`.status_tab` (the doctor report); :mod:`.network` holds the defaults of where it listens.
"""

from __future__ import annotations

from pathlib import Path

from vexpress_cli.errors import VExpressError
from vexpress_cli.ui.network import DEFAULT_MAX_UPLOAD_MB
from vexpress_cli.wording import extra_install_command


def require_gradio() -> None:
    """VExpressError saying how to install Gradio when it is not installed."""
    try:
        import gradio  # noqa: F401
    except ImportError as error:
        raise VExpressError(
            "The web app needs Gradio, which is not installed.",
            why=f"Gradio is an optional extra of vexpress-cli, so the command line does not pull in a web "
            f"server ({error}).",
            fix=f"Install it with: {extra_install_command('ui')}",
        ) from None


def create_app(model_dir: str | Path | None = None, *, model: str | None = None, max_upload_mb: float | None = None):
    """The web app (not started yet): see :class:`vexpress_cli.ui.app.WebApp`. ``model``/``model_dir``: the
    weights, as for :class:`vexpress_cli.Generator` (a hub id or a folder; default: the usual lookup)."""
    require_gradio()
    from vexpress_cli.ui.app import WebApp

    return WebApp(model_dir, model=model, max_upload_mb=max_upload_mb or DEFAULT_MAX_UPLOAD_MB)
