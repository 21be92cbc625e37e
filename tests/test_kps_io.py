"""kps files: the original's pickled lists, our .pth and .safetensors, and every way they can be wrong."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR
from safetensors import safe_open
from safetensors.numpy import save_file

from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.kps import KpsTrack, load_kps, parse_kps_points, save_kps

def sample_track(frames: int = 5) -> KpsTrack:
    points = np.random.default_rng(3).uniform(100, 400, size=(frames, 3, 2)).astype(np.float32)
    return KpsTrack(points, fps=29.97, width=512, height=384, backend="insightface")


@pytest.mark.parametrize(
    ("path", "frames", "first_left_eye"),
    [
        (SAMPLES_DIR / "AOC/kps.pth", 137, (185.47332763671875, 218.57632446289062)),
        (SAMPLES_DIR / "AOC/AOC_raw_kps.pth", 2700, (185.50332641601562, 218.53628540039062)),
        (SAMPLES_DIR / "tys/kps.pth", 100, (193.1576690673828, 229.78579711914062)),
    ],
)
def test_reads_the_original_pickled_lists(path, frames, first_left_eye):
    track = load_kps(path)
    assert track.points.shape == (frames, 3, 2) and track.points.dtype == np.float32
    assert tuple(track.points[0, 0].tolist()) == first_left_eye
    assert (track.fps, track.width, track.height, track.backend) == (None, None, None, None)
    assert track.source == path


def test_reads_lists_pickled_by_numpy_2(tmp_path):
    # numpy 2 names numpy._core.multiarray._reconstruct; float64 arrays need Float64DType.
    arrays = [np.full((3, 2), float(i)) for i in range(4)]
    torch.save(arrays, tmp_path / "new.pth")
    assert load_kps(tmp_path / "new.pth").points[:, 0, 0].tolist() == [0, 1, 2, 3]


def test_safetensors_round_trip_keeps_metadata(tmp_path):
    track = sample_track()
    path = save_kps(tmp_path / "track.safetensors", track)
    loaded = load_kps(path)
    assert np.array_equal(loaded.points, track.points)
    assert (loaded.fps, loaded.width, loaded.height, loaded.backend) == (29.97, 512, 384, "insightface")
    with safe_open(str(path), "np") as handle:  # the metadata really lives in the header
        assert handle.metadata()["fps"] == "29.97" and list(handle.keys()) == ["kps"]


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")
def test_pth_is_a_plain_tensor_the_original_can_read(tmp_path):
    track = sample_track()
    path = save_kps(tmp_path / "track.pth", track)
    as_original_reads_it = torch.tensor(torch.load(path))  # inference.py: torch.tensor(torch.load(kps_path))
    assert as_original_reads_it.shape == (5, 3, 2) and as_original_reads_it.dtype == torch.float32
    # in the 512x512 frame a file without a size is read in (the track is 512x384), and so back in place
    assert np.allclose(as_original_reads_it.numpy(), track.points * [1, 512 / 384])
    assert np.allclose(load_kps(path).in_frame(512, 384)[0].points, track.points)


def test_saving_leaves_no_temp_files_and_normal_permissions(tmp_path):
    save_kps(tmp_path / "a.safetensors", sample_track())
    save_kps(tmp_path / "b.pth", sample_track())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.pth"]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.safetensors", "b.pth"):  # a new file's usual mode, not left 0600 by mkstemp
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_saving_invalid_points_writes_nothing(tmp_path):
    track = sample_track()
    track.points[2, 1, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        save_kps(tmp_path / "bad.safetensors", track)
    assert list(tmp_path.iterdir()) == []


def test_saving_with_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match="unknown file type '.npy'"):
        save_kps(tmp_path / "x.npy", sample_track())


def test_missing_file():
    with pytest.raises(InputError, match="does not exist") as error:
        load_kps("/nonexistent/kps.pth")
    assert "vexpress extract" in str(error.value)


def test_unknown_suffix(tmp_path):
    (tmp_path / "kps.json").write_text("[]")
    with pytest.raises(InputError, match="unknown file type '.json'"):
        load_kps(tmp_path / "kps.json")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(tmp_path, bad):
    points = np.ones((4, 3, 2), np.float32)
    points[3, 2, 1] = bad
    torch.save(torch.from_numpy(points), tmp_path / "k.pth")
    with pytest.raises(InputError, match="NaN or infinite values \\(first in frame 3\\)"):
        load_kps(tmp_path / "k.pth")


@pytest.mark.parametrize("shape", [(4, 5, 2), (4, 2, 2), (4, 3), (4, 3, 3), (2, 4, 3, 2)])
def test_wrong_shape(tmp_path, shape):
    save_file({"kps": np.ones(shape, np.float32)}, str(tmp_path / "k.safetensors"))
    with pytest.raises(InputError, match="not \\[frames, 3, 2\\]") as raised:
        load_kps(tmp_path / "k.safetensors")
    # only a track with more points per frame can keep its first three (two points were told to)
    assert ("Keep the first three points" in str(raised.value)) == (shape == (4, 5, 2))


def test_single_frame_is_a_one_frame_track(tmp_path):
    torch.save(torch.ones(3, 2), tmp_path / "one.pth")
    assert load_kps(tmp_path / "one.pth").points.shape == (1, 3, 2)


def test_zero_frames(tmp_path):
    torch.save(torch.zeros(0, 3, 2), tmp_path / "empty.pth")
    with pytest.raises(InputError, match="no frames"):
        load_kps(tmp_path / "empty.pth")


class Exploit:
    """Unpickling this would create a marker file, i.e. run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_torch_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save([np.zeros((3, 2), np.float32), Exploit(marker)], tmp_path / "evil.pth")
    with pytest.raises(InputError) as error:
        load_kps(tmp_path / "evil.pth")
    assert not marker.exists()
    message = str(error.value)
    assert "Refused to load" in message and "other than arrays" in message and "can run code" in message


