"""The ``vexpress`` Typer application and its error handling."""

from __future__ import annotations

import importlib

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from vexpress_cli.cli.options import typed_args
from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.interrupts import exit_code_of, handle_termination_signals

# Each module defines ``register(app)`` that adds its command(s).
COMMAND_MODULES = [
    "demo",
    "generate",
    "batch",
    "inspect",
    "strategies",
    "retarget",
    "extract",
    "presets",
    "models",
    "doctor",
    "ui",
    "docs",
]

error_console = Console(stderr=True)
TYPED_ARGS_KEY = "vexpress_args"  # the command line's words, in click's Context.meta
USAGE_ERROR = typer.BadParameter.__base__  # click's UsageError, of the click typer uses (its own copy since 0.2x)


class VExpressGroup(typer.core.TyperGroup):
    """Turns a VExpressError into one readable paragraph and exit code 2."""

    def parse_args(self, ctx, args):
        ctx.meta[TYPED_ARGS_KEY] = list(args)
        with typed_args(args):
            try:
                _refuse_empty_values(args, _options_taking_values(self, ctx, args))
            except VExpressError as error:
                _exit_with(error)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        """A command name a user may guess that is no command (``plugins``) is told the one that does it."""
        if args and args[0] in GUESSED_COMMANDS and self.get_command(ctx, args[0]) is None:
            command, does = GUESSED_COMMANDS[args[0]]
            raise InputError(f"There is no `vexpress {args[0]}` command.", why=f"`vexpress {command}` {does}.",
                             fix=f"Run `vexpress {command}` (`vexpress -h` lists the commands).")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        with typed_args(ctx.meta.get(TYPED_ARGS_KEY, ())):  # messages name a setting as typed (flag_of)
            try:
                return super().invoke(ctx)
            except VExpressError as error:
                _exit_with(error)
            except USAGE_ERROR as error:
                name = error.ctx.info_name if error.ctx is not None else None
                if error.message.startswith("Got unexpected extra argument") and name in FILE_OPTIONS:
                    error.message += (f". {name} takes each file with its option, e.g. `{FILE_OPTIONS[name]}`; "
                                      f"`vexpress {name} -h` lists them.")
                raise
            except KeyboardInterrupt as interrupt:  # Ctrl-C, or a termination signal (interrupts.py)
                try:
                    error_console.print(f"[yellow]{escape(str(interrupt) or 'Interrupted')}; nothing was written.[/]")
                except OSError:  # the terminal is gone (SIGHUP)
                    pass
                raise typer.Exit(exit_code_of(interrupt)) from None


# Names a user may guess for a command (docs/plugins.md, "Retarget strategies are plugins"): the command, what it does.
GUESSED_COMMANDS = {
    name: ("strategies", "lists the installed retarget strategies and the plugin each comes from (plugins add "
                         "strategies; `vexpress docs plugins` tells how to write one)")
    for name in ("plugins", "plugin")
}

# How a command takes its files, for a user who typed them without their options.
FILE_OPTIONS = {"generate": "vexpress generate -i photo.jpg -a speech.wav -o talk.mp4",
                "retarget": "vexpress retarget --kps driving.pth --reference-image photo.jpg -o retargeted.pth"}


def _exit_with(error: VExpressError):
    """The error as one paragraph on stderr, and its exit code (2 for bad input)."""
    from vexpress_cli.cli.options import flag_of

    error_console.print(f"[bold red]Error:[/] {escape(error.render(flag_of))}", highlight=False)
    raise typer.Exit(error.exit_code) from None


def _options_taking_values(group, ctx, args: list[str]) -> set[str]:
    """The flags that take a value in the (sub)command ``args`` name, e.g. ``-o`` and ``--output`` of generate."""
    command, flags = group, set()
    for arg in args:
        command = command.get_command(ctx, arg) if hasattr(command, "get_command") else None
        if command is None:
            break
        flags |= {flag for param in command.params if param.param_type_name == "option" and not param.is_flag
                  for flag in (*param.opts, *param.secondary_opts)}
    return flags


def _refuse_empty_values(args: list[str], takes_value: set[str]) -> None:
    """InputError for an option given an empty value (``-o ""``, ``--output=``): usually an unset shell variable,
    and read as a path it is the current folder. (Each command says what an empty argument of its own means.)"""
    for index, arg in enumerate(args):
        if arg == "--":
            return
        flag, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not equals:
            flag = args[index - 1] if index else ""
        if flag in takes_value and not value.strip():
            raise InputError(f"{flag} was given an empty value.", "An empty text names no file and no value; an "
                             "unset shell variable gives one (-o \"$OUT\" with OUT unset).",
                             f"Give {flag} a value, or leave it out.")


def _no_type_after_switches() -> None:
    """Typer 0.29 writes <bool> after every switch in --help (--json, --help, ...), as if it took a value."""
    display_type = getattr(typer.core.TyperOption, "display_type_rich", None)
    if display_type is None:  # older Typer shows none
        return

    def display_type_rich(option, ctx):
        return None if option.is_flag and option.metavar is None else display_type(option, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich


_no_type_after_switches()


app = typer.Typer(
    name="vexpress",
    cls=VExpressGroup,
    help="Talking-portrait video from one photo and a speech clip, with V-Express.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from vexpress_cli import __version__

        print(f"vexpress {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Talking-portrait video from one photo and a speech clip, with V-Express."""


def _register_commands() -> None:
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"vexpress_cli.cli.{module_name}")
        module.register(app)


_register_commands()


def quiet_libraries() -> None:
    """Keep diffusers' and transformers' loading chatter out of the command's output."""
    import logging
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    handle_termination_signals()
    quiet_libraries()
    app()
