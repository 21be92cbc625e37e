"""``vexpress ui``: the web app driven in a real browser (Playwright with Debian's chromium, which .ci/run
installs; nothing is downloaded at run time) on the tiny model, its ``/generate`` endpoint through
gradio_client, and what it must refuse (files outside its folders, oversized uploads, the network by
default).

With ``VEXPRESS_UI_SCREENSHOTS=docs/ui`` the browser tests save a screenshot of each tab there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT, SAMPLES_DIR, TINY_MODEL_DIR, free_port

from vexpress_cli.media.ffmpeg import ffmpeg_exe
from vexpress_cli.media.video_reader import video_info
from vexpress_cli.settings.schema import SETTINGS

pytestmark = pytest.mark.usefixtures("like_the_real_command")

AOC, TYS = SAMPLES_DIR / "AOC", SAMPLES_DIR / "tys"
# The tiny model at 64x64: a face detector finds nothing that small, so the portrait's keypoints are given.
SMALL = {"width": 64, "height": 64, "num_inference_steps": 1}
REFERENCE_KPS = "22,26;42,26;32,38"
MAX_UPLOAD_MB = 1
SCREENSHOTS = os.environ.get("VEXPRESS_UI_SCREENSHOTS")
BROWSER_TIMEOUT_MS = 120_000
# The wide shots: a 512x512 sample placed off-centre in a 1280x720 frame.
WIDE_SIZE = (1280, 720)
PLACED_AT = (720, 160)


def cut(source: Path, output: Path, start: float, seconds: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
                    str(output)], check=True)
    return output


def padded(source: Path, output: Path, seconds: float, size: tuple[int, int], at: tuple[int, int]) -> Path:
    """The first ``seconds`` of ``source`` placed at ``at`` in a larger grey frame: a wide shot."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-t", str(seconds), "-i", str(source), "-vf",
                    f"pad={size[0]}:{size[1]}:{at[0]}:{at[1]}:color=gray", str(output)], check=True)
    return output


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    notes = folder / "notes.txt"
    notes.write_text("These are my notes, not a photo.\n")
    return {
        "clip": cut(AOC / "gt.mp4", folder / "clip.mp4", 1.0, 1.0),  # 1 s of a video with sound
        "speech": cut(AOC / "aud.mp3", folder / "speech.wav", 1.0, 0.8),
        "driving": cut(TYS / "gt.mp4", folder / "driving.mp4", 0.0, 0.5),
        "notes": notes,
    }


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A wide shot: the tys portrait off-centre in a 1280x720 photo (and the true centre of its face), and 0.5 s
    of the tys video placed the same way in a 1280x720 frame."""
    import numpy as np
    import PIL.Image

    from vexpress_cli.face import load_backend, load_image_rgb

    folder = tmp_path_factory.mktemp("wide")
    portrait = load_image_rgb(TYS / "ref.jpg")
    pixels = np.zeros((WIDE_SIZE[1], WIDE_SIZE[0], 3), np.uint8)
    pixels[..., 0] = np.linspace(40, 200, WIDE_SIZE[0], dtype=np.uint8)[None, :]  # a gradient, no second face
    pixels[..., 2] = 120
    left, top = PLACED_AT
    pixels[top:top + 512, left:left + 512] = portrait
    face = max(load_backend("dlib").detect(portrait), key=lambda found: found.area)
    centre = ((face.bbox[0] + face.bbox[2]) / 2 + left, (face.bbox[1] + face.bbox[3]) / 2 + top)
    photo = folder / "wide.png"
    PIL.Image.fromarray(pixels).save(photo)
    return {"photo": photo, "face_centre": centre,
            "video": padded(TYS / "gt.mp4", folder / "wide-driving.mp4", 0.5, WIDE_SIZE, PLACED_AT)}


def assert_box_around(box, centre) -> None:
    """A square box whose centre is within 10% of its size of ``centre``."""
    x, y, w, h = box
    assert w == h and abs(x + w / 2 - centre[0]) < 0.1 * w and abs(y + h / 2 - centre[1]) < 0.1 * w, (box, centre)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    """No user presets or config: only what the tests pass counts."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("config")
        patch.setenv("VEXPRESS_CONFIG_DIR", str(folder))
        patch.delenv("VEXPRESS_MODEL_DIR", raising=False)
        yield folder


@pytest.fixture(scope="module")
def server(config_dir, like_the_real_command):
    """The app on the tiny model, in this process, on a free port of 127.0.0.1."""
    from vexpress_cli.ui import create_app

    app = create_app(TINY_MODEL_DIR, max_upload_mb=MAX_UPLOAD_MB)
    try:
        app.launch(port=free_port())
        yield app
    finally:
        app.close()
    assert not app.root.exists()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install chromium (.ci/run does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    page.goto(server.url)
    page.wait_for_selector("#generate")
    yield page
    page.close()


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        folder = REPO_ROOT / SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def upload(page, elem_id: str, path: Path) -> None:
    """Upload ``path`` into a file control and wait until the control offers it back (its download link)."""
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    page.locator(f"#{elem_id} a[download='{path.name}']").wait_for()


def choose(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(value)}:")).click()


def set_number(page, elem_id: str, value, tries: int = 3) -> None:
    """Type ``value`` into a number box until it keeps it: a box typed into while its accordion is still opening
    can be reset to its old value when the accordion has rendered."""
    box = page.locator(f"#{elem_id} input[type=number]")
    for _ in range(tries):
        box.fill(str(value))
        box.press("Tab")
        page.wait_for_timeout(500)  # such a reset comes after the typing
        if box.input_value() == str(value):
            return
    raise AssertionError(f"#{elem_id} did not take {value!r}: it shows {box.input_value()!r}")


def download_links(page, elem_id: str) -> dict[str, str]:
    """The component's download links: file name -> URL."""
    links = page.locator(f"#{elem_id} a[download]")
    return {link.get_attribute("download"): link.get_attribute("href") for link in links.all()}


def video_duration(page, elem_id: str) -> float:
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('#{elem_id} video');"
        " return v && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }")
    return page.evaluate(f"document.querySelector('#{elem_id} video').duration")


@pytest.fixture
def api_client(server, tmp_path, monkeypatch):
    """Makes gradio_client Clients of the app, their downloads in the test's folder (not in /tmp/gradio).

    gradio_client downloads each file through a new folder in the system's temp folder and leaves it there
    empty; the test's folder stands in for the temp folder so that none is left behind."""
    from gradio_client import Client

    temp = tmp_path / "client-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return lambda: Client(server.url, verbose=False, download_files=str(tmp_path))


@pytest.fixture
def progress_reports(monkeypatch):
    """Every progress report of every job: (job, stage, done, total)."""
    from vexpress_cli.ui.runtime import PageProgress

    reports, reporters = [], []
    report = PageProgress.__call__

    def recording(self, stage, done, total):
        reporters.append(self)  # kept alive, so a later job's reporter never takes a finished one's id
        reports.append((id(self), stage, done, total))
        report(self, stage, done, total)

    monkeypatch.setattr(PageProgress, "__call__", recording)
    return reports


