"""Profiles: YAML files in ``mu_core/profiles/``, overridable field by field, validated up front.

Every check raises ``ConfigError`` with the parameter's name and what is allowed, before any
data is loaded or any model trained.
"""
from __future__ import annotations

import copy
import os

import yaml

from . import data as D
from .errors import ConfigError
from .methods import METHODS

HERE = os.path.join(os.path.dirname(__file__), "profiles")
MODES = ("reference", "corrected")
DEVICES = ("auto", "cpu", "cuda")
DESIGNS = ("paper", "grid")


def names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".yaml"))


def load(name: str, overrides=()) -> dict:
    """The profile ``name`` with ``overrides`` applied and validated.

    ``overrides``: strings ``field=value`` (dotted fields, YAML values) or a dict {field: value}.
    """
    if name not in names():
        raise ConfigError(f"profile {name!r} is unknown; allowed: {', '.join(names())}")
    with open(os.path.join(HERE, name + ".yaml")) as f:
        prof = yaml.safe_load(f)
    prof["profile"] = name
    items = overrides.items() if isinstance(overrides, dict) else [_parse(o) for o in overrides]
    for field, value in items:
        set_field(prof, field, value)
    validate(prof)
    return prof


def _parse(text: str):
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like field=value (e.g. train.epochs.mnist10=5)")
    field, value = text.split("=", 1)
    return field.strip(), yaml.safe_load(value)


def set_field(prof: dict, field: str, value) -> None:
    """Set a dotted field that the profile already has; anything else is refused."""
    keys = field.split(".")
    node = prof
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node or k == "profile":
            where = ".".join(keys[:i]) or "the profile"
            have = ", ".join(map(str, node)) if isinstance(node, dict) else "(not a mapping)"
            raise ConfigError(f"override {field!r}: {where} has no field {k!r}; fields there: {have}")
        if i == len(keys) - 1:
            node[k] = copy.deepcopy(value)
        node = node[k]


def _int(prof, path: str, lo: int = 1):
    node = prof
    for k in path.split("."):
        node = node[k]
    if isinstance(node, bool) or not isinstance(node, int) or node < lo:
        raise ConfigError(f"{path} must be an integer >= {lo}, got {node!r}")
    return node


def _choice(value, field: str, allowed):
    if value not in allowed:
        raise ConfigError(f"{field} {value!r} is unknown; allowed: {', '.join(map(str, allowed))}")


def validate(prof: dict) -> None:
    _choice(prof["mode"], "mode", MODES)
    _choice(prof["device"], "device", DEVICES)
    if not isinstance(prof.get("deterministic", False), bool):
        raise ConfigError(f"deterministic must be true or false, got {prof['deterministic']!r}")
    src = prof["data"]["source"]
    _choice(src, "data.source", list(D.SETTINGS))
    if src == "mnist5k":
        _int(prof, "data.image_size")
    _choice(prof["model"]["arch"], "model.arch", ("resnet18", "mlp"))
    if not isinstance(prof["designs"], list) or not prof["designs"]:
        raise ConfigError(f"designs must be a non-empty list of {', '.join(DESIGNS)}")
    for d in prof["designs"]:
        _choice(d, "designs", DESIGNS)
    for d in ("paper", "grid"):
        _int(prof, f"{d}.I")
        _int(prof, f"{d}.J")
    for k in ("a_train_seed", "a_first_unlearn_seed", "b_first_train_seed"):
        _int(prof, f"paper.{k}", 0)
    p = prof["paper"]
    if p["b_first_train_seed"] <= p["a_train_seed"] < p["b_first_train_seed"] + p["I"]:
        raise ConfigError(f"paper.a_train_seed {p['a_train_seed']} must lie outside protocol B's "
                          f"training seeds {p['b_first_train_seed']}..{p['b_first_train_seed'] + p['I'] - 1}")
    if not isinstance(prof["methods"], list) or not prof["methods"]:
        raise ConfigError(f"methods must be a non-empty list of {', '.join(METHODS)}")
    for m in prof["methods"]:
        _choice(m, "methods", list(METHODS))
    for m, j in (prof.get("j_per_method") or {}).items():
        _choice(m, "j_per_method", list(METHODS))
        _int(prof, f"j_per_method.{m}")
    datasets = set()
    for field in ("targets", "grid_targets"):
        for key, targets in (prof[field] or {}).items():
            _choice(key, field, D.SETTINGS[src])
            if not isinstance(targets, list):
                raise ConfigError(f"{field}.{key} must be a list of class names")
            ds, setting = key.split("/")
            for t in targets:
                D.target_index(ds, setting, t)
            datasets.add(ds)
    used = [d for d in prof["designs"] if prof["targets" if d == "paper" else "grid_targets"]]
    if not used:
        raise ConfigError("targets (paper design) and grid_targets (grid design) name no target "
                          "for the designs listed in designs")
    tr = prof["train"]
    _choice(tr["optimizer"], "train.optimizer", ("sgd", "adam"))
    _choice(tr.get("amp"), "train.amp", (None, "bf16"))
    if not isinstance(tr.get("channels_last", False), bool):
        raise ConfigError(f"train.channels_last must be true or false, got {tr['channels_last']!r}")
    _int(prof, "train.batch")
    for ds in datasets:
        for field in ("epochs", "milestones"):
            if ds not in tr[field]:
                raise ConfigError(f"train.{field} has no entry for dataset {ds}")
        _int(prof, f"train.epochs.{ds}")
    if isinstance(tr["lr"], bool) or not isinstance(tr["lr"], (int, float)) or tr["lr"] <= 0:
        raise ConfigError(f"train.lr must be a positive number, got {tr['lr']!r}")


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


def check(name: str, value, kind, minimum=None, allowed=None, optional: bool = False):
    """Validate one notebook or command-line parameter; ConfigError names it and what is allowed.

    ``kind``: a type or tuple of types (bool is never accepted as a number); ``minimum``: the
    smallest allowed value; ``allowed``: the allowed values; ``optional``: None is allowed.
    """
    if value is None and optional:
        return value
    numeric = kind in (int, float) or (isinstance(kind, tuple) and set(kind) <= {int, float})
    if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"parameter {name} must be {'None or ' if optional else ''}{names}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"parameter {name} must be >= {minimum}, got {value!r}")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"parameter {name} {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
    return value
