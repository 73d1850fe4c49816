"""The grid engine: designs and seeds, the cache, results.csv, bad input, the paper profile."""
import json
import os

import pandas as pd
import pytest

from mu_core import ConfigError, plan, profiles, study
from mu_core.__main__ import main

INTERFACE = ["dataset", "setting", "target", "method", "mode", "train_seed", "unlearn_seed",
             "retain_acc", "forget_acc", "test_acc", "mia", "method_seconds"]
SMALL = {"designs": ["paper", "grid"], "targets": {"mnist10/full_class": ["7"]}, "grid_targets": {"mnist5/sub_class": ["7"]},
         "methods": ["original", "finetune", "ssd"], "paper.I": 2, "paper.J": 3, "grid.I": 2, "grid.J": 2}


def test_plan_follows_the_seed_interface():
    prof = profiles.load("smoke", {**SMALL, "j_per_method": {"finetune": 1}})
    rows = pd.DataFrame(plan.rows(prof))
    g = rows[rows.design == "grid"]
    ssd = g[g.method == "ssd"]
    assert sorted(zip(ssd.train_seed, ssd.unlearn_seed)) == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert sorted(zip(*[g[g.method == "finetune"][c] for c in ("train_seed", "unlearn_seed")])) == [(1, 1), (2, 3)]
    p = rows[(rows.design == "paper") & (rows.method == "ssd")]
    a, b = p[p.protocol == "A"], p[p.protocol == "B"]
    assert set(a.train_seed) == {1} and list(a.unlearn_seed) == [100, 101, 102]
    assert list(b.train_seed) == [100, 101] and list(b.unlearn_seed) == [100, 101]  # matched


def test_deterministic_methods_run_once_per_model():
    prof = profiles.load("smoke", SMALL)
    rows, tspecs, groups = plan.schedule(prof)
    jobs = [j for g in groups.values() for j in g]
    n_models = len(tspecs)
    assert n_models == 3 + 2  # paper: seed 1, 100, 101 on mnist10; grid: seeds 1, 2 on mnist5
    ssd_jobs = [j for j in jobs if j["method"] == "ssd"]
    assert len(ssd_jobs) == n_models  # one per original model and target
    assert len([r for r in rows if r["method"] == "ssd"]) == 3 + 2 + 4


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("run"))
    table = study.run("smoke", d, SMALL, executor="local", progress=False).table
    return d, table


def test_results_table_and_manifest(smoke_run):
    d, table = smoke_run
    on_disk = pd.read_csv(os.path.join(d, "results.csv"))
    assert set(INTERFACE) <= set(on_disk.columns)
    assert len(on_disk) == len(plan.rows(profiles.load("smoke", SMALL)))
    assert on_disk[["retain_acc", "forget_acc", "test_acc", "mia"]].stack().between(0, 100).all()
    det = on_disk[on_disk.method == "ssd"].groupby(["design", "train_seed"]).forget_acc.nunique()
    assert (det == 1).all()  # a deterministic method: one value per original model
    m = json.load(open(os.path.join(d, "manifest.json")))
    assert m["profile"]["profile"] == "smoke" and "torch" in m["versions"] and m["calls"][-1]["wall_seconds"]
    assert m["calls"][-1]["computed"]["trained"] == 5


def test_second_run_trains_nothing_and_gives_the_same_table(smoke_run):
    d, table = smoke_run
    again = study.run("smoke", d, SMALL, executor="local", progress=False).table
    m = json.load(open(os.path.join(d, "manifest.json")))
    assert m["calls"][-1]["computed"] == {"trained": 0, "jobs": 0} and len(m["calls"]) >= 2
    pd.testing.assert_frame_equal(again, table)  # commit and computed_at included: a cached rerun dates nothing anew
    assert table["computed_at"].notna().all() and table["commit"].notna().all()
    assert m["results"]["last_computed"] == table["computed_at"].max()


def test_a_changed_parameter_recomputes_only_what_depends_on_it(smoke_run, tmp_path):
    d, table = smoke_run
    changed = study.run("smoke", d, {**SMALL, "method_params.finetune.lr": 0.05}, executor="local", progress=False).table
    m = json.load(open(os.path.join(d, "manifest.json")))
    n_finetune_jobs = int((table.method == "finetune").sum())  # finetune is stochastic: a job per row
    assert m["calls"][-1]["computed"] == {"trained": 0, "jobs": n_finetune_jobs}
    keep = changed.method != "finetune"
    pd.testing.assert_frame_equal(changed[keep], table[keep])
    study.run("smoke", d, SMALL, executor="local", progress=False)  # restore the shared run's table (all cached)


def test_only_missing_jobs_reach_the_executor(smoke_run, monkeypatch):
    """A finished run starts no executor (no dask cluster, no model loaded); with one stored job
    removed, the executor gets that job alone, and the table comes back the same."""
    d, table = smoke_run
    handed = []
    real = study._execute

    def spy(prof, run_dir, executor, scheduler, tspecs, groups, bar=None):
        handed.append({k: [j["key"] for j in jobs] for k, jobs in groups.items()})
        return real(prof, run_dir, executor, scheduler, tspecs, groups, bar)
    monkeypatch.setattr(study, "_execute", spy)
    again = study.run("smoke", d, SMALL, executor="local", progress=False).table
    assert handed == []
    pd.testing.assert_frame_equal(again, table)

    _, _, groups = plan.schedule(profiles.load("smoke", SMALL))
    planned = {j["key"] + ".json" for jobs in groups.values() for j in jobs}
    victim = sorted(n for n in os.listdir(os.path.join(d, "jobs")) if n in planned)[0]  # (other tests add jobs of other plans)
    os.remove(os.path.join(d, "jobs", victim))
    again = study.run("smoke", d, SMALL, executor="local", progress=False).table
    assert [list(h.values()) for h in handed] == [[[victim[:-5]]]]
    assert json.load(open(os.path.join(d, "manifest.json")))["calls"][-1]["computed"] == {"trained": 0, "jobs": 1}
    # the recomputed job gives the same metrics (its time is its own)
    pd.testing.assert_frame_equal(again.drop(columns=plan.VOLATILE), table.drop(columns=plan.VOLATILE))