def first_denoise_report(reports, timeout: float = 60) -> tuple[int, int]:
    """(job, total steps) of the first job that reports denoising, waiting for it."""
    deadline = time.monotonic() + timeout
    while not any(stage == "denoise" for _, stage, _, _ in reports):
        assert time.monotonic() < deadline, "no job started denoising"
        time.sleep(0.05)
    return next((job, total) for job, stage, _, total in reports if stage == "denoise")


def denoised(reports, job: int) -> int:
    return max(done for reporter, stage, done, _ in reports if reporter == job and stage == "denoise")


# --- in the browser -------------------------------------------------------------------------


def test_generate_in_the_browser_plays_a_video_as_long_as_the_clip(page, server, media):
    upload(page, "portrait", AOC / "ref.jpg")
    upload(page, "speech", media["clip"])
    page.locator("#reference-kps textarea, #reference-kps input").first.fill(REFERENCE_KPS)
    page.locator("#advanced").get_by_text("Advanced").click()
    audio_weight = page.locator("#setting-audio-attention-weight input[type=number]")
    assert audio_weight.input_value() == "1"
    choose(page, "preset", "expressive")
    # The preset fills the settings: its audio weight (3.0) replaces the default (1.0).
    page.wait_for_function("() => document.querySelector('#setting-audio-attention-weight input[type=number]')"
                           ".value === '3'")
    for name, value in SMALL.items():
        set_number(page, f"setting-{name.replace('_', '-')}", value)
    page.locator("#generate").click()

    assert video_duration(page, "result-video") == pytest.approx(1.0, abs=0.05)
    summary = page.locator("#result-summary")
    summary.get_by_text("30 frames at 30 fps").wait_for()
    links = download_links(page, "result-files")
    assert sorted(links) == ["ref-talking.mp4", "ref-talking.mp4.json"]
    record = page.request.get(links["ref-talking.mp4.json"])  # the run record of the generation
    settings = record.json()["settings"]
    assert (settings["width"], settings["height"], settings["num_inference_steps"]) == (64, 64, 1)
    assert (settings["audio_attention_weight"], settings["reference_attention_weight"]) == (3.0, 0.95)
    assert record.json()["job"]["preset"] == "expressive"
    screenshot(page, "generate")

    # The outputs live in the page's session folder, removed when the page closes.
    session = next(path.parents[1] for path in server.root.glob("sessions/*/job-*/ref-talking.mp4.json")
                   if Path(json.loads(path.read_text())["job"]["audio"]).name == "clip.mp4")
    page.close()
    deadline = time.monotonic() + 60
    while session.exists():
        assert time.monotonic() < deadline, "the session folder outlived its page"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_seed_past_2_53_and_an_fps_off_the_slider_grid_reach_the_job_as_the_config_says(page, server, media,
                                                                                        config_dir, monkeypatch):
    """A browser's numbers are doubles and a slider snaps to its step: neither may change the values given."""
    from vexpress_cli.jobs.generate import Generator

    seed = 2**60 + 1  # a double holds 2**60 + 0
    planned = []
    plan = Generator.plan
    monkeypatch.setattr(Generator, "plan", lambda self, *args, **kwargs: planned.append(kwargs) or plan(
        self, *args, **kwargs))
    config = config_dir / "config.toml"
    config.write_text(f"[generate]\nseed = {seed}\nfps = 23.976\nguidance_scale = 3.333\n")
    try:
        upload(page, "portrait", AOC / "ref.jpg")
        upload(page, "speech", media["clip"])
        page.locator("#reference-kps textarea, #reference-kps input").first.fill(REFERENCE_KPS)
        page.locator("#advanced").get_by_text("Advanced").click()
        choose(page, "preset", "lip-sync")  # fills the controls from the preset and the user config
        page.wait_for_function("() => document.querySelector('#setting-seed textarea, #setting-seed input')"
                               f".value === '{seed}'")
        for name, value in SMALL.items():
            set_number(page, f"setting-{name.replace('_', '-')}", value)
        page.locator("#generate").click()
        video_duration(page, "result-video")
    finally:
        config.unlink()
    assert [(job["seed"], job["fps"], job["guidance_scale"]) for job in planned] == [(seed, 23.976, 3.333)]


def fill_long_job(page, media) -> None:
    upload(page, "portrait", AOC / "ref.jpg")
    upload(page, "speech", media["clip"])
    page.locator("#reference-kps textarea, #reference-kps input").first.fill(REFERENCE_KPS)
    page.locator("#advanced").get_by_text("Advanced").click()
    for name, value in {**SMALL, "num_inference_steps": 1000}.items():
        set_number(page, f"setting-{name.replace('_', '-')}", value)


@pytest.mark.slow
def test_the_page_shows_the_stage_and_eta_and_its_cancel_button_stops_the_job(page, media, progress_reports):
    fill_long_job(page, media)
    page.locator("#generate").click()
    job, total = first_denoise_report(progress_reports)
    page.get_by_text(re.compile(r"Denoising \(steps x windows\): \d+ of \d+, about \d+ s left")).first.wait_for()
    page.locator("#cancel").click()
    deadline = time.monotonic() + 10
    while True:  # the job stops at its next report: the count of steps stops growing
        steps = denoised(progress_reports, job)
        time.sleep(1)
        if denoised(progress_reports, job) == steps:
            break
        assert time.monotonic() < deadline, "the job goes on after Cancel"
    assert steps < total / 10
    page.locator("#result-summary").get_by_text("Cancelled: nothing was written").wait_for()


@pytest.mark.slow
def test_cancelling_a_job_that_waits_in_the_queue_says_so_like_a_running_ones(browser, server, media,
                                                                               progress_reports):
    """The waiting page's Cancel dropped its job without a word: its summary stayed empty."""
    running, queued = (browser.new_page(viewport={"width": 1280, "height": 960}) for _ in range(2))
    try:
        for page in (running, queued):
            page.set_default_timeout(BROWSER_TIMEOUT_MS)
            page.goto(server.url)
            page.wait_for_selector("#generate")
            fill_long_job(page, media)
        running.locator("#generate").click()
        first_denoise_report(progress_reports)
        queued.locator("#generate").click()
        queued.get_by_text(re.compile(r"queue: 1/1")).first.wait_for()
        queued.locator("#cancel").click()
        queued.locator("#result-summary").get_by_text("Cancelled: nothing was written").wait_for()
        running.locator("#cancel").click()
        running.locator("#result-summary").get_by_text("Cancelled: nothing was written").wait_for()
        time.sleep(2)  # a queued job still there would start now
        assert len({job for job, *_ in progress_reports}) == 1
    finally:
        running.close()
        queued.close()


def error_paragraph(page, elem_id: str = "result-summary") -> str:
    """The error paragraph that a job's summary shows where its result would have been."""
    page.wait_for_function(f"() => document.querySelector('#{elem_id}').innerText.trim().startsWith('Error: ')")
    return page.locator(f"#{elem_id}").inner_text().strip().removeprefix("Error: ")


