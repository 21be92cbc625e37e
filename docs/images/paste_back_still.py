"""Makes docs/images/paste-back-still.jpg, the README's picture of ``--crop auto --paste-back``.

    python docs/images/paste_back_still.py

A wide 1280x720 photo (the tys sample's portrait in a larger scene) goes through the real generate job with
``paste_back=True`` on the tiny random model (the only weights in the repository), and the still shows the input
with the chosen crop box next to a frame of the 1280x720 video.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "fixtures" / "samples" / "tys"
STILL = REPO / "docs" / "images" / "paste-back-still.jpg"


def wide_photo() -> np.ndarray:
    x = np.linspace(0, 1, 1280)[None, :]
    y = np.linspace(0, 1, 720)[:, None]
    scene = np.stack([60 + 120 * x + 0 * y, 90 + 60 * y + 0 * x, 140 + 40 * np.sin(6 * x + 3 * y)], axis=2)
    pixels = scene.astype(np.uint8)
    pixels[160:672, 720:1232] = np.asarray(PIL.Image.open(SAMPLE / "ref.jpg").convert("RGB"))
    return pixels


def main() -> None:
    import vexpress_cli
    from vexpress_cli.media.video_reader import iter_video_frames
    from vexpress_cli.tiny.model import ensure_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        photo = wide_photo()
        PIL.Image.fromarray(photo).save(Path(folder) / "room.png")
        result = vexpress_cli.generate(Path(folder) / "room.png", SAMPLE / "aud.mp3", Path(folder) / "talk.mp4",
                                       model_dir=ensure_tiny_model(), width=256, height=256, num_inference_steps=1,
                                       face_backend="dlib", paste_back=True, device="cpu")
        frames = list(iter_video_frames(result.output))
        frame = frames[len(frames) // 2]
    x, y, w, h = result.crop
    boxed = cv2.rectangle(photo.copy(), (x, y), (x + w, y + h), (255, 220, 0), 4)
    halves = [cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA) for image in (boxed, frame)]
    PIL.Image.fromarray(np.concatenate(halves, axis=1)).save(STILL, quality=85)
    print(f"{STILL}: crop {result.crop}, video {result.size}")


if __name__ == "__main__":
    main()
