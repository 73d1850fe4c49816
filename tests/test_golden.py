"""Caches that cannot go stale: every piece of code that shapes a stored model or result has a
version in its key, and this test fails when a result changes while its versions do not.

For each component (data and splits, the networks, training, accuracy, evaluation, and every
method in both modes) a tiny fixed job is computed and its fingerprint (sums of its outputs, its
weights or its metrics) compared with the one recorded in ``golden.json`` beside the versions it
was recorded under. A changed fingerprint under unchanged versions means an edit changed results
that the store would silently reuse: the test names the versions to bump. After a deliberate bump,
record the new fingerprints with ``python tests/test_golden.py --update``; it refuses to record a
changed fingerprint whose versions did not change.
"""
import json
import math
import os
import sys
import tempfile

import pytest
import torch

from mu_core.images import data as D
from mu_core import plan, profiles, tasks
from mu_core.images import methods as M
from mu_core.images import metrics, models, train, ulira

GOLDEN = os.path.join(os.path.dirname(__file__), "golden.json")
WHERE = {"data": "DATA_VERSION in mu_core/images/data.py", "models": "MODELS_VERSION in mu_core/images/models.py",
         "train": "TRAIN_VERSION in mu_core/images/train.py", "accuracy": "ACCURACY_VERSION in mu_core/images/metrics.py",
         "metrics": "METRICS_VERSION in mu_core/images/metrics.py", "ulira": "ULIRA_VERSION in mu_core/images/ulira.py",
         "lm": "LM_VERSION in mu_core/lm/engine.py", "eval": "EVAL_VERSION in mu_core/lm/evaluate.py"}
SETTING, TARGET = "mnist5/sub_class", "7"


def versions(*names, method=None) -> dict:
    v = {**plan.code_versions(reference_selection=True), "metrics": metrics.METRICS_VERSION, "ulira": ulira.ULIRA_VERSION}
    out = {n: v[n] for n in names}
    return {**out, f"method {method}": M.METHODS[method].version} if method else out


def where(name: str) -> str:
    if name.startswith("lm method "):
        return f"the version of METHODS[{name.split()[2]!r}] in mu_core/lm/engine.py"
    return WHERE.get(name) or f"the version of METHODS[{name.split()[1]!r}] in mu_core/images/methods.py"


def _sums(tensors) -> list:
    out = []
    for t in tensors:
        t = t.detach().double()
        out += [float(t.sum()), float((t * t).sum())]
    return out


def _profile(mode):
    return profiles.load("smoke", {"mode": mode, "designs": ["grid"], "targets": {},
                                   "grid_targets": {SETTING: [TARGET]}, "grid.I": 1, "grid.J": 1})


_TRAINED = {}


def _trained(mode):
    """The smoke profile's original model for s_t = 1 in ``mode``, trained in a scratch folder."""
    if mode not in _TRAINED:
        prof = _profile(mode)
        _, tspecs, groups = plan.schedule(prof)
        (tkey, jobs), = groups.items()
        device, data = tasks.context(prof)
        with tempfile.TemporaryDirectory() as d:
            model, _ = tasks.original_model(tspecs[tkey], d, data, device)
        split = D.make_split(data, tspecs[tkey]["dataset"], *SETTING.split("/")[1:], TARGET)
        _TRAINED[mode] = (prof, tspecs[tkey], {j["method"]: j for j in jobs}, model, split, device)
    return _TRAINED[mode]


def fp_data():
    data = D.load(_profile("reference")["data"])
    out = _sums([data.train_x, data.test_x, D.normalise(data.test_x[:50], data)])
    for key, targets in (("mnist10/full_class", "3"), ("mnist5/full_class", "1-7"), (SETTING, TARGET)):
        ds, setting = key.split("/")
        y_train, y_test = D.labels(data, ds)
        s = D.make_split(data, ds, setting, targets)
        out += [float(y_train.sum()), float(y_test.sum())]
        out += [float(i.sum()) for i in (s.retain, s.forget, s.test_retain, s.test_forget)]
    return out


