"""What a model folder or an input file holds, checked the way ``vexpress generate`` will use it.

One module per kind of input, each with a function returning a dataclass with ``to_dict()``
(plain JSON types only), and :func:`inspect_input` (in :mod:`.dispatch`) that picks the kind:

=========  ==========================================  ================================  ===============
kind       suffixes                                    reads it with                     module
=========  ==========================================  ================================  ===============
audio      .mp3 .wav .m4a .aac .flac .ogg .opus        ``media.audio_info`` (decodes it)  :mod:`.audio`
image      IMAGE_SUFFIXES: .jpg .png .tiff .avif ...  ``media.images`` + a face backend  :mod:`.image`
kps        .pth .pt .safetensors                       ``kps.load_kps`` (no unpickling)   :mod:`.kps`
preset     .toml (or a preset name)                    ``settings.presets.load_preset``   :mod:`.preset`
config     config.toml, or .toml setting model(_dir)   ``settings.user_config``          :mod:`.config`
record     .json (a run record beside an output)       ``jobs.records.read_record``       :mod:`.record`
video      .mp4 .mov .mkv .avi .webm                   ``media.video_info``               :mod:`.video`
frames     a folder of frame_NNNNNN.png (+ audio.wav)  PIL (the first frame's header)     :mod:`.frames`
=========  ==========================================  ================================  ===============

A media file with another suffix is recognised by its first bytes when they
are unambiguous (RIFF/WAVE, ID3, PNG, JPEG, an ISO-BMFF ``ftyp`` box, ...); a photo's first bytes
(``file_types.photo_format``, as every command tells a photo) win over a video's suffix.
Model folders are reported by :func:`inspect_model_folder` (:mod:`.model_folder`), without
loading weights. Every input failure is an :class:`~vexpress_cli.errors.InputError`.
See docs/inspect.md.
"""

from vexpress_cli.jobs.inspect.audio import AudioReport, inspect_audio
from vexpress_cli.jobs.inspect.config import ConfigReport, inspect_config
from vexpress_cli.jobs.inspect.dispatch import input_kind, inspect_input
from vexpress_cli.jobs.inspect.frames import FramesReport, inspect_frames
from vexpress_cli.jobs.inspect.image import FaceReport, ImageReport, inspect_image
from vexpress_cli.jobs.inspect.kps import DEFAULT_JUMP_PX, Gap, KpsReport, PointMotion, inspect_kps
from vexpress_cli.jobs.inspect.model_folder import (
    ComponentReport,
    ModelFolderReport,
    NetworkReport,
    inspect_model_folder,
)
from vexpress_cli.jobs.inspect.preset import PresetReport, inspect_preset
from vexpress_cli.jobs.inspect.record import RecordReport, inspect_record
from vexpress_cli.jobs.inspect.report import DEFAULT_FPS, MODEL_SIZE, check_input_path
from vexpress_cli.jobs.inspect.video import VideoReport, inspect_video

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_JUMP_PX",
    "MODEL_SIZE",
    "AudioReport",
    "ComponentReport",
    "ConfigReport",
    "FaceReport",
    "FramesReport",
    "Gap",
    "ImageReport",
    "KpsReport",
    "ModelFolderReport",
    "NetworkReport",
    "PointMotion",
    "PresetReport",
    "RecordReport",
    "VideoReport",
    "check_input_path",
    "input_kind",
    "inspect_audio",
    "inspect_config",
    "inspect_frames",
    "inspect_image",
    "inspect_input",
    "inspect_kps",
    "inspect_model_folder",
    "inspect_preset",
    "inspect_record",
    "inspect_video",
]
