"""Keyword arguments of a job call that are neither its own nor a generation setting: named, with the closest."""

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
    own = [name for name, parameter in inspect.signature(call).parameters.items()
           if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and name != "self"]
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
