"""What every doctor check shares: the :class:`Check` row, the options, the context and text helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vexpress_cli.errors import Message, VExpressError
from vexpress_cli.errors import join_messages as join  # the doctor's name for it
from vexpress_cli.wording import plural

Status = Literal["ok", "warning", "failure"]
OK: Status = "ok"
WARNING: Status = "warning"
FAILURE: Status = "failure"
SEVERITY = {OK: 0, WARNING: 1, FAILURE: 2}

DOWNLOAD_FIX = "Run `vexpress models download` (it fetches only the missing files)."
TORCH_INSTALL_URL = "https://pytorch.org/get-started/locally/"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable extras for --json

    def __post_init__(self):
        # Python callers read setting names; the CLI and the web app spell the references their way.
        object.__setattr__(self, "detail", Message(self.detail))
        object.__setattr__(self, "fix", Message(self.fix))
        object.__setattr__(self, "data", {key: Message(value) if isinstance(value, str) else value
                                          for key, value in self.data.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorOptions:
    model_dir: Path | None = None  # as --model-dir; None: the usual lookup
    model: str | None = None  # as --model: a hub id or a folder
    device: str | None = None  # None: what generate would use, the user config's device, else auto
    deep: bool = False  # compare every checkpoint tensor with the architecture
    smoke: bool = False  # run a one-second generation with the tiny model
    tiny_model_dir: Path | None = None  # where the smoke test keeps its tiny model (default: user cache)


def status_counts(checks: Iterable[Check]) -> dict[Status, int]:
    """How many checks ended in each status, in the order ok, warning, failure."""
    statuses = [check.status for check in checks]
    return {status: statuses.count(status) for status in SEVERITY}


def counted(counts: dict[Status, int]) -> dict[Status, str]:
    """Each status's count in words, for a summary: ``17 ok``, ``3 warnings``, ``0 failures``."""
    return {status: f"{count} ok" if status == OK else plural(count, status) for status, count in counts.items()}


def has_failures(checks: Iterable[Check]) -> bool:
    return any(check.status == FAILURE for check in checks)


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=SEVERITY.__getitem__, default=OK)


def guarded(name: str, section: Callable[[DoctorContext], list[Check]], context: DoctorContext) -> list[Check]:
    try:
        return section(context)
    except VExpressError as error:
        return [Check(name, FAILURE, join(error.what, error.why), error.fix)]
    except Exception as error:  # the doctor reports; it never crashes
        return [Check(name, FAILURE, f"The check itself failed: {describe(error)}.",
                      "Run with a fresh virtual environment; if it persists, report it with this message.")]


class DoctorContext:
    """What several checks share: the options, the chosen device, the model folder."""

    def __init__(self, options: DoctorOptions):
        self.options = options
        self.device = None  # torch.device once the device check ran and succeeded
        self.dtype = None  # torch.dtype generate would use on it, once the dtypes check found it usable
        self.model_root: Path | None = None  # once the model folder check found it
        self._configured: dict[str, Any] | None = None

    def configured(self) -> dict[str, Any]:
        """The user config's [generate] settings, as generate reads them; empty when the config is broken (its
        own row says so, once)."""
        if self._configured is None:
            from vexpress_cli.settings.user_config import configured_settings

            try:
                self._configured = configured_settings()
            except VExpressError:
                self._configured = {}
        return self._configured

    def setting(self, name: str) -> tuple[Any, str]:
        """A setting's value as generate would take it here, and its source (explicit, config or default)."""
        from vexpress_cli.settings.user_config import your_setting

        return your_setting(name, getattr(self.options, name, None), self.configured())


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def human_size(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError


def gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f} GiB"

