"""What the image pages run beyond the engine: stage 1's table of trained models (notebook 01), the
corrected-mode counterpart of a reference run (notebook 06), and the GPU-hour projection of a
paper-scale run from the recorded GPU benchmark.
"""
from __future__ import annotations

import json
import os

import pandas as pd
from tqdm.auto import tqdm

from .. import domains, plan, store
from ..errors import ConfigError
from ..study import Run, _execute, effective_executor, open_run, prepare, run
from . import data as D
from . import engine as E
from . import metrics


def train_all(profile: str | dict, run_dir: str, overrides=(), progress: bool = True,
              executor: str = "auto", scheduler: str | None = None) -> pd.DataFrame:
    """Stage 1: train (or load) every original model the designs need; their test accuracy."""
    prof, (_, tspecs, _) = prepare(profile, run_dir, overrides, executor, scheduler)
    if domains.of(prof) != "images":
        raise ConfigError(f"train_all (stage 1) trains image models; profile {prof['profile']!r} is a "
                          f"{domains.of(prof)} profile: run it with study.run (python -m mu_core run)")
    untrained = {k: [] for k in tspecs if not os.path.exists(store.model_path(run_dir, k))}
    if untrained and effective_executor(executor) == "dask":  # train in parallel; the loop below then loads
        _execute(prof, run_dir, executor, scheduler, tspecs, untrained)
    device, data = E.context(prof)
    out = []
    for ts in tqdm(tspecs.values(), desc="original models", disable=not progress):
        model, trained = E.original_model(ts, run_dir, data, device, show_epochs=progress)
        _, y_test = D.labels(data, ts["dataset"])
        acc = metrics.accuracy(metrics.logits(model, data.test_x, data), y_test, prof["mode"])
        info = store.model_info(run_dir, ts["key"]) or {}
        made = info.get("computed") or {}
        out.append(dict(dataset=ts["dataset"], train_seed=ts["train_seed"], test_acc=acc,
                        train_seconds=info.get("train_seconds"), trained_now=trained,
                        commit=made.get("commit"), computed_at=made.get("date")))
    return pd.DataFrame(out).sort_values(["dataset", "train_seed"]).reset_index(drop=True)


BENCHMARK_RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks", "results")


def gpu_rate(folder: str = BENCHMARK_RESULTS) -> tuple[float, str] | None:
    """(training images per second, where and when it was measured) for GPU-hour projections: the
    newest GPU benchmark recorded by ``benchmarks/gpu.py`` in ``benchmarks/results/`` (``train.fit``,
    fp32), or None when none is recorded. The sentence says how old the measurement is and whether
    it measured the training code in use (its ``TRAIN_VERSION``)."""
    import datetime
    import glob
    from . import train
    found = []
    for path in glob.glob(os.path.join(folder, "gpu-*.json")):
        try:
            with open(path) as f:
                rec = json.load(f)
            found.append((rec["date"], float(rec["images_per_second"]["fit (fp32)"]), rec, path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not found:
        return None
    date, rate, rec, path = max(found, key=lambda r: r[0])
    age = (datetime.date.today() - datetime.date.fromisoformat(date)).days
    same = rec.get("train_version") == train.TRAIN_VERSION
    code = ("the training code in use" if same else
            "an earlier version of the training code (the projection assumes the current code runs at the same "
            "rate; no GPU run of it is recorded yet)")
    return rate, (f"train.fit (fp32) on one {rec['device']} with torch {rec['torch']}, measured on {date} "
                  f"({age} days ago) with {code}; recorded in benchmarks/results/{os.path.basename(path)}")


def corrected_counterpart(reference: Run, run_dir: str, n_targets: int = 1, executor: str = "auto",
                          scheduler: str | None = None):
    """(table, note) of the corrected-mode paper design beside a reference run.

    An existing finished corrected run in ``run_dir`` (the documented ``paper-corrected`` run,
    say) is used as it is. Otherwise a CPU-sized profile is run now, for the first ``n_targets``
    targets of each setting; a GPU-sized one (ResNet-18) is not started inside a book build:
    the table is None and the note says which command makes it and what it would cost.
    """
    if os.path.exists(os.path.join(run_dir, "results.csv")) and os.path.exists(os.path.join(run_dir, "manifest.json")):
        other = open_run(run_dir)
        if other.profile["mode"] != "corrected":
            raise ConfigError(f"corrected_run_dir {run_dir!r} holds a {other.profile['mode']}-mode run; "
                              f"choose the folder of a corrected-mode run")
        return other.table, f"the corrected run in {run_dir} ({other.provenance})"
    prof = {**reference.profile, "mode": "corrected", "designs": ["paper"],
            "targets": {k: v[:n_targets] for k, v in reference.profile["targets"].items()}}
    if prof["model"]["arch"] == "resnet18":
        name = "paper-corrected" if prof["profile"] == "paper" else prof["profile"]
        rate = gpu_rate()
        cost = ("no GPU rate is recorded to project its cost" if rate is None else
                f"about {E.training_images(*plan.schedule(prof)[1:], D.CIFAR_SIZES) / rate[0] / 3600:.0f} GPU-hours projected at "
                f"{rate[0]:,.0f} training images/s, the rate of {rate[1]}")
        return None, (f"no corrected run in {run_dir}; not started here ({cost}): make it with python -m mu_core run "
                      f"--profile {name} --run-dir {run_dir}")
    return run(prof, run_dir, executor=executor, scheduler=scheduler).table, f"a corrected-mode rerun in {run_dir}"


def paper_cost() -> str:
    """Markdown: what each GPU profile's plan trains, and the GPU-hours it projects to."""
    rate = gpu_rate()
    lines = ["| profile | original models | unlearning jobs | training images | projected GPU-hours |",
             "| --- | --- | --- | --- | --- |"]
    from .. import profiles
    for name in profiles.names():
        prof = profiles.load(name)
        if domains.engine(prof) is not E or prof["model"]["arch"] != "resnet18":
            continue
        _, tspecs, groups = plan.schedule(prof)
        images = E.training_images(tspecs, groups, D.CIFAR_SIZES)
        lines.append(f"| `{name}` | {len(tspecs)} | {sum(len(g) for g in groups.values()):,} | "
                     f"{images / 1e9:.2f} G | {'n/a' if rate is None else f'{images / rate[0] / 3600:.0f}'} |")
    lines.append("\nNo GPU rate is recorded in benchmarks/results/ (run benchmarks/gpu.py on a GPU), so no hours "
                 "are projected." if rate is None else
                 f"\nProjected GPU-hours: training images / {rate[0]:,.0f} images per second, the rate of {rate[1]}.")
    return "\n".join(lines) + "\n"
