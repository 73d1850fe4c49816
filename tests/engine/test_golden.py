"""Caches that cannot go stale: every piece of code that shapes a stored model or result has a
version in its key, and this test fails when a result changes while its versions do not.

For each component (data and splits, the networks, training, accuracy, evaluation, every method in
both modes, and the language-model and learning-to-rank domains) a tiny fixed job is computed and
its fingerprint compared with the one recorded in ``golden.json`` beside the versions it was
recorded under. A changed fingerprint under unchanged versions means an edit changed results that
the store would silently reuse: the test names the versions to bump. After a deliberate bump,
record the new fingerprints with ``python tests/engine/test_golden.py --update``; it refuses to record a
changed fingerprint whose versions did not change.

Code changes, not processors. Float rounding differs between processors (MKL's and ATen's vector
paths, OpenBLAS's kernels), and a long training run grows it. So:

* every golden job is short: a few optimisation steps of each trainer (``GOLDEN`` below);
* a fingerprint is what a model computes (its outputs on a fixed batch, in eval and in train mode)
  and its metrics, not its raw weights: Adam turns the float noise of a gradient that is zero in
  exact arithmetic (a bias before BatchNorm, a border pixel's weight, an attention key's bias) into
  a step of the full learning rate, in a direction the model's training-mode function ignores;
* each entry is a sum with its *scale*, the sum of the absolute values of its terms (0 for a count
  or an accuracy), and is compared with a tolerance recorded beside it: the larger of ``REL`` of
  its scale and ``SAFETY`` times the largest difference measured, when it was recorded, between
  this process's numerical path and the stand-ins for another processor in ``PATHS``.
  ``test_golden_jobs_hold_on_another_numerical_path`` reruns them under one stand-in.

``tests/mutate_golden.py`` applies edits that change results and shows each one failing here.
"""
import copy
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

from mu_core.images import data as D
from mu_core import plan, profiles
from mu_core.images import methods as M
from mu_core.images import metrics, models, train, ulira
from mu_core.images import engine as IE

GOLDEN = os.path.join(os.path.dirname(__file__), "golden.json")
FORMAT = 2  # 2: entries with scales and recorded tolerances (1: bare sums, compared at rel 1e-6)
REL = 1e-5     # of an entry's scale: float rounding of a short job stays near 1e-7 of it (measured)
SAFETY = 4     # times the largest difference measured across numerical paths when recording
# stand-ins for another processor, each available on any x86 machine: ATen's scalar kernels, MKL's
# conditional-reproducibility branch, both, OpenBLAS's oldest kernels with numpy's AVX2 loops off
PATHS = {"ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
         "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
         "both": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
         "OPENBLAS_CORETYPE=Prescott": {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "X86_V3"}}
WHERE = {"data": "DATA_VERSION in mu_core/images/data.py", "models": "MODELS_VERSION in mu_core/images/models.py",
         "train": "TRAIN_VERSION in mu_core/images/train.py", "accuracy": "ACCURACY_VERSION in mu_core/images/metrics.py",
         "metrics": "METRICS_VERSION in mu_core/images/metrics.py", "ulira": "ULIRA_VERSION in mu_core/images/ulira.py",
         "lm": "LM_VERSION in mu_core/lm/engine.py", "eval": "EVAL_VERSION in mu_core/lm/evaluate.py",
         "ltr": "LTR_VERSION in mu_core/ltr/engine.py", "ltr data": "DATA_VERSION in mu_core/ltr/engine.py"}
SETTING, TARGET = "mnist5/sub_class", "7"
N_FIXED = 256  # the fixed batch whose outputs fingerprint a model


# --- fingerprints: (value, scale) entries -------------------------------------------------------

def _signs(n: int) -> torch.Tensor:
    """A fixed +-1 vector: a projection that a change of any single term moves."""
    return torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(n)).double() * 2 - 1


def sums(*tensors) -> list:
    """Per tensor: its sum, sum of squares and a fixed signed sum, each with its scale."""
    out = []
    for t in tensors:
        t = torch.as_tensor(t).detach().double().flatten()
        a = t.abs().sum().item()
        out += [(t.sum().item(), a), ((t * t).sum().item(), (t * t).sum().item()), ((t * _signs(len(t))).sum().item(), a)]
    return out


