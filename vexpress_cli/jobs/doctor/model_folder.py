"""Checks of the config file and the model folder: where it is, its files, its configs and (deep) its checkpoints."""

from __future__ import annotations

from pathlib import Path

from vexpress_cli.errors import ModelFolderError, VExpressError, parameter
from vexpress_cli.jobs.model_cache import download_command_for
from vexpress_cli.jobs.doctor.report import DOWNLOAD_FIX, FAILURE, OK, WARNING, Check, DoctorContext, human_size, join


def model_checks(context: DoctorContext) -> list[Check]:
    config = _config_check()
    checks = [config, _model_folder_check(context, config_loads=config.status == OK)]
    if context.model_root is None:
        if context.options.deep:
            checks.append(Check("checkpoints", WARNING, "not checked: no model folder (see the row above)",
                                f"Fix the model folder first; {parameter('deep')} then reads every checkpoint tensor."))
        return checks
    checks.append(_model_files_check(context.model_root))
    if _configs_present(context.model_root):
        checks.append(_model_config_check(context.model_root))
    if context.options.deep:
        checks.append(_checkpoints_check(context.model_root))
    return checks


def _config_check() -> Check:
    from vexpress_cli.settings.user_config import config_absent, config_file, load_user_config

    try:
        path = config_file()
        if config_absent(path):  # a folder, a FIFO or a dangling link is refused below
            return Check("config file", OK, f"none at {path} (optional)")
        settings = load_user_config(path)
    except VExpressError as error:
        return Check("config file", FAILURE, join(error.what, error.why), error.fix)
    keys = ", ".join(f"{key} = {value!r}" for key, value in settings.items()) or "no settings"
    return Check("config file", OK, f"{path} ({keys})")


def _model_folder_check(context: DoctorContext, config_loads: bool = True) -> Check:
    from vexpress_cli.settings.model_lookup import resolve_model_dir

    try:
        resolved = resolve_model_dir(context.options.model_dir, context.options.model)
    except ModelFolderError as error:
        fix = error.fix if "models download" in error.fix else join(DOWNLOAD_FIX, error.fix)
        if not context.options.smoke:
            fix = join(fix, "Until then, `vexpress doctor --smoke` proves the rest of the install with a tiny model.")
        return Check("model folder", FAILURE, join(error.what, error.why), fix)
    except VExpressError as error:
        if not config_loads:  # its model or model_dir cannot be read: the config row said why, once
            return Check("model folder", WARNING, "not checked: the config file does not load (see its row), "
                         "and it may name the model", "Fix the config file first.")
        return Check("model folder", FAILURE, join(error.what, error.why), error.fix)
    context.model_root = resolved.path
    return Check("model folder", OK, f"{resolved.path} (from {resolved.how})",
                 data={"path": str(resolved.path), "found_by": resolved.how})


def _model_files_check(root: Path) -> Check:
    from vexpress_cli.engine.checkpoints import file_problem
    from vexpress_cli.engine.model_folder import REQUIRED_FILES, missing_required_files

    required = [entry for entry in REQUIRED_FILES if not entry.optional]  # the detector: with face detection
    missing = missing_required_files(root, optional=False)
    sizes = {}
    for entry in required:
        present = entry.present_in(root)
        if present is not None:
            sizes[present] = (root / present).stat().st_size
    broken = {path: problem for path in sizes if (problem := file_problem(root / path))}
    data = {"files": sizes, "missing": [entry.label for entry in missing]}
    if missing or broken:
        problems = [f"{entry.label} ({' or '.join(entry.choices)})" for entry in missing]
        problems += [f"{path} is {problem}" for path, problem in broken.items()]
        what = f"{len(missing)} of {len(required)} required files missing" if missing else "broken files"
        fix = f"run `{download_command_for(root)}` (it fetches only the missing files)."
        fix = f"Delete the broken files, then {fix}" if broken else fix[0].upper() + fix[1:]
        return Check("model files", FAILURE, f"{what}: {'; '.join(problems)}", fix, data=data)
    total = sum(sizes.values())
    largest = max(sizes, key=sizes.get)
    return Check("model files", OK, f"all {len(required)} required files present, {human_size(total)} "
                 f"(largest: {largest}, {human_size(sizes[largest])})", data=data)


def _configs_present(root: Path) -> bool:
    from vexpress_cli.engine.model_folder import ModelFolder

    folder = ModelFolder(root)
    return folder.unet_config.is_file() and (folder.audio_encoder / "config.json").is_file()


def _model_config_check(root: Path) -> Check:
    from vexpress_cli.engine.architecture import Architecture
    from vexpress_cli.engine.model_folder import ModelFolder

    folder = ModelFolder(root)
    try:
        Architecture.from_folder(folder)
    except ModelFolderError as error:  # its own row: the rows of the files stay
        return Check("model configs", FAILURE, join(error.what, error.why), error.fix)
    kind = ("overridden by v-express/config.json (a test-size model)" if folder.architecture_overrides.is_file()
            else "the released V-Express architecture")
    return Check("model configs", OK, f"UNet and wav2vec2 configs read; {kind}")


def _checkpoints_check(root: Path) -> Check:
    from vexpress_cli.jobs.inspect import inspect_model_folder

    report = inspect_model_folder(root)
    problems = []
    for network in report.networks:
        if network.status == "absent":
            problems.append(f"{network.name}: no checkpoint file")
        elif network.status == "damaged":
            problems.append(f"{network.name}: {network.damaged.rstrip('.')}")
        elif network.status == "mismatch":
            parts = []
            if network.missing:
                parts.append(f"{len(network.missing)} missing (e.g. {network.missing[0]})")
            if network.unexpected:
                parts.append(f"{len(network.unexpected)} unexpected (e.g. {network.unexpected[0]})")
            if network.mismatched:
                key, want, got = network.mismatched[0]
                parts.append(f"{len(network.mismatched)} wrong-shape (e.g. {key} expects {want}, has {got})")
            problems.append(f"{network.name} ({', '.join(network.files)}): {', '.join(parts)}")
    data = {"networks": {network.name: network.status for network in report.networks}}
    if problems:
        absent_only = all(network.status in ("ok", "absent") for network in report.networks)
        fix = (f"Run `{download_command_for(root)}` (it fetches only the missing files)." if absent_only else
               "These files do not fit this model: delete them and run `vexpress models download`; "
               "`vexpress inspect MODEL_DIR` lists every difference.")
        return Check("checkpoints", FAILURE, "; ".join(problems), fix, data=data)
    tensors = sum(network.expected_tensors for network in report.networks)
    parameters = sum(network.expected_elements for network in report.networks)
    return Check("checkpoints", OK, f"{len(report.networks)} networks match the architecture key for key "
                 f"({tensors} tensors, {parameters / 1e6:.1f} M parameters)", data=data)

