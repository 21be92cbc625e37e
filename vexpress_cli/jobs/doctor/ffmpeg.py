"""Checks of the bundled ffmpeg: that it runs, and that it has the encoders the video writer asks for."""

from __future__ import annotations

from vexpress_cli.errors import VExpressError
from vexpress_cli.jobs.doctor.report import FAILURE, OK, Check, DoctorContext, describe, join

REQUIRED_ENCODERS = ("libx264", "aac")  # what the video writer asks ffmpeg for


def ffmpeg_checks(context: DoctorContext) -> list[Check]:
    from vexpress_cli.media.ffmpeg import ffmpeg_exe, run_ffmpeg

    reinstall = "Reinstall it: pip install --force-reinstall imageio-ffmpeg"
    try:
        exe = ffmpeg_exe()
        version = run_ffmpeg(["-version"], what="The bundled ffmpeg does not run.", fix=reinstall)
    except VExpressError as error:
        return [Check("ffmpeg", FAILURE, join(error.what, error.why), error.fix or reinstall)]
    except OSError as error:
        return [Check("ffmpeg", FAILURE, f"The bundled ffmpeg cannot be started: {describe(error)}.", reinstall)]
    first_line = version.decode("utf-8", "replace").splitlines()[0] if version else "unknown version"
    release = first_line.split()[2] if first_line.startswith("ffmpeg version ") else first_line
    checks = [Check("ffmpeg", OK, f"{exe} (version {release})", data={"path": exe, "version": release})]

    listing = run_ffmpeg(["-encoders"], what="The bundled ffmpeg cannot list its encoders.", fix=reinstall)
    encoders = {line.split()[1] for line in listing.decode("utf-8", "replace").splitlines()
                if len(line.split()) > 1 and len(line.split()[0]) == 6 and line.split()[0][0] in "VAS"}
    missing = [name for name in REQUIRED_ENCODERS if name not in encoders]
    if missing:
        checks.append(Check("ffmpeg encoders", FAILURE,
                            f"the bundled ffmpeg lacks {', '.join(missing)} (needed for H.264 video and AAC audio)",
                            reinstall))
    else:
        checks.append(Check("ffmpeg encoders", OK, ", ".join(REQUIRED_ENCODERS) + " present"))
    return checks