def exact(*values) -> list:
    """Counts, accuracies, p-values: no scale (compared within what the paths measured)."""
    return [(float("nan") if v is None else float(v), 0.0) for v in values]


def approx(*values) -> list:
    """Continuous results (a mean of ratios, a harmonic mean): their own size is their scale."""
    return [(float(v), abs(float(v))) for v in values]


def outputs(model, x) -> list:
    """A network's outputs on ``x`` in eval mode and in train mode (on a copy: BatchNorm's running
    statistics move). Train mode is blind to the directions that Adam fills with rounding noise."""
    with torch.no_grad():
        ev = model.eval()(x)
        tr = copy.deepcopy(model).train()(x)
    model.eval()
    return sums(ev, tr)


# --- the image domain ------------------------------------------------------------------------

SHORT_BATCH = ("batch", "retain_batch", "forget_batch", "impair_batch", "repair_batch")


def short(method: str, params: dict) -> dict:
    """A method's parameters cut to a few steps: at most two epochs (a schedule over epochs still
    changes), one max-step, batches of 1,024 (SSD's batches are its importance estimate, not steps:
    kept)."""
    out = {}
    for k, v in params.items():
        if k == "epochs":
            v = min(v, 2)
        elif k == "msteps":
            v = min(v, 1)
        elif k in SHORT_BATCH and method not in ("ssd", "lfssd"):
            v = 1024
        out[k] = v
    return out


def _profile(mode):
    """The smoke profile shrunk to one model trained for 2 epochs of 4 steps (batch 1,024)."""
    prof = profiles.load("smoke", {"mode": mode, "designs": ["grid"], "targets": {},
                                   "grid_targets": {SETTING: [TARGET]}, "grid.I": 1, "grid.J": 1,
                                   "train.batch": 1024, "train.epochs.mnist5": 2})
    prof["method_params"] = {m: short(m, p) for m, p in prof["method_params"].items()}
    return prof


def versions(*names, method=None) -> dict:
    v = {**IE.code_versions(reference_selection=True), "metrics": metrics.METRICS_VERSION, "ulira": ulira.ULIRA_VERSION}
    out = {n: v[n] for n in names}
    return {**out, f"method {method}": M.METHODS[method].version} if method else out


def where(name: str) -> str:
    if name.startswith(("lm method ", "ltr method ")):
        return f"the version of METHODS[{name.split()[2]!r}] in mu_core/{name.split()[0]}/engine.py"
    return WHERE.get(name) or f"the version of METHODS[{name.split()[1]!r}] in mu_core/images/methods.py"


_TRAINED = {}


def _trained(mode):
    """The golden profile's original model for s_t = 1 in ``mode``, trained in a scratch folder."""
    if mode not in _TRAINED:
        prof = _profile(mode)
        _, tspecs, groups = plan.schedule(prof)
        (tkey, jobs), = groups.items()
        device, data = IE.context(prof)
        with tempfile.TemporaryDirectory() as d:
            model, _ = IE.original_model(tspecs[tkey], d, data, device)
        split = D.make_split(data, tspecs[tkey]["dataset"], *SETTING.split("/")[1:], TARGET)
        _TRAINED[mode] = (prof, tspecs[tkey], {j["method"]: j for j in jobs}, model, split, device)
    return _TRAINED[mode]


def _fixed(split):
    return D.normalise(split.data.test_x[:N_FIXED], split.data)


def fp_data():
    data = D.load(_profile("reference")["data"])
    out = sums(data.train_x, data.test_x, D.normalise(data.test_x[:50], data))
    for key, targets in (("mnist10/full_class", "3"), ("mnist5/full_class", "1-7"), (SETTING, TARGET)):
        ds, setting = key.split("/")
        y_train, y_test = D.labels(data, ds)
        s = D.make_split(data, ds, setting, targets)
        out += exact(y_train.sum(), y_test.sum(), *(i.sum() for i in (s.retain, s.forget, s.test_retain, s.test_forget)))
    return out


def fp_models():
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = []
    for cfg in ({"arch": "mlp", "hidden": 16}, {"arch": "resnet18", "width": 2}):
        m = models.build(cfg, 5, (3, 8, 8), 11).eval()
        with torch.no_grad():
            out += sums(m(x)) + exact(sum(p.numel() for p in m.parameters()))
    return out


def fp_train(mode):
    _, _, _, model, split, _ = _trained(mode)
    return outputs(model, _fixed(split))


