"""Reading and checking one setting's value, whichever source gave it."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from wsh.config.model import ConfigError, Invalid
from wsh.config.settings import BY_NAME, FALSE_WORDS, LOG_LEVELS, SETTINGS, TRUE_WORDS, Setting
from wsh.names import is_valid_hostname
from wsh.text import quote

# --- Values -------------------------------------------------------------------


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date or time"
    return type(value).__name__


_EXPECTED = {
    "text": "a string",
    "hostname": "a string",
    "path": "a string",
    "level": "a string",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
}


def _from_text(setting: Setting, text: str) -> object:
    """A flag's or variable's text as the setting's type."""
    if setting.type == "bool":
        word = text.strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        raise Invalid(f"{quote(text)} is not a boolean (1, true, yes, on, 0, false, no, off)")
    if setting.type in ("int", "float"):
        try:
            return int(text) if setting.type == "int" else float(text)
        except ValueError:
            raise Invalid(f"{quote(text)} is not {_EXPECTED[setting.type]}") from None
    return text


def check_value(setting: Setting, value: object, base: Path | None) -> object:
    """``value`` (typed) checked against the setting's rules; paths resolved
    against ``base`` (the config file's directory) when given."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": number and isinstance(value, int),
        "float": number,
    }.get(setting.type, isinstance(value, str))
    if not ok:
        raise Invalid(f"must be {_EXPECTED[setting.type]}, not {type_name(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise Invalid("must be a finite number")
        if setting.minimum is not None and value < setting.minimum:
            raise Invalid(f"must be at least {setting.minimum:g}")
        return float(value) if setting.type == "float" else value
    if not isinstance(value, str):
        return value
    if setting.type == "hostname" and not is_valid_hostname(value):
        raise Invalid(
            f"{quote(value)} is not a valid hostname "
            "(RFC 1123: labels of letters, digits and '-', at most 253 characters)"
        )
    if setting.choices is not None and value not in setting.choices:
        raise Invalid(f"{quote(value)} is not one of {', '.join(setting.choices)}")
    if setting.type == "level":
        if value.upper() not in LOG_LEVELS:
            raise Invalid(f"{quote(value)} is not one of {', '.join(LOG_LEVELS)}")
        return value.upper()
    if setting.type == "path":
        path = Path(value).expanduser()
        return base / path if base is not None else path
    return value


def given(values: Mapping[str, object | None], source: Literal["flag", "env"]) -> dict[str, object]:
    """The flags or variables given, typed and checked; an empty one is unset."""
    out: dict[str, object] = {}
    for name, raw in values.items():
        if raw is None or raw == "":
            continue
        setting = BY_NAME[name]
        where = setting.flag if source == "flag" else setting.env
        assert where is not None
        try:
            value = _from_text(setting, raw) if isinstance(raw, str) else raw
            out[name] = check_value(setting, value, None)
        except Invalid as exc:
            raise ConfigError(where, str(exc)) from None
    return out


def env_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings' variables present in ``environ``, by setting name."""
    return {s.name: environ[s.env] for s in SETTINGS if s.env is not None and s.env in environ}
