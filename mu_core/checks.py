"""Validation primitives: each checks one value and raises a one-line ``ConfigError`` that names
the field and says what is allowed. Profiles, method parameters and notebook parameters use them.
"""
from __future__ import annotations

import math

from .errors import ConfigError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


class Num:
    """A number in an interval: ``Num(lo=0, lo_open=True)`` is a positive real, ``Num(1, integer=True)``
    an integer >= 1. NaN is never allowed; infinity only with ``inf=True``."""

    def __init__(self, lo=None, hi=None, *, lo_open=False, hi_open=False, integer=False, inf=False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.integer, self.inf = integer, inf

    def allowed(self) -> str:
        kind = "an integer" if self.integer else ("a number" if self.inf else "a finite number")
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def __call__(self, field: str, v):
        ok = _is_int(v) if self.integer else _is_real(v)
        if ok and not self.integer:
            ok = not math.isnan(v) and (self.inf or math.isfinite(v))
        if ok and self.lo is not None:
            ok = v > self.lo if self.lo_open else v >= self.lo
        if ok and self.hi is not None:
            ok = v < self.hi if self.hi_open else v <= self.hi
        if not ok:
            what = f"{v!r} (a string)" if isinstance(v, str) else repr(v)
            raise ConfigError(f"{field} must be {self.allowed()}, got {what}")
        return v


class Choice:
    """One of a fixed set of values."""

    def __init__(self, *allowed):
        self.allowed = allowed

    def __call__(self, field: str, v):
        if isinstance(v, bool) and not any(isinstance(a, bool) for a in self.allowed) or v not in self.allowed:
            raise ConfigError(f"{field} {v!r} is unknown; allowed: {', '.join(map(str, self.allowed))}")
        return v


class Bool:
    def __call__(self, field: str, v):
        if not isinstance(v, bool):
            raise ConfigError(f"{field} must be true or false, got {v!r}")
        return v


class Text:
    """A string (``optional``: or None)."""

    def __init__(self, optional=False, nonempty=False):
        self.optional, self.nonempty = optional, nonempty

    def __call__(self, field: str, v):
        if v is None and self.optional:
            return v
        if not isinstance(v, str) or (self.nonempty and not v):
            what = "a non-empty string" if self.nonempty else "a string"
            raise ConfigError(f"{field} must be {what}{' or null' if self.optional else ''}, got {v!r}")
        return v


class ListOf:
    """A list whose items pass ``item``; ``unique``: no item twice; ``ascending``: sorted, strictly."""

    def __init__(self, item, *, nonempty=False, unique=True, ascending=False):
        self.item, self.nonempty, self.unique, self.ascending = item, nonempty, unique, ascending

    def __call__(self, field: str, v):
        if not isinstance(v, list) or (self.nonempty and not v):
            raise ConfigError(f"{field} must be a {'non-empty ' if self.nonempty else ''}list, got {v!r}")
        for x in v:
            self.item(field, x)
        if self.unique and len({repr(x) for x in v}) != len(v):
            twice = sorted({repr(x) for x in v if sum(repr(y) == repr(x) for y in v) > 1})
            raise ConfigError(f"{field} lists {', '.join(twice)} more than once; each may appear once")
        if self.ascending and any(b <= a for a, b in zip(v, v[1:])):
            raise ConfigError(f"{field} must be in strictly ascending order, got {v!r}")
        return v


class Optional:
    """A field a section may lack (e.g. ``model.hidden`` exists only for the MLP)."""

    def __init__(self, check):
        self.check = check


def section(field: str, v, schema: dict, free=None) -> dict:
    """Check a mapping against ``schema`` {name: check or nested dict}: every required field
    present, no unknown field, each value valid. ``free``: a check for the keys of a mapping whose
    keys are not fixed (e.g. datasets), given as (key_check, value_check)."""
    where = field or "the profile"
    if not isinstance(v, dict):
        raise ConfigError(f"{where} must be a mapping (a section of fields), got {v!r}")
    if free is not None:
        key_check, value_check = free
        for k, x in v.items():
            key_check(field, k)
            _apply(f"{field}.{k}", x, value_check)
        return v
    unknown = [k for k in v if k not in schema]
    if unknown:
        raise ConfigError(f"{where} has no field {unknown[0]!r}; fields there: {', '.join(schema)}")
    missing = [k for k, c in schema.items() if k not in v and not isinstance(c, Optional)]
    if missing:
        raise ConfigError(f"{where} lacks the field(s) {', '.join(missing)}; set one field with "
                          f"{(field + '.') if field else ''}{missing[0]}=VALUE rather than replacing the section")
    for k, x in v.items():
        c = schema[k]
        _apply(f"{field}.{k}" if field else k, x, c.check if isinstance(c, Optional) else c)
    return v


def _apply(field, v, check):
    if isinstance(check, dict):
        return section(field, v, check)
    if isinstance(check, tuple):  # (key_check, value_check): a mapping with free keys
        return section(field, v, {}, free=check)
    return check(field, v)


# Bounds every domain's profile shares, which keep a plan within one machine: a seed that torch and
# numpy both take, grids and batches a run can hold.
SEED = Num(0, 2**31 - 1, integer=True)
SEEDS = Num(1, 1000, integer=True)          # I and J of a design
BATCH, EPOCHS = Num(1, 2**20, integer=True), Num(1, 10_000, integer=True)