def test_malicious_plain_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Exploit(marker), protocol=2))
    plain = r"it starts like a plain Python pickle \(pickle.dump, protocol 2\), not a file torch.save"
    with pytest.raises(InputError, match=plain):
        load_kps(tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3])
def test_torchs_legacy_format_is_no_plain_pickle_and_loads(tmp_path, protocol):
    path = tmp_path / "legacy.pth"
    torch.save(torch.zeros(5, 3, 2), path, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    assert path.read_bytes()[:1] == b"\x80"  # it starts like a pickle, as a plain one does
    assert load_kps(path).num_frames == 5


def test_garbage_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(InputError, match="could not be read as a torch file"):
        load_kps(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(InputError, match="not a valid safetensors file"):
        load_kps(tmp_path / "junk.safetensors")
    with zipfile.ZipFile(tmp_path / "zip.pth", "w") as archive:
        archive.writestr("x/data.pkl", b"garbage")
    with pytest.raises(InputError, match="could not be read"):
        load_kps(tmp_path / "zip.pth")


def test_safetensors_without_a_kps_tensor(tmp_path):
    save_file({"a": np.ones((2, 3, 2), np.float32), "b": np.ones(1, np.float32)}, str(tmp_path / "k.safetensors"))
    with pytest.raises(InputError, match="It holds 2 tensors but none named 'kps' \\(it has: a, b\\)"):
        load_kps(tmp_path / "k.safetensors")
    save_file({}, str(tmp_path / "none.safetensors"))
    with pytest.raises(InputError, match="is not a kps file. It holds no tensor. Pass"):
        load_kps(tmp_path / "none.safetensors")


@pytest.mark.parametrize(("metadata", "named"), [({"fps": "fast"}, "fps 'fast'"), ({"width": "abc"}, "width 'abc'"),
                                                 ({"crop": "1,2,x,4"}, "crop '1,2,x,4'")])
def test_invalid_metadata_names_the_key_and_value_not_pythons_parse_error(tmp_path, metadata, named):
    """width="abc" read "invalid literal for int() with base 10: 'abc'"."""
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(tmp_path / "k.safetensors"), metadata=metadata)
    with pytest.raises(InputError) as raised:
        load_kps(tmp_path / "k.safetensors")
    assert raised.value.what == f"The kps file {tmp_path / 'k.safetensors'} has invalid metadata ({named})."


@pytest.mark.parametrize(("metadata", "named"), [
    ({"width": "1000000000000", "height": "512"}, "width 1000000000000"),
    ({"crop": "0,0,100000000000,100000000000"}, "crop 0,0,100000000000,100000000000"),
    ({"source_size": "100000x100000"}, "source_size 100000x100000"),
    ({"backend": "dlib\x1b[2J\x1b[31mPWNED"}, "backend 'dlib\\x1b[2J\\x1b[31mPWNED'"),
    ({"backend": "x" * 65}, "backend 'xxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'"),
])
def test_recorded_sizes_past_8k_and_a_backend_name_with_control_characters_are_invalid_metadata(
        tmp_path, metadata, named):
    """A width of 10**12 squeezed the face to a point at (0, 0); a backend name's ESC sequences reached the
    terminal through inspect, and its length had no limit."""
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(tmp_path / "k.safetensors"), metadata=metadata)
    with pytest.raises(InputError) as raised:
        load_kps(tmp_path / "k.safetensors")
    assert raised.value.what == f"The kps file {tmp_path / 'k.safetensors'} has invalid metadata ({named})."
    assert "\x1b" not in raised.value.render()


