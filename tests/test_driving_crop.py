"""`vexpress extract --crop`: one steady face-centred crop of a driving video (dlib backend, real videos)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLES_DIR
from safetensors.numpy import save_file
from typer.testing import CliRunner

from vexpress_cli.cli.app import app
from vexpress_cli.errors import InputError
from vexpress_cli.face.base import Face
from vexpress_cli.face.framing import EYE_HEIGHT_SHARE, CropBox
from vexpress_cli.jobs.extract import extract
from vexpress_cli.face.framing import EYE_DISTANCE_SHARE, parse_crop
from vexpress_cli.kps.driving_crop import steady_crop_box
from vexpress_cli.kps.io import KpsTrack, load_kps, save_kps
from vexpress_cli.media.video_reader import iter_video_frames
from vexpress_cli.media.encoding import VideoEncoding
from vexpress_cli.media.video_writer import VideoWriter

CLIP_FRAMES = 20
WIDE = (1280, 720)
PLACED_AT = (640, 100)  # where the 512x512 sample sits in the wide frame: off-centre, the crop fits inside
BACKGROUND = 60
runner = CliRunner()


def sample_frames(sample: str, count: int = CLIP_FRAMES) -> list[np.ndarray]:
    return [frame for _, frame in zip(range(count), iter_video_frames(SAMPLES_DIR / sample / "gt.mp4"))]


def write_video(path, frames) -> str:
    height, width = frames[0].shape[:2]
    with VideoWriter(path, 25, width, height, encoding=VideoEncoding(crf=12)) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def placed(frame: np.ndarray, left: int, top: int, size: tuple[int, int] = WIDE) -> np.ndarray:
    canvas = np.full((size[1], size[0], 3), BACKGROUND, dtype=np.uint8)
    canvas[top:top + frame.shape[0], left:left + frame.shape[1]] = frame
    return canvas


@pytest.mark.parametrize("sample", ["tys", "AOC"])
@pytest.mark.slow
def test_wide_shot_gives_the_same_kps_wherever_the_face_sits_in_it(sample, tmp_path):
    frames = sample_frames(sample)
    canvas, here, elsewhere = (960, 720), (330, 130), (90, 70)  # tracked at full size; the box fits inside
    first = write_video(tmp_path / "first.mp4", [placed(frame, *here, canvas) for frame in frames])
    second = write_video(tmp_path / "second.mp4", [placed(frame, *elsewhere, canvas) for frame in frames])

    first_result = extract(first, tmp_path / "first.safetensors", face_backend="dlib", crop="auto")
    second_result = extract(second, tmp_path / "second.safetensors", face_backend="dlib", crop="auto")
    from_first, from_second = load_kps(first_result.kps_out), load_kps(second_result.kps_out)

    distances = np.linalg.norm(from_second.points - from_first.points, axis=-1)
    print(f"{sample}: max {distances.max():.2f} px, mean {distances.mean():.2f} px")
    assert distances.max() < 3, distances.max()
    # The same box relative to the face (within 1 %), moved by the placement.
    x, y, w, h = from_first.crop
    sx, sy, sw, sh = from_second.crop
    assert w == h and abs(w - sw) <= 0.01 * sw
    assert abs(x - here[0] - (sx - elsewhere[0])) <= 0.01 * sw
    assert abs(y - here[1] - (sy - elsewhere[1])) <= 0.01 * sw
    assert from_first.source_size == canvas and first_result.to_dict()["crop"] == list(from_first.crop)


@pytest.mark.parametrize("sample", ["tys", "AOC"])
def test_video_framed_like_the_samples_is_kept_whole_as_its_photo_is(sample, tmp_path):
    """The samples' gt.mp4 are framed like their ref.jpg, which auto-crop uses whole: so is the video."""
    from vexpress_cli.jobs.reference_photo import read_reference_photo
    from vexpress_cli.settings.schema import GenerationSettings

    photo = read_reference_photo(SAMPLES_DIR / sample / "ref.jpg", GenerationSettings(face_backend="dlib", crop="auto"))
    plain = write_video(tmp_path / "plain.mp4", sample_frames(sample, 8))

    auto = extract(plain, tmp_path / "auto.safetensors", face_backend="dlib", crop="auto")
    whole = extract(plain, tmp_path / "whole.safetensors", face_backend="dlib", crop="none")

    assert photo.crop_list == [0, 0, 512, 512]
    assert auto.report.crop.as_list() == [0, 0, 512, 512]
    np.testing.assert_array_equal(load_kps(auto.kps_out).points, load_kps(whole.kps_out).points)
    assert any("already framed like V-Express's portraits" in note for note in auto.notes)


