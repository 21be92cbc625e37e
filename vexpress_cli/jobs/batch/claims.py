"""A job's claim on its output while it runs: a hidden file beside the output, created only if absent, so that a
second run of the same manifest (another terminal, a cron job, another node on shared storage) skips the jobs
the first is making, instead of making each one again and failing at its end.

A running claim is touched every :data:`HEARTBEAT_SECONDS` by a thread of its own, whatever the job is doing
(compiling, a long CPU step). A claim is taken over when its run has ended: its process is gone (asked on its
own machine) or it went :data:`CLAIM_STALE_SECONDS` untouched (a run killed on another machine, or on Windows,
where a process cannot be asked). Each claim holds a token of its own: a run removes only its own claim."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from pathlib import Path

from vexpress_cli.outputs.atomic import HOST_TAG, owner_gone

CLAIM_SUFFIX = ".vexpress-claim"
HEARTBEAT_SECONDS = 60
CLAIM_STALE_SECONDS = 15 * 60
MAX_CLAIM_BYTES = 4096


def claim_path(output: str | Path) -> Path:
    output = Path(output).absolute()
    return output.with_name(f".{output.name}{CLAIM_SUFFIX}")


class Claim:
    """This run's claim on one output (``path`` None: the folder refused the file, so the job runs unclaimed and
    fails as it will); :meth:`release` when the job ends."""

    def __init__(self, path: Path | None, token: str = ""):
        self.path, self.token = path, token
        self._stop = threading.Event()
        if path is not None:
            threading.Thread(target=self._beat, name=f"claim {path.name}", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Remove the claim if it is still this run's (another run may have taken over a claim gone stale)."""
        self._stop.set()
        if self.path is not None and _read(self.path).get("token") == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()


def claim_output(output: str | Path) -> Claim | str:
    """A claim on making ``output``, or who holds it (another run, in words)."""
    path = claim_path(output)
    for _ in range(3):  # a stale claim is moved away, then claimed afresh
        token = secrets.token_hex(8)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = _live_holder(path)
            if holder is not None:
                return holder
            _move_away_stale(path)
            continue
        except OSError:
            return Claim(None)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"host": HOST_TAG, "pid": os.getpid(), "token": token,
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
        return Claim(path, token)
    return "another run claimed it at the same moment"


def remove_claim(output: str | Path) -> None:
    """Remove the claim on ``output`` of a worker known dead (a lost Ray actor), so a rerun need not wait."""
    with contextlib.suppress(OSError):
        claim_path(output).unlink()


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            facts = json.loads(handle.read(MAX_CLAIM_BYTES))
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _live_holder(path: Path) -> str | None:
    """Who holds the claim at ``path``, in words; None when its run has ended."""
    try:
        changed = path.stat().st_mtime
    except OSError:  # removed meanwhile
        return None
    if time.time() - changed > CLAIM_STALE_SECONDS:
        return None
    facts = _read(path)
    if not facts:  # being written this very moment
        return "another run"
    try:
        host, pid, started = str(facts["host"]), int(facts["pid"]), str(facts["started"])
    except (KeyError, TypeError, ValueError):
        return "another run"
    if owner_gone(host, pid, changed):
        return None
    where = "this machine" if host == HOST_TAG else "another machine"
    return f"another run is making it (process {pid} on {where}, since {started})"


def _move_away_stale(path: Path) -> None:
    """Remove a stale claim so that only one of the runs that found it stale takes it over: each moves it to a
    name of its own first (only one move succeeds), and one that moved a fresh claim instead puts it back."""
    stale_token = _read(path).get("token")
    moved = path.with_name(f"{path.name}.{secrets.token_hex(4)}.stale")
    try:
        os.rename(path, moved)
    except OSError:  # another run moved it first
        return
    if _read(moved).get("token") != stale_token:  # a claim made meanwhile: not ours to remove
        with contextlib.suppress(OSError):
            os.link(moved, path)
    with contextlib.suppress(OSError):
        moved.unlink()
