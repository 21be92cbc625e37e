"""A job's claim on its output while it runs: a hidden file beside the output, created only if absent, so that a
second run of the same manifest (another terminal, a cron job, another node on shared storage) skips the jobs
the first is making, instead of making each one again and failing at its end. A run that died leaves its claim;
it is taken over once its process is gone (on its machine) or, from another machine, once it went untouched
for :data:`CLAIM_STALE_SECONDS` (a running job touches its claim as it advances)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from vexpress_cli.outputs.atomic import HOST_TAG, owner_gone

CLAIM_SUFFIX = ".vexpress-claim"
CLAIM_STALE_SECONDS = 15 * 60
MAX_CLAIM_BYTES = 4096


def claim_path(output: str | Path) -> Path:
    output = Path(output).absolute()
    return output.with_name(f".{output.name}{CLAIM_SUFFIX}")


@dataclass
class Claim:
    """This run's claim on one output: :meth:`touch` as the job advances, :meth:`release` when it ends."""

    path: Path | None  # None: the folder refused the claim file, so the job runs unclaimed (and fails as it will)

    def touch(self) -> None:
        try:
            os.utime(self.path)
        except (OSError, TypeError):  # removed by hand, or no claim: the job goes on
            pass

    def release(self) -> None:
        try:
            self.path.unlink()
        except (OSError, AttributeError):
            pass


def claim_output(output: str | Path) -> Claim | str:
    """A claim on making ``output``, or who holds it (another run, in words)."""
    path = claim_path(output)
    for _ in range(2):  # a stale claim is removed once, then claimed afresh
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = _live_holder(path)
            if holder is not None:
                return holder
            path.unlink(missing_ok=True)
            continue
        except OSError:
            return Claim(None)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"host": HOST_TAG, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
        return Claim(path)
    return "another run claimed it at the same moment"


def _live_holder(path: Path) -> str | None:
    """Who holds the claim at ``path``, in words; None when its run has ended (or the claim went stale)."""
    try:
        changed = path.stat().st_mtime
        with path.open("rb") as handle:
            text = handle.read(MAX_CLAIM_BYTES)
    except OSError:  # removed meanwhile
        return None
    if time.time() - changed > CLAIM_STALE_SECONDS:
        return None
    try:
        facts = json.loads(text)
        host, pid, started = str(facts["host"]), int(facts["pid"]), str(facts["started"])
    except (ValueError, KeyError, TypeError):  # being written this very moment
        return "another run"
    if owner_gone(host, pid, changed):
        return None
    where = "this machine" if host == HOST_TAG else "another machine"
    return f"another run is making it (process {pid} on {where}, since {started})"