def test_a_text_file_as_the_portrait_shows_the_error_paragraph(page, server, media):
    upload(page, "portrait", media["notes"])
    upload(page, "speech", media["clip"])
    page.locator("#generate").click()
    text = error_paragraph(page)
    assert text.startswith("Cannot read the reference image notes.txt. It is not an image")
    assert text.endswith("Pass a JPEG or PNG photo.")
    page_text = page.locator("body").inner_text()
    assert "Traceback" not in page_text and str(server.root) not in page_text


@pytest.mark.slow
@pytest.mark.parametrize(("elem_id", "typed", "expected"), [
    ("setting-fps", "", "“Frames per second (fps)” must be a number, not ''."),
    ("setting-num-inference-steps", "0", "“Denoising steps (num_inference_steps)” is 0; it must be from 1 to 1000."),
    ("setting-width", "99999", "“Width” is 99999; it must be from 64 to 2048."),
])
def test_a_cleared_or_out_of_range_number_box_is_refused_not_clamped(page, media, progress_reports, elem_id, typed,
                                                                     expected):
    upload(page, "portrait", AOC / "ref.jpg")
    upload(page, "speech", media["clip"])
    page.locator("#advanced").get_by_text("Advanced").click()
    box = page.locator(f"#{elem_id} input[type=number]")
    set_number(page, elem_id, typed)
    page.locator("#generate").click()
    assert error_paragraph(page).startswith(expected)
    assert box.input_value() == typed  # what was typed stays, as the message says
    assert not progress_reports  # no job ran


@pytest.mark.slow
def test_extract_then_retarget_preview_renders(page, media):
    page.get_by_role("tab", name="Extract / retarget").click()
    upload(page, "extract-video", media["driving"])
    page.locator("#extract").click()
    page.locator("#extract-summary").get_by_text("Extracted").wait_for()
    assert sorted(download_links(page, "extract-files")) == ["driving-kps.safetensors", "driving.m4a"]
    frames = int(re.search(r"Extracted (\d+) frames at 25 fps", page.locator("#extract-summary").inner_text())[1])
    page.locator("#retarget-kps a[download='driving-kps.safetensors']").wait_for()  # step 1 filled step 2

    upload(page, "retarget-portrait", AOC / "ref.jpg")
    page.locator("#retarget").click()
    assert video_duration(page, "retarget-video") == pytest.approx(frames / 25, abs=0.05)
    page.locator("#retarget-summary").get_by_text(f"Retargeted {frames} frames with offset_retarget").wait_for()
    screenshot(page, "extract-retarget")


@pytest.mark.slow
def test_an_error_replaces_the_last_result_with_its_paragraph_in_the_summary(page, media):
    page.get_by_role("tab", name="Extract / retarget").click()
    upload(page, "extract-video", media["driving"])
    page.locator("#extract").click()
    page.locator("#retarget-kps a[download='driving-kps.safetensors']").wait_for()
    upload(page, "retarget-portrait", AOC / "ref.jpg")
    page.locator("#retarget").click()
    wait_for_summary(page, "retarget-summary", "Retargeted")
    page.locator("#retarget-reference-kps textarea, #retarget-reference-kps input").first.fill("abc")
    page.locator("#retarget").click()
    assert error_paragraph(page, "retarget-summary").startswith("Cannot read keypoints from 'abc'.")
    assert "Retargeted" not in page.locator("#retarget-summary").inner_text()
    assert not page.locator("#retarget-video video").count() and not download_links(page, "retarget-file")
    assert not page.get_by_test_id("toast-text").count()  # no pop-up over the form
    page.locator("#retarget-reference-kps textarea, #retarget-reference-kps input").first.fill("")
    page.locator("#retarget").click()
    page.locator("#retarget-summary").get_by_text("Retargeted").wait_for()  # the error goes with the next run


def set_small_settings(page) -> None:
    page.locator("#advanced").get_by_text("Advanced").click()
    for name, value in SMALL.items():
        set_number(page, f"setting-{name.replace('_', '-')}", value)
    for name, value in SMALL.items():  # none was reset meanwhile
        assert page.locator(f"#setting-{name.replace('_', '-')} input[type=number]").input_value() == str(value)


def wait_for_summary(page, elem_id: str, text: str):
    """The summary once it shows ``text``; an error paragraph instead fails the test with its words."""
    summary = page.locator(f"#{elem_id}")
    error = summary.get_by_text(re.compile("^Error: "))
    summary.get_by_text(text).or_(error).first.wait_for()
    assert not error.count(), error.first.inner_text()
    return summary


def downloaded(page, url: str, path: Path) -> Path:
    path.write_bytes(page.request.get(url).body())
    return path


@pytest.mark.slow
def test_a_wide_photo_in_the_browser_gives_a_video_framed_around_its_face(page, media, wide, tmp_path):
    upload(page, "portrait", wide["photo"])
    upload(page, "speech", media["speech"])
    assert page.locator("#setting-crop input").input_value().startswith("auto")  # the default, in sight
    set_small_settings(page)
    page.locator("#generate").click()

    summary = wait_for_summary(page, "result-summary", "Video: 64x64.")
    links = download_links(page, "result-files")
    record = page.request.get(links["wide-talking.mp4.json"]).json()
    assert_box_around(record["crop"], wide["face_centre"])
    x, y, w, h = record["crop"]
    assert f"Cropped {w}x{h} at ({x}, {y}) of the 1280x720 photo to 64x64." in summary.inner_text()
    info = video_info(downloaded(page, links["wide-talking.mp4"], tmp_path / "framed.mp4"))
    assert (info.width, info.height) == (64, 64)


@pytest.mark.slow
def test_paste_back_in_the_browser_gives_a_video_of_the_photos_size_cut_at_the_typed_box(page, media, wide,
                                                                                        tmp_path):
    import numpy as np
    import PIL.Image

    from vexpress_cli.media.video_reader import iter_video_frames

    box = [PLACED_AT[0], PLACED_AT[1], 512, 512]
    upload(page, "portrait", wide["photo"])
    upload(page, "speech", media["speech"])
    crop = page.locator("#setting-crop input")
    crop.fill(",".join(map(str, box)))
    crop.press("Enter")
    page.locator("#setting-paste-back input[type=checkbox]").check()
    set_small_settings(page)
    page.locator("#generate").click()

    wait_for_summary(page, "result-summary", "Video: 1280x720, the whole photo with the animated part pasted back")
    links = download_links(page, "result-files")
    record = page.request.get(links["wide-talking.mp4.json"]).json()
    assert record["crop"] == box and record["settings"]["paste_back"] is True
    video = downloaded(page, links["wide-talking.mp4"], tmp_path / "pasted.mp4")
    info = video_info(video)
    assert (info.width, info.height) == WIDE_SIZE
    photo = np.asarray(PIL.Image.open(wide["photo"]), dtype=int)
    outside = np.ones(photo.shape[:2], bool)
    outside[box[1]:box[1] + box[3], box[0]:box[0] + box[2]] = False
    first_frame = next(iter_video_frames(video)).astype(int)
    assert np.abs(first_frame - photo)[outside].mean() < 3  # outside the box: the photo's own pixels


