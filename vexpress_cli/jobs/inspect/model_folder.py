"""What a model folder holds and whether its checkpoints fit the architecture, without loading weights.

Networks are built on the meta device and checkpoints are read for names and shapes only,
so a report on the full-size model takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path

from vexpress_cli.engine.architecture import NETWORK_NAMES, Architecture
from vexpress_cli.errors import ModelFolderError, join_messages, parameter, python_name, spell_parameters
from vexpress_cli.engine.model_folder import INSIGHTFACE_DETECTOR, VEXPRESS_DIR, ModelFolder
from vexpress_cli.engine.checkpoints import (NETWORK_FILES, KeyReport, compare_keys, described_missing,
                                             file_problem, network_state_dict,
                                             read_checkpoint_shapes, released_tensors)


@dataclass
class NetworkReport:
    name: str
    expected_tensors: int
    expected_elements: int
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[list] = field(default_factory=list)
    damaged: str | None = None  # why a checkpoint file cannot be read
    lacks: str | None = None  # the network's files the folder lacks, each with what stands in its place

    @property
    def status(self) -> str:
        if self.damaged:
            return "damaged"
        if not self.files:
            return "absent"
        return "ok" if not (self.missing or self.unexpected or self.mismatched) else "mismatch"


@dataclass
class ComponentReport:
    name: str
    path: str
    present: bool
    required: bool = True
    problem: str | None = None  # why a present file cannot be used (empty, a damaged safetensors header)


@dataclass
class ModelFolderReport:
    root: str
    networks: list[NetworkReport]
    components: list[ComponentReport]
    architecture_overrides: bool
    networks_error: str | None = None  # why the networks could not be described (settings named by parameter())

    @property
    def complete(self) -> bool:
        return (bool(self.networks) and all(n.status == "ok" for n in self.networks)
                and all((c.present and not c.problem) or not c.required for c in self.components))

    def to_dict(self, spell: Callable[[str], str] = python_name) -> dict:
        """Plain JSON types; a setting named in ``networks_error`` reads as ``spell`` says (Python names, or flags)."""
        data = asdict(self)
        if self.networks_error:
            data["networks_error"] = spell_parameters(self.networks_error, spell)
        for network, entry in zip(self.networks, data["networks"]):
            entry["status"] = network.status
        data["complete"] = self.complete
        return data


def inspect_model_folder(root: Path) -> ModelFolderReport:
    folder = ModelFolder(Path(root))
    report = ModelFolderReport(root=str(folder.root), networks=[], components=_component_reports(folder),
                               architecture_overrides=folder.architecture_overrides.is_file())
    try:
        architecture = Architecture.from_folder(folder)
    except ModelFolderError as error:
        # A half-downloaded folder still shows which files it lacks.
        report.networks_error = error.render(parameter)  # each caller spells the settings its own way
        return report
    report.networks = [_network_report(folder, architecture, name) for name in NETWORK_NAMES]
    return report


def _network_report(folder: ModelFolder, architecture: Architecture, name: str) -> NetworkReport:
    released = released_tensors(architecture, name)
    report = NetworkReport(name, len(released), sum(prod(shape) for shape in released.values()))
    try:
        found, files = network_state_dict(folder, name, read=read_checkpoint_shapes)
    except ModelFolderError as error:  # one damaged file: the rest of the folder is still reported
        report.damaged = join_messages(error.what, error.why)
        return report
    report.files = [str(path.relative_to(folder.root)) for path in files]
    if report.files:
        # Compared with every tensor the network has: what a release may omit is tolerated.
        keys: KeyReport = compare_keys(name, architecture.expected_tensors(name), found)
        report.missing, report.unexpected = keys.missing, keys.unexpected
        report.mismatched = [[key, list(want), list(got)] for key, want, got in keys.mismatched]
    lacking = [f"{VEXPRESS_DIR.as_posix()}/{stem}.bin" for stem in NETWORK_FILES[name]
               if folder.checkpoint(stem) is None]
    if lacking and (report.missing or not report.files):  # a denoising_unet.bin may hold the motion module too
        report.lacks = described_missing(folder.root, lacking)
    return report


def _component_reports(folder: ModelFolder) -> list[ComponentReport]:
    """The files outside ``v-express/`` that a model folder needs (the face detector is optional)."""
    from vexpress_cli.engine.model_folder import REQUIRED_FILES

    rows = []
    for required in REQUIRED_FILES:
        if required.choices[0].startswith(VEXPRESS_DIR.as_posix()):
            continue  # the V-Express checkpoints have the networks table
        present = required.present_in(folder.root)
        rows.append(ComponentReport(required.label, present or required.choices[0], present is not None,
                                    required=INSIGHTFACE_DETECTOR.as_posix() not in required.choices,
                                    problem=file_problem(folder.root / present) if present else None))
    return rows
