"""Keyword arguments given to the wrong call: a job call's that are neither its own nor a generation setting, and a
Generator's that belong to each job; each named, with the closest known one."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from vexpress_cli.errors import InputError, did_you_mean
from vexpress_cli.settings.schema import SETTINGS, GenerationSettings


def check_keywords(call: Callable, settings: dict[str, Any], also: tuple[str, ...] = ()) -> None:
    """InputError for the first of ``settings`` (a job call's ``**settings``) that is no generation setting, nor one
    of ``also``, with the closest of the call's own keyword arguments and the settings: ``overwite=True`` was told
    the 30 settings and no 'overwrite'."""
    own = _keyword_names(call)
    for name, value in settings.items():
        if name in SETTINGS or name in also:
            continue
        if isinstance(value, GenerationSettings):
            fix = f"Pass its values as keywords: {call.__name__}(..., **{name}.to_dict())."
        else:
            fix = f"{did_you_mean(name, [*own, *SETTINGS])}Check the name in help({call.__qualname__}).".lstrip()
        raise InputError(f"{call.__qualname__}() got an unknown keyword argument '{name}'.",
                         why=f"Its keywords are its own arguments ({', '.join(own)}) and the generation settings "
                         "(vexpress_cli.SETTINGS).", fix=fix)


def not_a_generator_argument(name: str, job_call: Callable, known: tuple[str, ...]) -> str:
    """Python's own message for an unknown keyword of ``Generator()`` (whose own are ``known``), told where a job's
    setting or argument goes (``Generator(seed=3)``)."""
    if name in SETTINGS or name in _keyword_names(job_call):
        return (f"Generator() got {name!r}, which belongs to each job: the Generator takes only the model, "
                f"device(s) and dtype. Give it to the job: generator.generate(photo, audio, out, {name}=...).")
    return f"Generator() got an unexpected keyword argument {name!r}. {did_you_mean(name, known)}".rstrip()


def _keyword_names(call: Callable) -> list[str]:
    return [name for name, parameter in inspect.signature(call).parameters.items()
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and name != "self"]
