"""Keypoint tracks: V-Kps drawing, kps files, length fitting and retargeting.

V-Express steers the head with three keypoints per frame (left eye, right eye,
nose), drawn as "V-Kps" images the V-Kps guider reads. This package holds
everything about those points that does not need the neural networks. Names are
imported on first use, so ``vexpress_cli.kps.fit`` (needed by the settings
schema) comes without OpenCV or torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "check_kps_in_frame": "bounds",
    "draw_kps_image": "drawing", "iter_kps_images": "drawing",
    "DEFAULT_FIT_MODE": "fit", "FIT_MODES": "fit", "fit_track": "fit",
    "KpsTrack": "io", "load_kps": "io", "parse_kps_points": "io", "save_kps": "io",
    "FunctionStrategy": "retargeting", "retarget_track": "retargeting",
}

__all__ = [*_EXPORTS, "RetargetStrategy"]


def __getattr__(name: str):
    if name == "RetargetStrategy":
        from vexpress_cli.hookspecs import RetargetStrategy

        return RetargetStrategy
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vexpress_cli.kps.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vexpress_cli.kps' has no attribute {name!r}")
