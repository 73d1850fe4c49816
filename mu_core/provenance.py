"""Who computed a result: the commit, date, package versions and device, stamped on every stored
model and result when it is computed (never when it is read back), and summarised for a page.
"""
from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import sys


@functools.lru_cache(maxsize=1)
def commit() -> str | None:
    """The git commit of the code in use (with ``+dirty`` when the work tree has edits), or None."""
    here = os.path.dirname(__file__)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=10).stdout.strip()
        if not head:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, cwd=here, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    """Installed versions of what shapes a result (read from metadata: nothing heavy is imported)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "scipy", "statsmodels"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device_name(device) -> str:
    import torch
    if getattr(device, "type", device) == "cuda":
        return torch.cuda.get_device_name(0)
    return cpu_name()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


# the settings that choose a numerical path on a CPU: results computed on two paths agree only
# within the tolerance that benchmarks/portability.py measures (the README says how far)
NUMERIC_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
               "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")


def numerics() -> dict:
    """The processor and numerical path of this process: ATen's vector capability, MKL's and
    OpenBLAS's versions, and the environment settings that change their code paths."""
    import numpy as np
    import torch
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {"processor": cpu_name(), "machine": platform.machine(),
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
            "numpy_blas": f"{blas.get('name')} {blas.get('version')}",
            "environment": {k: os.environ[k] for k in NUMERIC_ENV if k in os.environ}}


def clock(device=None):
    """The clock a job's or a training's seconds are read from: on the CPU the thread's CPU time (a
    job runs on one thread, so this is its CPU cost, whatever else shares the cores); on a GPU wall
    time (the kernels run off the thread)."""
    import time
    return time.perf_counter if getattr(device, "type", "cpu") == "cuda" else time.thread_time


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def stamp(device) -> dict:
    """What a stored model or result records about the computation that made it."""
    return {"commit": commit(), "date": now(), "device": device_name(device), "versions": versions()}


def short(c: str | None) -> str:
    if not c:
        return "unknown"
    return c[:10] + ("+dirty" if c.endswith("+dirty") else "")


def summary(commits, dates) -> str:
    """'computed at commit X on D' or 'computed at commits X, Y between D1 and D2': the commits
    and dates of the results a page draws (one entry per result)."""
    cs = sorted({short(c) for c in commits})
    ds = sorted(d for d in dates if isinstance(d, str) and d)
    when = "" if not ds else (f" on {ds[0][:10]}" if ds[0][:10] == ds[-1][:10] else f" between {ds[0][:10]} and {ds[-1][:10]}")
    if not cs:
        return "computed at an unrecorded commit"
    return (f"computed at commit {cs[0]}" if len(cs) == 1 else f"computed at commits {', '.join(cs)}") + when