def fp_accuracy():
    prof, _, _, _, split, _ = _trained("reference")
    m = models.build(prof["model"], split.num_classes, tuple(split.data.train_x.shape[1:]), 3)
    out = metrics.logits(m, split.data.test_x, split.data)
    return sums(out) + exact(*(metrics.accuracy(out, split.y_test, mode) for mode in ("reference", "corrected")))


def fp_method(method, mode):
    prof, tspec, jobs, model, split, device = _trained(mode)
    ctx = M.Context(mode, tspec["recipe"], prof["model"])
    m, _ = IE.unlearn(model, split, jobs[method], ctx, device)
    res = IE.evaluate_job(m, split, jobs[method], ctx)
    return exact(*(res[k] for k in metrics.NAMES)) + outputs(m, _fixed(split))


def fp_retain_batch():
    """The evaluation of a job whose method asks for its own retain batch (UNSIR's, reference mode),
    on the original model: what the evaluation does, apart from the method's noisy training."""
    prof, tspec, jobs, model, split, device = _trained("reference")
    res = IE.evaluate_job(model, split, jobs["unsir"], M.Context("reference", tspec["recipe"], prof["model"]))
    return exact(*(res[k] for k in metrics.NAMES))


def fp_scrub_original():
    """SCRUB in corrected mode when the checkpoint it picks is the original (i* = 0), a branch the
    golden data never reach (their i* is 2): the choice is forced, the rest runs as it is."""
    from mu_core.images import deepunlearn as DU
    prof, tspec, jobs, model, split, device = _trained("corrected")
    choose, DU.scrub_checkpoint = DU.scrub_checkpoint, lambda err_f, err_fv: 0
    try:
        m, _ = IE.unlearn(model, split, jobs["scrub"], M.Context("corrected", tspec["recipe"], prof["model"]), device)
    finally:
        DU.scrub_checkpoint = choose
    return outputs(m, _fixed(split))


def fp_collapse():
    """Which retain accuracies, over how many classes, the evaluation calls a collapsed model."""
    return exact(*(metrics.collapsed(acc, c) is not None for c in (5, 10, 100) for acc in (0.0, 1.2, 12.0, 12.6, 24.9, 25.1, 60.0)))


def fp_ulira():
    """U-LiRA's pool and a model's split (data), and the per-target statistics a job stores (ulira)."""
    _, _, _, model, split, _ = _trained("reference")
    s = D.random_split(split.data, "mnist10", 3)
    stats = ulira.pool_statistics(model, D.random_split(split.data, split.dataset, 3))
    return (exact(*(i.sum() for i in (D.pool(len(split.y_train)), s.retain, s.forget)))
            + sums(torch.tensor(stats["phi"])) + exact(sum(stats["correct"])))


# --- language models -----------------------------------------------------------------------

_LM = {}


def _lm_trained():
    """lm-smoke's original model of s_t = 1 (base, fine-tuning, oracle), trained in a scratch folder."""
    if not _LM:
        from mu_core.lm import engine as E
        from mu_core.lm import model as LM
        prof = profiles.load("lm-smoke")
        row = next(r for r in plan.rows(prof) if r["train_seed"] == 1)
        tspec = plan.model_spec(prof, row)
        with tempfile.TemporaryDirectory() as d:
            model, info, base, _ = E.trained_model(tspec, d)
        data = E.load(tspec["base"]["data"], tspec["target"])
        ids, _ = LM.collate(E.encoded(data, "forget") + E.encoded(data, "retain")[:20])
        _LM.update(prof=prof, tspec=tspec, model=model, info=info, base=base, ids=ids)
    return _LM


def fp_lm_train():
    t = _lm_trained()
    with torch.no_grad():
        return sums(t["base"](t["ids"]), t["model"](t["ids"]), torch.tensor(t["info"]["oracle_nll_paraphrase"]),
                    torch.tensor(t["info"]["oracle_nll_perturbed"]))


