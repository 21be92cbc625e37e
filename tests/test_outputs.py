"""Output pre-checks and atomic outputs: vexpress_cli.outputs."""

from __future__ import annotations

import errno
import os
import time
import subprocess
import sys
from pathlib import Path

import pytest

from vexpress_cli.errors import InputError
from vexpress_cli.file_types import AUDIO_OUTPUT_SUFFIXES, KPS_SUFFIXES, VIDEO_OUTPUT_SUFFIXES
from vexpress_cli.outputs import (
    OutputAppearedError,
    atomic_output,
    atomic_outputs,
    check_output,
    is_temp_name,
    remove_stale_temps,
)


def temps_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if is_temp_name(path.name))


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- check_output --------------------------------------------------------------------------------


def test_check_output_returns_the_absolute_path_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output("talk.mp4", kind="video") == tmp_path / "talk.mp4"
    assert check_output("frames", kind="video") == tmp_path / "frames"
    assert names(tmp_path) == []


@pytest.mark.parametrize("kind, suffixes", [("video", VIDEO_OUTPUT_SUFFIXES), ("video_file", VIDEO_OUTPUT_SUFFIXES),
                                            ("kps", KPS_SUFFIXES), ("audio", AUDIO_OUTPUT_SUFFIXES)])
def test_check_output_unknown_suffix_lists_the_accepted_ones(tmp_path, kind, suffixes):
    with pytest.raises(InputError, match="unknown file type '.gif'") as raised:
        check_output(tmp_path / "x.gif", kind=kind)
    assert all(suffix in raised.value.why for suffix in suffixes)  # listed once, in the why
    assert f"Give it one of those suffixes, e.g. 'x{suffixes[0]}'" in raised.value.fix
    assert ("PNG frames" in raised.value.fix) == (kind == "video")
    article = {"audio": "an audio file is", "kps": "a kps file is"}.get(kind, "a video is")
    assert f"The file suffix chooses the format; {article} " in raised.value.why


@pytest.mark.parametrize(("path", "suggested"), [("talk.mp4.json", "talk.mp4"), ("talk.json", "talk.mp4")])
def test_a_name_with_a_video_suffix_before_another_is_offered_without_the_last_one(tmp_path, path, suggested):
    """`-o lip-sync.mp4.json` was offered 'lip-sync.mp4.mp4'."""
    with pytest.raises(InputError, match="unknown file type") as raised:
        check_output(tmp_path / path, kind="video")
    assert f"e.g. {suggested!r}" in raised.value.fix


@pytest.mark.parametrize("path, suggested", [("/", "talk_kps.safetensors"), ("/tmp/x.", "talk_kps.safetensors")])
def test_an_output_path_without_a_usable_name_gets_the_example_not_a_traceback(path, suggested):
    """extract -o / raised pathlib's ValueError ("has an empty name") while suggesting a renamed file."""
    with pytest.raises(InputError, match="unknown file type") as raised:
        check_output(path, kind="kps")
    assert raised.value.fix == f"Give it one of those suffixes, e.g. {suggested!r}."


@pytest.mark.parametrize("name, kind", [(".mp4", "video"), (".MOV", "video_file"), (".safetensors", "kps"),
                                        (".mp3", "audio"), (".pth", None)])
def test_check_output_refuses_a_name_that_is_only_a_suffix(tmp_path, name, kind):
    with pytest.raises(InputError, match="is only a file suffix") as raised:
        check_output(tmp_path / name, kind=kind, create_folder=True)
    assert "e.g." in raised.value.fix
    assert names(tmp_path) == []


def test_check_output_existing_output_needs_overwrite(tmp_path):
    existing = tmp_path / "talk.mp4"
    existing.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists") as raised:
        check_output(existing, kind="video")
    assert "overwrite=True" in raised.value.fix  # library wording first; the flag only as the CLI's spelling
    assert check_output(existing, overwrite=True, kind="video") == existing
    assert existing.read_bytes() == b"precious"


def test_check_output_a_folder_in_the_way_of_a_file(tmp_path):
    (tmp_path / "talk.mp4").mkdir()
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is a folder"):
            check_output(tmp_path / "talk.mp4", overwrite, kind="video")