def test_a_kps_file_of_another_format_version_is_refused(tmp_path):
    """A future version's file loaded silently, its metadata read by this version's rules."""
    path = tmp_path / "future.safetensors"
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(path),
              metadata={"format": "vexpress-kps", "format_version": "99"})
    with pytest.raises(InputError, match=r"is of vexpress-kps format version '99'\. This vexpress reads version 1"):
        load_kps(path)
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(path), metadata={"format": "vexpress-kps",
                                                                            "format_version": "1"})
    assert load_kps(path).num_frames == 2


@pytest.mark.parametrize(("key", "value"), [("width", "\u0665\u0661\u0662"), ("fps", "\u0662\u0665")])
def test_metadata_numbers_in_other_scripts_digits_are_invalid(tmp_path, key, value):
    """Python's int() reads Arabic-Indic digits: a width of "٥١٢" was taken as 512."""
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(tmp_path / "k.safetensors"), metadata={key: value})
    with pytest.raises(InputError, match="invalid metadata"):
        load_kps(tmp_path / "k.safetensors")


@pytest.mark.parametrize("fps", ["1e-06", "1e-300", "0.001", "1e300", "1001"])
def test_a_frame_rate_outside_a_hundredth_to_1000_fps_is_invalid_metadata(tmp_path, fps):
    """1e-300 was a traceback in generate and retarget --preview; 1e300 an ffmpeg failure called a bug; 1e-6
    made generate stretch 15 frames over 60 million (6 GB), which fitting in time no longer does at any rate."""
    save_file({"kps": np.ones((2, 3, 2), np.float32)}, str(tmp_path / "k.safetensors"), metadata={"fps": fps})
    with pytest.raises(InputError, match=rf"invalid metadata \(fps {fps}\).*fps must be a number from 0.01 to 1000"):
        load_kps(tmp_path / "k.safetensors")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_float64_points_too_large_for_float32_are_refused_not_made_infinite(tmp_path, suffix):
    """They passed the finite check in float64 and became inf in float32: inspect printed inf and NaN (and JSON
    Infinity), retarget blamed the strategy and generate the reference keypoints."""
    points = torch.full((4, 3, 2), 100.0, dtype=torch.float64)
    points[2, 1, 0] = 1e300
    path = tmp_path / f"huge{suffix}"
    if suffix == ".pth":
        torch.save(points, path)
    else:
        save_file({"kps": points.numpy()}, str(path))
    with pytest.raises(InputError, match="holds values too large for float32 \\(first in frame 2\\)"):
        load_kps(path)


def test_complex_points_are_refused(tmp_path):
    """torch cast them to real with a warning, dropping the imaginary parts, and the track was used."""
    torch.save(torch.ones(4, 3, 2, dtype=torch.complex64), tmp_path / "c.pth")
    with pytest.raises(InputError, match="not a numeric array.*could not be read as real numbers \\(they are complex"):
        load_kps(tmp_path / "c.pth")


def test_a_directory_is_not_a_kps_file(tmp_path):
    with pytest.raises(InputError, match="is not a file"):
        load_kps(tmp_path)


def test_parse_kps_points():
    points = parse_kps_points(" 185.5,218.6; 278.9 , 215.4;224,2.7e2 ")
    assert points.dtype == np.float32
    np.testing.assert_allclose(points, [[185.5, 218.6], [278.9, 215.4], [224, 270]], rtol=1e-6)
    for bad in ["1,2;3,4", "1,2;3,4;5", "a,b;c,d;e,f", "1,2;3,4;5,6;7,8"]:
        with pytest.raises(InputError, match="three x,y pairs"):
            parse_kps_points(bad)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e999", "1e39"])  # 1e39 is inf in float32
