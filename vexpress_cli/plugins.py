"""Plugin discovery: every package exposing the ``vexpress`` entry-point group is loaded here.

The built-in strategies are no exception: vexpress-cli's own pyproject
declares ``builtin_strategies = "vexpress_cli.strategies"`` in that group, so
they arrive through exactly the path a third-party plugin takes.

Entry points are loaded one at a time: a plugin that fails to import is
recorded (:func:`get_plugin_load_failures`) and skipped, so it cannot take
the built-in strategies, or any other plugin's, down with it.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import re
import sys
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import pluggy

from vexpress_cli import hookspecs
from vexpress_cli.hookspecs import RetargetStrategy
from vexpress_cli.errors import InputError, VExpressError, did_you_mean

ENTRY_POINT_GROUP = "vexpress"
HOOK_NAME = "register_retarget_strategies"
BUILTIN_PLUGIN = "builtin_strategies"  # vexpress-cli's own entry point
STRATEGY_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
RESERVED_STRATEGY_NAMES = ("auto",)  # --strategy auto chooses a built-in strategy
# A strategy's optional on/off attributes (True when absent; see hookspecs.RetargetStrategy).
OPTIONAL_SWITCHES = ("requires_driving_kps", "uses_reference_kps")


@dataclass(frozen=True)
class StrategyInfo:
    """An installed strategy and where it came from."""

    strategy: RetargetStrategy
    plugin: str  # the plugin's registered name (its entry-point name)
    distribution: str | None  # "project-name version", or None when not installed from a distribution

    @property
    def source(self) -> str:
        return f"{self.distribution} ({self.plugin})" if self.distribution else self.plugin


@dataclass(frozen=True)
class PluginLoadFailure:
    """An entry point of the ``vexpress`` group that could not be loaded or registered."""

    entry_point: str  # its name, e.g. "smooth"
    value: str  # what it points at, e.g. "vexpress_smooth"
    distribution: str | None  # the distribution's name, when known
    error: str  # "ModuleNotFoundError: No module named 'x'", or what a loaded plugin did wrong
    loaded: bool = False  # it was imported, but its hook failed or registered nothing

    @property
    def where(self) -> str:
        origin = f", from {self.distribution}" if self.distribution else ""
        return f"'{self.entry_point}' ({self.value}{origin})"

    @property
    def message(self) -> str:
        if self.loaded:
            return f"The vexpress plugin {self.where} loaded, but {self.error}."
        return f"The vexpress plugin {self.where} failed to load: {self.error}. Its strategies are not listed."


def plugin_fix(failures: list[PluginLoadFailure]) -> str:
    """How to fix the plugins that failed: by their distributions' names where known."""
    names = sorted({failure.distribution for failure in failures if failure.distribution})
    if not names or any(failure.distribution is None for failure in failures):
        return "Upgrade or uninstall the plugin's distribution (`pip uninstall NAME`), or tell its author."
    return f"Upgrade or uninstall {', '.join(names)} (`pip uninstall {' '.join(names)}`), or tell its author."


class VExpressPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers each plugin's distribution and the plugins that failed."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}  # plugin name -> "project-name version"
        self.entry_points: dict[str, metadata.EntryPoint] = {}  # plugin name -> where it came from
        self.load_failures: list[PluginLoadFailure] = []
        self.hook_failures: list[PluginLoadFailure] = []  # plugins whose hook raised, at the last listing

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every entry point of ``group``, recording (not raising) failures."""
        for entry_point in metadata.entry_points(group=group):
            if self.is_blocked(entry_point.name):
                continue
            distribution = entry_point.dist
            try:
                if self.get_plugin(entry_point.name) is not None:
                    holder = self.distributions.get(entry_point.name, "another plugin")
                    raise ValueError(f"{holder} already uses the entry-point name '{entry_point.name}' (in the "
                                     f"[project.entry-points.{group}] table), so one of the two must rename it")
                with plugin_output_on_stderr():
                    plugin = entry_point.load()
                if self.is_registered(plugin):
                    continue  # a second entry point naming the same module: its strategies are listed once
                self.register(plugin, name=entry_point.name)
            except (Exception, SystemExit) as error:  # any import-time failure of third-party code, even sys.exit()
                self.load_failures.append(
                    PluginLoadFailure(
                        entry_point.name,
                        entry_point.value,
                        distribution.name if distribution else None,
                        f"{type(error).__name__}: {error}",
                    )
                )
                continue
            self.entry_points[entry_point.name] = entry_point
            if distribution is not None:
                self.distributions[entry_point.name] = f"{distribution.name} {distribution.version}"

    def hook_failure(self, plugin_name: str, error: BaseException) -> PluginLoadFailure:
        """A plugin whose ``register_retarget_strategies`` raised ``error``, described like a load failure."""
        return self._failure(plugin_name, f"its {HOOK_NAME} hook raised {type(error).__name__}: {error}, so "
                             "none of its strategies is listed")

    def registered_nothing(self, plugin_name: str, has_hook: bool) -> PluginLoadFailure:
        """A plugin that registered no strategy: its hook called ``register`` never, or it has no hook."""
        if has_hook:
            return self._failure(plugin_name, f"its {HOOK_NAME} hook registered no strategy (call "
                                 "register(strategy) once for each; what the hook returns is ignored)")
        other = [caller.name for caller in self.get_hookcallers(self.get_plugin(plugin_name)) or ()]
        misnamed = f"; its hook {other[0]}() is not a vexpress hook" if other else ""
        return self._failure(plugin_name, f"it has no {HOOK_NAME} hook{misnamed} (the function needs exactly that "
                             "name and @hookimpl, from vexpress_cli.hookspecs import hookimpl)")

    def _failure(self, plugin_name: str, error: str) -> PluginLoadFailure:
        entry_point = self.entry_points.get(plugin_name)
        plugin = self.get_plugin(plugin_name)
        value = entry_point.value if entry_point else getattr(plugin, "__name__", type(plugin).__name__)
        distribution = entry_point.dist.name if entry_point and entry_point.dist else None
        return PluginLoadFailure(plugin_name, value, distribution, error, loaded=True)


@functools.cache
def get_plugin_manager() -> VExpressPluginManager:
    """The process-wide plugin manager, with every loadable ``vexpress`` entry point registered."""
    manager = VExpressPluginManager()
    manager.load_entry_points()
    return manager


def get_plugin_load_failures() -> list[PluginLoadFailure]:
    """The ``vexpress`` plugins that failed (empty when all is well): those that could not be
    imported, and those whose hook raised when the strategies were last listed."""
    manager = get_plugin_manager()
    return [*manager.load_failures, *manager.hook_failures]


def get_retarget_strategy_infos() -> dict[str, StrategyInfo]:
    """Every installed retarget strategy with its origin, by name, in registration order.

    A plugin whose hook raises is skipped, with everything it registered, and recorded
    (:func:`get_plugin_load_failures`), so it cannot take the other plugins' strategies down
    with it. VExpressError (naming the plugin) when a plugin registers an invalid strategy or
    uses a name another plugin registered already.
    """
    manager = get_plugin_manager()
    found: dict[str, StrategyInfo] = {}
    manager.hook_failures = []
    # Call each implementation on its own, so we know which plugin registered what.
    implementations = manager.hook.register_retarget_strategies.get_hookimpls()
    for implementation in implementations:
        plugin_name = implementation.plugin_name
        origin = manager.distributions.get(plugin_name)
        registered: dict[str, StrategyInfo] = {}  # kept only if the hook finishes
        refusals: list[VExpressError] = []  # what register() refused: told as is, not as the plugin's failure

        def register(strategy, plugin_name=plugin_name, origin=origin, registered=registered,
                     refusals=refusals) -> None:
            try:
                info = StrategyInfo(_checked_strategy(strategy, plugin_name), plugin_name, origin)
                earlier = found.get(info.strategy.name) or registered.get(info.strategy.name)
                if earlier is not None:
                    raise _name_clash(earlier, info)
            except VExpressError as error:
                refusals.append(error)
                raise
            registered[info.strategy.name] = info

        arguments = {"register": register}
        try:
            with plugin_output_on_stderr():
                implementation.function(**{name: arguments[name] for name in implementation.argnames})
        except VExpressError as error:
            if refusals and error is refusals[-1]:
                raise
            manager.hook_failures.append(manager.hook_failure(plugin_name, error))  # the plugin's own error
            continue
        except (Exception, SystemExit) as error:  # a bug in the plugin, not in vexpress or the user's input
            manager.hook_failures.append(manager.hook_failure(plugin_name, error))
            continue
        if not registered:
            manager.hook_failures.append(manager.registered_nothing(plugin_name, has_hook=True))
        found.update(registered)
    hooked = {implementation.plugin_name for implementation in implementations}
    manager.hook_failures += [manager.registered_nothing(name, has_hook=False)
                              for name, _ in manager.list_name_plugin() if name not in hooked]
    return found


def plugin_output_on_stderr() -> contextlib.redirect_stdout:
    """What a plugin prints goes to stderr, so that stdout holds only vexpress's own output (``--json``)."""
    return contextlib.redirect_stdout(sys.stderr)


