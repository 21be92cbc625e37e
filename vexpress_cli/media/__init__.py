"""Media layer: decode audio, read video, write video -- all through the bundled ffmpeg.

See docs/media.md for the public API.
"""

from vexpress_cli.media.audio import (
    STANDARD_SAMPLE_RATE,
    AudioInfo,
    audio_info,
    extract_audio_track,
    load_audio,
)
from vexpress_cli.media.frames import as_fps_fraction
from vexpress_cli.media.resampling import resample
from vexpress_cli.media.video_reader import VideoInfo, iter_video_frames, video_info
from vexpress_cli.media.video_writer import PngFolderWriter, VideoWriter, open_video_writer

__all__ = [
    "STANDARD_SAMPLE_RATE",
    "AudioInfo",
    "PngFolderWriter",
    "VideoInfo",
    "VideoWriter",
    "as_fps_fraction",
    "audio_info",
    "extract_audio_track",
    "iter_video_frames",
    "load_audio",
    "open_video_writer",
    "resample",
    "video_info",
]
