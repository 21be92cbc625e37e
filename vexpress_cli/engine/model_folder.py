"""The released V-Express model folder layout (the ``model_ckpts`` folder of the original repo).

```
MODEL_DIR/
  stable-diffusion-v1-5/unet/config.json
  sd-vae-ft-mse/{config.json, diffusion_pytorch_model.safetensors|.bin}
  wav2vec2-base-960h/{config.json, preprocessor_config.json, model.safetensors|pytorch_model.bin}
  v-express/{reference_net,denoising_unet,motion_module,v_kps_guider,audio_projection}.bin|.safetensors
  v-express/config.json            optional architecture overrides (tiny test models)
  insightface_models/models/buffalo_l/det_10g.onnx   optional face detector
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vexpress_cli.file_types import WEIGHT_SUFFIXES

UNET_CONFIG = Path("stable-diffusion-v1-5/unet/config.json")
VAE_DIR = Path("sd-vae-ft-mse")
AUDIO_ENCODER_DIR = Path("wav2vec2-base-960h")
VEXPRESS_DIR = Path("v-express")
ARCHITECTURE_OVERRIDES = VEXPRESS_DIR / "config.json"
# The wav2vec2 weights, preferred first (as transformers prefers them).
AUDIO_ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
INSIGHTFACE_DETECTOR = Path("insightface_models/models/buffalo_l/det_10g.onnx")

# V-Express checkpoints, by network name; each may be a .bin (torch.save) or .safetensors file.
CHECKPOINT_STEMS = ("reference_net", "denoising_unet", "motion_module", "v_kps_guider", "audio_projection")

# The public model repository the original README points to.
HUB_REPO_ID = "tk93/V-Express"


@dataclass(frozen=True)
class ModelFolder:
    """Paths inside one model folder; nothing is read until asked."""

    root: Path

    @property
    def unet_config(self) -> Path:
        return self.root / UNET_CONFIG

    @property
    def vae(self) -> Path:
        return self.root / VAE_DIR

    @property
    def vae_weights_are_safetensors(self) -> bool:
        return (self.vae / "diffusion_pytorch_model.safetensors").is_file()

    @property
    def vae_weights(self) -> Path:
        """The VAE weights file diffusers reads (it is told which format is there)."""
        return self.vae / f"diffusion_pytorch_model{'.safetensors' if self.vae_weights_are_safetensors else '.bin'}"

    @property
    def audio_encoder(self) -> Path:
        return self.root / AUDIO_ENCODER_DIR

    @property
    def audio_encoder_weights(self) -> Path | None:
        """The wav2vec2 weights file transformers reads, or None when absent."""
        return next((path for name in AUDIO_ENCODER_WEIGHTS if (path := self.audio_encoder / name).is_file()), None)

    @property
    def architecture_overrides(self) -> Path:
        return self.root / ARCHITECTURE_OVERRIDES

    @property
    def insightface_detector(self) -> Path:
        return self.root / INSIGHTFACE_DETECTOR

    def checkpoint(self, stem: str) -> Path | None:
        """The checkpoint file of a V-Express network, or None when absent."""
        for suffix in WEIGHT_SUFFIXES:
            candidate = self.root / VEXPRESS_DIR / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        return None


@dataclass(frozen=True)
class RequiredFile:
    """A file the model folder needs; any one of ``choices`` (layout paths, preferred first) will do.

    An ``optional`` one is downloaded with the rest, but a folder without it still generates: the face
    detector, for which dlib stands in."""

    label: str
    choices: tuple[str, ...]
    optional: bool = False

    def present_in(self, root: Path) -> str | None:
        return next((choice for choice in self.choices if (root / choice).is_file()), None)


def _weights(folder: Path, stem: str) -> tuple[str, ...]:
    return tuple((folder / f"{stem}{suffix}").as_posix() for suffix in WEIGHT_SUFFIXES)


REQUIRED_FILES: tuple[RequiredFile, ...] = (
    RequiredFile("UNet config", (UNET_CONFIG.as_posix(),)),
    RequiredFile("VAE config", ((VAE_DIR / "config.json").as_posix(),)),
    RequiredFile("VAE weights", _weights(VAE_DIR, "diffusion_pytorch_model")),
    RequiredFile("wav2vec2 config", ((AUDIO_ENCODER_DIR / "config.json").as_posix(),)),
    RequiredFile("wav2vec2 preprocessor", ((AUDIO_ENCODER_DIR / "preprocessor_config.json").as_posix(),)),
    RequiredFile("wav2vec2 weights", tuple((AUDIO_ENCODER_DIR / name).as_posix() for name in AUDIO_ENCODER_WEIGHTS)),
    *(RequiredFile(f"V-Express {stem}", _weights(VEXPRESS_DIR, stem)) for stem in CHECKPOINT_STEMS),
    RequiredFile("face detector", (INSIGHTFACE_DETECTOR.as_posix(),), optional=True),
)


def missing_required_files(root: Path, *, optional: bool = True) -> list[RequiredFile]:
    """The files of the layout absent from a model folder (the optional ones too unless ``optional`` is False);
    without ``optional``, empty when the folder is complete."""
    return [required for required in REQUIRED_FILES
            if (optional or not required.optional) and required.present_in(root) is None]


def lacking_optional_files(root: Path) -> list[str]:
    """The labels of the optional files absent from a model folder (the face detector)."""
    return [required.label for required in missing_required_files(root) if required.optional]


def redownload_fix(path: Path) -> str:
    """How to replace a damaged file: in the Hugging Face cache, ``models download`` skips a file it holds
    (even a damaged one), so its blob goes first; a dangling link is then fetched again."""
    real = path.resolve()
    if real.parent.name == "blobs" and real != path.absolute():
        return f"Delete its damaged copy in the Hugging Face cache (rm {real}), then run `vexpress models download`."
    return "Download the file again (`vexpress models download`)."