@pytest.mark.parametrize("override,message", [
    ({"mode": "fast"}, "mode 'fast' is unknown; allowed: reference, corrected"),
    ({"methods": ["ssd", "magic"]}, "methods 'magic' is unknown; allowed: original, retrain"),
    ({"targets": {"mnist7/full_class": ["1"]}}, "targets 'mnist7/full_class' is unknown; allowed: mnist10/full_class"),
    ({"targets": {"mnist10/half_class": ["1"]}}, "targets 'mnist10/half_class' is unknown"),
    ({"targets": {"mnist10/full_class": ["11"]}}, "target '11' is not a class of mnist10/full_class; allowed: 0, 1"),
    ({"paper.I": 0}, "paper.I must be an integer >= 1 and <= 1000, got 0"),
    ({"grid.J": -2}, "grid.J must be an integer >= 1"),
    ({"j_per_method": {"retrain": -1}}, "j_per_method.retrain must be an integer >= 0"),
    ({"train.epochs.mnist10": 2.5}, "train.epochs.mnist10 must be an integer >= 1"),
    ({"device": "tpu"}, "device 'tpu' is unknown; allowed: auto, cpu, cuda"),
    ({"no_such_field": 1}, "the profile has no field 'no_such_field'"),
])
def test_bad_input_stops_before_any_work(tmp_path, override, message):
    d = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        study.run("smoke", str(d), override, executor="local", progress=False)
    assert message in str(err.value)
    assert not d.exists()  # nothing written, not even the folder


def test_unknown_profile_and_foreign_run_folder(tmp_path, smoke_run, capsys):
    with pytest.raises(ConfigError, match="profile 'large' is unknown; allowed: classroom, deepunlearn-paper, lm-classroom, lm-smoke, ltr-classroom, ltr-paper, ltr-smoke, paper"):
        profiles.load("large")
    with pytest.raises(ConfigError, match="was made by profile 'smoke'"):
        study.run("classroom", smoke_run[0], executor="local", progress=False)
    assert main(["run", "--profile", "nope", "--run-dir", str(tmp_path / "x")]) == 2
    assert "profile 'nope' is unknown" in capsys.readouterr().err
    assert main(["profiles"]) == 0 and "classroom:" in capsys.readouterr().out


def test_command_line_and_function_give_the_same_table(smoke_run, tmp_path):
    d = str(tmp_path / "cli")
    sets = [f"{k}={json.dumps(v)}" for k, v in SMALL.items()]
    assert main(["run", "--profile", "smoke", "--run-dir", d, "--no-progress", "--executor", "local"] + sum([["--set", s] for s in sets], [])) == 0
    cli = pd.read_csv(os.path.join(d, "results.csv"))
    ref = pd.read_csv(os.path.join(smoke_run[0], "results.csv"))
    cols = [c for c in cli.columns if c not in plan.VOLATILE]
    pd.testing.assert_frame_equal(cli[cols], ref[cols])


@pytest.mark.slow
def test_paper_profile_end_to_end_on_the_synthetic_archive(cifar_root, tmp_path):
    """The paper profile, shrunk by overrides: one target per setting, two seeds, one epoch."""
    over = {
        "data.root": cifar_root, "model.width": 2,
        "train.epochs": {"cifar100": 1, "cifar20": 1}, "train.milestones": {"cifar100": [], "cifar20": []},
        "paper.I": 1, "paper.J": 1,
        "targets": {"cifar100/full_class": ["rocket"], "cifar20/full_class": ["vehicle2"],
                    "cifar20/sub_class": ["pine"]},
        "method_params.unsir.noise_steps": {"full_class": 2, "sub_class": 2},
        "method_params.unsir.noise_copies": 2,
        "method_params.finetune.epochs": 1, "method_params.random_labels.epochs": 1,
    }
    for profile in ("paper", "paper-corrected"):
        table = study.run(profile, str(tmp_path / profile), over, executor="local", progress=False).table
        assert set(table.method) == set(profiles.load(profile)["methods"])  # every method the profile lists
        assert set(zip(table.dataset, table.setting)) == {("cifar100", "full_class"), ("cifar20", "full_class"),
                                                          ("cifar20", "sub_class")}
        assert len(table) == 3 * len(set(table.method)) * 2 and table[["retain_acc", "forget_acc", "test_acc", "mia"]].notna().all().all()
        assert set(table["mode"]) == {profile.replace("paper-", "").replace("paper", "reference")}
        m = json.load(open(tmp_path / profile / "manifest.json"))
        assert m["calls"][-1]["computed"]["trained"] == 4  # seeds 1 and 100, on fine and coarse labels


def test_missing_cifar_folder_is_a_clear_error_before_training(tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        study.run("paper", str(tmp_path / "r"), {"data.root": str(tmp_path / "none")}, executor="local", progress=False)
    assert not (tmp_path / "r" / "results.csv").exists()
