"""Plugin discovery: every package exposing the ``vexpress`` entry-point group is loaded here.

The built-in strategies are no exception: vexpress-cli's own pyproject
declares ``builtin_strategies = "vexpress_cli.strategies"`` in that group, so
they arrive through exactly the path a third-party plugin takes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import metadata

import pluggy

from vexpress_cli import hookspecs
from vexpress_cli.errors import InputError, VExpressError
from vexpress_cli.kps.strategy import RetargetStrategy

ENTRY_POINT_GROUP = "vexpress"
STRATEGY_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class StrategyInfo:
    """An installed strategy and where it came from."""

    strategy: RetargetStrategy
    plugin: str  # the plugin's registered name (its entry-point name)
    distribution: str | None  # "project-name version", or None when not installed from a distribution

    @property
    def source(self) -> str:
        return f"{self.distribution} ({self.plugin})" if self.distribution else self.plugin


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``vexpress`` entry point loaded."""
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as error:  # a broken plugin must not look like a vexpress crash
        raise _plugin_load_error(manager, error) from error
    return manager


def get_retarget_strategy_infos() -> dict[str, StrategyInfo]:
    """Every installed retarget strategy with its origin, by name, in registration order."""
    manager = get_plugin_manager()
    distributions = {
        id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in manager.list_plugin_distinfo()
    }
    found: dict[str, StrategyInfo] = {}
    # Call each implementation on its own, so we know which plugin registered what.
    for implementation in manager.hook.register_retarget_strategies.get_hookimpls():
        plugin_name = implementation.plugin_name
        origin = distributions.get(id(implementation.plugin))

        def register(strategy, plugin_name=plugin_name, origin=origin) -> None:
            info = StrategyInfo(_checked_strategy(strategy, plugin_name), plugin_name, origin)
            name = info.strategy.name
            if name in found:
                raise VExpressError(
                    f"Two plugins register a retarget strategy named '{name}': {found[name].source} and {info.source}.",
                    why="Strategy names must be unique, or `--strategy` would be ambiguous.",
                    fix="Uninstall one of the two plugins (`pip uninstall DISTRIBUTION`).",
                )
            found[name] = info

        arguments = {"register": register}
        implementation.function(**{name: arguments[name] for name in implementation.argnames})
    return found


def get_retarget_strategies() -> dict[str, RetargetStrategy]:
    """Every installed retarget strategy, by name."""
    return {name: info.strategy for name, info in get_retarget_strategy_infos().items()}


def get_retarget_strategy(name: str) -> RetargetStrategy:
    """The installed strategy called ``name``; InputError listing the installed ones otherwise."""
    strategies = get_retarget_strategies()
    if name not in strategies:
        raise InputError(
            f"Unknown retarget strategy '{name}'.",
            why=f"The installed strategies are: {', '.join(strategies) or 'none'}.",
            fix="Pick one of those (`vexpress strategies` describes them), or install the plugin that provides it.",
        )
    return strategies[name]


def _checked_strategy(strategy, plugin_name: str) -> RetargetStrategy:
    name = getattr(strategy, "name", None)
    problems = []
    if not isinstance(name, str) or not STRATEGY_NAME_PATTERN.fullmatch(name):
        problems.append(f"its name {name!r} is not a lower-case identifier")
    if not isinstance(getattr(strategy, "description", None), str):
        problems.append("it has no description string")
    if not callable(getattr(strategy, "retarget", None)):
        problems.append("it has no retarget() method")
    if problems:
        raise VExpressError(
            f"The plugin '{plugin_name}' registered an invalid retarget strategy: {'; '.join(problems)}.",
            why="A strategy needs a name, a one-line description and retarget(reference_kps, driving_kps, num_frames).",
            fix="Update or uninstall that plugin; docs/plugins.md describes the protocol.",
        )
    return strategy


def _plugin_load_error(manager: pluggy.PluginManager, error: Exception) -> VExpressError:
    # load_setuptools_entrypoints stops at the first failure; the culprit is
    # the first entry point of the group that did not get registered.
    culprit = next(
        (
            entry_point
            for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if manager.get_plugin(entry_point.name) is None and not manager.is_blocked(entry_point.name)
        ),
        None,
    )
    if culprit is None:
        where = "a plugin"
    else:
        origin = f", from {culprit.dist.name}" if culprit.dist else ""
        where = f"'{culprit.name}' ({culprit.value}{origin})"
    return VExpressError(
        f"The vexpress plugin {where} failed to load: {type(error).__name__}: {error}.",
        why="Plugins are imported at start-up through the 'vexpress' entry-point group.",
        fix="Upgrade or uninstall that plugin's distribution (`pip uninstall NAME`).",
    )