def fp_lm_method(method, mode):
    from mu_core.lm import engine as E
    from mu_core.lm import evaluate as EV
    t = _lm_trained()
    job = {"method": method, "params": t["prof"]["method_params"].get(method, {}), "unlearn_seed": 7, "mode": mode,
           "eval": t["prof"]["eval"]}
    m, _ = E.unlearn(t["model"], t["base"], t["tspec"], job)
    res = E.evaluate_job(m, t["info"], t["tspec"], job)
    continuous = ("model_utility", "forget_truth_ratio")  # the others step: a KS statistic, ROUGE on greedy words
    # ROUGE-L recall ignores words an answer adds: the number of greedy words is counted too
    data = E.load(t["tspec"]["base"]["data"], t["tspec"]["target"])
    facts = E.of_split(data, "retain") + E.of_split(data, "forget")
    words = sum(len(a.split()) for a in EV.greedy(m, [f["question"] for f in facts], data["index"], data["vocab"],
                                                   job["eval"]["max_new"]))
    with torch.no_grad():
        return ([(approx if k in continuous else exact)(res[k])[0] for k in E.METRICS] + exact(words) + sums(m(t["ids"])))


def lm_versions(method=None):
    from mu_core.lm import engine as E
    from mu_core.lm import evaluate as EV
    v = {"lm": E.LM_VERSION, "eval": EV.EVAL_VERSION}
    return {**v, f"lm method {method}": E.METHODS[method].version} if method else v


# --- learning to rank ----------------------------------------------------------------------

_LTR = {}


def _ltr_trained(mode="reference"):
    """ltr-smoke's rankers of s_t = 1, one per scenario (navigational clicks), trained in a scratch folder."""
    if mode not in _LTR:
        from mu_core.ltr import engine as E
        # FedEraser calibrates every 2nd of the 4 rounds (the profile's 5 would never calibrate)
        prof = profiles.load("ltr-smoke", {"mode": mode, "method_params.fed_eraser.calibrate_every": 2})
        data = E.load(prof["data"])
        out = {}
        with tempfile.TemporaryDirectory() as d:
            for r in plan.rows(prof):
                if r["train_seed"] == 1 and r["setting"] not in out:
                    tspec = plan.model_spec(prof, r)
                    out[r["setting"]] = (tspec, E.trained_ranker(tspec, d, data)[0])
        _LTR[mode] = (prof, data, out)
    return _LTR[mode]


def fp_ltr_data():
    from mu_core.ltr import engine as E
    data = E.load(profiles.load("ltr-smoke")["data"])
    return sum((sums(np.concatenate([q.x for q in data[part]])) + exact(sum(int(q.labels.sum()) for q in data[part]))
                for part in ("train", "test")), [])


def fp_ltr_train():
    from mu_core.ltr import fpdgd as F
    _, data, rankers = _ltr_trained()
    return sum((sums(r["w"], r["history"]) + approx(F.ndcg_at_k(data["test"], r["w"])) for _, r in rankers.values()), [])


def fp_ltr_method(method, mode):
    """A method on the model-poisoning scenario (its forgotten clients corrupt their updates)."""
    from mu_core.ltr import engine as E
    from mu_core.ltr import fpdgd as F
    prof, data, rankers = _ltr_trained(mode)
    tspec, trained = rankers["model_poison"]
    job = {"method": method, "params": prof["method_params"].get(method, {}), "unlearn_seed": 7, "mode": mode}
    w = E.METHODS[method].fn(trained, data, E.fit_spec(tspec), job["params"], mode, np.random.default_rng(job["unlearn_seed"]))
    return sums(w) + approx(F.ndcg_at_k(data["test"], w))


def ltr_versions(method=None):
    from mu_core.ltr import engine as E
    v = {"ltr": E.LTR_VERSION, "ltr data": E.DATA_VERSION}
    return {**v, f"ltr method {method}": E.METHODS[method].version} if method else v


def _ltr_methods():
    from mu_core.ltr import engine as E
    return list(E.METHODS)


def _lm_methods():
    from mu_core.lm import engine as E
    return list(E.METHODS)


