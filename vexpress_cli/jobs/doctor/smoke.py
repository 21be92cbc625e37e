"""The smoke test: a one-second generation with the built-in tiny random model, checked as a finished video."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from vexpress_cli.errors import VExpressError
from vexpress_cli.jobs.doctor.report import FAILURE, OK, Check, DoctorContext

# The smoke generation: small enough for a CPU, long enough for two context windows.
SMOKE_SECONDS = 1.0
SMOKE_SIZE = 64
SMOKE_SETTINGS = {"width": SMOKE_SIZE, "height": SMOKE_SIZE, "num_inference_steps": 2, "fps": 30.0}


def smoke_checks(context: DoctorContext) -> list[Check]:
    if context.device is None:
        return [Check("smoke test", FAILURE, "not run: the device check failed", "Fix the device row first.")]
    return [_smoke_check(context.device, context.options.tiny_model_dir)]


def _smoke_check(device, tiny_model_dir: Path | None) -> Check:
    """A one-second generation with the tiny random model, checked as a finished video file."""
    import vexpress_cli
    from vexpress_cli.jobs.planning import frame_count
    from vexpress_cli.media.frames import as_fps_fraction
    from vexpress_cli.media.video_reader import video_info
    from vexpress_cli.tiny.inputs import write_demo_inputs

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vexpress-doctor-") as folder:
        work = Path(folder)
        model = _tiny_model(tiny_model_dir, work)
        inputs = write_demo_inputs(work / "inputs", SMOKE_SECONDS)
        result = vexpress_cli.generate(inputs.reference_image, inputs.audio, work / "smoke.mp4", model_dir=model,
                                       device=str(device), reference_kps=inputs.reference_kps_text(SMOKE_SIZE),
                                       retarget_strategy="fix_face", **SMOKE_SETTINGS)
        info = video_info(result.output)
    seconds = time.monotonic() - started
    expected_frames = frame_count(result.duration, as_fps_fraction(result.fps))
    problems = []
    if info.codec != "h264":
        problems.append(f"video codec {info.codec}, not h264")
    if info.audio_codec != "aac":
        problems.append(f"audio codec {info.audio_codec}, not aac")
    if info.frame_count != expected_frames:
        problems.append(f"{info.frame_count} frames, not round({result.duration:g} s x {result.fps:g} fps) "
                        f"= {expected_frames}")
    if (info.width, info.height) != (SMOKE_SIZE, SMOKE_SIZE):
        problems.append(f"{info.width}x{info.height} pixels, not {SMOKE_SIZE}x{SMOKE_SIZE}")
    data = {"seconds": round(seconds, 2), "device": str(device), "dtype": result.settings["dtype"],
            "frames": info.frame_count, "video_codec": info.codec, "audio_codec": info.audio_codec}
    if problems:
        return Check("smoke test", FAILURE, "the generated video is wrong: " + "; ".join(problems),
                     "Reinstall imageio-ffmpeg and torch; if it persists, report it with this output.", data=data)
    return Check("smoke test", OK, f"{info.frame_count} frames of {SMOKE_SIZE}x{SMOKE_SIZE} on {device} "
                 f"({data['dtype']}), {info.codec} + {info.audio_codec}, {info.duration:.2f} s of video, "
                 f"in {seconds:.1f} s", data=data)


def _tiny_model(preferred: Path | None, scratch: Path) -> Path:
    """The tiny model in ``preferred`` (default: the user cache), or in ``scratch`` if that is not writable."""
    from vexpress_cli.tiny.model import ensure_tiny_model

    try:
        return ensure_tiny_model(preferred)
    except (OSError, VExpressError):
        return ensure_tiny_model(scratch / "tiny-model")
