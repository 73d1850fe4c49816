"""The language-model domain through the engine (mu_core.lm.engine, lm.methods, lm.evaluate): runs,
caching, purity across processes and executors, the oracle, the unlearning loop, bad input."""
import copy
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from mu_core import ConfigError, plan, profiles, store, study
from mu_core.lm import engine as E, evaluate as EV, methods as U, model as LM


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("lm"))
    return d, study.run("lm-smoke", d, executor="local", progress=False)


def test_an_lm_run_writes_its_domains_columns_and_a_cached_rerun_computes_nothing(lm_run):
    d, fin = lm_run
    t = fin.table
    assert list(t.columns) == plan.KEYS + E.METRICS + plan.TAIL
    assert (t.status == "ok").all() and t.forget_quality.between(0, 1).all()
    assert np.allclose(t.log10_forget_quality, np.log10(t.forget_quality))
    # models of s_t 1, 2, 3; Original once per model, 4 stochastic methods x (A 2 + B 2 + grid 3 x 2) jobs
    assert fin.computed == {"trained": 3, "jobs": 3 + 4 * (2 + 2 + 6)}
    orig = t[t.method == "original"]
    assert orig.groupby("train_seed").forget_quality.nunique().eq(1).all()  # deterministic: one value per model
    again = study.run("lm-smoke", d, executor="local", progress=False)
    assert again.computed == {"trained": 0, "jobs": 0}
    pd.testing.assert_frame_equal(again.table, t)
    assert "synthetic facts (not TOFU: 20 fictitious entities" in study.open_run(d).provenance


