"""Provenance of every result, failures recorded as failures, and the store's smaller promises."""
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from mu_core import ConfigError, plan, profiles, provenance, store, study
from mu_core.images import data as D
from mu_core.images import engine as IE

SMALL = {"designs": ["paper"], "targets": {"mnist10/full_class": ["7"]}, "methods": ["original", "finetune"],
         "paper.I": 2, "paper.J": 2}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("prov"))
    return d, study.run("smoke", d, SMALL, executor="local", progress=False)


def _payloads(folder):
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and not name.startswith(store.TMP):
            yield name, store.load_json(os.path.join(folder, name), name[:-5])


def test_every_stored_model_and_result_records_who_computed_it(small_run):
    d, _ = small_run
    found = list(_payloads(os.path.join(d, "jobs"))) + list(_payloads(os.path.join(d, "models")))
    assert len(found) >= 3
    for name, payload in found:
        made = payload["computed"]
        assert made["commit"] == provenance.commit() and made["date"].endswith("UTC"), name
        assert made["versions"]["torch"] and made["device"], name


def test_the_table_and_the_provenance_line_name_the_commits_of_the_results(small_run, tmp_path):
    d, fin = small_run
    run = study.open_run(d)
    assert (run.table["commit"] == provenance.commit()).all()
    assert f"computed at commit {provenance.short(provenance.commit())}" in run.provenance
    assert "profile smoke, mode reference, data real MNIST digits" in run.provenance
    # rows computed at two commits: the line names both, and the dates between which they were computed
    two = run.table.assign(commit=["a" * 40] * 3 + ["b" * 40] * (len(run.table) - 3),
                           computed_at=["2026-01-01 10:00:00 UTC"] + ["2026-02-03 10:00:00 UTC"] * (len(run.table) - 1))
    line = run.provenance_of(two)
    assert f"computed at commits {'a' * 10}, {'b' * 10} between 2026-01-01 and 2026-02-03" in line


def test_the_manifest_keeps_a_history_of_calls_and_a_cached_rerun_dates_nothing_anew(small_run):
    d, fin = small_run
    before = pd.read_csv(os.path.join(d, "results.csv"))
    n_calls = len(json.load(open(os.path.join(d, "manifest.json")))["calls"])
    study.run("smoke", d, SMALL, executor="local", progress=False)
    after = pd.read_csv(os.path.join(d, "results.csv"))
    pd.testing.assert_frame_equal(before, after)  # commit and computed_at of every row unchanged
    m = json.load(open(os.path.join(d, "manifest.json")))
    assert len(m["calls"]) == n_calls + 1
    assert m["calls"][-1]["computed"] == {"trained": 0, "jobs": 0}
    assert set(m["calls"][-1]["wall_seconds"]) == {"experiments", "assemble"}
    assert m["results"]["first_computed"] == before["computed_at"].min()


def test_a_damaged_manifest_is_one_line_for_readers_and_rewritten_by_a_run(small_run, tmp_path):
    import shutil
    d = str(tmp_path / "copy")
    shutil.copytree(small_run[0], d)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ConfigError, match="manifest.json is damaged"):
        study.open_run(d)
    study.run("smoke", d, SMALL, executor="local", progress=False)
    m = study.open_run(d).manifest
    assert "lost" in m["calls"][0]["note"] and m["calls"][-1]["computed"] == {"trained": 0, "jobs": 0}


def test_training_costs_come_from_the_models_of_this_profile_only(tmp_path):
    d = str(tmp_path / "r")
    other = {**SMALL, "train.lr": 0.05}  # other original models in the same folder
    study.run("smoke", d, other, executor="local", progress=False)
    study.run("smoke", d, SMALL, executor="local", progress=False)
    n_models = len(os.listdir(os.path.join(d, "models")))
    run = study.open_run(d)
    _, tspecs, _ = plan.schedule(profiles.load("smoke", SMALL))
    assert len(run.train_seconds) == len(tspecs) and n_models >= 2 * 2 * len(tspecs)  # .pt, .json, ...


