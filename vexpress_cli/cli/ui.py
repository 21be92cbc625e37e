"""``vexpress ui``: start the web app (Gradio), print its URL, serve until Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vexpress_cli.cli.messages import print_warning
from vexpress_cli.cli.options import model_dir_option, model_option
from vexpress_cli.errors import InputError
from vexpress_cli.wording import extra_install_command
from vexpress_cli.ui.network import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, is_loopback

console = Console(stderr=True)

EPILOG = f"""\
[bold]Examples[/]

  At http://127.0.0.1:7860, for this machine only:

    [cyan]vexpress ui[/]

  With a model folder, opened in the browser:

    [cyan]vexpress ui --model-dir /data/model_ckpts --open[/]

  Reachable from the network, so protected by a password:

    [cyan]vexpress ui --host 0.0.0.0 --auth me:secret[/]

Needs the optional extra: {escape(extra_install_command("ui"))}
"""


def ui_command(
    model: str = model_option(),
    model_dir: Path = model_dir_option(),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on; anything but a loopback address "
                             "(127.0.0.1, ::1, localhost) lets other machines use this one's GPU."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    auth: str = typer.Option(None, "--auth", metavar="USER:PASS", show_default=False,
                             help="Ask for this user name and password before showing the app."),
    share: bool = typer.Option(False, "--share/--no-share", help="Also publish a public *.gradio.live link."),
    open_browser: bool = typer.Option(False, "--open", help="Open the app in a browser once it is up."),
    max_upload_mb: float = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", min=0.001, metavar="N",
                                        help="Largest file a user may upload, in megabytes."),
) -> None:
    """Start the web app: generate, extract, retarget and check the installation in a browser."""
    from vexpress_cli.ui import create_app, require_gradio

    require_gradio()
    credentials = parse_auth(auth)
    protect = "" if credentials else " Protect it with --auth USER:PASS."
    app = create_app(model_dir, model=model, max_upload_mb=max_upload_mb)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up like Ctrl-C
    try:
        if not is_loopback(host):
            _warn(f"listening on {host}: anyone who can reach this machine on port {port} can upload files and use "
                  f"its GPU.{protect}")
        if share:
            _warn(f"--share publishes the app on a public gradio.live address.{protect}")
        url = app.launch(host, port, auth=credentials, share=share, open_browser=open_browser)
        console.print(f"Temporary files in {escape(str(app.root))} (removed at exit). Press Ctrl-C to stop.",
                      highlight=False, soft_wrap=True)
        if app.share_url:
            print(f"public link: {app.share_url}", flush=True)
        print(f"vexpress ui: {url}", flush=True)  # last: a script reading it knows the app is up
        app.wait()
        console.print("Stopped.")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the app was up
        console.print("Stopped.")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        app.close()


def _warn(text: str) -> None:
    print_warning(console, text)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` as a (user, password) pair."""
    if text is None:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise InputError("--auth must be USER:PASS.", why="Both a user name and a password are needed.",
                         fix="Write it like --auth me:a-long-password.")
    return user, password


def register(app: typer.Typer) -> None:
    app.command("ui", epilog=EPILOG)(ui_command)
