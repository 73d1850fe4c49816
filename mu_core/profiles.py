"""Profiles: YAML files in ``mu_core/profiles/``, overridable field by field, validated up front.

A profile may ``extends: OTHER`` and give only what differs. Every field is checked against
``schema`` (method parameters against their method's record in ``methods.METHODS``); a bad value
raises a one-line ``ConfigError`` naming the field and what is allowed, before any data is loaded
or any model trained.
"""
from __future__ import annotations

import copy
import os
import re

import yaml

from . import domains
from .plan import design_methods, j_cap
from .checks import SEED, SEEDS, Choice, ListOf, Num, Optional, Text, section
from .errors import ConfigError

HERE = os.path.join(os.path.dirname(__file__), "profiles")
MODES = ("reference", "corrected")
DESIGNS = ("paper", "grid")  # the designs every domain runs (an engine's DESIGNS may add its own)
MAX_ROWS = 2_000_000                        # rows of results.csv a plan may have
FREE_KEYS = ("targets", "grid_targets", "j_per_method", "train.epochs", "train.milestones")


def names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".yaml"))


def _read(name: str, seen=()) -> dict:
    if name not in names():
        raise ConfigError(f"profile {name!r} is unknown; allowed: {', '.join(names())}")
    if name in seen:
        raise ConfigError(f"profile {name!r} extends itself through {' -> '.join(seen)}")
    with open(os.path.join(HERE, name + ".yaml")) as f:
        prof = yaml.safe_load(f)
    parent = prof.pop("extends", None)
    return _merge(_read(parent, (*seen, name)), prof) if parent else prof


def _merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``; sections merge field by field."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and v else copy.deepcopy(v)
    return out


def load(name: str, overrides=()) -> dict:
    """The profile ``name`` with ``overrides`` applied and validated.

    ``overrides``: a mapping {dotted field: value}; a list of strings ``field=value`` (YAML
    values); or one string holding either a mapping ('{"mode": "corrected"}') or ``field=value``.
    """
    prof = _read(name)
    prof["profile"] = name
    for field, value in parse_overrides(overrides):
        set_field(prof, field, value)
    for key in ("targets", "grid_targets"):  # a target is a class name: 3 and '3' are one target
        if isinstance(prof.get(key), dict):
            prof[key] = {k: [str(t) for t in v] if isinstance(v, list) else v for k, v in prof[key].items()}
    validate(prof)
    return prof