def test_saved_figures_carry_profile_mode_and_commit(small_run, tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from mu_core import plots
    run = study.open_run(small_run[0])
    fig = plt.figure()
    png, pdf = plots.save(fig, str(tmp_path / "fig"), run.metadata())
    plt.close(fig)
    text = Image.open(png).text
    assert "profile=smoke" in text["Keywords"] and "mode=reference" in text["Keywords"]
    assert f"commit={provenance.short(provenance.commit())}" in text["Keywords"]
    body = open(pdf, "rb").read()
    assert b"profile=smoke" in body and b"mode=reference" in body


def test_a_diverged_method_is_recorded_as_failed_not_as_a_perfect_forgetter(tmp_path, capsys):
    d = str(tmp_path / "r")
    fin = study.run("smoke", d, {**SMALL, "method_params.finetune.lr": 100}, executor="local", progress=False)
    t = fin.table
    bad, good = t[t.method == "finetune"], t[t.method == "original"]
    assert (bad.status.str.startswith("failed: non-finite outputs")).all() and fin.failed == len(bad)
    assert bad[["retain_acc", "forget_acc", "test_acc", "mia"]].isna().all().all()  # empty, never 0 %
    assert (good.status == "ok").all() and good.forget_acc.notna().all()
    assert f"{len(bad)} row(s) failed and have no metrics: finetune" in capsys.readouterr().err
    on_disk = pd.read_csv(os.path.join(d, "results.csv"))
    assert on_disk[on_disk.method == "finetune"].forget_acc.isna().all()
    run = study.open_run(d)
    assert (run.table.status == "ok").all() and len(run.failed) == len(bad)
    assert f"{len(bad)} row(s) failed" in run.provenance


@pytest.mark.parametrize("override", [{"train.lr": 1e300}, {"method_params.bad_teacher.temperature": 1e-300}])
def test_other_divergences_fail_the_same_way(tmp_path, override):
    method = "bad_teacher" if "method_params.bad_teacher.temperature" in override else "original"
    fin = study.run("smoke", str(tmp_path / "r"), {**SMALL, "methods": [method], **override},
                    executor="local", progress=False)
    assert (fin.table.status != "ok").all() and fin.table.forget_acc.isna().all()


def test_a_damaged_model_sidecar_is_recomputed(small_run, tmp_path):
    import shutil
    d = str(tmp_path / "copy")
    shutil.copytree(small_run[0], d)
    before = pd.read_csv(os.path.join(d, "results.csv"), dtype={"target": str})
    _, tspecs, groups = plan.schedule(profiles.load("smoke", SMALL))
    tkey = sorted(tspecs)[0]
    with open(store.model_path(d, tkey)[:-3] + ".json", "w") as f:
        f.write("{damaged")
    os.remove(store.job_path(d, groups[tkey][0]["key"]))  # a job that needs the model
    with pytest.warns(UserWarning, match="damaged cache file"):
        fin = study.run("smoke", d, SMALL, executor="local", progress=False)
    assert fin.computed == {"trained": 1, "jobs": 1}
    assert store.model_info(d, tkey)["train_seconds"] > 0
    cols = [c for c in before.columns if c not in plan.VOLATILE + ["commit"]]
    pd.testing.assert_frame_equal(fin.table[cols], before[cols], check_dtype=False)


def test_a_store_subfolder_that_is_a_file_is_one_line_before_any_work(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "models").write_text("not a folder")
    with pytest.raises(ConfigError, match="models exists and is not a folder"):
        study.run("smoke", str(d), SMALL, executor="local", progress=False)
    assert not (d / "profile.json").exists()


def test_the_cost_projection_counts_a_sub_class_forget_set_as_one_fine_class():
    prof = profiles.load("paper", {"designs": ["paper"], "paper.I": 1, "paper.J": 1, "methods": ["retrain"],
                                   "targets": {"cifar20/sub_class": ["rocket"]}})
    epochs = prof["train"]["epochs"]["cifar20"]
    n = D.CIFAR_SIZES["train"]["cifar20"]
    # two original models (A's seed and B's), each trained, and each Retrain on D_r = all but one fine class
    assert IE.training_images(*plan.schedule(prof)[1:], D.CIFAR_SIZES) == 2 * epochs * n + 2 * epochs * (n - 500)


def test_the_method_parameter_table_covers_every_profile(monkeypatch):
    from mu_core import tables
    real = profiles.load

    def load(name, overrides=()):
        prof = real(name, overrides)
        if name == "smoke":  # a field only the alphabetically last profile has
            prof["method_params"]["finetune"]["extra_field"] = 1
        return prof
    monkeypatch.setattr(profiles, "load", load)
    text = tables.method_params()
    assert "`extra_field`" in text
    for name in profiles.names():
        for m, params in real(name)["method_params"].items():
            for field, _ in tables._flat(params):
                assert f"`{field}`" in text, (name, m, field)


def test_the_reference_style_baseline_refuses_a_method_it_does_not_implement():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks"))
    import cpu_engine_vs_reference as B
    from mu_core.images import models
    prof = profiles.load("smoke")
    data = D.load(prof["data"])
    split = D.make_split(data, "mnist10", "full_class", "7")
    model = models.build(prof["model"], 10, tuple(data.train_x.shape[1:]), 0)
    with pytest.raises(ValueError, match="does not implement method 'gradient_ascent'"):
        B.unlearn("gradient_ascent", model, split, prof["method_params"], {}, data, 0, prof)
    assert B.unlearn("original", model, split, prof["method_params"], {}, data, 0, prof) is model