def test_a_keypoint_that_is_not_a_finite_number_is_refused_by_name(bad):
    with pytest.raises(InputError) as raised:
        parse_kps_points(f"1,2;3,{bad};5,6")
    assert raised.value.what == f"The keypoints '1,2;3,{bad};5,6' hold '{bad}', which is not a finite number."


def test_the_librarys_reference_kps_refuses_nan_by_name():
    import vexpress_cli

    with pytest.raises(InputError, match="hold 'nan', which is not a finite number"):
        vexpress_cli.retarget(None, None, "fix_face", reference_kps="nan,1;2,3;4,5", num_frames=3)


def test_bfloat16_safetensors_is_read(tmp_path):
    from safetensors.torch import save_file as save_torch_file

    points = torch.tensor([[[10.5, 20.25], [30.0, 20.0], [20.0, 35.5]]] * 2, dtype=torch.bfloat16)
    save_torch_file({"kps": points}, str(tmp_path / "half.safetensors"), metadata={"fps": "25.0"})
    track = load_kps(tmp_path / "half.safetensors")
    assert track.points.dtype == np.float32 and track.fps == 25.0
    np.testing.assert_array_equal(track.points, points.float().numpy())


def test_a_single_tensor_of_any_name_is_the_track(tmp_path):
    save_file({"points": np.full((4, 3, 2), 7, np.float32)}, str(tmp_path / "k.safetensors"))
    points = load_kps(tmp_path / "k.safetensors").points
    assert points.shape == (4, 3, 2) and (points == 7).all()


def test_numpy_1_module_name_is_the_fallback(tmp_path, monkeypatch):
    # As on numpy 1.x before numpy._core existed: only numpy.core.multiarray can be imported.
    import vexpress_cli.kps.readers as kps_readers

    monkeypatch.setattr(kps_readers, "MULTIARRAY_MODULES", ("no_such_numpy._core.multiarray", "numpy.core.multiarray"))
    assert load_kps(SAMPLES_DIR / "tys/kps.pth").num_frames == 100  # a pickle made by numpy 1.x
    torch.save([np.full((3, 2), 1.0)], tmp_path / "new.pth")  # made by numpy 2
    assert load_kps(tmp_path / "new.pth").num_frames == 1
    monkeypatch.setattr(kps_readers, "MULTIARRAY_MODULES", ("no_such_numpy.multiarray",))
    with pytest.raises(InputError, match="could not be read"):
        load_kps(tmp_path / "new.pth")