@pytest.mark.slow
def test_without_the_crop_a_wide_shot_lands_elsewhere_and_the_note_says_it_was_stretched(tmp_path):
    """What the crop is for: the whole wide frame squeezed to 512x512 puts the face somewhere else (and squashes it:
    extract said nothing of it, only inspect did)."""
    frames = sample_frames("tys", 8)
    wide = write_video(tmp_path / "wide.mp4", [placed(frame, *PLACED_AT) for frame in frames])
    auto = extract(wide, tmp_path / "crop.safetensors", face_backend="dlib", crop="auto")
    whole = extract(wide, tmp_path / "whole.safetensors", face_backend="dlib")
    cropped, whole_track = load_kps(auto.kps_out), load_kps(whole.kps_out)
    assert whole_track.crop is None and whole_track.source_size is None
    assert np.linalg.norm(whole_track.points - cropped.points, axis=-1).min() > 50
    width, height = WIDE
    assert [note for note in whole.notes if "stretched" in note] == [
        f"The video is {width}x{height}: each frame was stretched to 512x512 (the aspect is not kept, as in the "
        "original), so the face is too. crop=\"auto\" cuts a steady box around the face instead."]
    assert not [note for note in auto.notes if "stretched" in note]


@pytest.mark.slow
def test_one_box_for_the_whole_video_keeps_the_head_motion(tmp_path):
    """The face slides 80 px to the right over the clip: the crop stays put, the points move with it."""
    frames = sample_frames("tys", 12)
    shifts = np.linspace(0, 80, len(frames)).round().astype(int)
    moving = write_video(tmp_path / "moving.mp4", [placed(frame, 500 + shift, 100)
                                                   for frame, shift in zip(frames, shifts)])
    result = extract(moving, tmp_path / "moving.safetensors", face_backend="dlib", crop="auto")
    track = load_kps(result.kps_out)
    scale = 512 / track.crop[2]
    nose_x = track.points[:, 2, 0]
    still = load_kps(extract(write_video(tmp_path / "still.mp4", [placed(f, 540, 100) for f in frames]),
                             tmp_path / "still.safetensors", face_backend="dlib", crop="auto").kps_out)
    # The sample's own head motion plus the slide: the slide shows in full, in crop pixels.
    slide = (nose_x - still.points[:, 2, 0]) - (nose_x[0] - still.points[0, 2, 0])
    np.testing.assert_allclose(slide, shifts * scale, atol=4)


def face_at(eye_left, eye_right, box_width: float = 200.0) -> Face:
    left, right = np.asarray(eye_left, float), np.asarray(eye_right, float)
    middle = (left + right) / 2
    nose = middle + [0, 50]
    bbox = [middle[0] - box_width / 2, middle[1] - 80, middle[0] + box_width / 2, middle[1] + 120]
    return Face(bbox, 0.9, [left, right, nose])


def test_box_scale_and_eye_height_come_from_the_eye_distance():
    box = steady_crop_box([face_at([900, 400], [1000, 400], box_width=180)], 1920, 1080, 1.0)
    assert abs(box.w - 100 / EYE_DISTANCE_SHARE) <= 1 and box.w == box.h
    assert abs((400 - box.y) / box.h - EYE_HEIGHT_SHARE) < 0.01
    assert abs(box.x + box.w / 2 - 950) <= 1
    # dlib's box widths jump in steps of 1.2x; the crop does not follow them.
    assert steady_crop_box([face_at([900, 400], [1000, 400], box_width=216)], 1920, 1080, 1.0) == box


