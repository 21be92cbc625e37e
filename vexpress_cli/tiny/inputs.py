"""Synthetic inputs for a generation that needs no download: a drawn portrait and a voiced tone.

Used by ``vexpress demo`` and ``vexpress doctor --smoke`` with the tiny random model to
prove the whole stack (model loading, audio encoding, denoising, decoding, ffmpeg) works.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

PORTRAIT_SIZE = 512
# Left eye, right eye, nose of the drawn face, in portrait pixels.
PORTRAIT_KPS = np.array([[200.0, 220.0], [312.0, 220.0], [256.0, 290.0]], dtype=np.float32)
SAMPLE_RATE = 16000


@dataclass
class DemoInputs:
    reference_image: Path
    audio: Path
    reference_kps: np.ndarray

    def reference_kps_text(self, size: int) -> str:
        """The keypoints scaled to a square output of ``size`` pixels, as ``--reference-kps`` takes them."""
        from vexpress_cli.kps.io import kps_points_text

        return kps_points_text(self.reference_kps * (size / PORTRAIT_SIZE), ".1f")


def write_demo_inputs(folder: Path, seconds: float = 2.0) -> DemoInputs:
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / "portrait.png"
    audio_path = folder / "voice.wav"
    draw_portrait().save(image_path)
    write_wav(audio_path, voiced_tone(seconds))
    return DemoInputs(image_path, audio_path, PORTRAIT_KPS.copy())


def draw_portrait() -> PIL.Image.Image:
    image = PIL.Image.new("RGB", (PORTRAIT_SIZE, PORTRAIT_SIZE), (70, 90, 120))
    draw = PIL.ImageDraw.Draw(image)
    draw.ellipse((136, 110, 376, 420), fill=(224, 182, 150))  # face
    for (x, y) in PORTRAIT_KPS[:2]:
        draw.ellipse((x - 18, y - 9, x + 18, y + 9), fill=(250, 250, 250))
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=(60, 40, 30))
    nose_x, nose_y = PORTRAIT_KPS[2]
    draw.polygon([(nose_x, nose_y - 40), (nose_x - 14, nose_y), (nose_x + 14, nose_y)], fill=(205, 160, 130))
    draw.ellipse((216, 330, 296, 360), fill=(170, 80, 80))  # mouth
    return image


def voiced_tone(seconds: float) -> np.ndarray:
    """A 120 Hz voice-like buzz with syllable-rate loudness, as 16-bit samples."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    signal = 0.3 * buzz * syllables / np.abs(buzz).max()
    return (signal * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(samples.tobytes())