def test_a_face_index_past_the_faces_found_shows_the_error_paragraph(page, media, wide):
    upload(page, "portrait", wide["photo"])
    upload(page, "speech", media["speech"])
    set_number(page, "setting-face-index", 1)
    page.locator("#generate").click()
    assert error_paragraph(page).startswith("“Which face (face_index)” is 1, but wide.png has 1 face.")


@pytest.mark.slow
def test_extract_with_crop_auto_in_the_browser_records_the_box_of_vexpress_extract(page, wide, tmp_path):
    import numpy as np

    from vexpress_cli import extract
    from vexpress_cli.kps.io import load_kps

    page.get_by_role("tab", name="Extract / retarget").click()
    upload(page, "extract-video", wide["video"])
    choose(page, "extract-crop", "auto")
    page.locator("#extract").click()
    summary = wait_for_summary(page, "extract-summary", "of the 1280x720 video")
    links = download_links(page, "extract-files")
    in_page = load_kps(downloaded(page, links["wide-driving-kps.safetensors"], tmp_path / "page.safetensors"))
    by_the_library = load_kps(extract(wide["video"], tmp_path / "library.safetensors", crop="auto",
                                      model_root=TINY_MODEL_DIR).kps_out)
    assert in_page.crop == by_the_library.crop and in_page.source_size == WIDE_SIZE
    assert ",".join(map(str, in_page.crop)) in summary.inner_text()
    np.testing.assert_array_equal(in_page.points, by_the_library.points)
    assert_box_around(in_page.crop, (PLACED_AT[0] + 256, PLACED_AT[1] + 256))  # around the placed portrait

    # Step 2 frames the wide photo as generate does: crop auto by default, and the face index reaches the job.
    upload(page, "retarget-portrait", wide["photo"])
    for name, value in {"width": 64, "height": 64}.items():
        set_number(page, f"tools-{name}", value)
    page.locator("#retarget").click()
    retarget_summary = wait_for_summary(page, "retarget-summary", "of the 1280x720 photo to 64x64")
    box = re.search(r"Cropped (\d+)x(\d+) at \((\d+), (\d+)\)", retarget_summary.inner_text()).groups()
    width, height, x, y = map(int, box)
    assert_box_around([x, y, width, height], wide["face_centre"])
    set_number(page, "retarget-face-index", 1)
    page.locator("#retarget").click()
    assert error_paragraph(page, "retarget-summary").startswith("“Which face (face_index)” is 1, but wide.png has 1 "
                                                                "face.")


def job_file(server, name: str) -> Path:
    """The newest file of that name in the app's job folders (a track extracted there): the record names it by its
    name only."""
    assert "/" not in name, name
    return max(server.root.glob(f"sessions/*/job-*/{name}"), key=lambda path: path.stat().st_mtime)


@pytest.mark.slow
def test_a_wide_driving_video_in_the_generate_tab_is_cropped_as_asked(page, server, media, wide):
    from vexpress_cli.kps.io import load_kps

    upload(page, "portrait", AOC / "ref.jpg")
    upload(page, "speech", media["speech"])
    upload(page, "driving", wide["video"])
    choose(page, "driving-crop", "auto")
    page.locator("#reference-kps textarea, #reference-kps input").first.fill(REFERENCE_KPS)
    set_small_settings(page)
    page.locator("#generate").click()
    wait_for_summary(page, "result-summary", "Video: 64x64.")
    record = page.request.get(download_links(page, "result-files")["ref-talking.mp4.json"]).json()
    track = load_kps(job_file(server, record["job"]["kps"]))
    assert track.source_size == WIDE_SIZE
    assert_box_around(track.crop, (PLACED_AT[0] + 256, PLACED_AT[1] + 256))


@pytest.mark.slow
def test_a_preset_added_while_the_app_runs_is_listed_on_reload_and_a_broken_one_says_why_in_the_summary(page,
                                                                                                    config_dir):
    folder = config_dir / "presets"
    folder.mkdir(exist_ok=True)
    added = [folder / "mine.toml", folder / "broken.toml"]
    added[0].write_text('description = "My own steps."\n[generate]\nnum_inference_steps = 7\n')
    added[1].write_text("[generate\n")
    try:
        page.reload()
        page.locator("#preset input").click()
        page.get_by_role("option", name="mine: My own steps.").wait_for()
        page.keyboard.press("Escape")
        set_number(page, "setting-max-size", 1234)  # typed by the user: a preset that does not load keeps it
        page.locator("#preset input").click()
        page.get_by_role("option", name=re.compile("^broken: does not load")).click()
        assert "broken.toml is not valid TOML" in error_paragraph(page)  # where every error shows, not a pop-up
        assert not page.get_by_test_id("toast-text").count()
        assert page.locator("#setting-max-size input[type=number]").input_value() == "1234"
        page.locator("#preset input").click()
        page.get_by_role("option", name="mine: My own steps.").click()
        page.wait_for_function("() => document.querySelector('#result-summary').innerText.trim() === ''")
    finally:
        for path in added:
            path.unlink()


def test_status_tab_shows_the_doctor_report_as_a_table(page):
    page.get_by_role("tab", name="Status").click()
    table = page.locator("#status-table")
    table.get_by_text("model folder", exact=True).wait_for()
    names = table.locator("[role=gridcell][data-col='0']").all_inner_texts()
    assert {"python", "torch", "device", "ffmpeg", "model folder", "strategies", "presets"} <= {
        name.strip() for name in names}
    page.locator("#status-summary").get_by_text(re.compile(r"\d+ ok, \d+ warnings?, \d+ failures?")).wait_for()
    screenshot(page, "status")


# --- the API --------------------------------------------------------------------------------


def test_api_generate_takes_the_library_names_and_returns_a_playable_mp4_first(server, media, tmp_path, api_client):
    from gradio_client import handle_file

    from vexpress_cli.ui.api import JOB_PARAMETERS

    client = api_client()
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    assert names == [*JOB_PARAMETERS, *SETTINGS, "driving_crop"]  # a new parameter goes last: positions stay

    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as writer:  # 0.8 s of silence: the result warns, naming the upload
        writer.setnchannels(1), writer.setsampwidth(2), writer.setframerate(16000)
        writer.writeframes(bytes(2 * 12800))
    video, record, result = client.predict(
        reference_image=handle_file(AOC / "ref.jpg"), audio=handle_file(silent), preset="expressive",
        reference_kps=REFERENCE_KPS, fps=25, seed=7, api_name="/generate", **SMALL)
    assert any(warning.startswith("The audio silent.wav is silent") for warning in result["warnings"]), result
    info = video_info(video)
    assert info.frame_count == round(result["duration"] * 25) == 20
    assert (info.codec, info.audio_codec, info.width, info.height, float(info.fps)) == ("h264", "aac", 64, 64, 25.0)
    # Left out, the weights come from the preset; given, a setting wins over it.
    assert (result["settings"]["audio_attention_weight"], result["settings"]["seed"]) == (3.0, 7)
    assert json.loads(Path(record).read_text())["frames"] == 20


