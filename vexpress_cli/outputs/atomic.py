"""Atomic outputs: written under a temporary name in the target folder, moved into place when complete.

See :func:`atomic_output` and :func:`atomic_outputs`, and docs/outputs.md.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from vexpress_cli.errors import InputError
from vexpress_cli.outputs.write_failures import write_failure
from vexpress_cli.outputs.checks import OVERWRITE_FIX, ensure_writable_folder

TEMP_TAG = "vexpress"
# This machine, in the names of its runs' temporary files: on storage several machines share (a Ray cluster's),
# another machine's process id says nothing here.
HOST_TAG = "h" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# .NAME.vexpress-PID-RANDOM-HOST.partial[.TAG][.SUFFIX]: ours, and whose (names from before HOST have none).
TEMP_NAME = re.compile(rf"^\..+\.{TEMP_TAG}-(?P<pid>\d+)-(?P<token>[0-9a-f]{{8}})(?:-(?P<host>h[0-9a-f]{{8}}))?"
                       r"\.partial(?:\..*)?$")
# Whether another machine's run still lives cannot be asked: its leftovers go once unchanged this long.
OTHER_HOST_STALE_SECONDS = 24 * 3600


class OutputAppearedError(InputError):
    """An output that may not be replaced was there when the result was about to be moved in place: written by
    another run meanwhile, or there from the start (a caller that skipped :func:`check_output`)."""


def written_meanwhile(path: Path, existed: bool = False) -> OutputAppearedError:
    """The error for an output that may not be replaced: there from the start (``existed``), or appeared since."""
    if existed:  # a caller that skipped check_output
        return OutputAppearedError(f"The output file {str(path)!r} already exists.",
                                   "Existing outputs are never replaced silently, so this run's result was "
                                   "discarded.", OVERWRITE_FIX)
    return OutputAppearedError(
        f"{str(path)!r} was written by another run meanwhile.",
        "It did not exist when this run started; existing outputs are never replaced silently, "
        "so this run's result was discarded.",
        OVERWRITE_FIX,
    )


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first: the folders that creating it makes."""
    return list(itertools.takewhile(lambda path: not os.path.lexists(path), (folder, *folder.parents)))


def remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a run made for its output (deepest first) while they are empty: a run that writes
    nothing leaves no folder either. One that is not empty (another run writes into it) stays, with its parents."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary output name of any vexpress run."""
    return TEMP_NAME.match(name) is not None


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary outputs in ``folder`` whose run has ended; return what was removed.

    A temporary name carries its process id: one whose process still runs (this one included,
    or any other, even another user's) is never touched. Only the folder itself is searched.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match is not None and _owner_gone(match["host"], int(match["pid"]), entry) and _remove(entry):
            removed.append(Path(entry.path))
    return removed


def owner_gone(host: str | None, pid: int, changed: float) -> bool:
    """Whether the run that wrote a file has ended: process ``pid`` of this machine (``host`` its tag, or None
    for a name from before the tag) is gone, or, on another machine, the file (last ``changed`` at that
    time) has been left unchanged for :data:`OTHER_HOST_STALE_SECONDS`."""
    if host is None or host == HOST_TAG:
        return not process_alive(pid)
    return time.time() - changed > OTHER_HOST_STALE_SECONDS


def _owner_gone(host: str | None, pid: int, entry: os.DirEntry) -> bool:
    try:
        changed = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return owner_gone(host, pid, changed)


def _remove(entry: os.DirEntry) -> bool:
    """Remove a temporary file or folder; False when that failed (a later run tries again)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    except FileNotFoundError:
        return True  # another run removed it first
    except OSError:
        return False
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (when that cannot be told, it counts as alive)."""
    if pid == os.getpid():
        return True
    if os.name == "nt" or pid <= 0:  # os.kill on Windows would terminate it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


class Transaction:
    """``with`` support: :meth:`start` on entry, :meth:`commit` when the block ends normally, else :meth:`discard`.

    Either way a full disk or a removed folder is one error naming the outputs (``paths``), not the temporary
    name the writing failed on; writers that end a transaction by hand get the same from :meth:`discard_after`.
    """

    def start(self):
        raise NotImplementedError

    def commit(self):
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            try:
                self.commit()
            except OSError as error:
                self.discard_after(error)  # commit() removed the temps already
                raise
        else:
            self.discard_after(exc)

    def discard_after(self, error: BaseException) -> None:
        """:meth:`discard` after ``error``; a full disk or a removed folder (:func:`write_failure`) is raised as its
        own error, the caller re-raises others."""
        failure = write_failure(error, self.paths)  # before discard() removes the folders made for the outputs
        self.discard()
        if failure:
            raise failure from None


class AtomicOutput(Transaction):
    """One output file or folder, written under a temporary name and moved into place when complete.

    Use :func:`atomic_output` in a ``with`` block, or call :meth:`start`, then :meth:`commit` or
    :meth:`discard` (writers that stay open across calls do this).
    """

    def __init__(self, path: str | Path, overwrite: bool = False, *, folder: bool = False):
        self.path = Path(path).expanduser().absolute()
        self.overwrite = overwrite
        self.folder = folder
        self.token = f"{TEMP_TAG}-{os.getpid()}-{secrets.token_hex(4)}-{HOST_TAG}"
        self.temp = self.path.with_name(f".{self.path.name}.{self.token}.partial{self.path.suffix}")
        self.state = "new"  # -> "started" -> "committed" or "discarded"
        self.existed = False  # whether path was there when the run started
        self.made_folders: list[Path] = []  # the missing folders start() created, removed again by discard()

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def scratch(self, tag: str) -> Path:
        """Another temporary name of this output (e.g. an intermediate file), removed with it."""
        return self.path.with_name(f".{self.path.name}.{self.token}.partial.{tag}{self.path.suffix}")

    def start(self) -> Path:
        """Remove stale leftovers in the folder, create the empty temporary file or folder, return it."""
        if self.state != "new":
            raise RuntimeError(f"atomic output for {self.path} already {self.state}")
        parent = self.path.parent
        if not parent.is_dir():
            missing = missing_folders(parent)
            ensure_writable_folder(parent)
            self.made_folders = missing
        remove_stale_temps(parent)
        self.existed = os.path.lexists(self.path)
        self.state = "started"  # from here on, discard() removes whatever was created
        try:
            if self.folder:
                os.mkdir(self.temp)
            else:
                # Mode 0666 less the umask, as any new file (mkstemp would make it 0600).
                os.close(os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except BaseException:
            self.discard()
            raise
        return self.temp

    def commit(self) -> Path:
        """Sync the temporary output to disk and move it to ``path``; on failure remove it and re-raise."""
        self._require_started()
        try:
            self.sync()
            self.publish()
            _fsync(self.path.parent, folder=True)
        except BaseException:
            self.discard()
            raise
        self.state = "committed"
        self._remove_own()
        return self.path

    def discard(self) -> None:
        """Remove this output's temporary files (and only them); ``path`` is left as it was."""
        if self.state in ("committed", "discarded"):
            return
        self.state = "discarded"
        self._remove_own()
        remove_if_empty(self.made_folders)

    # -- the steps, also driven by AtomicOutputs -------------------------------------------------

    def _require_started(self) -> None:
        if self.state != "started":
            raise RuntimeError(f"atomic output for {self.path} is {self.state}, not started")

    def sync(self) -> None:
        """fsync the temporary file, or every file of the temporary folder and the folder."""
        if self.folder:
            for entry in os.scandir(self.temp):
                if entry.is_file(follow_symlinks=False):
                    _fsync(Path(entry.path))
        _fsync(self.temp, folder=self.folder)

    def ensure_free(self) -> None:
        """OutputAppearedError when ``path`` exists now and may not be replaced."""
        if not self.overwrite and os.path.lexists(self.path):
            raise written_meanwhile(self.path, self.existed)

    def publish(self, keep_backup: bool = False) -> Callable[[], None]:
        """Move the temporary output to ``path``; returns a function that undoes the move.

        Never replaces an existing ``path`` unless ``overwrite``. With ``keep_backup`` a
        replaced file is kept (hard-linked) under a temporary name until :meth:`discard` or
        the end of :meth:`commit`, so the undo can restore it.
        """
        if self.folder:
            return self._publish_folder()
        return self._publish_file(keep_backup)

    def _publish_file(self, keep_backup: bool) -> Callable[[], None]:
        if self.overwrite:
            backup = None
            if keep_backup and os.path.lexists(self.path):
                backup = self.scratch("replaced")
                try:
                    os.link(self.path, backup)
                except OSError:
                    backup = None  # no links here: a failed group cannot restore this file
            os.replace(self.temp, self.path)
            placed = os.stat(self.path)
            return lambda: _restore(self.path, placed, backup)
        try:
            os.link(self.temp, self.path)  # fails if path exists, even if it appeared a moment ago
        except FileExistsError:
            raise written_meanwhile(self.path, self.existed) from None
        except OSError:  # no hard links on this file system: check, then rename
            self.ensure_free()
            os.rename(self.temp, self.path)
        else:
            os.unlink(self.temp)
        placed = os.stat(self.path)
        return lambda: _restore(self.path, placed, None)

    def _publish_folder(self) -> Callable[[], None]:
        aside = None
        if os.path.lexists(self.path):
            if not self.overwrite:
                raise written_meanwhile(self.path, self.existed)
            aside = self.scratch("replaced")
            os.rename(self.path, aside)
        try:
            # A rename never replaces a folder that holds anything (ENOTEMPTY), nor a file.
            os.rename(self.temp, self.path)
        except OSError as error:
            if aside is not None:
                os.rename(aside, self.path)
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise written_meanwhile(self.path, self.existed) from None
            raise

        def undo() -> None:
            os.rename(self.path, self.temp)
            if aside is not None:
                os.rename(aside, self.path)

        return undo

    def _remove_own(self) -> None:
        """Remove every name that carries this output's token: the temporary output and its scratch."""
        marker = f".{self.token}.partial"
        try:
            entries = [entry for entry in os.scandir(self.path.parent) if marker in entry.name]
        except OSError:
            return
        for entry in entries:
            _remove(entry)  # if that fails: a leftover with our pid, removed by a later run once we have exited


def _restore(path: Path, placed: os.stat_result, backup: Path | None) -> None:
    """Undo one published file: put the replaced file back, or remove the new one if it is still ours."""
    if backup is not None:
        os.replace(backup, path)
        return
    try:
        if os.path.samestat(os.stat(path), placed):
            os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_output(path: str | Path, overwrite: bool = False, *, folder: bool = False) -> AtomicOutput:
    """Write one output file (or, with ``folder=True``, folder) all at once::

        with atomic_output("talk.safetensors", overwrite=False) as temp:
            temp.write_bytes(data)      # or ffmpeg ... temp, torch.save(..., temp)

    ``temp`` exists (an empty file or folder) in the target's folder under a name unique to
    this run. When the block ends normally the output is synced to disk and moved to ``path``;
    if ``path`` appeared meanwhile and ``overwrite`` is False, OutputAppearedError (an
    InputError: "... was written by another run meanwhile") is raised and the temp removed.
    An exception in the block (KeyboardInterrupt, SystemExit too) removes the temp and
    propagates. Call :func:`check_output` first for clear errors before any slow work.
    """
    return AtomicOutput(path, overwrite, folder=folder)


class AtomicOutputs(Transaction):
    """Several outputs written together: all of them are moved into place, or none.

    Made by :func:`atomic_outputs`; ``None`` paths are kept as ``None`` temps, so optional
    outputs need no special case.
    """

    def __init__(self, paths: Iterable[str | Path | None], overwrite: bool = False):
        self.members = [None if path is None else AtomicOutput(path, overwrite) for path in paths]
        self._live = [member for member in self.members if member is not None]

    @property
    def paths(self) -> list[Path]:
        return [member.path for member in self._live]

    def start(self) -> tuple[Path | None, ...]:
        try:
            for member in self._live:
                member.start()
        except BaseException:
            self.discard()
            raise
        return tuple(None if member is None else member.temp for member in self.members)

    def commit(self) -> tuple[Path | None, ...]:
        """Move every output into place; if one cannot be, undo the others and re-raise."""
        try:
            for member in self._live:
                member._require_started()
                member.sync()
            for member in self._live:
                member.ensure_free()  # before anything moves: the usual failure leaves nothing to undo
            undo: list[Callable[[], None]] = []
            try:
                for member in self._live:
                    undo.append(member.publish(keep_backup=True))
            except BaseException:
                for step in reversed(undo):
                    step()
                raise
            for folder in {member.path.parent for member in self._live}:
                _fsync(folder, folder=True)
        except BaseException:
            self.discard()
            raise
        for member in self._live:
            member.state = "committed"
            member._remove_own()
        return tuple(None if member is None else member.path for member in self.members)

    def discard(self) -> None:
        for member in reversed(self._live):  # the first one made the folders the others went into
            member.discard()


def atomic_outputs(paths: Iterable[str | Path | None], overwrite: bool = False) -> AtomicOutputs:
    """Write several output files, all or none::

        with atomic_outputs([kps_out, audio_out], overwrite=overwrite) as (kps_temp, audio_temp):
            write_kps(kps_temp, track)
            if audio_temp is not None:
                write_audio_track(video, audio_temp)

    Like :func:`atomic_output` for each path (``None`` paths give ``None`` temps). None is
    moved into place unless all are complete; if one cannot be moved (it appeared
    meanwhile), those already moved are taken back (a replaced file is restored) and the
    error propagates.
    """
    return AtomicOutputs(paths, overwrite)


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush ``path`` to disk. Folders are synced where the platform allows (not on Windows)."""
    if folder and os.name == "nt":
        return
    try:
        handle = os.open(path, os.O_RDONLY if os.name != "nt" else os.O_RDWR)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EROFS):
            raise  # EIO, ENOSPC, ...: the data may not be on disk
    finally:
        os.close(handle)
