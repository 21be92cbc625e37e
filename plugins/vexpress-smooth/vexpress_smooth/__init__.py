"""vexpress-smooth: the ``smooth`` retarget strategy, an example vexpress plugin.

Face detectors place keypoints a pixel or two differently on every frame;
drawn as V-Kps images that jitter becomes a trembling head. ``smooth`` keeps
the driving motion (like ``no_retarget``) but replaces each frame by the mean
of its neighbours.
"""

from __future__ import annotations

import numpy as np

from vexpress_cli.hookspecs import hookimpl

# Frames on each side of a frame that are averaged with it (a 5-frame window).
WINDOW_RADIUS = 2


def smooth_track(points: np.ndarray, radius: int = WINDOW_RADIUS) -> np.ndarray:
    """Centred moving average over time of ``points`` ([F, ...]).

    Near the ends the window shrinks to the same number of frames on both
    sides, so the average never leans towards one side: the first and last
    frames stay put, and a steady motion is not delayed.
    """
    points = np.asarray(points, dtype=np.float64)
    frames = points.shape[0]
    index = np.arange(frames)
    radii = np.minimum(np.minimum(index, frames - 1 - index), radius)
    running = np.concatenate([np.zeros_like(points[:1]), np.cumsum(points, axis=0)])
    sums = running[index + radii + 1] - running[index - radii]
    counts = (2 * radii + 1).reshape(-1, *([1] * (points.ndim - 1)))
    return sums / counts


class SmoothStrategy:
    name = "smooth"
    description = "The driving keypoints as they are, with frame-to-frame jitter averaged out (5-frame window)."
    requires_driving_kps = True

    def retarget(self, reference_kps, driving_kps, num_frames):
        if driving_kps is None:
            from vexpress_cli.kps.retargeting import missing_driving_kps_error

            raise missing_driving_kps_error(self.name)
        return smooth_track(driving_kps).astype(np.float32)


@hookimpl
def register_retarget_strategies(register):
    register(SmoothStrategy())
