"""The generation settings as page controls, derived from the settings schema (one control per setting,
with its limits, advice and help), and the words the page uses for settings and job parameters."""

from __future__ import annotations

from typing import Any

from vexpress_cli.errors import spell_parameters
from vexpress_cli.settings.schema import AUTO_STRATEGY, SETTINGS, Setting
from vexpress_cli.settings.values import value_from_text

# Labels that read better than the setting's name in words; a setting's label ends with its name, which the
# API (gradio_client) and the docs use, when the words differ from it.
LABELS = {
    "num_inference_steps": "Denoising steps",
    "save_gpu_memory": "Save GPU memory",
    "offload": "Offload networks to the CPU",
    "scheduler": "Sampler, only ddim reproduces the original",
    "fps": "Frames per second",
    "dtype": "Precision",
    "kps_fit": "Fitting a track of another length",
    "num_pad_audio_frames": "Audio context frames",
    "postprocess": "Median filter against flicker",
    "crop": "Crop around the face",
    "face_index": "Which face",
    "paste_back": "Paste back into the whole photo",
    "max_size": "Longest side when pasted back",
    "crf": "Quality, lower is better",
    "window_batch": "Windows per UNet call",
}
# The crop's choices in words: of the portrait photo (generate) and of a driving video (extract).
CROP_CHOICES = {
    "photo": [("auto: a square around the face, framed like V-Express's training portraits", "auto"),
              ("none: the whole photo, stretched to the output size", "none")],
    "video": [("none: each whole frame, resized (like the original)", "none"),
              ("auto: one steady square around the face, for a wide shot", "auto")],
}
# The job parameters that are not settings, as the page's controls name them.
PARAMETER_LABELS = {
    "reference_image": "Portrait photo",
    "audio": "Speech",
    "kps": "Driving motion",
    "reference_kps": "Reference keypoints",
    "preset": "Preset",
    "audio_out": "Also save its audio",
    "strategy": "Retarget strategy",
    "driving_crop": "Crop of a driving video",
}
# A browser's numbers are doubles: a whole number past this (a seed) would change its last digits, so it is typed
# as text and read here.
EXACT_IN_BROWSER = 2**53
FLOAT_STEP = 0.01


def label_of(name: str) -> str:
    if name in PARAMETER_LABELS:
        return PARAMETER_LABELS[name]
    words = LABELS.get(name) or name.replace("_", " ").capitalize()
    return words if words.lower() == name.replace("_", " ").lower() else f"{words} ({name})"


def spell_in_page(name: str) -> str:
    """How an error message names a setting or job parameter in the page: by its control's label."""
    if name in SETTINGS or name in PARAMETER_LABELS:
        return f"“{label_of(name)}”"
    return name


# The commands that the library's messages suggest, as the page's own places to do the same.
PAGE_PLACES = {
    "`vexpress extract` or `vexpress retarget`": "the Extract / retarget tab",
    "with `vexpress extract`": "in the Extract / retarget tab",
    "`vexpress extract`": "the Extract / retarget tab",
    "`vexpress inspect PHOTO` to see the box it would choose": "a run with auto names the box it chose in its "
                                                              "summary",
}


def in_page_words(text: str) -> str:
    """``text`` with a command it suggests replaced by where the page does the same."""
    for command, place in PAGE_PLACES.items():
        text = text.replace(command, place)
    return text


def bullets(label: str, messages) -> list[str]:
    """``- Label: message`` lines of a summary, each setting a message names spelled as the page names it."""
    return [f"- {label}: {in_page_words(spell_parameters(message, spell_in_page))}" for message in messages]


def info_of(setting: Setting) -> str:
    text = setting.help
    if setting.kind in (int, float) and setting.minimum is not None and setting.maximum is not None:
        text += f" From {setting.minimum:g} to {setting.maximum:g}."
    if setting.advised:
        text += f" Advised: {setting.advised[0]:g}-{setting.advised[1]:g}."
    return text


def setting_control(setting: Setting, value: Any, strategies: dict[str, str], elem_prefix: str = "setting"):
    """The Gradio control of one setting."""
    import gradio as gr

    common = {"label": label_of(setting.name), "info": info_of(setting),
              "elem_id": f"{elem_prefix}-{setting.name.replace('_', '-')}"}
    if setting.name == "crop":
        return crop_control(value, "photo", **common)
    if setting.name == "retarget_strategy":
        choices = [(f"{AUTO_STRATEGY}: no_retarget with a driving motion, fix_face without", AUTO_STRATEGY)]
        choices += [(f"{name}: {description}", name) for name, description in strategies.items()]
        return gr.Dropdown(choices=choices, value=value, **common)
    if setting.choices:
        return gr.Dropdown(choices=list(setting.choices), value=value, allow_custom_value=bool(setting.also_matching),
                           **common)
    if setting.kind is bool:
        return gr.Checkbox(value=value, **common)
    if setting.kind is int and (setting.maximum is None or setting.maximum > EXACT_IN_BROWSER):
        return gr.Textbox(value=str(value), **common)
    if setting.kind in (int, float):
        # No limits in the browser, which would clamp what was typed (a slider's box does, and a cleared one
        # becomes its minimum) and no rounding: the schema refuses a value outside them, as the CLI does.
        step = (setting.multiple_of or 1) if setting.kind is int else FLOAT_STEP
        return gr.Number(value=value, step=step, **common)
    return gr.Textbox(value=value, **common)