# name -> (versions it is recorded under, fingerprint)
JOBS = {
    "data": (lambda: versions("data"), fp_data),
    "models": (lambda: versions("models"), fp_models),
    "accuracy": (lambda: versions("data", "models", "accuracy"), fp_accuracy),
    "ulira": (lambda: versions("data", "models", "train", "accuracy", "ulira"), fp_ulira),
    **{f"train/{mode}": (lambda: versions("data", "models", "train", "accuracy"), lambda mode=mode: fp_train(mode))
       for mode in ("reference", "corrected")},
    # the evaluation of a job: Original's metrics, and the retain batch a method may set
    **{f"metrics/{mode}": (lambda: versions("data", "models", "train", "accuracy", "metrics"),
                           lambda mode=mode: fp_method("original", mode)) for mode in ("reference", "corrected")},
    "metrics/retain_batch": (lambda: versions("data", "models", "train", "accuracy", "metrics"), fp_retain_batch),
    "metrics/collapse": (lambda: versions("metrics"), fp_collapse),
    **{f"method/{m}/{mode}": (lambda m=m: versions("data", "models", "train", "accuracy", "metrics", method=m),
                              lambda m=m, mode=mode: fp_method(m, mode))
       for m in M.METHODS if m != "original" for mode in ("reference", "corrected")},
    "scrub_original/corrected": (lambda: versions("data", "models", "train", "accuracy", "metrics", method="scrub"),
                                 fp_scrub_original),
    # the language-model domain: its base, original and oracle models, and each method's metrics
    "lm/train": (lm_versions, fp_lm_train),
    **{f"lm/method/{m}/{mode}": (lambda m=m: lm_versions(m), lambda m=m, mode=mode: fp_lm_method(m, mode))
       for m in _lm_methods() for mode in ("reference", "corrected")},
    # learning to rank: the collection, a trained ranker per scenario, each method in both modes
    "ltr/data": (lambda: {"ltr data": ltr_versions()["ltr data"]}, fp_ltr_data),
    "ltr/train": (ltr_versions, fp_ltr_train),
    **{f"ltr/method/{m}/{mode}": (lambda m=m: ltr_versions(m), lambda m=m, mode=mode: fp_ltr_method(m, mode))
       for m in _ltr_methods() for mode in ("reference", "corrected")},
}


def recorded() -> dict:
    with open(GOLDEN) as f:
        golden = json.load(f)
    return golden if golden.get("format") == FORMAT else {"format": FORMAT}


def differ(rec: dict, fingerprint: list) -> list[int]:
    """The entries of ``fingerprint`` beyond their recorded tolerance (a different length: all)."""
    if len(rec["fingerprint"]) != len(fingerprint):
        return list(range(max(len(rec["fingerprint"]), len(fingerprint))))
    return [i for i, (x, tol, (y, _)) in enumerate(zip(rec["fingerprint"], rec["tolerance"], fingerprint))
            if not (abs(x - y) <= tol or (math.isnan(x) and math.isnan(y)))]


def verdict(name: str, golden: dict, now_versions: dict, fingerprint) -> str | None:
    """None when the job agrees with its record; otherwise what to do."""
    rec = golden.get(name)
    if rec is None:
        return f"golden job {name!r} has no record: run python tests/engine/test_golden.py --update"
    if rec["versions"] != now_versions:
        changed = ", ".join(f"{k} {rec['versions'].get(k)} -> {v}" for k, v in now_versions.items()
                            if rec["versions"].get(k) != v)
        return (f"golden job {name!r}: versions changed ({changed}); record its new fingerprint with "
                f"python tests/engine/test_golden.py --update")
    off = differ(rec, fingerprint)
    if off:
        i = off[0]
        first = (f"entry {i}: {fingerprint[i][0]!r}, recorded {rec['fingerprint'][i]!r} within {rec['tolerance'][i]:.3g}"
                 if i < min(len(fingerprint), len(rec["fingerprint"])) else "its length changed")
        bump = "; ".join(where(k) for k in now_versions)
        return (f"golden job {name!r} computes a different result ({len(off)} entries off; {first}), but none of "
                f"its versions changed ({', '.join(f'{k} {v}' for k, v in now_versions.items())}): stored models and "
                f"results would be reused stale. Bump the version of the code you edited (one of: {bump}), "
                f"then run python tests/engine/test_golden.py --update")
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
    rec = {"x": {"versions": {"data": 1, "method ssd": 2}, "fingerprint": [1.0, 2.0], "tolerance": [1e-3, 0.0]}}
    assert verdict("x", rec, {"data": 1, "method ssd": 2}, [(1.0005, 1.0), (2.0, 0.0)]) is None
    msg = verdict("x", rec, {"data": 1, "method ssd": 2}, [(1.0, 1.0), (2.5, 0.0)])
    assert "DATA_VERSION in mu_core/images/data.py" in msg and "METHODS['ssd']" in msg and "entry 1" in msg
    assert verdict("x", rec, {"data": 1, "method ssd": 2}, [(1.002, 1.0), (2.0, 0.0)])  # beyond its tolerance
    assert "versions changed (data 1 -> 2)" in verdict("x", rec, {"data": 2, "method ssd": 2}, [(1.0, 1.0), (2.5, 0.0)])
    assert "no record" in verdict("y", rec, {}, [])
    assert "ltr/engine.py" in where("ltr method pga") and "lm/engine.py" in where("lm method npo")


