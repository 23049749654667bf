"""Argument types and defaults shared by both clients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias, TypedDict

from wsh.v1 import hub_pb2, types_pb2

DEFAULT_IDLE_MS = 500
"""Quiet time, in milliseconds, after which :meth:`Client.run` calls a session idle."""

_FORMATS = {"plain": types_pb2.SCREEN_FORMAT_PLAIN, "styled": types_pb2.SCREEN_FORMAT_STYLED}

# A string because ScreenFormat is an enum wrapper object at run time, not a type.
ScreenFormatArg: TypeAlias = "str | types_pb2.ScreenFormat.ValueType"
"""``"plain"``, ``"styled"`` or a ``types_pb2.ScreenFormat`` value."""


def screen_format(value: ScreenFormatArg) -> types_pb2.ScreenFormat.ValueType:
    """Map ``"plain"``/``"styled"`` (any case) or an enum value to ``ScreenFormat``."""
    if isinstance(value, str):
        try:
            return _FORMATS[value.lower()]
        except KeyError:
            raise ValueError(f"unknown screen format {value!r}: use 'plain' or 'styled'") from None
    return value


_MODES = {"quiet": hub_pb2.IDLE_MODE_QUIET, "ready": hub_pb2.IDLE_MODE_READY}

IdleModeArg: TypeAlias = "str | hub_pb2.IdleMode.ValueType"
"""``"quiet"``, ``"ready"`` or a ``hub_pb2.IdleMode`` value: when a wait counts a
session as settled (no output for ``timeout_ms``, or its foreground program
waits for input)."""


def idle_mode(value: IdleModeArg) -> hub_pb2.IdleMode.ValueType:
    """Map ``"quiet"``/``"ready"`` (any case) or an enum value to ``IdleMode``."""
    if isinstance(value, str):
        try:
            return _MODES[value.lower()]
        except KeyError:
            raise ValueError(f"unknown idle mode {value!r}: use 'quiet' or 'ready'") from None
    return value


def as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


ExclusionArg: TypeAlias = "types_pb2.Idle | hub_pb2.RaceExclusion | tuple[str, str, int]"
"""A session a race skips until its generation moves past the one given: an
``Idle`` a race or wait returned, a ``hub_pb2.RaceExclusion``, or a
``(server, session, generation)`` tuple (``server`` ``""``: found by name)."""


def exclusions(values: Iterable[ExclusionArg]) -> list[hub_pb2.RaceExclusion]:
    """``RaceExclusion`` messages for ``exclude``; a value of another shape is a
    ``TypeError`` here rather than a confusing one from protobuf."""
    out = []
    for value in values:
        if isinstance(value, hub_pb2.RaceExclusion):
            out.append(value)
        elif isinstance(value, types_pb2.Idle):
            out.append(
                hub_pb2.RaceExclusion(
                    server=value.server, session=value.session, generation=value.generation
                )
            )
        elif isinstance(value, tuple) and len(value) == 3:
            server, session, generation = value
            out.append(hub_pb2.RaceExclusion(server=server, session=session, generation=generation))
        else:
            raise TypeError(
                f"cannot exclude {value!r}: pass an Idle, a RaceExclusion or a "
                "(server, session, generation) tuple"
            )
    return out


class RaceOptions(TypedDict, total=False):
    """Keyword arguments of ``race_idle``, as ``race_first`` takes them."""

    tags: Iterable[str]
    server: str
    timeout_ms: int
    max_wait_ms: int
    last_session: str
    last_server: str
    last_generation: int | None
    exclude: Iterable[ExclusionArg]
    fresh: bool
    format: ScreenFormatArg
    mode: IdleModeArg
    timeout: float | None