def fp_models():
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = []
    for cfg in ({"arch": "mlp", "hidden": 16}, {"arch": "resnet18", "width": 2}):
        m = models.build(cfg, 5, (3, 8, 8), 11).eval()
        with torch.no_grad():
            out += _sums([m(x)]) + [sum(p.numel() for p in m.parameters())]
    return out


def fp_train(mode):
    return _sums(_trained(mode)[3].state_dict().values())


def fp_accuracy():
    prof, _, _, _, split, _ = _trained("reference")
    m = models.build(prof["model"], split.num_classes, tuple(split.data.train_x.shape[1:]), 3)
    out = metrics.logits(m, split.data.test_x, split.data)
    return _sums([out]) + [metrics.accuracy(out, split.y_test, mode) for mode in ("reference", "corrected")]


def fp_method(method, mode):
    prof, tspec, jobs, model, split, device = _trained(mode)
    ctx = M.Context(mode, tspec["recipe"], prof["model"])
    m, _ = tasks.unlearn(model, split, jobs[method], ctx, device)
    res = tasks.evaluate_job(m, split, jobs[method], ctx)
    return [res[k] for k in metrics.NAMES] + _sums(m.state_dict().values())


def fp_ulira():
    """U-LiRA's pool and a model's split (data), and the per-target statistics a job stores (ulira)."""
    prof, _, _, model, split, _ = _trained("reference")
    s = D.random_split(split.data, "mnist10", 3)
    stats = ulira.pool_statistics(model, D.random_split(split.data, split.dataset, 3))
    return ([float(i.sum()) for i in (D.pool(len(split.y_train)), s.retain, s.forget)]
            + [sum(stats["phi"]), float(sum(stats["correct"]))])


_LM = {}


def _lm_trained():
    """lm-smoke's original model of s_t = 1 (base, fine-tuning, oracle), trained in a scratch folder."""
    if not _LM:
        from mu_core.lm import engine as E
        prof = profiles.load("lm-smoke")
        row = next(r for r in plan.rows(prof) if r["train_seed"] == 1)
        tspec = plan.model_spec(prof, row)
        d = tempfile.mkdtemp(prefix="golden-lm-")
        model, info, base, _ = E.trained_model(tspec, d, tasks.model_path, tasks.model_info)
        _LM.update(prof=prof, tspec=tspec, model=model, info=info, base=base)
    return _LM


def fp_lm_train():
    t = _lm_trained()
    return _sums(t["base"].state_dict().values()) + _sums(t["model"].state_dict().values()) + [sum(t["info"]["oracle_truth_ratios"])]


def fp_lm_method(method):
    from mu_core.lm import engine as E
    t = _lm_trained()
    job = {"method": method, "params": t["prof"]["method_params"].get(method, {}), "unlearn_seed": 7, "mode": "reference",
           "eval": t["prof"]["eval"]}
    res = E.run_job(t["model"], t["info"], t["base"], t["tspec"], job)
    return [res[k] for k in E.METRICS]


def lm_versions(method=None):
    from mu_core.lm import engine as E
    from mu_core.lm import evaluate as EV
    v = {"lm": E.LM_VERSION, "eval": EV.EVAL_VERSION}
    return {**v, f"lm method {method}": E.METHODS[method].version} if method else v


# name -> (versions it is recorded under, fingerprint)
JOBS = {
    "data": (lambda: versions("data"), fp_data),
    "models": (lambda: versions("models"), fp_models),
    "accuracy": (lambda: versions("data", "models", "accuracy"), fp_accuracy),
    "ulira": (lambda: versions("data", "models", "train", "accuracy", "ulira"), fp_ulira),
    **{f"train/{mode}": (lambda: versions("data", "models", "train", "accuracy"), lambda mode=mode: fp_train(mode))
       for mode in ("reference", "corrected")},
    # the evaluation of a job: Original's metrics
    **{f"metrics/{mode}": (lambda: versions("data", "models", "train", "accuracy", "metrics"),
                           lambda mode=mode: fp_method("original", mode)) for mode in ("reference", "corrected")},
    **{f"method/{m}/{mode}": (lambda m=m: versions("data", "models", "train", "accuracy", "metrics", method=m),
                              lambda m=m, mode=mode: fp_method(m, mode))
       for m in M.METHODS if m != "original" for mode in ("reference", "corrected")},
    # the language-model domain: its base, original and oracle models, and each method's metrics
    "lm/train": (lm_versions, fp_lm_train),
    **{f"lm/method/{m}": (lambda m=m: lm_versions(m), lambda m=m: fp_lm_method(m))
       for m in ("original", "retrain", "grad_ascent", "grad_diff", "npo")},
}


