"""Issue 8 hardening of the writers: two runs writing the same output (item 7), termination signals and
killed runs (item 11), a name that is only a suffix and the file-size limit (item 15).

These run real processes: the writers in a second Python, and the CLI's main() through `python -m vexpress_cli`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.kps.io import KpsTrack, save_kps
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.media.video_writer import PngFolderWriter, open_video_writer
from vexpress_cli.outputs import is_temp_name

REFERENCE_KPS = "185.5,218.6;278.9,215.4;224.6,271.4"


def temps_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if is_temp_name(path.name))


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def wait_until(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    """Poll ``condition`` until true; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            output = process.communicate()
            pytest.fail(f"the process ended (code {process.returncode}) before the condition held: {output}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the condition did not hold within {seconds} s")
        time.sleep(0.02)


# --- issue 8 item 7: two runs writing the same output --------------------------------------------

RACER = r"""
import sys
import numpy as np
from vexpress_cli.errors import VExpressError
from vexpress_cli.media.video_writer import open_video_writer

path, frames = sys.argv[1], int(sys.argv[2])
try:
    with open_video_writer(path, 25, 32, 32) as writer:
        writer.write(np.full((frames, 32, 32, 3), 40, np.uint8))
        print("written", flush=True)
        sys.stdin.readline()  # finish when told to
except VExpressError as error:
    print(error, flush=True)
    sys.exit(2)
"""


