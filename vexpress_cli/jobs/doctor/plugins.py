"""Checks of what plugins and user files add: the retarget strategies and the presets."""

from __future__ import annotations

import dataclasses

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

    infos = [_with_strategy_checked(info) for info in list_presets()]
    broken = [info for info in infos if info.error]
    data = {"presets": {info.name: {"source": info.source, "path": info.path, "ok": info.error is None}
                        for info in infos}}
    if broken:
        detail = "; ".join(f"{info.source} preset '{info.name}' ({info.path}) does not load: {info.error.rstrip('.')}"
                           for info in broken)
        files = ", ".join(info.path for info in broken)
        return Check("presets", FAILURE, detail, f"Fix or delete {files} (`vexpress presets show NAME` "
                     "re-checks one).", data=data)
    sources = {"builtin": 0, "user": 0}
    for info in infos:
        sources[info.source] = sources.get(info.source, 0) + 1
    return Check("presets", OK, f"{len(infos)} presets load ({sources['builtin']} built-in, {sources['user']} user): "
                 + ", ".join(info.name for info in infos), data=data)



def _with_strategy_checked(info):
    """The preset, with an error when it names a retarget strategy that is not installed."""
    from vexpress_cli.plugins import get_retarget_strategy
    from vexpress_cli.settings.schema import AUTO_STRATEGY

    strategy = (info.values or {}).get("retarget_strategy", AUTO_STRATEGY)
    if info.error or strategy == AUTO_STRATEGY:
        return info
    try:
        get_retarget_strategy(strategy)
    except VExpressError as error:
        return dataclasses.replace(info, error=f"{error.what} {error.why}")
    return info