def test_box_follows_most_frames_not_an_outlier():
    faces = [face_at([900 + step, 400], [1000 + step, 400]) for step in range(-4, 5)]
    faces.append(face_at([100, 100], [300, 100]))  # one wrong detection, far away and twice the size
    box = steady_crop_box(faces, 1920, 1080, 1.0)
    assert abs(box.x + box.w / 2 - 950) <= 2 and abs(box.w - 100 / EYE_DISTANCE_SHARE) <= 2


def test_non_square_generation_size_gives_a_box_of_that_aspect():
    box = steady_crop_box([face_at([900, 400], [1000, 400])], 1920, 1080, 0.75)
    assert abs(box.w / box.h - 0.75) < 0.01


# --- the crop in the kps file -----------------------------------------------------------------


def test_kps_file_records_the_crop_and_the_video_size(tmp_path):
    track = KpsTrack(np.ones((2, 3, 2)), fps=25.0, width=512, height=512, backend="dlib", crop=(-5, 3, 600, 600),
                     source_size=(1280, 720))
    loaded = load_kps(save_kps(tmp_path / "k.safetensors", track))
    assert (loaded.crop, loaded.source_size) == ((-5, 3, 600, 600), (1280, 720))
    assert loaded.rescaled_to(256, 256).crop == (-5, 3, 600, 600)


def test_kps_file_without_a_crop_still_reads(tmp_path):
    path = tmp_path / "old.safetensors"
    save_file({"kps": np.ones((2, 3, 2), dtype=np.float32)}, str(path),
              metadata={"format": "vexpress-kps", "format_version": "1", "width": "512", "height": "512"})
    loaded = load_kps(path)
    assert loaded.crop is None and loaded.source_size is None and loaded.width == 512


@pytest.mark.parametrize("metadata", [{"crop": "1,2,3"}, {"crop": "0,0,0,10"}, {"crop": "a,b,c,d"},
                                      {"source_size": "1280"}])
def test_bad_crop_metadata_is_refused(metadata, tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"kps": np.ones((2, 3, 2), dtype=np.float32)}, str(path), metadata=metadata)
    with pytest.raises(InputError) as caught:
        load_kps(path)
    assert "invalid metadata" in caught.value.what


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1,2", "0,0,0,10", "left", "1,2,3,4,5"])
def test_bad_crop_text_says_what_why_fix(text):
    with pytest.raises(InputError) as caught:
        parse_crop(text)
    assert text in caught.value.what and "X,Y,W,H" in caught.value.what


def test_crop_values_are_parsed():
    assert parse_crop("auto") == "auto" and parse_crop("none") is None and parse_crop(None) is None
    assert parse_crop(" -10, 20 ,300,300") == CropBox(-10, 20, 300, 300)


def test_crop_box_outside_the_video_writes_nothing(tmp_path):
    video = write_video(tmp_path / "clip.mp4", sample_frames("tys", 3))
    result = runner.invoke(app, ["extract", str(video), "-o", str(tmp_path / "k.safetensors"), "--backend", "dlib",
                                 "--crop", "600,0,100,100"])
    assert result.exit_code == 2 and "lies outside the 512x512 video" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "k.safetensors").exists()


def test_a_box_more_than_four_times_the_videos_size_is_refused_before_any_frame_is_padded(tmp_path):
    """--crop 0,0,40000,40000 padded every frame to the whole box (5 GB at its peak); 200000 was a cv2.error
    traceback. Four times the video's width and height is still taken."""
    video = write_video(tmp_path / "clip.mp4", sample_frames("tys", 3))
    kps = tmp_path / "k.safetensors"
    args = ["extract", str(video), "-o", str(kps), "--backend", "dlib"]
    result = runner.invoke(app, [*args, "--crop", "0,0,200000,2048"])
    assert result.exit_code == 2 and "Traceback" not in result.output and not kps.exists()
    assert " ".join(result.output.split()) == (
        f"Error: The crop box 200000x2048 at (0, 0) is larger than 4 times the 512x512 video {video}. Past the "
        "video's edge the box is filled by repeating the edge pixels, and each frame is padded to the whole box "
        "before it is resized: a box this large is almost all padding, and its frames would fill the memory. Give "
        "a box at most 2048x2048, or use --crop auto.")
    assert "at most 2048x2048" in runner.invoke(app, [*args, "--crop", "0,0,100,2049"]).output
    taken = runner.invoke(app, [*args, "--crop=-768,-768,2048,2048"])
    assert taken.exit_code == 0, taken.output


