"""What every domain's job shares: the per-process settings, and one timed unlearning job.

A job's only randomness is a generator seeded by its s_u (0 for a deterministic method, which
draws nothing), so its result depends on the trained model, the data, the method's parameters and
s_u alone. Its seconds are read from ``provenance.clock`` (the thread's CPU time on the CPU), the
method alone, without its evaluation. A result whose numbers are not finite is recorded as failed
with empty metrics (``NonFinite``), never as a number.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from . import provenance
from .errors import ConfigError


class NonFinite(ValueError):
    """An evaluation met non-finite outputs: the model diverged, and the job has no metrics."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use device=auto or cpu")
    return torch.device(name)


def setup(prof: dict, device) -> None:
    """Per-process settings every task applies first.

    CPU jobs run single-threaded: results then do not depend on the executor or on how many
    jobs share the machine (parallelism comes from processes), and two torch processes never
    oversubscribe the cores (which slowed a 2-core run about 30-fold). ``deterministic``
    (the reference seeded cuDNN deterministic with benchmarking off) enforces deterministic
    GPU kernels.
    """
    if device.type == "cpu" and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if prof.get("deterministic"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=False)


def timed(unlearn, unlearn_seed, device=torch.device("cpu"), numpy: bool = False):
    """(what ``unlearn(gen)`` returns, the seconds it took): ``gen`` a torch generator (a numpy one
    with ``numpy``) seeded by ``unlearn_seed`` (0 when None: a deterministic method draws nothing)."""
    gen = np.random.default_rng(unlearn_seed or 0) if numpy else torch.Generator().manual_seed(unlearn_seed or 0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = provenance.clock(device)
    sync()
    t0 = clock()
    out = unlearn(gen)
    sync()
    return out, clock() - t0


def record(evaluate, seconds: float, metrics, device=torch.device("cpu")) -> dict:
    """A job's stored result in any domain: ``evaluate()`` ({"status", metric: value}; an
    evaluation that raises ``NonFinite`` gives the status ``failed: ...`` and every one of
    ``metrics`` empty), the method's ``seconds`` (``timed``) and the provenance of this computation."""
    try:
        result = evaluate()
    except NonFinite as err:
        result = {"status": f"failed: {err}", **{k: None for k in metrics}}
    return {**result, "method_seconds": seconds, "computed": provenance.stamp(device)}