@pytest.mark.slow
def test_api_generate_takes_the_framing_settings(server, media, wide, api_client):
    from gradio_client import handle_file

    client = api_client()
    video, record, result = client.predict(
        reference_image=handle_file(wide["photo"]), audio=handle_file(media["speech"]), crop="auto", face_index=0,
        paste_back=True, max_size=640, api_name="/generate", **SMALL)
    assert_box_around(result["crop"], wide["face_centre"])
    info = video_info(video)
    assert (info.width, info.height) == tuple(result["size"]) == (640, 360)
    assert json.loads(Path(record).read_text())["crop"] == result["crop"]


@pytest.mark.slow
def test_api_generate_extracts_a_driving_video_with_its_driving_crop(server, media, wide, api_client):
    from gradio_client import handle_file

    from vexpress_cli.kps.io import load_kps

    client = api_client()
    _, record, _ = client.predict(
        reference_image=handle_file(AOC / "ref.jpg"), audio=handle_file(media["speech"]),
        kps=handle_file(wide["video"]), driving_crop="auto", reference_kps=REFERENCE_KPS, api_name="/generate",
        **SMALL)
    track = load_kps(job_file(server, json.loads(Path(record).read_text())["job"]["kps"]))
    assert track.source_size == WIDE_SIZE
    assert_box_around(track.crop, (PLACED_AT[0] + 256, PLACED_AT[1] + 256))


@pytest.mark.slow
def test_generations_queue_one_at_a_time_and_the_model_loads_once(server, media, progress_reports, monkeypatch,
                                                                   api_client):
    from gradio_client import handle_file
    from gradio_client.utils import Status

    from vexpress_cli.engine.pipeline import VExpressPipeline

    loads = []
    load = VExpressPipeline.from_pretrained.__func__
    monkeypatch.setattr(VExpressPipeline, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: loads.append(args) or load(cls, *args, **kwargs)))
    job = {"reference_image": handle_file(AOC / "ref.jpg"), "audio": handle_file(media["speech"]),
           "reference_kps": REFERENCE_KPS, "width": 64, "height": 64, "num_inference_steps": 15,
           "api_name": "/generate"}
    one_user, another_user = api_client(), api_client()
    first = one_user.submit(**job)
    first_denoise_report(progress_reports)
    second = another_user.submit(**job)  # while the first one runs
    deadline = time.monotonic() + 30
    while (status := second.status()).code != Status.IN_QUEUE:
        assert time.monotonic() < deadline and not first.done(), status
        time.sleep(0.05)
    assert status.rank == 0  # its place in the queue: next
    first.result(timeout=120), second.result(timeout=120)
    order = [reporter for reporter, *_ in progress_reports]
    first_job, second_job = dict.fromkeys(order)  # the jobs, by their first report
    last_of_first = max(index for index, reporter in enumerate(order) if reporter == first_job)
    assert last_of_first < order.index(second_job)  # the second began once the first was done
    assert len(server.runtime.models.loaded_devices) == 1 and len(loads) <= 1  # loaded once, kept


@pytest.mark.slow
def test_the_record_and_the_api_result_name_files_by_their_names_not_the_servers_temp_paths(server, media,
                                                                                          api_client):
    from gradio_client import handle_file

    _, record, result = api_client().predict(
        reference_image=handle_file(AOC / "ref.jpg"), audio=handle_file(media["speech"]),
        reference_kps=REFERENCE_KPS, api_name="/generate", **SMALL)
    text = Path(record).read_text()
    assert str(server.root) not in text and str(server.root) not in json.dumps(result)
    data = json.loads(text)
    assert (data["job"]["reference_image"], data["job"]["audio"]) == ("ref.jpg", "speech.wav")
    assert (data["output"], data["inputs"]["reference_image"]["path"]) == ("ref-talking.mp4", "ref.jpg")
    assert result["record"] == "ref-talking.mp4.json"