def test_no_face_under_crop_auto_suggests_a_box_or_none(tmp_path):
    video = write_video(tmp_path / "grey.mp4", [np.full((96, 160, 3), BACKGROUND, dtype=np.uint8)] * 3)
    result = runner.invoke(app, ["extract", str(video), "-o", str(tmp_path / "k.safetensors"), "--backend", "dlib",
                                 "--crop", "auto"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "No face was found" in text and "--crop X,Y,W,H" in text and "--crop none" in text
    assert not (tmp_path / "k.safetensors").exists()


def test_cli_shows_the_crop_and_notes_a_pth_cannot_keep_it(tmp_path):
    video = write_video(tmp_path / "clip.mp4", sample_frames("tys", 3))
    result = runner.invoke(app, ["extract", str(video), "-o", str(tmp_path / "k.pth"), "--backend", "dlib",
                                 "--crop", "40,30,440,440"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "440x440 at (40, 30) of the 512x512 video" in text
    assert "A .pth file holds only the points (in the 512x512 frame), not the crop 440x440 at (40, 30); write " \
        ".safetensors to keep them." in text
    whole = runner.invoke(app, ["extract", str(video), "-o", str(tmp_path / "w.pth"), "--backend", "dlib",
                                "--crop", "0,0,512,512"])  # the whole frame: nothing is lost
    assert whole.exit_code == 0 and "holds only the points" not in " ".join(whole.output.split())


@pytest.mark.parametrize(("crop", "noted"), [("-100,-100,700,700", True), ("0,0,512,512", False)])
def test_a_box_mostly_outside_the_video_is_noted_as_photos_are(tmp_path, crop, noted):
    """extract pads a box that reaches past the video (a photo's box must lie inside it); 47 % padding said nothing."""
    video = write_video(tmp_path / "clip.mp4", sample_frames("tys", 3))
    result = runner.invoke(app, ["extract", str(video), "-o", str(tmp_path / "k.safetensors"), "--backend", "dlib",
                                 f"--crop={crop}"])
    assert result.exit_code == 0, result.output
    note = ("47% of the crop 700x700 at (-100, -100) lies outside the video and is filled by repeating its edge "
            "pixels, which the face detector sees too.")
    assert (note in " ".join(result.output.split())) == noted


def test_inspect_shows_the_recorded_crop(tmp_path):
    from vexpress_cli.jobs.inspect.kps import inspect_kps

    track = KpsTrack(np.ones((2, 3, 2)), fps=25.0, width=512, height=512, crop=(10, 20, 600, 600),
                     source_size=(1280, 720))
    report = inspect_kps(save_kps(tmp_path / "k.safetensors", track)).to_dict()
    assert (report["crop"], report["source_size"]) == ([10, 20, 600, 600], [1280, 720])
    assert inspect_kps(save_kps(tmp_path / "k.pth", track)).to_dict()["crop"] is None


def test_a_box_within_four_times_a_large_video_is_still_refused_past_64_megapixels():
    """Four times an 8K video is 1.7 GB a frame: the box is held to a photo's pixel budget too."""
    from vexpress_cli.kps.driving_crop import check_crop_in_video

    with pytest.raises(InputError) as refused:
        check_crop_in_video(CropBox(0, 0, 16000, 8000), 8192, 4320, "big.mp4")
    assert refused.value.what == ("The crop box 16000x8000 at (0, 0) is 128 megapixels, more than the 64 a frame "
                                  "may be cut to.")
    assert check_crop_in_video(CropBox(0, 0, 8000, 8000), 8192, 4320, "big.mp4") == CropBox(0, 0, 8000, 8000)