def parse_overrides(overrides) -> list[tuple[str, object]]:
    """[(field, value)] from any accepted form of ``overrides``."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        text = overrides.strip()
        if text.startswith("{"):
            overrides = _yaml(text, "overrides")
            if not isinstance(overrides, dict):
                raise ConfigError(f"overrides {text!r} must be a mapping of field: value")
        else:
            overrides = [text] if text else []
    if isinstance(overrides, dict):
        for k in overrides:
            if not isinstance(k, str) or not k:
                raise ConfigError(f"overrides: field names must be non-empty strings, got {k!r}")
        return list(overrides.items())
    if not isinstance(overrides, (list, tuple)):
        raise ConfigError(f"overrides must be a mapping or a list of field=value, got {overrides!r}")
    return [_parse(o) for o in overrides]


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _yaml(text: str, what: str):
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{what}: {text!r} is not valid YAML ({first})") from None
    if isinstance(value, str) and _NUMBER.match(value.strip()) and not text.strip()[:1] in ("'", '"'):
        return float(value)  # YAML 1.1 reads 1e-3 as a string; a number is meant (unless quoted)
    return value


def _parse(text) -> tuple[str, object]:
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"overrides: {text!r} must look like field=value (e.g. train.epochs.mnist10=5)")
    field, value = text.split("=", 1)
    if not field.strip():
        raise ConfigError(f"overrides: {text!r} has no field name before '=' (e.g. train.epochs.mnist10=5)")
    return field.strip(), _yaml(value, f"override {field.strip()}")


def set_field(prof: dict, field: str, value) -> None:
    """Set a dotted field that the profile already has; anything else is refused."""
    keys = field.split(".")
    if keys[0] == "profile":
        raise ConfigError(f"override {field!r}: the profile is chosen with --profile NAME (a notebook's profile "
                          f"parameter), not overridden; profiles: {', '.join(names())}")
    if keys[0] == "domain":
        raise ConfigError(f"override {field!r}: domain is fixed by the profile ({prof.get('profile')!r} is a "
                          f"{domains.of(prof)} profile); choose a profile of another domain instead")
    node = prof
    for i, k in enumerate(keys):
        free = ".".join(keys[:i]) in FREE_KEYS and isinstance(node, dict) and i == len(keys) - 1
        if not isinstance(node, dict) or (k not in node and not free) or k == "profile":
            where = ".".join(keys[:i]) or "the profile"
            have = ", ".join(map(str, node)) if isinstance(node, dict) else "(not a mapping)"
            raise ConfigError(f"override {field!r}: {where} has no field {k!r}; fields there: {have}")
        if i == len(keys) - 1:
            node[k] = copy.deepcopy(value)
        node = node[k]


class _JCap:
    """J for one method: a number (both designs) or {paper: n, grid: n} (the designs named); 0
    leaves the method out of that design."""
    CAP = Num(0, 1000, integer=True)

    def __call__(self, field, v):
        if isinstance(v, dict):
            return section(field, v, {d: Optional(self.CAP) for d in DESIGNS})
        return self.CAP(field, v)


def schema(prof: dict) -> dict:
    """The fields of a profile and what each allows: those every domain shares (mode, designs,
    seeds, methods and their parameters), then its engine's (``schema`` of ``images.engine``,
    ``ltr.engine``, ``lm.engine``). A profile naming no known domain is checked as an image
    profile, so that its ``domain`` field is the one refused."""
    engine = domains.engine(prof) if prof.get("domain", "images") in domains.DOMAINS else domains.engine_of("images")
    methods = engine.METHODS
    return {
        "description": Text(), "profile": Text(), "domain": Optional(Choice(*domains.DOMAINS)),
        "mode": Choice(*MODES), "designs": ListOf(Choice(*engine.DESIGNS), nonempty=True),
        "paper": {"I": SEEDS, "J": SEEDS, "a_train_seed": SEED, "a_first_unlearn_seed": SEED,
                  "b_first_train_seed": SEED},
        "grid": {"I": SEEDS, "J": SEEDS},
        "methods": ListOf(Choice(*methods), nonempty=True),
        "j_per_method": (Choice(*methods), _JCap()),
        "method_params": {m: Optional(rec.params) for m, rec in methods.items()},
        **engine.schema(prof),
    }


def validate(prof: dict) -> None:
    section("", prof, schema(prof))
    engine = domains.engine(prof)
    engine.validate(prof)
    p = prof["paper"]
    if p["b_first_train_seed"] <= p["a_train_seed"] < p["b_first_train_seed"] + p["I"]:
        raise ConfigError(f"paper.a_train_seed {p['a_train_seed']} must lie outside protocol B's "
                          f"training seeds {p['b_first_train_seed']}..{p['b_first_train_seed'] + p['I'] - 1}")
    if not [d for d in prof["designs"] if d == "ulira" or prof["targets" if d == "paper" else "grid_targets"]]:
        raise ConfigError("targets (paper design) and grid_targets (grid design) name no target "
                          "for the designs listed in designs")
    n = planned_rows(prof)
    if n == 0:  # name each design's reason: its targets, or its methods outside methods
        empty = [f"{d}.methods ({', '.join(prof[d]['methods'])}) names no method that methods "
                 f"({', '.join(prof['methods'])}) lists" for d in ("init_order", "ulira")
                 if d in prof["designs"] and not design_methods(prof, d)]
        raise ConfigError("the profile plans no job: " + "; ".join(empty or [
            "every target list of its designs is empty; name at least one target in targets (paper design) "
            "or grid_targets (grid design)"]))
    if n > MAX_ROWS:
        raise ConfigError(f"the profile plans {n:,} rows, more than the {MAX_ROWS:,} one run may hold; "
                          f"lower paper.I/J, grid.I/J or the number of targets and methods")
    last = max(p["a_first_unlearn_seed"] + p["J"], p["b_first_train_seed"] + p["I"])
    if last > SEED.hi:
        raise ConfigError(f"paper seeds run up to {last}, beyond {SEED.hi}; lower paper.a_first_unlearn_seed "
                          f"or paper.b_first_train_seed")
    for m in prof["methods"]:
        if engine.METHODS[m].params and m not in prof["method_params"]:
            raise ConfigError(f"method_params.{m} is missing; method {m} needs the fields "
                              f"{', '.join(engine.METHODS[m].params)}")


def planned_rows(prof: dict) -> int:
    """How many rows the designs of ``prof`` plan (counted, not listed: a huge plan is refused
    before it is built)."""
    n = 0
    for design in prof["designs"]:
        cfg = prof[design]
        targets = prof["targets"] if design == "paper" else prof["grid_targets"]
        n_targets = sum(len(ts) for ts in (targets or {}).values())
        if design == "init_order":
            n += n_targets * len(design_methods(prof, design)) * cfg["inits"] * cfg["orders"] * cfg["J"]
            continue
        if design == "ulira":
            n += len(design_methods(prof, design)) * cfg["K"]
            continue
        for m in prof["methods"]:
            Jm = j_cap(prof, m, design)
            if Jm == 0:  # not in this design
                continue
            n += n_targets * (Jm + cfg["I"] if design == "paper" else cfg["I"] * Jm)
    return n


def describe() -> str:
    """The profiles and their fields, for ``python -m mu_core profiles``."""
    out = []
    for n in names():
        prof = load(n)
        out.append(f"{n}: {prof['description']}")
        out.append("  fields: " + ", ".join(_fields(prof)))
    return "\n".join(out)


def _fields(node, prefix=""):
    for k, v in node.items():
        if k in ("description", "profile"):
            continue
        if isinstance(v, dict) and v:
            yield from _fields(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}={v!r}" if not isinstance(v, (list, dict)) else f"{prefix}{k}"
