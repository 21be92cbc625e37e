"""Keypoint tracks: V-Kps drawing, kps files, length fitting and retargeting.

V-Express steers the head with three keypoints per frame (left eye, right eye,
nose), drawn as "V-Kps" images the V-Kps guider reads. This package holds
everything about those points that does not need the neural networks.
"""

from vexpress_cli.kps.drawing import draw_kps_image, iter_kps_images
from vexpress_cli.kps.fit import DEFAULT_FIT_MODE, FIT_MODES, fit_track
from vexpress_cli.kps.io import KpsTrack, load_kps, parse_kps_points, save_kps
from vexpress_cli.hookspecs import RetargetStrategy
from vexpress_cli.kps.retargeting import FunctionStrategy, retarget_track

__all__ = [
    "DEFAULT_FIT_MODE",
    "FIT_MODES",
    "FunctionStrategy",
    "KpsTrack",
    "RetargetStrategy",
    "draw_kps_image",
    "fit_track",
    "iter_kps_images",
    "load_kps",
    "parse_kps_points",
    "retarget_track",
    "save_kps",
]