def test_api_refuses_a_preset_path_with_the_error_paragraph(server, media, api_client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = api_client()
    with pytest.raises(AppError, match=r"There is no preset named '/etc/passwd'\. .*not paths\)\.$"):
        client.predict(reference_image=handle_file(AOC / "ref.jpg"), audio=handle_file(media["speech"]),
                       preset="/etc/passwd", api_name="/generate")


@pytest.mark.slow
def test_cancel_stops_the_running_job_and_frees_the_device(server, media, progress_reports, api_client):
    from gradio_client import handle_file

    client = api_client()
    files = {"reference_image": handle_file(AOC / "ref.jpg"), "audio": handle_file(media["speech"]),
             "reference_kps": REFERENCE_KPS, "width": 64, "height": 64}
    slow = client.submit(**files, num_inference_steps=1000, api_name="/generate")  # minutes on a CPU
    slow_job, total = first_denoise_report(progress_reports)
    slow.cancel()
    started = time.monotonic()
    quick = client.predict(**files, num_inference_steps=1, api_name="/generate")
    # The device was freed at once: the quick job did not wait for the 1000 steps.
    assert time.monotonic() - started < 30
    assert video_info(quick[0]).frame_count == 24
    assert denoised(progress_reports, slow_job) < total / 10
    # The cancelled job's folder is gone (no half-written video); the quick one's holds its two files.
    session = server.runtime.sessions.folder_of(client.session_hash)
    jobs = list(session.iterdir())
    assert len(jobs) == 1 and sorted(path.name for path in jobs[0].iterdir()) == ["ref-talking.mp4",
                                                                                  "ref-talking.mp4.json"]


# --- safe by default ------------------------------------------------------------------------


def test_files_outside_the_apps_folders_are_refused(server):
    base = server.url.rstrip("/")
    uploaded = httpx.post(f"{base}/gradio_api/upload", files={"files": ("mine.txt", b"hello")})
    assert uploaded.status_code == 200
    mine = uploaded.json()[0]
    assert Path(mine).is_relative_to(server.root)
    assert httpx.get(f"{base}/gradio_api/file={mine}").text == "hello"  # the route works for an upload
    for path in ("/etc/passwd", REPO_ROOT / "pyproject.toml", TINY_MODEL_DIR / "v-express" / "config.json",
                 f"{server.root}/../../etc/passwd"):
        response = httpx.get(f"{base}/gradio_api/file={path}")
        assert response.status_code == 403, (path, response.status_code)


def test_the_api_takes_no_server_path_for_a_file(server, progress_reports):
    """A file parameter naming a server file (not an upload) is refused before the job starts."""
    server_file = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    lines = call_generate(server, server_file, server_file)
    assert lines[0] == "event: error"
    assert json.loads(lines[1].removeprefix("data: "))["error"] == (  # Gradio's refusal, shown, not null
        "Cannot move /etc/passwd to the gradio cache dir because it was not uploaded by a user.")
    assert progress_reports == []  # the job never ran


def call_generate(server, reference_image, audio) -> list[str]:
    """The event lines of a raw /generate call with these two file values (every other parameter left out)."""
    from vexpress_cli.ui.api import JOB_PARAMETERS, LATER_PARAMETERS

    base = server.url.rstrip("/")
    data = [reference_image, audio] + [None] * (len(JOB_PARAMETERS) - 2 + len(SETTINGS) + len(LATER_PARAMETERS))
    event_id = httpx.post(f"{base}/gradio_api/call/generate", json={"data": data}).json()["event_id"]
    with httpx.stream("GET", f"{base}/gradio_api/call/generate/{event_id}", timeout=60) as events:
        return [line for line in events.iter_lines() if line]


def another_sessions_photo(server) -> Path:
    """A photo inside the app's folder but not an upload: as another client's job output would be."""
    photo = server.root / "sessions" / "someone-else" / "job-1" / "ref.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(AOC / "ref.jpg", photo)
    return photo


@pytest.mark.parametrize("named", ["/etc/passwd", "pyproject.toml", "../ref.jpg", "another session's photo",
                                   "another session's photo, as a dict without Gradio's marker",
                                   "another session's photo, as a Gradio file object"])
def test_the_api_reads_only_uploads_and_refuses_any_other_path_without_touching_it(server, progress_reports,
                                                                                    named):
    """Gradio checks the paths of the file objects it recognises only, against the whole app folder; the
    endpoint refuses every other path itself, in the same words whether or not such a file exists."""
    if named.startswith("another session's photo"):
        photo = str(another_sessions_photo(server))
        marker = {"meta": {"_type": "gradio.FileData"}} if "Gradio file" in named else {}
        named = {"path": photo, **marker} if "as a" in named else photo
    lines = call_generate(server, named, named)
    assert lines[0] == "event: error"
    error = json.loads(lines[1].removeprefix("data: "))["error"]
    if "meta" in named:  # Gradio refuses a file object of the app's folder itself, in its words
        assert error.endswith("to the gradio cache dir because it was not uploaded by a user.")
    else:
        assert error.startswith(
            "reference_image is not a file uploaded to this app. The app reads only the files sent to it")
    assert progress_reports == []  # the job never ran


def test_the_page_names_the_upload_limit_and_the_flag_that_raises_it(page):
    """Gradio's own refusal of a bigger file names neither, so the page says both up front."""
    intro = page.locator("#intro")
    intro.get_by_text(f"Uploads up to {MAX_UPLOAD_MB} MB per file").wait_for()
    assert "vexpress ui --max-upload-mb" in intro.inner_text()


def test_uploads_over_the_limit_are_refused(server):
    too_big = b"x" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)
    response = httpx.post(f"{server.url.rstrip('/')}/gradio_api/upload", files={"files": ("big.bin", too_big)})
    assert response.status_code == 413


@pytest.mark.slow
def test_vexpress_ui_listens_on_127_0_0_1_only_by_default_and_cleans_up_when_stopped(config_dir):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "vexpress_cli", "ui", "--model-dir",
                                str(TINY_MODEL_DIR), "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.strip() == f"vexpress ui: http://127.0.0.1:{port}/"
        assert listening_addresses(port) == {"127.0.0.1"}
        process.send_signal(signal.SIGTERM)  # as a service manager stops it; Ctrl-C takes the same way out
        _, errors = output_once_stopped(process)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    root = Path(re.search(r"Temporary files in (\S+) \(removed at exit\)", errors)[1])
    assert root.name.startswith("vexpress-ui-") and not root.exists()
    assert errors.rstrip().endswith("Stopped.") and "Traceback" not in errors


@pytest.mark.slow
def test_the_docs_create_app_script_ends_on_ctrl_c_without_a_traceback(config_dir, tmp_path):
    """docs/ui.md's script: launch, wait() until Ctrl-C, then the with-block closes the app."""
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text("from vexpress_cli.ui import create_app\n\n"
                      f"with create_app(model_dir={str(TINY_MODEL_DIR)!r}, max_upload_mb=100) as app:\n"
                      f"    print(app.launch(port={port}), flush=True)\n"
                      "    app.wait()\n"
                      "print('closed', flush=True)\n")
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == f"http://127.0.0.1:{port}/"
        time.sleep(1)  # the script's next line is wait(); a signal still inside print() is a plain script's own
        process.send_signal(signal.SIGINT)
        rest, errors = output_once_stopped(process)
    finally:
        process.kill()
    assert (process.returncode, rest) == (0, "closed\n"), errors
    assert "Traceback" not in errors