def tolerances(default: list, elsewhere: list[list]) -> list[float]:
    """Per entry: the larger of REL of its scale and SAFETY times its largest difference across paths
    (a NaN on one path and not on another is no tolerance a test could keep: refused)."""
    out = []
    for i, (x, scale) in enumerate(default):
        dev = 0.0
        for other in elsewhere:
            y = other[i][0]
            if math.isnan(x) != math.isnan(y):
                raise RuntimeError(f"entry {i} is NaN on one numerical path only ({x!r} against {y!r})")
            if not math.isnan(x):
                dev = max(dev, abs(x - y))
        out.append(max(REL * scale, SAFETY * dev, 1e-12 * abs(x)))
    return out


def test_a_tolerance_covers_rounding_and_what_the_paths_measured():
    tol = tolerances([(10.0, 50.0), (3.0, 0.0), (float("nan"), 0.0)], [[(10.0001, 50.0), (3.25, 0.0), (float("nan"), 0.0)]])
    assert tol[0] == pytest.approx(max(REL * 50, SAFETY * 1e-4)) and tol[1] == SAFETY * 0.25 and tol[2] == 0.0
    with pytest.raises(RuntimeError, match="NaN on one numerical path"):
        tolerances([(1.0, 1.0)], [[(float("nan"), 1.0)]])


def test_every_component_and_method_has_a_golden_job():
    names = {n.split("/")[1] for n in JOBS if n.startswith("method/")}
    assert names == set(M.METHODS) - {"original"}
    assert {n.split("/")[2] for n in JOBS if n.startswith("lm/method/")} == set(_lm_methods())
    assert {n.split("/")[2] for n in JOBS if n.startswith("ltr/method/")} == set(_ltr_methods())
    assert (set(IE.code_versions(True)) | {"metrics", "ulira"} | set(lm_versions()) | set(ltr_versions())
            == set(WHERE))


def fingerprints(only=()) -> dict:
    torch.set_num_threads(1)
    return {name: fp() for name, (_, fp) in JOBS.items() if not only or name in only}


def _elsewhere(path_env: dict, only=()) -> dict:
    """The fingerprints computed in a fresh process on another numerical path."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, __file__, "--fingerprints", f.name, *only], check=True,
                       env={**os.environ, **path_env})
        return json.load(open(f.name))


@pytest.mark.slow
def test_golden_jobs_hold_on_another_numerical_path(golden):
    """The golden jobs agree with their records under ATen's scalar kernels (a processor without AVX2)."""
    got = _elsewhere(PATHS["ATEN_CPU_CAPABILITY=default"])
    problems = [p for name, (vers, _) in JOBS.items() if (p := verdict(name, golden, vers(), got[name]))]
    assert not problems, problems[0]


def update(only=()) -> None:
    golden = recorded() if os.path.exists(GOLDEN) else {"format": FORMAT}
    now = fingerprints(only)
    elsewhere = [_elsewhere(env, list(now)) for env in PATHS.values()]
    for name, fp in now.items():
        v = JOBS[name][0]()
        rec = golden.get(name)
        if rec is not None and rec["versions"] == v and differ(rec, fp):
            sys.exit(verdict(name, golden, v, fp) + "\n(nothing was recorded)")
        golden[name] = {"versions": v, "fingerprint": [x for x, _ in fp],
                        "tolerance": tolerances(fp, [e[name] for e in elsewhere])}
    with open(GOLDEN, "w") as fh:
        json.dump(golden, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"recorded {len(golden) - 1} golden jobs in {GOLDEN} (tolerances from {', '.join(PATHS)})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fingerprints"]:
        json.dump(fingerprints(sys.argv[3:]), open(sys.argv[2], "w"))
    elif sys.argv[1:2] == ["--update"]:
        update(sys.argv[2:])
    else:
        sys.exit("usage: python tests/engine/test_golden.py --update [JOB ...]")