def recorded() -> dict:
    with open(GOLDEN) as f:
        return json.load(f)


def same(a, b) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) or (x != x and y != y)
                                    for x, y in zip(a, b))


def verdict(name: str, golden: dict, now_versions: dict, fingerprint) -> str | None:
    """None when the job agrees with its record; otherwise what to do."""
    rec = golden.get(name)
    if rec is None:
        return f"golden job {name!r} has no record: run python tests/test_golden.py --update"
    if rec["versions"] != now_versions:
        changed = ", ".join(f"{k} {rec['versions'].get(k)} -> {v}" for k, v in now_versions.items()
                            if rec["versions"].get(k) != v)
        return (f"golden job {name!r}: versions changed ({changed}); record its new fingerprint with "
                f"python tests/test_golden.py --update")
    if not same(rec["fingerprint"], fingerprint):
        bump = "; ".join(where(k) for k in now_versions)
        return (f"golden job {name!r} computes a different result, but none of its versions changed "
                f"({', '.join(f'{k} {v}' for k, v in now_versions.items())}): stored models and results "
                f"would be reused stale. Bump the version of the code you edited (one of: {bump}), "
                f"then run python tests/test_golden.py --update")
    return None


@pytest.fixture(scope="module")
def golden():
    torch.set_num_threads(1)  # as every job runs
    return recorded()


@pytest.mark.parametrize("name", list(JOBS))
def test_a_result_changes_only_with_a_version(golden, name):
    vers, fp = JOBS[name]
    problem = verdict(name, golden, vers(), fp())
    assert problem is None, problem


def test_the_verdict_names_the_version_to_bump():
    rec = {"x": {"versions": {"data": 1, "method ssd": 2}, "fingerprint": [1.0, 2.0]}}
    assert verdict("x", rec, {"data": 1, "method ssd": 2}, [1.0, 2.0]) is None
    msg = verdict("x", rec, {"data": 1, "method ssd": 2}, [1.0, 2.5])
    assert "DATA_VERSION in mu_core/images/data.py" in msg and "METHODS['ssd']" in msg
    assert "versions changed (data 1 -> 2)" in verdict("x", rec, {"data": 2, "method ssd": 2}, [1.0, 2.5])
    assert "no record" in verdict("y", rec, {}, [])


def test_every_component_and_method_has_a_golden_job():
    from mu_core.lm import engine as E
    names = {n.split("/")[1] for n in JOBS if n.startswith("method/")}
    assert names == set(M.METHODS) - {"original"}
    assert {n.split("/")[2] for n in JOBS if n.startswith("lm/method/")} == set(E.METHODS)
    assert set(plan.code_versions(True)) | {"metrics", "ulira"} | set(lm_versions()) == set(WHERE)


def update(only=()) -> None:
    torch.set_num_threads(1)
    golden = recorded() if os.path.exists(GOLDEN) else {}
    for name, (vers, fp) in JOBS.items():
        if only and name not in only:
            continue
        v, f = vers(), fp()
        rec = golden.get(name)
        if rec is not None and rec["versions"] == v and not same(rec["fingerprint"], f):
            sys.exit(verdict(name, golden, v, f) + "\n(nothing was recorded)")
        golden[name] = {"versions": v, "fingerprint": f}
    with open(GOLDEN, "w") as fh:
        json.dump(golden, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"recorded {len(golden)} golden jobs in {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--update"]:
        sys.exit("usage: python tests/test_golden.py --update [JOB ...]")
    update(sys.argv[2:])