@pytest.mark.slow
def test_an_lm_job_is_the_same_in_a_fresh_process_and_under_dask(lm_run, tmp_path, dask_scheduler):
    d, fin = lm_run
    victim = sorted(n for n in os.listdir(os.path.join(d, "jobs")) if n.startswith("npo-"))[0]
    before = store.load_json(os.path.join(d, "jobs", victim), victim[:-5])
    os.remove(os.path.join(d, "jobs", victim))
    code = ("import json, numpy, torch; numpy.random.seed(7); torch.manual_seed(7); torch.rand(5); "
            "from mu_core import study; "
            f"f = study.run('lm-smoke', {d!r}, executor='local', progress=False); print(json.dumps(f.computed))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"trained": 0, "jobs": 1}
    after = store.load_json(os.path.join(d, "jobs", victim), victim[:-5])
    assert {k: after[k] for k in E.METRICS} == {k: before[k] for k in E.METRICS}  # bit for bit
    other = study.run("lm-smoke", str(tmp_path / "dask"), executor="dask", scheduler=dask_scheduler, progress=False).table
    cols = [c for c in other.columns if c not in plan.VOLATILE]
    pd.testing.assert_frame_equal(other[cols], fin.table[cols])


def _model_and_sets(run_dir, s_t=1):
    prof = profiles.load("lm-smoke")
    row = next(r for r in plan.rows(prof) if r["train_seed"] == s_t)
    tspec = plan.model_spec(prof, row)
    model, info, base, _ = E.trained_model(tspec, run_dir)
    data = E.load(prof["data"], row["target"])
    sets = {"forget": E.encoded(data, "forget"), "retain": E.encoded(data, "retain"), "base": base, "recipe": tspec["train"]}
    return prof, tspec, model, info, data, sets


def test_the_oracle_is_a_retain_only_model_with_its_own_seed(lm_run):
    """Retrain run with the oracle's seed reproduces the oracle's forget-set NLLs (forget quality 1);
    with an s_u of the run it does not: Retrain's forget quality is measured, not 1 by construction."""
    d, fin = lm_run
    prof, tspec, model, info, data, sets = _model_and_sets(d)
    forget = E.eval_sets(data, 1)["forget"]
    as_oracle = U.retrain(model, sets, {}, torch.Generator().manual_seed(E.oracle_seed(1)))
    para, pert = EV.base_and_perturbed_nlls(as_oracle, forget, data["index"], "paraphrase")
    assert para.tolist() == info["oracle_nll_paraphrase"] and pert.tolist() == info["oracle_nll_perturbed"]
    seeds = set(fin.table.unlearn_seed)
    assert all(E.oracle_seed(s) not in seeds for s in set(fin.table.train_seed))
    retrained = fin.table[(fin.table.method == "retrain")]
    assert (retrained.forget_quality < 1).any()


def test_the_unlearning_loop_draws_only_from_s_u_and_grad_ascent_forgets(lm_run):
    d, _ = lm_run
    prof, tspec, model, info, data, sets = _model_and_sets(d)
    params = {"epochs": 3, "lr": 0.01, "batch": 4, "weight_decay": 0.01, "warmup_epochs": 1, "gamma": 1, "alpha": 1, "beta": 0.1}
    run = lambda fn, s: fn(copy.deepcopy(model), sets, params, torch.Generator().manual_seed(s))  # noqa: E731
    for fn in (U.grad_ascent, U.grad_diff, U.npo):
        a, b, c = run(fn, 5), run(fn, 5), run(fn, 6)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    forget = LM.collate(sets["forget"])
    ascended = run(U.grad_ascent, 5)
    with torch.no_grad():
        assert float(LM.nll(ascended, *forget)) > float(LM.nll(model, *forget)) + 0.5


def test_greedy_answers_and_truth_ratios_against_one_question_at_a_time(lm_run):
    d, _ = lm_run
    prof, tspec, model, info, data, sets = _model_and_sets(d)
    facts = [f for f in data["facts"] if f["split"] != "control"][:7]
    batch = EV.greedy(model, [f["question"] for f in facts], data["index"], data["vocab"], 6)
    for f, got in zip(facts, batch):
        ids = [data["index"]["<bos>"]] + [data["index"][w] for w in f["question"].split()] + [data["index"]["<sep>"]]
        words = []
        with torch.no_grad():
            for _ in range(6):
                nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
                if nxt == data["index"]["<eos>"]:
                    break
                words.append(data["vocab"][nxt])
                ids.append(nxt)
        assert got == " ".join(words)
    tr = EV.truth_ratios(model, facts, data["index"], "paraphrase")
    with torch.no_grad():
        one = lambda a, f: float(LM.mean_answer_nll(model, *LM.collate([LM.encode(f["question"], a, data["index"])])))  # noqa: E731
        hand = [np.exp(one(f["paraphrase"], f) - np.mean([one(p, f) for p in f["perturbed"]])) for f in facts]
    assert tr == pytest.approx(hand, rel=1e-5)


@pytest.mark.parametrize("override,words", [
    ({"methods": ["original", "gradascent"]}, "methods 'gradascent' is unknown; allowed: original, retrain, grad_ascent, grad_diff, npo"),
    ({"method_params.npo.beta": 0}, "method_params.npo.beta must be a finite number > 0, got 0"),
    ({"method_params.npo.beta": -0.1}, "method_params.npo.beta must be a finite number > 0"),
    ({"targets": {"facts/tofu": ["forget60"]}}, "targets facts/tofu: target 'forget60' is not a forget split; allowed: forget01 ... forget50"),
    ({"grid_targets": {"facts/tofu": ["forget00"]}}, "grid_targets facts/tofu: target 'forget00' is not a forget split"),
    ({"model.heads": 3}, "model.d (16) must be a multiple of model.heads (3)"),
])
def test_bad_lm_input_is_one_line_before_any_work(override, words):
    with pytest.raises(ConfigError) as err:
        profiles.load("lm-smoke", override)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_forget_splits_follow_the_target():
    prof = profiles.load("lm-classroom", {"targets": {"facts/tofu": ["forget01", "forget05", "forget10"]}})
    for t, n in (("forget01", 1), ("forget05", 5), ("forget10", 10)):
        fs = E.load(prof["data"], t)["facts"]
        assert len({f["entity"] for f in fs if f["split"] == "forget"}) == n
    assert E.load(prof["data"], "forget01")["vocab"] == E.load(prof["data"], "forget10")["vocab"]


@pytest.mark.slow
def test_an_lm_run_killed_anywhere_then_resumed_gives_the_uninterrupted_table(tmp_path):
    from conftest import kill_at
    from fresh import run_cli
    cli = lambda d: ["run", "--profile", "lm-smoke", "--run-dir", str(d), "--executor", "local", "--no-progress"]  # noqa: E731
    run_cli(cli(tmp_path / "whole"))
    whole = pd.read_csv(tmp_path / "whole" / "results.csv")
    d = tmp_path / "killed"
    kills = kill_at(cli(d), d, (1, 12, 30))  # killed once this many results are stored (the first may hit training)
    assert kills >= 2
    run_cli(cli(d))
    resumed = pd.read_csv(d / "results.csv")
    cols = [c for c in whole.columns if c not in plan.VOLATILE]
    pd.testing.assert_frame_equal(resumed[cols], whole[cols], check_exact=True)


@pytest.mark.parametrize("method", ["grad_ascent", "grad_diff", "npo"])
def test_a_diverged_language_model_is_a_failed_row_not_numbers(tmp_path, method):
    """At lr 10^9 the weights may stay finite while the answers' NLLs overflow: the row fails,
    with the reason, and the run says so, as a diverged image model does."""
    fin = study.run("lm-smoke", str(tmp_path / "r"), {f"method_params.{method}.lr": 1e9, "methods": ["original", method],
                                                     "designs": ["paper"]}, executor="local", progress=False)
    rows = fin.table[fin.table.method == method]
    assert rows.status.str.startswith("failed: non-finite").all() and rows[E.METRICS].isna().all().all()
    assert fin.failed == len(rows) and (fin.table[fin.table.method == "original"].status == "ok").all()
