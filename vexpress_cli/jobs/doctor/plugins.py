"""Checks of what plugins and user files add: the retarget strategies and the presets."""

from __future__ import annotations

from vexpress_cli.errors import VExpressError
from vexpress_cli.jobs.doctor.report import FAILURE, OK, Check, DoctorContext, guarded, join


def plugin_checks(context: DoctorContext) -> list[Check]:
    checks: list[Check] = []
    for name, check in (("strategies", _strategies_check), ("presets", _presets_check)):
        checks += guarded(name, lambda _, check=check: [check()], context)
    return checks


def _strategies_check() -> Check:
    from vexpress_cli.plugins import get_plugin_load_failures, get_retarget_strategy_infos, plugin_fix

    try:
        infos = get_retarget_strategy_infos()
    except VExpressError as error:
        return Check("strategies", FAILURE, join(error.what, error.why), error.fix)
    failures = get_plugin_load_failures()
    if failures:
        return Check("strategies", FAILURE, "; ".join(failure.message.rstrip(".") for failure in failures),
                     plugin_fix(failures))
    if not infos:
        return Check("strategies", FAILURE, "no retarget strategy is installed (not even the built-in ones)",
                     "Reinstall vexpress-cli: its entry point registers the built-in strategies.")
    by_source: dict[str, list[str]] = {}
    for name, info in infos.items():
        by_source.setdefault(info.source, []).append(name)
    detail = "; ".join(f"{', '.join(names)} from {source}" for source, names in by_source.items())
    return Check("strategies", OK, detail,
                 data={"strategies": {name: info.source for name, info in infos.items()}})


def _presets_check() -> Check:
    from vexpress_cli.settings.presets import list_presets

    infos = list_presets()
    broken = [info for info in infos if info.error]
    unknown = {info.name: strategy for info in infos if (strategy := _uninstalled_strategy(info))}
    data = {"presets": {info.name: {"source": info.source, "path": info.path,
                                    "ok": info.error is None and info.name not in unknown} for info in infos}}
    if broken or unknown:
        details = [f"{info.source} preset '{info.name}' ({info.path}) does not load: {info.error.rstrip('.')}"
                   for info in broken]
        details += [f"{info.source} preset '{info.name}' ({info.path}) names the retarget strategy "
                    f"'{unknown[info.name]}', which is not installed" for info in infos if info.name in unknown]
        fixes = []
        if broken:
            fixes.append(f"Fix or delete {', '.join(info.path for info in broken)} (`vexpress presets show NAME` "
                         "re-checks one).")
        if unknown:
            fixes.append("Install the plugin that provides the strategy (`vexpress strategies` lists the installed "
                         "ones), or change the preset's retarget_strategy.")
        return Check("presets", FAILURE, "; ".join(details), " ".join(fixes), data=data)
    sources = {"builtin": 0, "user": 0}
    for info in infos:
        sources[info.source] = sources.get(info.source, 0) + 1
    return Check("presets", OK, f"{len(infos)} presets load ({sources['builtin']} built-in, {sources['user']} user): "
                 + ", ".join(info.name for info in infos), data=data)


def _uninstalled_strategy(info) -> str | None:
    """The retarget strategy a preset that loads names when no installed plugin provides it, else None."""
    from vexpress_cli.plugins import uninstalled_strategy

    return None if info.error else uninstalled_strategy(info.values or {})
