"""Compute one unlearning job of the trust tests' small grid and print its metrics as JSON.

``python tests/one_job.py RUN_DIR MODE METHOD [ADVANCE]``: run in a fresh process, the job is the
first thing that process computes; ADVANCE > 0 first draws that many numbers from torch's,
numpy's and Python's global generators.
"""
import json
import random
import sys

import numpy as np
import torch

from mu_core import plan, profiles
from mu_core.images import data as D, methods as M
from mu_core.images import engine as IE

METHODS = list(M.METHODS)
OVERRIDES = {"designs": ["grid"], "targets": {}, "grid_targets": {"mnist5/sub_class": ["7"]},
             "grid.I": 1, "grid.J": 1, "methods": METHODS}


def profile(mode):
    return profiles.load("smoke", {**OVERRIDES, "mode": mode})


def advance(n):
    torch.rand(n), np.random.rand(n), [random.random() for _ in range(n)]
    torch.manual_seed(n)  # and reseeded, as other code in a process might


def compute(run_dir, mode, method, n=0):
    """The stored form of one job's result (without its timing), computed in this process."""
    prof = profile(mode)
    _, tspecs, groups = plan.schedule(prof)
    (tkey, jobs), = groups.items()
    job = next(j for j in jobs if j["method"] == method)
    device, data = IE.context(prof)
    model, _ = IE.original_model(tspecs[tkey], run_dir, data, device)
    split = D.make_split(data, tspecs[tkey]["dataset"], job["setting"], job["target"])
    if n:
        advance(n)
    out = IE.run_job(model, split, job, M.Context(mode, tspecs[tkey]["recipe"], prof["model"]), device)
    out.pop("method_seconds"), out.pop("computed")
    return job["key"], out


def first_in_process(run_dir, mode, method):
    """(this process's id, ``compute``'s result): for a pool whose every task is a new process."""
    import os
    return os.getpid(), compute(run_dir, mode, method)


if __name__ == "__main__":
    key, out = compute(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    print(json.dumps({"key": key, "result": out}))