def test_saving_under_a_file_is_an_input_error(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for name in ("k.pth", "deeper/k.safetensors"):
        with pytest.raises(InputError, match="Cannot create the output folder"):
            save_kps(tmp_path / "afile" / name, sample_track())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize(("number", "error", "words"), [(5, InputError, "Input/output error"),
                                                        (28, VExpressError, "its disk is full")])
def test_a_failing_write_is_one_error_and_leaves_nothing(tmp_path, monkeypatch, number, error, words):
    def refuse(source, target):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(os, "replace", refuse)  # the rename that puts the finished file in place
    with pytest.raises(error, match=words):
        save_kps(tmp_path / "k.safetensors", sample_track())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        save_kps(tmp_path / "k.safetensors", sample_track())
        save_kps(tmp_path / "k.pth", sample_track())
    finally:
        os.umask(previous)
    for name in ("k.safetensors", "k.pth"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_kps_replaces_unless_told_not_to(tmp_path):
    target = save_kps(tmp_path / "k.safetensors", sample_track(2))
    save_kps(target, sample_track(3))  # like torch.save
    with pytest.raises(InputError, match="already exists"):
        save_kps(target, sample_track(4), overwrite=False)
    assert load_kps(target).num_frames == 3 and os.listdir(tmp_path) == ["k.safetensors"]


def test_a_binary_file_starting_with_pickles_opcode_byte_is_not_called_a_pickle(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"\x80\xff" + bytes(range(256)) * 4)
    with pytest.raises(InputError) as raised:
        load_kps(path)
    assert "could not be read as a torch file" in str(raised.value) and "pickle" not in raised.value.what.raw


def test_a_raw_pickle_kps_file_is_refused_without_torchs_protocol_warning(tmp_path):
    import warnings

    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps(np.zeros((3, 3, 2)), protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="it starts like a plain Python pickle"):
            load_kps(path)
    assert not [warning for warning in caught if "pickle protocol" in str(warning.message)]


def _torch_file_with_pickle(tmp_path, name: str, data_pkl: bytes) -> Path:
    """A torch.save file whose pickled object is ``data_pkl`` (opcodes written by hand)."""
    plain, crafted = tmp_path / "plain.pth", tmp_path / name
    torch.save([1.0], plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data_pkl if item.filename.endswith("/data.pkl") else data)
    return crafted


@pytest.mark.parametrize(("name", "data_pkl"), [
    ("deep.pth", b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."),  # a list in a list, 200,000 deep
    ("itself.pth", b"\x80\x02]q\x00h\x00a."),  # a list that holds itself
])
def test_lists_nested_deeper_than_a_track_are_refused_in_one_paragraph(tmp_path, name, data_pkl):
    path = _torch_file_with_pickle(tmp_path, name, data_pkl)
    with pytest.raises(InputError) as refused:
        load_kps(path)
    assert refused.value.what == f"The kps file {path} nests lists deeper than a keypoint track does."


def test_a_track_as_lists_of_points_of_x_y_is_not_too_deep(tmp_path):
    torch.save([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]] * 2, tmp_path / "lists.pth")
    assert load_kps(tmp_path / "lists.pth").points.shape == (2, 3, 2)


def test_a_list_held_many_times_is_measured_once_and_its_declared_size_refused(tmp_path):
    """10,000 references to 10,000 references to 10,000 numbers: 30 KB on disk, 10^12 values declared; reading
    (or only measuring) it item by item would never end."""
    inner = [0.0] * 10_000
    middle = [inner] * 10_000
    torch.save([middle] * 10_000, tmp_path / "shared.pth")
    assert (tmp_path / "shared.pth").stat().st_size < 200_000
    with pytest.raises(InputError) as refused:
        load_kps(tmp_path / "shared.pth")
    assert refused.value.what.startswith(f"The kps file {tmp_path / 'shared.pth'} declares a track of shape "
                                         "[10000, 10000, 10000]")


def test_a_weights_file_given_as_a_track_names_a_few_tensors_and_the_count_not_every_one(tmp_path):
    """Audit item 9: the VAE's 184 tensor names filled about 190 terminal lines before the fix."""
    weights = {f"decoder.block{index:03d}.weight": np.ones(2, np.float32) for index in range(184)}
    save_file(weights, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(InputError) as caught:
        load_kps(tmp_path / "diffusion_pytorch_model.safetensors")
    message = str(caught.value)
    assert ("It holds 184 tensors but none named 'kps' (it has: decoder.block000.weight, decoder.block001.weight, "
            "decoder.block002.weight, decoder.block003.weight and 180 more): it looks like model weights, not a "
            "keypoint track.") in message
    assert "decoder.block004.weight" not in message and len(message) < 600


def test_a_pth_state_dict_given_as_a_track_is_one_paragraph_not_pythons_float_error(tmp_path):
    """Audit item 9: it failed with "float() argument must be a string or a real number, not 'dict'"."""
    torch.save({"conv.weight": torch.ones(2, 2), "conv.bias": torch.ones(2)}, tmp_path / "denoising_unet.pth")
    with pytest.raises(InputError) as caught:
        load_kps(tmp_path / "denoising_unet.pth")
    assert str(caught.value).startswith(
        f"The kps file {tmp_path / 'denoising_unet.pth'} holds a dict of 2 entries (conv.weight, conv.bias), not a "
        "keypoint track. A dict of tensors is how model weights (a state dict) are saved;")
    assert "float()" not in str(caught.value)


def test_a_legacy_torch_file_whose_storage_size_was_altered_is_told_in_words_not_torchs_format_codes(tmp_path):
    """torch's own message read "storage has wrong byte size: expected %ld got %ld2408000000000"."""
    import struct

    path = tmp_path / "legacy.pth"
    torch.save(torch.zeros(10, 3, 2), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    count = data.index(b"K<", data.index(b"cpu"))  # the storage's 60 values, pickled as one byte
    path.write_bytes(data[:count] + b"J" + struct.pack("<i", 2_000_000_000) + data[count + 2:])
    with pytest.raises(InputError) as raised:
        load_kps(path)
    assert "its tensors' data is not the size its header declares: a damaged or altered file" in str(raised.value)
    assert "%ld" not in str(raised.value)
