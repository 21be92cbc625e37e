"""Termination signals handled like Ctrl-C, so a stopped run cleans up after itself.

``kill PID`` (SIGTERM), a closed terminal (SIGHUP) and Ctrl-\\ (SIGQUIT) would otherwise end
the process on the spot, leaving its temporary output files and ffmpeg children behind.
:func:`handle_termination_signals` turns them into :class:`Terminated`, a KeyboardInterrupt,
so every ``with`` block and ``finally`` that Ctrl-C runs runs for them too; the CLI then
exits with 128 + the signal number, as shells report a process ended by that signal.

Only the first signal is handled this way: a second one of the same kinds ends the process
at once (its temporary files are removed by the next run that writes into the same folder).
Inside :func:`signals_deferred` (around starting ffmpeg) a signal, Ctrl-C included, waits until
the block ends, so it can never land between a child process starting and the code that would
stop it. The CLI installs the handlers in ``main()``; library users may call the function themselves.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNAL_NAMES = ("SIGTERM", "SIGHUP", "SIGQUIT")


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM, SIGHUP or SIGQUIT)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"Stopped by {signal.Signals(signum).name}")


def handled_signals() -> list[signal.Signals]:
    """The termination signals this platform has (Windows has only SIGTERM)."""
    return [getattr(signal, name) for name in SIGNAL_NAMES if hasattr(signal, name)]


def handle_termination_signals() -> bool:
    """From now on, the first SIGTERM, SIGHUP or SIGQUIT raises :class:`Terminated` in the main thread.

    Ctrl-C (SIGINT) still raises KeyboardInterrupt; both wait for the end of a
    :func:`signals_deferred` block. A signal the parent ignores stays ignored: ``nohup``'s SIGHUP (the
    job outlives its terminal) and a shell's background job's SIGINT. Returns False (and changes nothing)
    when called outside the main thread, where Python cannot install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in (*handled_signals(), signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)
    return True


_deferring = 0  # depth of signals_deferred blocks
_pending: int | None = None  # the first signal that arrived inside one


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C and the termination signals until the block ends, then raise as usual.

    For the few statements that must not be cut in two, e.g. starting a child process and
    keeping its handle. Only signals handled by :func:`handle_termination_signals` wait.
    """
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if _deferring == 0 and _pending is not None:
            signum, _pending = _pending, None
            _raise_for(signum)


def _on_signal(signum: int, frame) -> None:
    global _pending
    if _deferring:
        if _pending is None:
            _pending = signum
        return
    _raise_for(signum)


def ctrl_c_raises() -> bool:
    """Whether Ctrl-C (SIGINT) raises KeyboardInterrupt here: Python's handler, or this module's."""
    return signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _on_signal)


_last_signal: int | None = None  # the latest one raised: a library may re-raise it as a plain KeyboardInterrupt


def exit_code_of(stop: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the process (130 for Ctrl-C), even when a library (Ray's ``wait``) turned
    :class:`Terminated` into a plain KeyboardInterrupt on its way up."""
    return getattr(stop, "exit_code", None) or 128 + (_last_signal or signal.SIGINT)


def _raise_for(signum: int) -> None:
    global _last_signal
    _last_signal = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    for other in handled_signals():  # a second termination signal ends the process at once (nohup's stays ignored)
        if signal.getsignal(other) is _on_signal:
            signal.signal(other, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """Put back this process's Python signal handlers after the block: a library starting here (Ray's
    driver) may install its own, which end the process on SIGTERM without the cleanup Ctrl-C gets."""
    kept = {}
    if threading.current_thread() is threading.main_thread():
        kept = {signum: signal.getsignal(signum) for signum in (*handled_signals(), signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


def reported(exit_code: int) -> None:
    """The command's result is out (its summary printed): from now on a Ctrl-C or termination signal ends the
    process at once with ``exit_code``, not 130, since nothing is left to stop but the interpreter's teardown
    (Ray's, which takes seconds), and a script must not read a finished batch as interrupted. Only where
    :func:`handle_termination_signals` installed the handlers (the command line's own process): a caller's
    (pytest running the command in-process) are left as they are."""
    ours = signal.getsignal(signal.SIGINT) is _on_signal
    if threading.current_thread() is not threading.main_thread() or not ours:
        return

    def end(signum, frame) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(exit_code)

    for signum in (*handled_signals(), signal.SIGINT):
        signal.signal(signum, end)
