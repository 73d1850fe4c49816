"""A method's record, the one type every domain's method table is made of (a leaf: it imports
nothing of ``mu_core``, so the domains' packages and ``domains`` can all import it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Method:
    """A method's record in its domain's method table (``images.methods.METHODS``,
    ``ltr.engine.METHODS``, ``lm.engine.METHODS``)."""
    fn: Callable
    label: str             # for figures and tables
    deterministic: bool    # run once per original model, whatever s_u
    version: int           # bump when the code changes what it computes: cached results recompute
    params: dict           # the schema of its hyper-parameters in the profile
    reference_retain_batch: str | None = None  # see unsir below
    role: str = "method"   # 'original' (M_o unchanged: a reference row, never ranked), 'gold' (the
                           # gold standard whose quartiles pages draw: Retrain), 'method'
    chapter: str = "paper" # the chapter that introduces it: 'paper', 'deepunlearn', 'ltr', 'lm'
    reads: dict = field(default_factory=dict)  # for the cost projection: {"retain" | "forget":
                           # "recipe" (the original's epochs) or the parameter holding its epochs}
    conv_only: bool = False      # defined on convolutions: on a network without any it runs as an analogue
    random_forget: bool = True   # can forget random samples (U-LiRA); False: it needs a forgotten class


def with_role(table: dict, role: str) -> list[str]:
    """The names of a method table's methods with ``role``, in table order."""
    return [m for m, rec in table.items() if rec.role == role]
