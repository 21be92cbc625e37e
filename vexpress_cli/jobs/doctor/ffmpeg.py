"""Checks of the bundled ffmpeg: that it runs, that it has the encoders the video writer needs, and which
video codecs (``--codec``) work on this machine."""

from __future__ import annotations

from vexpress_cli.errors import VExpressError, parameter
from vexpress_cli.jobs.doctor.report import FAILURE, OK, WARNING, Check, DoctorContext, describe, join

REQUIRED_ENCODERS = ("libx264", "aac")  # what the video writer asks ffmpeg for by default


def ffmpeg_checks(context: DoctorContext) -> list[Check]:
    from vexpress_cli.media.encoding import parse_encoder_listing
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
    encoders = parse_encoder_listing(listing)
    missing = [name for name in REQUIRED_ENCODERS if name not in encoders]
    if missing:
        checks.append(Check("ffmpeg encoders", FAILURE,
                            f"the bundled ffmpeg lacks {', '.join(missing)} (needed for H.264 video and AAC audio)",
                            reinstall))
    else:
        checks.append(Check("ffmpeg encoders", OK, ", ".join(REQUIRED_ENCODERS) + " present"))
        checks.append(_codec_check(encoders))
    return checks


def _codec_check(encoders: frozenset[str]) -> Check:
    """Which ``--codec`` values work here, why the others do not, and what ``auto`` picks."""
    from vexpress_cli.media.encoding import AUTO_ORDER, ENCODERS, NVENC_CODECS, codec_usable, nvenc_failure

    usable = {codec: codec_usable(codec, encoders) for codec in ENCODERS}
    words = []
    for codec, encoder in ENCODERS.items():
        if usable[codec]:
            words.append(f"{codec} ({encoder})")
        elif encoder not in encoders:
            words.append(f"{codec}: not in this ffmpeg")
        else:
            words.append(f"{codec}: no ({nvenc_failure(encoder)})")
    auto = next(codec for codec in AUTO_ORDER if codec == AUTO_ORDER[-1] or usable[codec])
    detail = f"{'; '.join(words)}; {parameter('codec', 'auto')} uses {auto} here"
    data = {"codecs": {codec: {"encoder": ENCODERS[codec], "usable": usable[codec]} for codec in ENCODERS},
            "auto": auto}
    software_missing = [codec for codec in ENCODERS if codec not in NVENC_CODECS and not usable[codec]]
    if software_missing:
        return Check("video codecs", WARNING, detail,
                     "Reinstall imageio-ffmpeg (pip install --force-reinstall imageio-ffmpeg) for "
                     f"{', '.join(software_missing)}, or keep {parameter('codec', 'h264')}.", data=data)
    return Check("video codecs", OK, detail, data=data)