def crop_control(value: str, subject: str, **common):
    """The crop dropdown: auto or none, or a box X,Y,W,H typed in (left, top, width, height in pixels)."""
    import gradio as gr

    return gr.Dropdown(choices=CROP_CHOICES[subject], value=value, allow_custom_value=True, **common)


def reference_kps_box(elem_id: str):
    """The text box of the portrait's keypoints: numbers only, read with ``parse_kps_points`` (never a path)."""
    import gradio as gr

    return gr.Textbox(label=label_of("reference_kps"), elem_id=elem_id, placeholder="x,y;x,y;x,y",
                      info="Optional: the portrait's left eye; right eye; nose in output pixels, instead of "
                      "finding the face.")


def installed_strategies() -> dict[str, str]:
    """Every installed retarget strategy (built-ins and plugins): name -> one-line description."""
    from vexpress_cli.plugins import get_retarget_strategy_infos

    return {name: info.strategy.description for name, info in get_retarget_strategy_infos().items()}


def preset_choices() -> list[tuple[str, str]]:
    """The preset dropdown: no preset, then every preset (built-in and user) by name, as the API takes them; one
    that does not load says so (choosing it shows why)."""
    from vexpress_cli.settings.presets import list_presets

    choices = [("none: the defaults (and your config.toml)", "")]
    return choices + [(f"{info.name}: {info.description}" if info.error is None else
                       f"{info.name}: does not load (choose it to see why; the Status tab lists it too)", info.name)
                      for info in list_presets()]


def resolved_values(preset: str | None) -> dict[str, Any]:
    """Every setting as a preset makes it: defaults < user config < preset."""
    from vexpress_cli.jobs.generate import resolve_job_settings

    return resolve_job_settings(checked_preset(preset), {}).settings.to_dict()


def checked_preset(preset: str | None) -> str | None:
    """A preset name from the list, or None; never a path (the page reads no server file by name)."""
    from vexpress_cli.errors import InputError, did_you_mean
    from vexpress_cli.settings.presets import list_presets

    if not preset:
        return None
    known = [info.name for info in list_presets()]
    if preset not in known:
        raise InputError(f"There is no preset named '{preset}'.", why=f"Known presets: {', '.join(known)}.",
                         fix=f"{did_you_mean(preset, known)}Pick one of those by name (the web app takes "
                         "preset names, not paths).")
    return preset


def typed_values(raw: dict[str, Any]) -> dict[str, Any]:
    """The controls' values as the settings' types. An empty number box (cleared) is passed on as '', which the
    schema refuses as the CLI refuses ``--fps ""``: it never silently becomes another value. Other empty ones
    are left out."""
    values = {}
    for name, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            if SETTINGS[name].kind in (int, float):
                values[name] = ""
            continue
        kind = SETTINGS[name].kind
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)  # sliders send 512.0
        if isinstance(value, str):
            value = value_from_text(SETTINGS[name], value)  # a whole number typed as text, e.g. the seed
        values[name] = value.strip() if isinstance(value, str) else value
    return values


class SettingsForm:
    """One control per generation setting; the strategy and the framing are shown on their own, the rest under
    "Advanced"."""

    MAIN = ("retarget_strategy",)
    FRAMING = ("crop", "face_index", "paste_back", "max_size")

    def __init__(self, strategies: dict[str, str]):
        self.strategies = strategies
        self.initial = resolved_values(None)
        self.controls: dict[str, Any] = {}

    def render(self, names) -> None:
        for name in names:
            self.controls[name] = setting_control(SETTINGS[name], self.initial[name], self.strategies)

    def render_main(self) -> None:
        self.render(self.MAIN)

    def render_framing(self) -> None:
        """The crop on a row of its own (its choices are long words), face index, paste-back and its size on
        the next."""
        import gradio as gr

        for names in (self.FRAMING[:1], self.FRAMING[1:]):
            with gr.Row():
                self.render(names)

    def render_advanced(self) -> None:
        self.render([name for name in SETTINGS if name not in self.MAIN + self.FRAMING])

    @property
    def inputs(self) -> list:
        """The controls in schema order."""
        return [self.controls[name] for name in SETTINGS]

    def values(self, data: dict) -> dict[str, Any]:
        """The settings from an event's ``{control: value}`` data."""
        return typed_values({name: data[control] for name, control in self.controls.items()})

    def fill(self, preset: str | None) -> list[Any]:
        """The controls' values for a preset, in schema order."""
        values = resolved_values(preset)
        return [values[name] for name in SETTINGS]