def test_check_output_frame_folder_replaces_only_earlier_frames(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_000001.png").write_bytes(b"png")
    with pytest.raises(InputError, match="already exists"):
        check_output(frames, kind="video")
    check_output(frames, True, kind="video")
    (frames / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # not offered overwrite as the fix: it would refuse anyway
        with pytest.raises(InputError, match="Will not replace"):
            check_output(frames, overwrite, kind="video")


def test_check_output_parent_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist") as missing:
        check_output(tmp_path / "not" / "there" / "talk.mp4", kind="video")
    assert "mkdir -p" in missing.value.fix and not (tmp_path / "not").exists()
    assert check_output(tmp_path / "new" / "talk.mp4", kind="video", create_folder=True).parent.is_dir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output(tmp_path / "afile" / "talk.mp4", kind="video")
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="is not writable"):
            check_output(locked / "talk.mp4", kind="video")


# --- atomic_output -------------------------------------------------------------------------------


def test_temp_name_is_unique_recognisable_and_keeps_the_suffix_last(tmp_path):
    target = tmp_path / "talk.mp4"
    first, second = atomic_output(target), atomic_output(target)
    first_temp, second_temp = first.start(), second.start()
    assert first_temp != second_temp and first_temp.is_file() and second_temp.is_file()
    for temp in (first_temp, second_temp):
        assert temp.parent == tmp_path and temp.suffix == ".mp4" and is_temp_name(temp.name)
        assert temp.name.startswith(".talk.mp4.vexpress-") and f"-{os.getpid()}-" in temp.name
    first.discard()
    assert temps_in(tmp_path) == [second_temp]  # only its own
    second.discard()
    assert names(tmp_path) == []


def test_atomic_output_moves_the_file_into_place_only_at_the_end(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as temp:
        temp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data" and names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("folder", [False, True])
def test_atomic_output_removes_its_temp_on_any_exception(tmp_path, exception, folder):
    with pytest.raises(exception):
        with atomic_output(tmp_path / "out", folder=folder) as temp:
            (temp / "frame.png" if folder else temp).write_bytes(b"half")
            raise exception()
    assert names(tmp_path) == []


@pytest.mark.parametrize("folder", [False, True])
@pytest.mark.parametrize("neighbour", [False, True])
def test_a_failed_output_removes_the_folders_it_made_while_they_are_empty(tmp_path, folder, neighbour):
    """An interrupted `-o new/sub/talk.mp4` left new/sub/ behind; a folder another run writes into stays."""
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "new" / "sub" / "out", folder=folder):
            if neighbour:
                (tmp_path / "new" / "theirs.mp4").write_bytes(b"another run's output")
            raise KeyboardInterrupt
    assert names(tmp_path) == (["new"] if neighbour else [])
    assert not neighbour or names(tmp_path / "new") == ["theirs.mp4"]


def test_a_finished_output_keeps_the_folders_it_made(tmp_path):
    with atomic_output(tmp_path / "new" / "sub" / "out.bin") as temp:
        temp.write_bytes(b"data")
    assert (tmp_path / "new" / "sub" / "out.bin").read_bytes() == b"data"


def test_atomic_output_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OutputAppearedError, match="was written by another run meanwhile"):
        with atomic_output(target) as temp:
            temp.write_bytes(b"ours")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs" and names(tmp_path) == ["out.bin"]
    with atomic_output(target, overwrite=True) as temp:
        temp.write_bytes(b"ours")
    assert target.read_bytes() == b"ours" and names(tmp_path) == ["out.bin"]


def test_without_hard_links_a_file_that_appeared_is_still_not_replaced(tmp_path, monkeypatch):
    def no_links(source, destination):
        raise OSError(errno.EPERM, "Operation not permitted")  # as on FAT or some network disks

    monkeypatch.setattr(os, "link", no_links)
    with atomic_output(tmp_path / "new.bin") as temp:
        temp.write_bytes(b"ours")
    assert (tmp_path / "new.bin").read_bytes() == b"ours"
    with pytest.raises(OutputAppearedError):
        with atomic_output(tmp_path / "out.bin") as temp:
            temp.write_bytes(b"ours")
            (tmp_path / "out.bin").write_bytes(b"theirs")
    assert (tmp_path / "out.bin").read_bytes() == b"theirs" and names(tmp_path) == ["new.bin", "out.bin"]


def test_atomic_output_on_a_file_there_from_the_start_says_it_exists_not_that_it_appeared(tmp_path):
    """A caller that skips check_output was told the file 'did not exist when this run started'."""
    target = tmp_path / "out.bin"
    target.write_bytes(b"before")
    with pytest.raises(OutputAppearedError) as refused:
        with atomic_output(target) as temp:
            temp.write_bytes(b"ours")
    assert str(refused.value).startswith(f"The output file {str(target)!r} already exists.")
    assert "meanwhile" not in str(refused.value) and "did not exist" not in str(refused.value)
    assert target.read_bytes() == b"before" and names(tmp_path) == ["out.bin"]


def test_folder_output_never_replaces_a_folder_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "frames"
    with pytest.raises(OutputAppearedError, match="written by another run meanwhile"):
        with atomic_output(target, folder=True) as temp:
            (temp / "frame_000001.png").write_bytes(b"ours")
            target.mkdir()
            (target / "frame_000001.png").write_bytes(b"theirs")
    assert names(tmp_path) == ["frames"] and (target / "frame_000001.png").read_bytes() == b"theirs"
    with atomic_output(target, overwrite=True, folder=True) as temp:
        (temp / "frame_000001.png").write_bytes(b"ours")
    assert names(tmp_path) == ["frames"] and (target / "frame_000001.png").read_bytes() == b"ours"