@pytest.mark.parametrize("name", ["race.mp4", "race_frames"])
@pytest.mark.slow
def test_issue8_item7_two_runs_writing_the_same_output(tmp_path, name):
    """Issue 8 item 7: two runs writing the same output (MP4, PNG folder) use their own temp names, neither
    deletes the other's, and the one that finishes second gets "written by another run meanwhile" instead of
    replacing the first one's output."""
    target = tmp_path / name
    first = subprocess.Popen([sys.executable, "-c", RACER, str(target), "3"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "written", first.communicate()
        [first_temp] = temps_in(tmp_path)
        first_contents = names(first_temp) if first_temp.is_dir() else first_temp.stat().st_ino

        with open_video_writer(target, 25, 32, 32) as second:  # starts while the first one is writing
            second.write(np.full((5, 32, 32, 3), 200, np.uint8))
            assert len(temps_in(tmp_path)) == 2 and first_temp.exists()  # its own temp; the other's kept
            assert (names(first_temp) if first_temp.is_dir() else first_temp.stat().st_ino) == first_contents
        finished_second = names(target) if target.is_dir() else video_info(target).frame_count

        out, err = first.communicate("\n", timeout=60)
    finally:
        first.kill()
    assert first.returncode == 2, (out, err)
    assert "was written by another run meanwhile" in " ".join(out.split())
    assert "Traceback" not in err
    if target.is_dir():
        assert finished_second == names(target) == [f"frame_{index:06d}.png" for index in range(1, 6)]
    else:
        assert finished_second == video_info(target).frame_count == 5  # still the second run's video
    assert names(tmp_path) == [name]  # the loser removed its own temp, nothing else


# --- issue 8 item 11: termination signals and killed runs ----------------------------------------


def preview_command(folder: Path) -> list[str]:
    """A real `vexpress` command (through main()) that writes an MP4 for a long while."""
    return [sys.executable, "-m", "vexpress_cli", "retarget", "--reference-kps", "23.2,27.3;34.9,26.9;28.1,33.9",
            "--strategy", "fix_face", "--num-frames", "200000", "--width", "64", "--height", "64",
            "--output", str(folder / "still.safetensors"), "--preview", str(folder / "preview.mp4")]


def signalled_while_writing(command: list[str], tmp_path: Path, folder: Path, send, written=None,
                            **popen) -> tuple[int, str]:
    """Run ``command``; once it writes its video into ``folder`` (``written(folder)``: a temp is there), ``send``
    the process its signal and wait. Its exit code and stderr."""
    written = written or temps_in
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, **popen)
        try:
            wait_until(lambda: written(folder), process)
            send(process)
            process.wait(timeout=300)
        finally:
            process.kill()
        stderr.seek(0)
        return process.returncode, stderr.read()


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGQUIT"])
@pytest.mark.slow
def test_issue8_item11_termination_signals_are_handled_like_ctrl_c(tmp_path, name):
    """Issue 8 item 11: SIGTERM, SIGHUP and SIGQUIT in the middle of writing remove the temp files and the
    command exits with 128 + the signal number, as Ctrl-C does (with 130)."""
    signum = getattr(signal, name)
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = signalled_while_writing(preview_command(folder), tmp_path, folder,
                                        lambda process: process.send_signal(signum))
    assert code == 128 + signum, err
    assert names(folder) == []
    assert f"Stopped by {name}; nothing was written." in " ".join(err.split()) and "Traceback" not in err


HANDLERS_SHOWN = """
import os, signal
from vexpress_cli import interrupts
SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
def shown():
    kinds = {signal.SIG_IGN: "ignored", signal.SIG_DFL: "default", interrupts._on_signal: "handled"}
    return " ".join(kinds.get(signal.getsignal(signum), "other") for signum in SIGNALS)
interrupts.handle_termination_signals()
print(shown())
try:
    os.kill(os.getpid(), signal.SIGTERM)
except interrupts.Terminated:
    print(shown())
"""


def test_a_signal_the_parent_ignores_stays_ignored_the_others_are_handled_and_a_second_ends_the_process():
    """`nohup vexpress ...` was stopped by SIGHUP anyway: the CLI replaced the SIG_IGN nohup had set. After a first
    SIGTERM the others go back to ending the process at once, but nohup's SIGHUP stays ignored."""
    for ignored, expected in ((signal.SIGHUP, ["ignored handled handled handled", "ignored handled default default"]),
                              (signal.SIGINT, ["handled ignored handled handled", "default ignored default default"])):
        shown = subprocess.run([sys.executable, "-c", HANDLERS_SHOWN], capture_output=True, text=True, check=True,
                               preexec_fn=lambda signum=ignored: signal.signal(signum, signal.SIG_IGN)).stdout
        assert shown.splitlines() == expected


@pytest.mark.slow
def test_a_run_under_nohup_survives_the_hangup_of_its_terminal(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    command = preview_command(folder)
    command[command.index("200000")] = "3000"
    code, err = signalled_while_writing(command, tmp_path, folder, lambda process: process.send_signal(signal.SIGHUP),
                                        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup
    assert code == 0, err
    assert video_info(folder / "preview.mp4").frame_count == 3000


IGNORES_CTRL_C = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a program that handles Ctrl-C its own way
import vexpress_cli
vexpress_cli.retarget(None, None, "fix_face", sys.argv[1] + "/still.safetensors", preview=sys.argv[1] + "/preview.mp4",
                      reference_kps="23.2,27.3;34.9,26.9;28.1,33.9", num_frames=6000, width=64, height=64)
"""


@pytest.mark.slow
def test_a_program_that_ignores_ctrl_c_keeps_its_ffmpeg_through_a_ctrl_c_to_its_process_group(tmp_path):
    """The terminal's Ctrl-C reached the library's ffmpeg, which died, and the job failed as a broken encode."""
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = signalled_while_writing(
        [sys.executable, "-c", IGNORES_CTRL_C, str(folder)], tmp_path, folder,
        lambda process: os.killpg(process.pid, signal.SIGINT),  # what Ctrl-C sends: every process of the group
        written=lambda folder: any(path.stat().st_size > 0 for path in temps_in(folder)),  # ffmpeg runs
        start_new_session=True)
    assert code == 0, err
    assert video_info(folder / "preview.mp4").frame_count == 6000


@pytest.mark.parametrize(("setup", "apart"), [
    ("", False),  # Python's own handler: Ctrl-C raises KeyboardInterrupt
    ("from vexpress_cli.interrupts import handle_termination_signals; handle_termination_signals()", False),  # the CLI
    ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)", True),
    ("import signal; signal.signal(signal.SIGINT, lambda *_: None)", True),  # a program's own handler
])
@pytest.mark.slow
def test_ffmpeg_leaves_the_terminals_process_group_only_where_ctrl_c_does_not_raise(setup, apart):
    """In the CLI a kill of the whole process group must still reach ffmpeg."""
    code = f"{setup}\nfrom vexpress_cli.media.ffmpeg import own_process_group\nprint(own_process_group())"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == ("{'process_group': 0}" if apart else "{}")


@pytest.mark.slow
def test_issue8_item11_leftovers_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    """Issue 8 item 11: after a SIGKILL the temp files are recognisable (they carry the dead process's id) and
    the next run writing into that folder removes them, but not the temp files of a run that is still alive."""
    folder = tmp_path / "out"
    folder.mkdir()
    running = subprocess.Popen([sys.executable, "-c", RACER, str(folder / "running.mp4"), "1"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert running.stdout.readline().strip() == "written"
        [running_temp] = temps_in(folder)
        killed = subprocess.Popen(preview_command(folder), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            wait_until(lambda: len(temps_in(folder)) > 1, killed)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)  # the command and its ffmpeg
            killed.wait()
        leftovers = [path for path in temps_in(folder) if path != running_temp]
        assert leftovers and all(f".vexpress-{killed.pid}-" in path.name for path in leftovers)

        save_kps(folder / "next.safetensors", KpsTrack(np.zeros((1, 3, 2), np.float32)))  # the next run
        assert names(folder) == sorted(["next.safetensors", running_temp.name])
        running.communicate("\n", timeout=60)
    finally:
        running.kill()
    assert running.returncode == 0 and names(folder) == ["next.safetensors", "running.mp4"]


DEFERRED = r"""
import os
import signal
from vexpress_cli.interrupts import Terminated, handle_termination_signals, signals_deferred

handle_termination_signals()
try:
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass  # the interpreter checks for signals on every loop
        print("the block ran to its end", flush=True)
except Terminated as stop:
    print(f"then: {stop}", flush=True)
"""


def test_issue8_item11_a_signal_never_splits_starting_ffmpeg_from_keeping_its_handle():
    """Issue 8 item 11: a termination signal inside signals_deferred() (around starting ffmpeg, so that an
    ffmpeg nobody holds cannot re-create a removed temp file) is raised when the block ends, not inside it."""
    result = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == ["the block ran to its end", "then: Stopped by SIGTERM"], result.stderr


# --- issue 8 item 15: a name that is only a suffix; the file-size limit ---------------------------


@pytest.mark.parametrize("name", [".mp4", ".mkv/"])
def test_issue8_item15_a_video_named_only_by_its_suffix_is_refused(tmp_path, name):
    """Issue 8 item 15: `-o .mp4` is refused clearly instead of writing a hidden folder of PNG frames."""
    with pytest.raises(InputError, match=r"is only a file suffix") as raised:
        open_video_writer(str(tmp_path / name), 25, 32, 32)
    assert f"e.g. 'talk{name.rstrip('/')}'" in raised.value.fix
    with pytest.raises(InputError, match=r"is only a file suffix"):
        PngFolderWriter(tmp_path / name)
    assert names(tmp_path) == []


LIMITED_WRITER = r"""
import sys
import numpy as np
from vexpress_cli.errors import VExpressError
from vexpress_cli.media.video_writer import open_video_writer

noise = np.random.default_rng(0).integers(0, 256, (200, 64, 64, 3), dtype=np.uint8)
try:
    with open_video_writer(sys.argv[1], 25, 64, 64) as writer:
        for frame in noise:
            writer.write(frame)
except VExpressError as error:
    print(error, flush=True)
    sys.exit(2)
"""


@pytest.mark.parametrize("name", ["big.mp4", "big_frames"])
@pytest.mark.slow
def test_issue8_item15_the_file_size_limit_is_reported(tmp_path, name):
    """Issue 8 item 15: a write stopped by `ulimit -f` (SIGXFSZ, EFBIG) says the file-size limit was hit,
    not "ffmpeg printed nothing", and leaves nothing behind."""
    resource = pytest.importorskip("resource")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # ffmpeg ends by SIGXFSZ: no core file

    result = subprocess.run([sys.executable, "-c", LIMITED_WRITER, str(tmp_path / name)], capture_output=True,
                            text=True, preexec_fn=limited, timeout=120)
    message = " ".join(result.stdout.split())
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "stopped at the file-size limit of 8192 bytes" in message and "ulimit -f" in message
    assert "printed nothing" not in message
    assert names(tmp_path) == []


REPORTED = """
import os, signal, time
from vexpress_cli.interrupts import handle_termination_signals, reported

handle_termination_signals()
reported(3)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(30)
"""


def test_a_ctrl_c_after_the_summary_is_out_exits_with_the_summary_s_code_not_130():
    """A Ctrl-C while Ray shut down after "4 jobs: 4 done." made the batch exit 130, read as interrupted."""
    result = subprocess.run([sys.executable, "-c", REPORTED], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=20)
    assert result.returncode == 3, result.stderr


def test_the_summary_s_exit_code_on_ctrl_c_is_set_only_where_the_command_line_installed_its_handlers():
    """In-process (pytest's CliRunner), reported() made every later Ctrl-C or SIGTERM end the test run with the
    batch's exit code, so a killed CI run read as a pass."""
    import signal

    from vexpress_cli.interrupts import reported

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    reported(0)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_ffmpeg_writing_to_a_full_disk_says_so_instead_of_blaming_the_input():
    """The audio mux said "Check the audio file, e.g. by converting it to WAV first" when the disk was full."""
    from vexpress_cli.errors import VExpressError
    from vexpress_cli.media.ffmpeg import run_ffmpeg

    with pytest.raises(VExpressError) as raised:  # /dev/full: every write fails with ENOSPC
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "anullsrc=r=16000", "-t", "1", "-f", "wav", "/dev/full"],
                   what="Could not add the audio track.", fix="Check the audio file.")
    assert "No space left on device" in raised.value.why.raw
    assert raised.value.fix.raw == "The disk holding /dev is full: free space on it, or write to another disk."


@pytest.mark.parametrize("where", ["writing", "syncing"])
def test_an_output_whose_disk_fills_is_one_error_naming_it_and_leaves_nothing(tmp_path, monkeypatch, where):
    import errno

    from vexpress_cli.errors import VExpressError
    from vexpress_cli.outputs import atomic

    def full(*args, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "syncing":
        monkeypatch.setattr(atomic, "_fsync", full)
    output = tmp_path / "talk.safetensors"
    with pytest.raises(VExpressError) as raised:
        with atomic.atomic_output(output) as temp:
            temp.write_bytes(b"half a file")
            if where == "writing":
                full()
    assert raised.value.what.raw == (f"Could not write {output}: its disk is full (or your quota on it is reached); "
                                     "nothing was kept.")
    assert list(tmp_path.iterdir()) == []


def full_disk(*args, **options):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def full_disk_message(output: Path) -> str:
    return f"Could not write {output}: its disk is full (or your quota on it is reached); nothing was kept."


def test_a_frame_folder_whose_disk_fills_is_the_disk_full_error_naming_it_and_leaves_nothing(tmp_path, monkeypatch):
    """The frame writer said "Could not write '.../.frames.vexpress-...partial/frame_000001.png'. No space left on
    device": another error class than every other output's, naming the temporary folder, which stayed."""
    from vexpress_cli.outputs.write_failures import DiskFullError

    output = tmp_path / "frames"
    writer = PngFolderWriter(output)
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(DiskFullError) as raised:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert raised.value.what.raw == full_disk_message(output)
    assert names(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_ffmpeg_encoding_onto_a_full_disk_is_the_disk_full_error_naming_the_video(tmp_path, monkeypatch):
    """ffmpeg's "No space left on device" while encoding said "report ffmpeg's message as a bug"."""
    from vexpress_cli.media import video_writer
    from vexpress_cli.outputs.write_failures import DiskFullError

    encode = video_writer.ffmpeg_command
    monkeypatch.setattr(video_writer, "ffmpeg_command", lambda *args: encode(*args[:-1], "/dev/full"))
    output = tmp_path / "talk.mp4"
    with pytest.raises(DiskFullError) as raised:
        with open_video_writer(output, 25, 32, 32) as writer:
            writer.write(np.random.default_rng(0).integers(0, 256, (25, 32, 32, 3), np.uint8))
    assert raised.value.what.raw == full_disk_message(output)
    assert names(tmp_path) == []


@pytest.mark.parametrize("name", ["talk.mp4", "frames"])
def test_a_writer_whose_output_cannot_be_synced_on_a_full_disk_is_the_disk_full_error(tmp_path, monkeypatch, name):
    """A full disk found when the finished video or frames were synced ended in a bare OSError traceback."""
    from vexpress_cli.outputs import atomic
    from vexpress_cli.outputs.write_failures import DiskFullError

    monkeypatch.setattr(atomic, "_fsync", full_disk)
    output = tmp_path / name
    with pytest.raises(DiskFullError) as raised:
        with open_video_writer(output, 25, 32, 32) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
    assert raised.value.what.raw == full_disk_message(output)
    assert names(tmp_path) == []


@pytest.mark.parametrize("name", ["talk.mp4", "frames"])
def test_a_writer_that_cannot_create_its_temporary_output_on_a_full_disk_is_the_disk_full_error(tmp_path,
                                                                                               monkeypatch, name):
    from vexpress_cli.outputs import atomic
    from vexpress_cli.outputs.write_failures import DiskFullError

    monkeypatch.setattr(atomic.AtomicOutput, "start", full_disk)
    output = tmp_path / name
    with pytest.raises(DiskFullError) as raised:
        open_video_writer(output, 25, 32, 32)
    assert raised.value.what.raw == full_disk_message(output)
    assert names(tmp_path) == []


@pytest.mark.parametrize("name", ["talk.mp4", "frames"])
@pytest.mark.parametrize("frames_before", [0, 3])
def test_an_output_folder_removed_while_writing_is_said_so_not_as_an_ffmpeg_bug(tmp_path, name, frames_before):
    """The folder deleted during a run gave "ffmpeg stopped while encoding ... Error opening output ... Check free
    disk space; if that is fine, report ffmpeg's message as a bug."""
    import shutil

    path = tmp_path / "out" / name
    writer = open_video_writer(path, 25, 32, 32)
    if frames_before:
        writer.write(np.zeros((frames_before, 32, 32, 3), np.uint8))
    shutil.rmtree(path.parent)
    with pytest.raises(VExpressError) as raised:
        for _ in range(20):
            writer.write(np.zeros((30, 32, 32, 3), np.uint8))
        writer.commit()
    assert raised.value.what.raw == (f"The folder of {path} was removed (or moved) while the output was written; "
                                     "nothing was kept.")
    assert not path.parent.exists()


def test_a_full_disk_elsewhere_during_a_write_is_not_told_as_the_outputs(tmp_path):
    """A whole generation runs inside its video writer's block: a full compile cache on another disk was told as
    "Could not write talk.mp4: its disk is full"."""
    import errno

    from vexpress_cli.outputs import atomic_output
    from vexpress_cli.outputs.write_failures import DiskFullError

    cache_file = "/elsewhere/cache/kernel.so"
    with pytest.raises(OSError) as raised:
        with atomic_output(tmp_path / "x.bin") as temp:
            temp.write_bytes(b"1")
            raise OSError(errno.ENOSPC, "No space left on device", cache_file)
    assert type(raised.value) is OSError and raised.value.filename == cache_file
    with pytest.raises(DiskFullError):
        with atomic_output(tmp_path / "y.bin") as temp:
            raise OSError(errno.ENOSPC, "No space left on device", str(temp))
    assert names(tmp_path) == []


def test_an_io_error_placing_an_output_in_a_folder_it_made_is_not_told_as_a_removed_folder(tmp_path, monkeypatch):
    """The folder made for the output is removed with the temp when placing fails: that is no user's doing."""
    import errno

    from vexpress_cli.outputs import atomic

    def broken(*args, **options):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic, "_fsync", broken)
    with pytest.raises(OSError) as raised:
        with atomic.atomic_output(tmp_path / "new" / "x.bin") as temp:
            temp.write_bytes(b"1")
    assert type(raised.value) is OSError and raised.value.errno == errno.EIO
    assert names(tmp_path) == []