def output_once_stopped(process: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """The stdout and stderr of a process asked to stop; if it has not ended after ``timeout`` seconds, the test
    fails with where each of its threads was (SIGABRT makes ``-X faulthandler`` print them)."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, errors = process.communicate(timeout=30)
        pytest.fail(f"still running {timeout:g} s after it was asked to stop; its threads:\n{errors[-6000:]}")


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses with a socket listening on ``port`` (Linux /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(socket.inet_ntop(socket.AF_INET if len(address) == 8 else socket.AF_INET6,
                                           _proc_address_bytes(address)))
    return found


def _proc_address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address)
    return b"".join(raw[index:index + 4][::-1] for index in range(0, len(raw), 4))  # little-endian words


def test_a_host_other_than_loopback_warns_that_anyone_can_use_the_gpu(config_dir, monkeypatch):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app
    from vexpress_cli.ui.app import WebApp

    launched = {}

    def launch(self, host, port, **options):
        launched.update(host=host, port=port, **options)
        return f"http://{host}:{port}/"

    monkeypatch.setattr(WebApp, "launch", launch)  # nothing listens: the test checks what the command asks for
    monkeypatch.setattr(WebApp, "wait", lambda self: None)
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", "9999", "--model-dir", str(TINY_MODEL_DIR)])
    assert result.exit_code == 0, result.output
    assert ("Warning: listening on 0.0.0.0: anyone who can reach this machine on port 9999 can upload files and use "
            "its GPU. Protect it with --auth USER:PASS.") in " ".join(result.stderr.split())
    assert result.stdout == "vexpress ui: http://0.0.0.0:9999/\n"
    assert launched == {"host": "0.0.0.0", "port": 9999, "auth": None, "share": False, "open_browser": False}

    launched.clear()
    result = CliRunner().invoke(app, ["ui", "--host", "localhost", "--auth", "me:a secret", "--open", "--model-dir",
                                      str(TINY_MODEL_DIR)])
    assert result.exit_code == 0 and "Warning" not in result.stderr
    assert launched == {"host": "localhost", "port": 7860, "auth": ("me", "a secret"), "share": False,
                        "open_browser": True}


def test_a_taken_port_is_one_paragraph(config_dir):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port), "--model-dir", str(TINY_MODEL_DIR)])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        f"Error: Cannot listen on 127.0.0.1:{port}. Another program (or another vexpress ui) uses that port, or "
        "127.0.0.1 is not an address of this machine. Pick another --port or --host, or stop the other program.")


def test_auth_without_a_password_is_one_paragraph():
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["ui", "--auth", "me"])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == ("Error: --auth must be USER:PASS. Both a user name and a password are "
                                               "needed. Write it like --auth me:a-long-password.")


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert message.startswith("Error: The web app needs Gradio, which is not installed. Gradio is an optional extra")
    assert message.endswith(f'Install it with: pip install -e "{REPO_ROOT}[ui]"')  # this clone's own folder
    assert "Traceback" not in result.output


# --- the parts ------------------------------------------------------------------------------


def test_every_generation_setting_has_a_control_with_the_schemas_limits_and_help(config_dir):
    import gradio as gr

    from vexpress_cli.ui.form import SettingsForm, installed_strategies

    with gr.Blocks():
        form = SettingsForm(installed_strategies())
        form.render_main()
        form.render_framing()
        form.render_advanced()
    assert sorted(form.controls) == sorted(SETTINGS) and len(form.controls) == len(SETTINGS)
    for name, setting in SETTINGS.items():
        control = form.controls[name]
        assert control.info.startswith(setting.help), name
        assert control.value == (str(setting.default) if name == "seed" else setting.default), name
        if setting.kind in (int, float) and name != "seed":  # no limits in the browser, which would clamp
            assert isinstance(control, gr.Number) and (control.minimum, control.maximum) == (None, None), name
            assert f"From {setting.minimum:g} to {setting.maximum:g}." in control.info, name
        if setting.choices:
            assert [value for _, value in control.choices] == list(setting.choices), name
    assert {value for _, value in form.controls["retarget_strategy"].choices} >= {
        "auto", "fix_face", "no_retarget", "offset_retarget", "naive_retarget"}
    assert "Advised: 0.9-1." in form.controls["reference_attention_weight"].info
    assert isinstance(form.controls["seed"], gr.Textbox) and isinstance(form.controls["width"], gr.Number)
    assert form.controls["width"].step == 8


def test_a_preset_fills_every_control_and_a_path_is_no_preset(config_dir):
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.form import SettingsForm, checked_preset

    values = dict(zip(SETTINGS, SettingsForm({}).fill("original-defaults")))
    assert (values["context_frames"], values["audio_attention_weight"], values["kps_fit"]) == (12, 3.0, "stretch")
    assert values["device"] == "auto"  # not in the preset: the default
    with pytest.raises(InputError, match="There is no preset named '/etc/passwd'"):
        checked_preset("/etc/passwd")


def test_a_sessions_folder_goes_when_its_page_closes_even_during_a_job(tmp_path):
    import threading

    from vexpress_cli.ui.runtime import Sessions

    sessions = Sessions(tmp_path)
    token = threading.Event()
    with sessions.job("abc", token) as folder:
        (folder / "video.mp4").write_bytes(b"x")
        sessions.close("abc")
        assert token.is_set() and folder.exists()  # the job is told to stop; its folder stays until it has
    assert not folder.exists()
    with sessions.job("idle", threading.Event()) as idle:
        pass
    sessions.max_idle_seconds = 0
    with sessions.job("next", threading.Event()):
        assert not idle.exists()  # an API client never closes a page: its folder goes once idle


def test_progress_shows_the_stage_and_an_eta():
    from vexpress_cli.ui.runtime import describe_stage

    assert describe_stage("denoise", 3, 10, 6.0) == "Denoising (steps x windows): 3 of 10, about 14 s left"
    assert describe_stage("model", 0, 1, 0.0) == "Loading model: 0 of 1"
    assert describe_stage("faces", 5, None, 1.0) == "Finding faces"


def test_a_bug_in_a_job_is_one_paragraph_too_and_temp_paths_are_file_names(tmp_path):
    from vexpress_cli.errors import InputError, parameter
    from vexpress_cli.ui.form import spell_in_page
    from vexpress_cli.ui.runtime import JobCancelled, Runtime

    runtime = Runtime(tmp_path, None)
    bug = runtime.page_error(KeyError("frames"))
    assert bug.message == ("Something went wrong inside vexpress: KeyError: 'frames'. This is a bug, not your input; "
                        "the server's console has the details. Please report it.")
    upload = tmp_path / "gradio" / "0123abcd" / "my photo.jpg"
    bad = runtime.page_error(InputError(f"Cannot read {upload}.", fix=f"Check {parameter('reference_image')}."),
                             spell_in_page)
    assert bad.message == "Cannot read my photo.jpg. Check “Portrait photo”."
    assert runtime.page_error(JobCancelled()).title == "Cancelled"


def test_a_missing_model_dir_is_refused_before_the_server_starts(tmp_path):
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app

    result = CliRunner().invoke(app, ["ui", "--model-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "vexpress ui:" not in result.stdout
    assert f"No model folder: {tmp_path / 'nowhere'} (--model-dir) does not exist." in " ".join(result.stderr.split())


def test_the_web_app_takes_its_weights_as_model_like_every_command_that_generates(tmp_path):
    """README and models.md give --model as the way to choose weights; `vexpress ui --model` was "No such option"."""
    from typer.testing import CliRunner

    from vexpress_cli.cli.app import app
    from vexpress_cli.ui import create_app

    with create_app(model=str(TINY_MODEL_DIR)) as web_app:
        assert web_app.model_dir == TINY_MODEL_DIR.resolve()
    result = CliRunner().invoke(app, ["ui", "--model", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "vexpress ui:" not in result.stdout
    assert f"{tmp_path / 'nowhere'} (--model)" in " ".join(result.stderr.split())


def test_every_settings_label_names_the_setting_the_api_takes():
    """"Denoising steps", "Crf" and "Window batch" gave no way to find num_inference_steps, crf, window_batch."""
    from vexpress_cli.ui.form import label_of

    for name in SETTINGS:
        label = label_of(name)
        assert label.endswith(f" ({name})") or label.lower() == name.replace("_", " "), label
    assert label_of("num_inference_steps") == "Denoising steps (num_inference_steps)"
    assert label_of("crf") == "Quality, lower is better (crf)" and label_of("seed") == "Seed"


def test_a_bad_driving_crop_is_named_as_the_driving_crop_not_the_portraits_crop(tmp_path, media):
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.form import spell_in_page
    from vexpress_cli.ui.generate_tab import GenerateInputs, run_generation

    inputs = GenerateInputs(str(AOC / "ref.jpg"), str(media["clip"]), str(media["driving"]), driving_crop="1,2")
    with pytest.raises(InputError) as raised:
        run_generation(inputs, job=None)  # refused before the job's folder or models are used
    in_page = raised.value.render(spell_in_page)
    assert in_page.startswith("“Crop of a driving video” is '1,2'") and "Use “Crop of a driving video” auto" in in_page
    assert "Crop around the face" not in in_page
    assert str(raised.value).startswith("driving_crop is '1,2'") and 'Use driving_crop="auto"' in str(raised.value)



def test_a_missing_upload_says_an_upload_over_the_limit_is_refused_and_cleared_with_the_cross(media):
    """After Gradio refused an upload over the limit, Generate said only that the photo was missing."""
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.form import spell_in_page
    from vexpress_cli.ui.generate_tab import GenerateInputs, run_generation

    with pytest.raises(InputError) as raised:
        run_generation(GenerateInputs(None, str(media["clip"])), job=None)
    in_page = raised.value.render(spell_in_page)
    assert in_page.startswith("“Portrait photo” is missing.")
    assert in_page.endswith("(A file over the page's upload limit is refused: its box shows Error. Clear it with × "
                            "and upload a smaller one.)")

def test_the_extract_retarget_tab_shows_the_config_defaults_as_the_generate_tab_does(config_dir, tmp_path):
    import gradio as gr

    from vexpress_cli.ui.runtime import Runtime
    from vexpress_cli.ui.tools_tab import build_tools_tab

    config = config_dir / "config.toml"
    config.write_text('[generate]\nwidth = 64\nheight = 72\nkps_fit = "stretch"\n')
    try:
        with gr.Blocks() as blocks:
            build_tools_tab(Runtime(tmp_path, None), {"offset_retarget": "keeps the motion"})
    finally:
        config.unlink()
    values = {block.elem_id: block.value for block in blocks.blocks.values() if block.elem_id}
    assert (values["tools-width"], values["tools-height"], values["tools-kps-fit"]) == (64, 72, "stretch")


def test_a_cleared_or_out_of_range_size_of_the_retarget_preview_is_refused(tmp_path):
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.form import spell_in_page
    from vexpress_cli.ui.tools_tab import numbers

    with pytest.raises(InputError) as raised:
        numbers({"width": None, "height": 64.0})
    assert raised.value.render(spell_in_page).startswith("“Width” must be an integer, not ''.")
    with pytest.raises(InputError, match="height is 99999; it must be from 64 to 2048"):
        numbers({"width": 64.0, "height": 99999.0})
    assert numbers({"width": 64.0, "height": 72.0, "face_index": 0.0}) == [64, 72, 0]


def a_job(folder: Path):
    """A job of the web app on the tiny model, as its tabs run one."""
    import threading

    from vexpress_cli.ui.runtime import Job, ModelStore, PageProgress

    token = threading.Event()
    return Job(folder, ModelStore(TINY_MODEL_DIR), token, PageProgress(None, token))


def test_extract_names_a_text_file_as_no_video_not_as_a_video_without_sound(tmp_path):
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.tools_tab import run_extract

    text = tmp_path / "notimage.jpg"  # as in the audit: text under an image's name
    text.write_text("These are my notes, not a video.\n")
    with pytest.raises(InputError, match="is not a video or image that ffmpeg can decode") as raised:
        run_extract(str(text), "auto", "none", True, a_job(tmp_path))
    assert "audio" not in str(raised.value)


@pytest.mark.slow
def test_extract_of_a_silent_video_with_its_audio_asked_writes_the_kps_file_and_says_there_is_no_audio(tmp_path,
                                                                                                     media):
    from vexpress_cli.ui.tools_tab import run_extract

    silent = tmp_path / "silent.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(media["driving"]), "-an", "-c", "copy", str(silent)],
                   check=True)
    result, summary = run_extract(str(silent), "auto", "none", True, a_job(tmp_path))
    assert result.kps_out.is_file() and result.audio_out is None
    assert "- Note: silent.mp4 has no audio track, so there was no audio to save; its kps file was written." in summary


def test_the_retarget_preview_names_its_kps_control_as_this_tab_labels_it(tmp_path):
    from vexpress_cli.errors import InputError
    from vexpress_cli.ui.tools_tab import run_retarget, spell_in_tab

    with pytest.raises(InputError) as raised:
        run_retarget(str(AOC / "ref.jpg"), None, "offset_retarget", "pingpong", "", (64, 64), "auto", ("auto", 0),
                     a_job(tmp_path))
    assert raised.value.render(spell_in_tab).startswith("No driving kps file for “Driving kps file”.")


@pytest.mark.slow
def test_page_messages_point_to_the_pages_tab_not_a_command(tmp_path, media):
    """A bad kps file said "re-create it with `vexpress extract`"; the page has an Extract tab for that."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from vexpress_cli.ui.form import spell_in_page
    from vexpress_cli.ui.generate_tab import GenerateInputs, run_generation
    from vexpress_cli.ui.runtime import Runtime

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a kps file at all")
    inputs = GenerateInputs(str(AOC / "ref.jpg"), str(media["clip"]), str(broken), reference_kps=REFERENCE_KPS,
                            settings=dict(SMALL))
    runtime = Runtime(tmp_path / "app", TINY_MODEL_DIR)
    job = runtime.run_in_page(None, lambda job: run_generation(inputs, job), spell=spell_in_page)
    with ThreadPoolExecutor(1) as thread:  # its own event loop: Playwright's runs in this thread
        _, error = thread.submit(asyncio.run, job).result()
    assert error.startswith("**Error**: ") and "the Extract / retarget tab" in error, error
    assert "vexpress extract" not in error, error


def test_the_upload_limit_is_also_said_in_gradios_unit_with_what_a_refused_file_shows():
    """Gradio's refusal of a file over 0.01 MB says "10.2 Kb" and its box then shows only Error."""
    from vexpress_cli.ui.app import upload_limit_words

    assert upload_limit_words(0.01).startswith("Uploads up to 0.01 MB (10.2 KB) per file")
    assert upload_limit_words(200).startswith("Uploads up to 200 MB per file")
    assert upload_limit_words(1).endswith("a larger file is refused and its box shows Error: clear it with × and "
                                          "upload a smaller one.")


def test_the_form_is_filled_by_choosing_a_preset_not_by_the_page_loads_new_list_of_presets(tmp_path):
    """The page load that lists the presets again changed the dropdown, and its .change event refilled the form
    with the preset's values: what was typed right after the page opened went back to 512 (a race a browser test
    lost). Only the user's choice (select) fills it."""
    import gradio as gr

    from vexpress_cli.ui.generate_tab import build_generate_tab
    from vexpress_cli.ui.runtime import Runtime

    with gr.Blocks() as blocks:
        build_generate_tab(Runtime(tmp_path, None), {"fix_face": "keeps the face still"}, blocks)
    names = {block._id: block.elem_id for block in blocks.blocks.values()}
    events = [([(names.get(block), event) for block, event in fn.targets], [out.elem_id for out in fn.outputs])
              for fn in blocks.fns.values()]
    filling = [triggers for triggers, outputs in events if "setting-width" in outputs]
    assert filling == [[("preset", "select")]]
    assert [outputs for triggers, outputs in events if triggers == [(None, "load")]] == [["preset"]]