def test_commit_syncs_the_file_and_then_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(handle):
        synced.append(Path(os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name what was synced")
    monkeypatch.setattr(os, "fsync", recording_fsync)
    with atomic_output(tmp_path / "out.bin") as temp:
        temp.write_bytes(b"data")
    assert synced == [temp.resolve(), tmp_path.resolve()]


def test_leftovers_of_ended_runs_are_removed_but_never_a_live_runs(tmp_path):
    gone = dead_pid()
    stale_file = tmp_path / f".a.mp4.vexpress-{gone}-0123abcd.partial.mp4"
    stale_scratch = tmp_path / f".a.mp4.vexpress-{gone}-0123abcd.partial.video.mp4"
    stale_folder = tmp_path / f".frames.vexpress-{gone}-4567cdef.partial"
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        live_file = tmp_path / f".b.mp4.vexpress-{alive.pid}-89abcdef.partial.mp4"
        mine = tmp_path / f".c.mp4.vexpress-{os.getpid()}-00000000.partial.mp4"
        user_file = tmp_path / ".a.mp4.partial.mp4"  # not one of ours (no pid): left alone
        for path in (stale_file, stale_scratch, live_file, mine, user_file):
            path.write_bytes(b"x")
        stale_folder.mkdir()
        (stale_folder / "frame_000001.png").write_bytes(b"x")
        with atomic_output(tmp_path / "next.bin") as temp:
            temp.write_bytes(b"new")
        assert names(tmp_path) == sorted([live_file.name, mine.name, user_file.name, "next.bin"])
        assert remove_stale_temps(tmp_path) == []
    finally:
        alive.kill()
        alive.wait()


def test_another_machines_leftover_is_kept_while_its_run_may_live_though_its_pid_is_dead_here(tmp_path):
    """On storage machines share (a Ray cluster's), a live temp of another node was removed here, its process id
    being no process of this machine: that node's job then failed at its end."""
    from vexpress_cli.outputs.atomic import HOST_TAG, OTHER_HOST_STALE_SECONDS

    gone = dead_pid()
    elsewhere = tmp_path / f".a.mp4.vexpress-{gone}-0123abcd-h00000000.partial.mp4"
    abandoned = tmp_path / f".b.mp4.vexpress-{gone}-4567cdef-h00000000.partial.mp4"
    here = tmp_path / f".c.mp4.vexpress-{gone}-89abcdef-{HOST_TAG}.partial.mp4"
    for path in (elsewhere, abandoned, here):
        path.write_bytes(b"x")
    long_ago = time.time() - OTHER_HOST_STALE_SECONDS - 60
    os.utime(abandoned, (long_ago, long_ago))
    assert HOST_TAG != "h00000000"
    assert sorted(remove_stale_temps(tmp_path)) == sorted([abandoned, here])
    assert names(tmp_path) == [elsewhere.name]
    with atomic_output(tmp_path / "d.mp4") as temp:
        assert temp.name.endswith(f"-{HOST_TAG}.partial.mp4")


# --- atomic_outputs: all or none -----------------------------------------------------------------


def test_atomic_outputs_writes_all_and_keeps_none_paths(tmp_path):
    with atomic_outputs([tmp_path / "k.pth", None, tmp_path / "a.mp3"]) as (kps, nothing, audio):
        assert nothing is None
        kps.write_bytes(b"kps")
        audio.write_bytes(b"audio")
        assert names(tmp_path) == sorted([kps.name, audio.name])
    assert names(tmp_path) == ["a.mp3", "k.pth"]


def test_atomic_outputs_none_when_one_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_outputs([tmp_path / "k.pth", tmp_path / "a.mp3"]) as (kps, _audio):
            kps.write_bytes(b"kps")
            raise KeyboardInterrupt
    assert names(tmp_path) == []


def test_atomic_outputs_that_fail_remove_the_folder_the_first_one_made_for_all(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_outputs([tmp_path / "new" / "k.pth", tmp_path / "new" / "a.mp3"]) as (kps, audio):
            kps.write_bytes(b"kps")
            audio.write_bytes(b"audio")
            raise KeyboardInterrupt
    assert names(tmp_path) == []


def test_atomic_outputs_none_when_one_appeared_meanwhile(tmp_path):
    with pytest.raises(OutputAppearedError, match="a.mp3' was written by another run meanwhile"):
        with atomic_outputs([tmp_path / "k.pth", tmp_path / "a.mp3"]) as (kps, audio):
            kps.write_bytes(b"kps")
            audio.write_bytes(b"audio")
            (tmp_path / "a.mp3").write_bytes(b"theirs")
    assert names(tmp_path) == ["a.mp3"] and (tmp_path / "a.mp3").read_bytes() == b"theirs"


def test_atomic_outputs_restores_replaced_files_when_a_later_one_cannot_be_moved(tmp_path):
    (tmp_path / "k.pth").write_bytes(b"old kps")
    with pytest.raises(IsADirectoryError):
        with atomic_outputs([tmp_path / "k.pth", tmp_path / "a.mp3"], overwrite=True) as (kps, audio):
            kps.write_bytes(b"new kps")
            audio.write_bytes(b"audio")
            (tmp_path / "a.mp3").mkdir()  # a folder took the audio's name meanwhile
            (tmp_path / "a.mp3" / "x").write_text("x")
    assert (tmp_path / "k.pth").read_bytes() == b"old kps"
    assert names(tmp_path) == ["a.mp3", "k.pth"]


def test_an_output_name_too_long_for_its_temporary_name_is_refused_before_any_work(tmp_path):
    longest = "a" * (255 - 72 - len(".mp4")) + ".mp4"
    assert check_output(tmp_path / longest, kind="video").name == longest
    kps = "k" * (255 - 72 - len(".safetensors")) + ".safetensors"  # the longest temporary name: its backup's
    worst = f".{kps}.vexpress-{'9' * 7}-0123abcd-h0123abcd.partial.replaced.safetensors"  # pid_max has 7 digits
    assert check_output(tmp_path / kps, kind="kps").name == kps and len(worst.encode()) <= 255
    with pytest.raises(InputError, match=r"is 184 bytes long.*an output name may have 183"):
        check_output(tmp_path / ("a" + longest), kind="video")
    with pytest.raises(InputError, match="The output folder name 'bbbbbb.*longer than 255 bytes"):
        check_output(tmp_path / ("b" * 256) / "talk.mp4", kind="video", folder_made_later=True)
    assert list(tmp_path.iterdir()) == []


def test_a_control_character_in_a_name_this_run_creates_is_refused_first(tmp_path):
    """"talk.mp4\\r" (a Windows line ending in a list of names) said "unknown file type '.mp4'"; a folder that
    already exists keeps whatever name it has."""
    with pytest.raises(InputError, match=r"holds a control character \(such as a line break\)"):
        check_output(tmp_path / "talk.mp4\r", False, "video")
    with pytest.raises(InputError, match="holds a control character"):
        check_output(tmp_path / "new\x7ffolder" / "talk.mp4", False, "video", folder_made_later=True)
    (tmp_path / "tab\there").mkdir()
    assert check_output(tmp_path / "tab\there" / "talk.mp4", False, "video") == tmp_path / "tab\there" / "talk.mp4"


def test_a_name_without_suffix_is_offered_as_a_folder_too(tmp_path):
    """`extract -o out/` reached check_output as 'out' (a Path drops the '/'), and the only advice was 'out.pth'."""
    with pytest.raises(InputError) as raised:
        check_output(tmp_path / "out", kind="kps")
    assert raised.value.fix == (f"Give it one of those suffixes, e.g. 'out.pth'; to write into a folder out/, name "
                                f"the file: {str(tmp_path / 'out' / 'talk_kps.safetensors')!r}.")


def test_a_text_path_ending_in_a_slash_or_an_existing_folder_is_the_folder_error_with_a_file_in_it(tmp_path):
    (tmp_path / "sound.mp3").mkdir()
    for given in (f"{tmp_path}/new.mp3/", tmp_path / "sound.mp3"):
        with pytest.raises(InputError) as raised:
            check_output(given, kind="audio")
        folder = Path(given).absolute()
        assert raised.value.what == f"The output path {str(folder)!r} is a folder."
        assert raised.value.fix == f"Name the file, e.g. {str(folder / 'talk.mp3')!r}, or remove the folder."
    assert not (tmp_path / "new.mp3").exists()


def test_a_frame_folder_output_in_the_way_says_whether_a_folder_or_a_file_is_there(tmp_path, monkeypatch):
    """generate -o . (a folder of other files) said 'It is a file, or a folder holding more than frame_*.png'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "frames").write_text("a file")
    fix = "Choose another output folder name; nothing there was changed."
    with pytest.raises(InputError) as folder:
        check_output(Path("."), kind="video")
    assert str(folder.value) == (f"Will not replace {str(tmp_path)!r} with a frame folder. It is a folder holding "
                                 f"other files than the frame_*.png and audio.wav of an earlier frame output. {fix}")
    with pytest.raises(InputError) as file:
        check_output(Path("frames"), kind="video")
    assert str(file.value) == f"Will not replace {str(tmp_path / 'frames')!r} with a frame folder. It is a file. {fix}"