def _name_clash(earlier: StrategyInfo, info: StrategyInfo) -> VExpressError:
    name = info.strategy.name
    if earlier.plugin == info.plugin:
        return VExpressError(f"The plugin {info.source} registers the retarget strategy '{name}' twice.",
                             why="Strategy names must be unique, or choosing one by name would be ambiguous.",
                             fix="Upgrade that plugin or tell its author; until then, uninstall it.")
    if BUILTIN_PLUGIN in (earlier.plugin, info.plugin):
        plugin = info if earlier.plugin == BUILTIN_PLUGIN else earlier
        return VExpressError(f"The plugin {plugin.source} registers a retarget strategy named '{name}', the name of "
                             "a built-in strategy.",
                             why="Strategy names must be unique, or choosing one by name would be ambiguous.",
                             fix="The plugin must give its strategy another name: upgrade it or tell its author; "
                             "until then, uninstall it.")
    return VExpressError(f"Two plugins register a retarget strategy named '{name}': {earlier.source} and "
                         f"{info.source}.",
                         why="Strategy names must be unique, or choosing one by name would be ambiguous.",
                         fix="Uninstall one of the two plugins (`pip uninstall DISTRIBUTION`).")


def strategy_source(strategy: RetargetStrategy) -> str | None:
    """Where an installed strategy comes from ("distribution version (plugin)"), or None if it is not installed."""
    try:
        infos = get_retarget_strategy_infos()
    except VExpressError:
        return None
    info = infos.get(getattr(strategy, "name", None))
    # By name and class name, not identity: each listing runs the hooks again, and a hook may build new
    # objects, even a new class (one defined inside the hook).
    return info.source if info is not None and _class_name(info.strategy) == _class_name(strategy) else None


def uninstalled_strategy(values: dict) -> str | None:
    """The retarget strategy that settings (a preset's values) name when no installed plugin provides it, else
    None; None too when the plugins are in conflict, which is told wherever strategies are listed."""
    from vexpress_cli.settings.schema import AUTO_STRATEGY

    strategy = values.get("retarget_strategy", AUTO_STRATEGY)
    if strategy == AUTO_STRATEGY:
        return None
    try:
        installed = get_retarget_strategy_infos()
    except VExpressError:
        return None
    return None if strategy in installed else strategy


def _class_name(value: object) -> tuple[str, str]:
    return type(value).__module__, type(value).__qualname__


def get_retarget_strategies() -> dict[str, RetargetStrategy]:
    """Every installed retarget strategy, by name."""
    return {name: info.strategy for name, info in get_retarget_strategy_infos().items()}


def get_retarget_strategy(name: str) -> RetargetStrategy:
    """The installed strategy called ``name``; InputError listing the installed ones otherwise.

    Plugins that failed to load are mentioned only then: one of them may be the
    one that provides ``name``.
    """
    strategies = get_retarget_strategies()
    if name in strategies:
        return strategies[name]
    failures = get_plugin_load_failures()
    why = f"The installed strategies are: {', '.join(strategies) or 'none'}."
    fix = (f"{did_you_mean(name, strategies)}Pick one of those (`vexpress strategies` describes them), "
           "or install the plugin that provides it.")
    if failures:
        why += " These plugins failed, and one of them may provide it: " + "; ".join(
            f"{failure.where}: {failure.error}" for failure in failures
        ) + "."
        fix = f"Pick an installed strategy. {plugin_fix(failures)}"
    raise InputError(f"Unknown retarget strategy '{name}'.", why=why, fix=fix)


def _checked_strategy(strategy, plugin_name: str) -> RetargetStrategy:
    name = getattr(strategy, "name", None)
    problems = []
    if not isinstance(name, str) or not STRATEGY_NAME_PATTERN.fullmatch(name):
        problems.append(f"its name {name!r} does not start with a lower-case letter followed only by lower-case "
                        "letters, digits, '_' and '-'")
    elif name in RESERVED_STRATEGY_NAMES:
        problems.append(f"its name '{name}' is reserved (--strategy {name} picks a built-in strategy)")
    description = getattr(strategy, "description", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        problems.append(f"its description is {description!r}, not one line of text")
    for switch in OPTIONAL_SWITCHES:
        value = getattr(strategy, switch, True)
        if not isinstance(value, (bool, numbers.Integral, np.bool_)) or value not in (0, 1):
            problems.append(f"its {switch} is {value!r}, not True or False")
    if not callable(getattr(strategy, "retarget", None)):
        problems.append("it has no retarget() method")
    if problems:
        raise VExpressError(
            f"The plugin '{plugin_name}' registered an invalid retarget strategy: {'; '.join(problems)}.",
            why="A strategy needs a name, a one-line description and retarget(reference_kps, driving_kps, num_frames).",
            fix="Update or uninstall that plugin; `vexpress docs plugins` describes the protocol.",
        )
    return strategy
