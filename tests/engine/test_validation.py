"""Bad input of every kind is refused before any work, in one line naming the parameter."""
import errno
import json
import multiprocessing as mp
import os
import re
import shutil
import stat

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mu_core import ConfigError, notebook, plan, profiles, store, study
from mu_core.__main__ import main
from mu_core.images.methods import METHODS


def refused(override, profile="smoke"):
    with pytest.raises(ConfigError) as err:
        profiles.load(profile, override)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# --- method parameters -----------------------------------------------------------------------

@pytest.mark.parametrize("override,words", [
    ({"method_params.finetune": {"epoch": 5, "lr": 0.02, "momentum": 0.9, "weight_decay": 0, "batch": 64}},
     ["method_params.finetune", "no field 'epoch'", "epochs"]),
    ({"method_params.finetune.epochs": -5}, ["method_params.finetune.epochs", "integer >= 1", "-5"]),
    ({"method_params.ssd.alpha": "ten"}, ["method_params.ssd.alpha", "number > 0"]),
    ({"method_params.unsir.noise_steps": {"full_class": 5}}, ["method_params.unsir.noise_steps", "sub_class"]),
    ({"method_params.bad_teacher.retain_fraction": 1.5}, ["retain_fraction", "<= 1"]),
    ({"method_params.retrain.lr": float("nan")}, ["method_params.retrain.lr", "finite number > 0", "nan"]),
    ({"method_params": {"ssd": {"alpha": 2, "lambda": 1, "batch": 64, "chunk": 64}}}, ["method_params.retrain is missing", "needs the fields lr"]),
])
def test_method_parameters_are_checked_against_their_method(override, words):
    msg = refused(override)
    for w in words:
        assert w in msg, msg


# --- the fields and the override syntax ---------------------------------------------------------

@pytest.mark.parametrize("override,words", [
    (["train.milestones.mnist10=[3, 2]"], ["train.milestones.mnist10", "ascending"]),
    (["train.momentum=1.0"], ["train.momentum", "< 1"]),
    (["eval.batch=0"], ["eval.batch"]),
    (["model.hidden=-1"], ["model.hidden"]),
    (["train.lr=.nan"], ["train.lr", "finite"]),
    (["train.lr=.inf"], ["train.lr", "finite"]),
    (["methods=[original, original]"], ["methods", "'original' more than once"]),
    (['targets={"mnist10/full_class": ["3", 3]}'], ["targets.mnist10/full_class", "'3' more than once"]),
    (["methods=[ssd, lfssd"], ["override methods", "not valid YAML"]),
    (["paper={I: 3}"], ["paper lacks", "J", "paper.J=VALUE"]),
    (["train=5"], ["train must be a mapping"]),
    (["mode"], ["must look like field=value"]),
    ('{"mode": "fast"}', ["mode 'fast' is unknown"]),
    ('{"mode": ', ["overrides", "not valid YAML"]),
    (42, ["overrides must be a mapping"]),
])
def test_bad_overrides_are_one_line_refusals(override, words):
    msg = refused(override)
    for w in words:
        assert w in msg, msg


def test_numbers_in_scientific_notation_are_numbers():
    assert profiles.load("smoke", ["train.lr=1e-3"])["train"]["lr"] == 1e-3
    assert profiles.load("smoke", '{"mode": "corrected"}')["mode"] == "corrected"  # a mapping as a string
    assert profiles.load("smoke", "mode=corrected")["mode"] == "corrected"


def test_a_profile_extends_another_and_differs_only_where_it_says():
    a, b = profiles.load("paper"), profiles.load("paper-corrected")
    assert {k for k in a if a[k] != b[k]} == {"profile", "mode", "description"}


# --- property-based: every field of every profile ---------------------------------------------

def leaves(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, f"{prefix}{k}.")
        elif k not in ("profile",):
            yield f"{prefix}{k}"


FIELDS = sorted({(p, f) for p in profiles.names() for f in leaves(profiles.load(p))})
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=6), st.sampled_from(["reference", "corrected", "cpu", "sgd", "bf16", "7", "rocket"]),
                   st.lists(st.one_of(st.integers(-2, 50), st.sampled_from(["ssd", "7", "paper"])), max_size=4),
                   st.dictionaries(st.sampled_from(["I", "J", "mnist10", "full_class", "x"]), st.integers(-1, 5), max_size=3))


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pf=st.sampled_from(FIELDS), value=VALUES)
def test_any_value_of_any_field_is_accepted_and_plannable_or_refused_in_one_line(pf, value):
    name, field = pf
    try:
        prof = profiles.load(name, {field: value})
    except ConfigError as err:
        msg = str(err)
        assert "\n" not in msg
        assert any(part in msg for part in field.split(".")) or "name no target" in msg, (field, value, msg)
        return
    plan.schedule(prof)  # an accepted profile can always be planned (no KeyError, no TypeError)


# --- notebook parameters -----------------------------------------------------------------------

def test_a_misspelt_notebook_parameter_is_refused_with_the_allowed_names():
    ns = {"profile": "smoke", "run_dir": "r", "overrides": {}, "rundir": "x"}
    with pytest.raises(ConfigError, match="parameter 'rundir' is unknown to 04_figure2; its parameters: profile, run_dir, overrides"):
        notebook.parameters(ns, "04_figure2")


def test_notebook_parameters_are_checked_and_defaulted():
    p = notebook.parameters({"profile": "smoke", "run_dir": "r", "overrides": '{"mode": "corrected"}', "n_b": 5,
                             "In": [], "np": shutil}, "05_beyond")
    assert p.n_b == 5 and p.n_boot == 200
    with pytest.raises(ConfigError, match="parameter n_boot must be an integer >= 10 and <= 10000, got 3"):
        notebook.parameters({"n_boot": 3}, "05_beyond")
    with pytest.raises(ConfigError, match="parameter profile 'big' is unknown; allowed: classroom"):
        notebook.parameters({"profile": "big"}, "01_train")
    with pytest.raises(ConfigError, match="overrides: 'mode' must look like field=value"):
        notebook.parameters({"overrides": ["mode"]}, "01_train")


@settings(max_examples=300, deadline=None)
@given(nb=st.sampled_from(sorted(notebook.PARAMETERS)), value=VALUES, which=st.integers(0, 20))
def test_any_notebook_parameter_value_is_accepted_or_refused_in_one_line(nb, value, which):
    names = list(notebook.PARAMETERS[nb])
    name = names[which % len(names)]
    default = notebook.PARAMETERS[nb][name][1]
    try:
        got = getattr(notebook.parameters({name: value}, nb), name)
    except ConfigError as err:
        assert "\n" not in str(err) and name in str(err), (nb, name, value, str(err))
        return
    # the oracle: an accepted value has the kind of the parameter's default, is finite, and comes
    # back unchanged (a folder: normalised)
    if isinstance(default, bool) or default is None or isinstance(default, str):
        assert value is None or isinstance(value, str), (nb, name, value)
        assert value is not None or default is None, (nb, name, value)
    elif isinstance(default, (int, float)):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (nb, name, value)
        assert value == value and abs(value) != float("inf"), (nb, name, value)
        assert isinstance(value, int) or isinstance(default, float), (nb, name, value)
    else:  # overrides: a mapping, a YAML string of one, or a list of field=value
        assert value is None or isinstance(value, (dict, str, list)), (nb, name, value)
    assert got == (os.path.normpath(value) if name in notebook.FOLDERS and isinstance(value, str) else value) \
        or name == "overrides", (nb, name, value, got)


@pytest.mark.slow
def test_a_notebook_refuses_a_misspelt_parameter_before_any_work(tmp_path):
    import papermill as pm
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with pytest.raises(pm.PapermillExecutionError, match="parameter 'rundir' is unknown to 01_train"):
        pm.execute_notebook(os.path.join(root, "notebooks", "01_train.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "rundir": str(tmp_path / "run")},
                            progress_bar=False, kernel_name="python3", cwd=str(tmp_path))
    assert not (tmp_path / "runs").exists()


# --- the run folder and the operating system ---------------------------------------------------

def cli(capsys, *args):
    code = main(["run", "--profile", "smoke", "--no-progress", "--executor", "local", *args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_operating_system_problems_are_one_line_errors(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for run_dir, words in ((str(f), "exists and is not a folder"), ("/proc/nope", "not a writable folder"),
                           ("", "run_dir must name a folder")):
        code, err = cli(capsys, "--run-dir", run_dir)
        assert code == 2 and words in err and "\n" not in err, err
    d = tmp_path / "bad"
    d.mkdir()
    (d / "profile.json").write_text("{not json")
    code, err = cli(capsys, "--run-dir", str(d))
    assert code == 2 and "profile.json is damaged" in err
    code, err = cli(capsys, "--run-dir", str(tmp_path / "s"), "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2 and "needs the dask executor" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from mu_core import dask_executor
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", "2s")  # nothing listens there: no need to wait 20 s
    code = main(["run", "--profile", "smoke", "--no-progress", "--run-dir", str(tmp_path / "r"),
                 "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "scheduler 'tcp://127.0.0.1:9' cannot be reached" in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # checked before the folder is claimed, as the README says


@pytest.mark.slow
def test_a_full_disk_mid_run_is_one_line_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    d = str(tmp_path / "r")
    over = ["--set", "methods=[original, finetune]", "--set", "designs=[paper]"]
    real, calls = store.atomic_write, []

    def full(path, body):
        calls.append(path)
        if len(calls) == 12:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, body)
    monkeypatch.setattr(store, "atomic_write", full)
    code, err = cli(capsys, "--run-dir", d, *over)
    assert code == 1 and "No space left on device" in err and "rerun the same command" in err and "\n" not in err
    assert not [f for sub in ("", "models", "jobs") if os.path.isdir(os.path.join(d, sub))
                for f in os.listdir(os.path.join(d, sub)) if f.startswith(store.TMP)]
    monkeypatch.setattr(store, "atomic_write", real)
    assert cli(capsys, "--run-dir", d, "--json", *over)[0] == 0


def _claim(args):
    run_dir, name = args
    try:
        store.claim(run_dir, name)
        return name
    except ConfigError:
        return None


@pytest.mark.slow
def test_two_profiles_racing_for_one_folder_one_wins(tmp_path):
    for k in range(5):
        d = str(tmp_path / f"race{k}")
        with mp.get_context("fork").Pool(6) as pool:
            won = pool.map(_claim, [(d, name) for name in ["smoke", "classroom"] * 3])
        assert len({w for w in won if w}) == 1  # every claimant of the losing profile was refused
        assert json.load(open(os.path.join(d, "profile.json")))["profile"] in won


def test_a_run_refused_for_missing_data_claims_nothing(tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        study.run("paper", str(tmp_path / "r"), {"data.root": str(tmp_path / "none")}, executor="local", progress=False)
    assert not (tmp_path / "r" / "profile.json").exists()
    study.run("smoke", str(tmp_path / "r"), {"methods": ["original"], "designs": ["paper"]}, executor="local", progress=False)


def test_files_honour_the_umask_and_checkpoints_are_tied_to_their_key(tmp_path):
    old = os.umask(0o022)
    try:
        store._UMASK = 0o022
        store.atomic_write(str(tmp_path / "a" / "f"), b"x")
        assert stat.S_IMODE(os.stat(tmp_path / "a" / "f").st_mode) == 0o644
    finally:
        os.umask(old)
        store._UMASK = old
    import torch
    net = torch.nn.Linear(2, 2)
    store.save_model(str(tmp_path / "m" / "k1.pt"), net, "k1")
    assert store.load_model_state(str(tmp_path / "m" / "k1.pt"), "k1") is not None
    for ext in ("", ".sha256"):
        shutil.copy(tmp_path / "m" / f"k1.pt{ext}", tmp_path / "m" / f"k2.pt{ext}")
    with pytest.warns(UserWarning, match="not the weights of k2"):
        assert store.load_model_state(str(tmp_path / "m" / "k2.pt"), "k2") is None
    store.save_json(str(tmp_path / "j" / "a.json"), {"v": 1}, "a")
    shutil.copy(tmp_path / "j" / "a.json", tmp_path / "j" / "b.json")
    with pytest.warns(UserWarning, match="belongs to key 'a'"):
        assert store.load_json(str(tmp_path / "j" / "b.json"), "b") is None


def test_sweep_removes_dead_processes_leftovers_and_keeps_live_ones(tmp_path):
    (tmp_path / "jobs").mkdir()
    dead = tmp_path / "jobs" / f"{store.TMP}{store._HOST}-999999999-abc"
    live = tmp_path / "jobs" / f"{store.TMP}{store._HOST}-{os.getpid()}-abc"
    other = tmp_path / "jobs" / f"{store.TMP}otherhost-1-abc"
    for f in (dead, live, other):
        f.write_text("partial")
    assert store.sweep(str(tmp_path)) == 1
    assert not dead.exists() and live.exists() and other.exists()


def test_a_resolved_profile_with_overrides_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="overrides were given with an already resolved profile"):
        study.run(profiles.load("smoke"), str(tmp_path / "r"), {"mode": "corrected"}, executor="local")


def test_figure_notebooks_refuse_overrides_their_results_do_not_reflect(tmp_path):
    d = str(tmp_path / "r")
    study.run("smoke", d, {"methods": ["original"], "designs": ["paper"]}, executor="local", progress=False)
    assert study.open_run(d, "smoke", {"methods": ["original"], "designs": ["paper"]}).profile["mode"] == "reference"
    with pytest.raises(ConfigError, match="not reflected in the results.*they change mode"):
        study.open_run(d, "smoke", {"methods": ["original"], "designs": ["paper"], "mode": "corrected"})
    with pytest.raises(ConfigError, match="holds a run of profile 'smoke', not 'classroom'"):
        study.open_run(d, "classroom")


# --- the hostile probe's cases (issue 18) ----------------------------------------------------------

@pytest.mark.parametrize("field,value,bound", [
    ("paper.I", 10**8, "<= 1000"), ("grid.J", 10**6, "<= 1000"), ("paper.a_train_seed", 2**64, "<= 2147483647"),
    ("paper.b_first_train_seed", 2**64, "<= 2147483647"), ("train.batch", 10**21, "<= 1048576"),
    ("model.hidden", 10**9, "<= 65536"), ("method_params.finetune.batch", 10**11, "<= 1000000"),
    ("train.epochs.mnist10", 10**9, "<= 10000"), ("eval.batch", 10**21, "<= 1048576"),
    ("j_per_method.retrain", 10**7, "<= 1000"),
])
def test_every_integer_field_has_an_upper_bound_named_in_its_message(field, value, bound):
    msg = refused({field: value})
    assert field in msg and bound in msg, msg


def test_a_plan_beyond_the_machine_or_without_a_job_is_refused(tmp_path):
    msg = refused({"designs": ["grid"], "grid.I": 1000, "grid.J": 1000, "grid_targets": {"mnist10/full_class": ["1", "2", "3"]}})
    assert "plans 21,057,000 rows, more than the 2,000,000" in msg  # 7 methods x 1000 x 1000, 9 capped at J = 2, Retrain at 1; x 3 targets
    assert "plans no job" in refused({"designs": ["paper"], "targets": {"mnist10/full_class": []}})
    assert "seeds run up to" in refused({"paper.a_first_unlearn_seed": 2**31 - 2, "paper.J": 5})
    code = main(["run", "--profile", "smoke", "--no-progress", "--run-dir", str(tmp_path / "r"),
                 "--set", "targets={mnist10/full_class: []}", "--set", "grid_targets={}", "--set", "designs=[paper, grid]"])
    assert code == 2 and not (tmp_path / "r").exists()


def test_a_mapping_with_free_keys_takes_a_new_key_from_the_command_line():
    prof = profiles.load("smoke", ["j_per_method.finetune=1"])
    assert prof["j_per_method"]["finetune"] == 1 and prof["j_per_method"]["retrain"] == 1
    assert set(prof["j_per_method"]) == set(profiles.load("smoke")["j_per_method"]) | {"finetune"}
    assert "j_per_method 'magic' is unknown" in refused(["j_per_method.magic=1"])
    assert "has no field 'nope'" in refused(["train.nope=1"])  # a fixed section still refuses new fields


def test_a_number_where_text_is_needed_names_papermills_r_option():
    with pytest.raises(ConfigError, match="papermill's -p reads 7 as a number; pass text with -r figure_target 7"):
        notebook.parameters({"figure_target": 7}, "02_unlearn")


def test_folder_parameters_are_normalised_so_a_trailing_slash_is_the_same_folder():
    ns = {"run_dir": "runs/x/", "corrected_run_dir": "runs/y//"}
    p = notebook.parameters(ns, "06_modes")
    assert p.run_dir == ns["run_dir"] == "runs/x" and p.corrected_run_dir == "runs/y"


def test_the_simulation_refuses_more_b_seeds_than_it_simulates():
    with pytest.raises(ConfigError, match="parameter I \\(20\\) must be less than n_seeds \\(10\\)"):
        notebook.parameters({"I": 20, "n_seeds": 10}, "07_simulation")
    notebook.parameters({"I": 9, "n_seeds": 10}, "07_simulation")


@pytest.mark.parametrize("nb,override,words", [
    ("03_figure1", {"designs": ["grid"]}, "needs the paper design"),
    ("04_figure2", {"paper.J": 1}, "needs paper.I >= 2 and paper.J >= 2"),
    ("08_claims", {"designs": ["grid"]}, "needs the paper design"),
    ("05_beyond", {"designs": ["paper"]}, "needs the grid design"),
    ("02_unlearn", {"designs": ["grid"]}, "needs the paper design"),
])
def test_a_figure_notebook_refuses_a_run_without_its_design_in_one_line(nb, override, words):
    with pytest.raises(ConfigError, match=words) as err:
        notebook.require(profiles.load("smoke", override), nb)
    assert "\n" not in str(err.value)
    notebook.require(profiles.load("smoke"), nb)  # the smoke profile has both designs


def test_every_figure_notebook_checks_its_design():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for nb in notebook.NEEDS:
        text = open(os.path.join(root, "notebooks", nb + ".ipynb")).read()
        # require directly, or through domain_run (a page running its own domain's study), naming the page
        assert ('notebook.require(' in text and f'\\"{nb}\\")' in text) or f'notebook.domain_run(\\"' in text and f'\\"{nb}\\",' in text, nb


# --- issue 29: bad input in every domain, one line each, nothing left behind ----------------------

@pytest.mark.parametrize("profile,over,words", [
    ("smoke", {"paper.I": "'2'"}, "paper.I must be an integer >= 1 and <= 1000, got \"'2'\" (a string)"),
    ("smoke", ["paper.I='2'"], "got '2' (a string)"),
    ("smoke", ["profile=classroom"], "the profile is chosen with --profile NAME"),
    ("smoke", {"train.augment.crop_pad": 100000}, "train.augment.crop_pad must be an integer >= 0 and <= 64"),
    ("smoke", {"method_params.unsir.noise_lr": 1e300}, "method_params.unsir.noise_lr must be a finite number > 0 and <= 1000000"),
    ("smoke", {"ulira.methods": ["scrub"], "methods": ["original", "finetune"], "designs": ["ulira"]},
     "plans no job: ulira.methods (scrub) names no method that methods (original, finetune) lists"),
    ("smoke", {"init_order.methods": ["ct"], "methods": ["original", "finetune"], "designs": ["init_order"]},
     "plans no job: init_order.methods (ct) names no method that methods (original, finetune) lists"),
    ("lm-smoke", {"model.d": 4096, "model.layers": 64, "model.heads": 64},
     "make a network of about 12,885 million parameters; this CPU analogue allows 50 million"),
])
def test_bad_profile_values_are_one_line_naming_the_field(profile, over, words):
    with pytest.raises(ConfigError) as err:
        profiles.load(profile, over)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("nb,name,value", [("07_simulation", "n_seeds", 10**9), ("12_analyse", "run_dir", ""),
                                          ("05_beyond", "n_boot", 10**9), ("07_simulation", "run_dir", "")])
def test_notebook_sizes_and_empty_folders_are_refused(nb, name, value):
    with pytest.raises(ConfigError, match=f"parameter {name} must be"):
        notebook.parameters({name: value}, nb)


def test_a_results_csv_that_is_a_folder_is_named(tmp_path, capsys):
    (tmp_path / "r" / "results.csv").mkdir(parents=True)
    code = main(["run", "--profile", "smoke", "--run-dir", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "results.csv exists and is not a file" in err and "\n" not in err


def test_a_model_at_chance_is_collapsed_not_a_perfect_forgetter(tmp_path, capsys):
    """Gradient ascent at lr 10^4 destroys the model (it predicts one class): its rows keep their
    true metrics under the status 'collapsed: ...', the run's summary counts them, and the pages keep
    them in the statistics (a grid with them left out is unbalanced) but never read them as forgetting."""
    from mu_core.images import metrics
    assert metrics.collapsed(10.0, 10).startswith("collapsed: retain accuracy 10.0 % at chance (10.0 %)")
    assert metrics.collapsed(12.5, 10) and metrics.collapsed(12.6, 10) is None and metrics.collapsed(32.0, 5) is None
    d = str(tmp_path / "r")
    code = main(["run", "--profile", "smoke", "--run-dir", d, "--no-progress", "--executor", "local", "--set",
                 "designs=[grid]", "--set", "methods=[original, gradient_ascent]", "--set",
                 "method_params.gradient_ascent.lr=10000"])
    out, err = capsys.readouterr()
    t = pd.read_csv(os.path.join(d, "results.csv"))
    ga = t[t.method == "gradient_ascent"]
    assert code == 0 and ga.status.str.startswith("collapsed: retain accuracy").all() and ga.forget_acc.notna().all()
    assert f"{len(ga)} collapsed" in out and f"{len(ga)} row(s) collapsed" in err
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    assert manifest["results"]["collapsed_by_method"] == {"gradient_ascent": len(ga)}
    run = study.open_run(d)  # kept in the statistics (the grid stays whole), marked and counted
    assert len(run.table[run.table.method == "gradient_ascent"]) == len(ga) and len(run.failed) == len(ga)
    assert f"{len(ga)} row(s) of models collapsed to chance (kept in the statistics" in run.provenance
    from mu_core import stats
    key, target = run.table.dataset.iloc[0] + "/" + run.table.setting.iloc[0], run.table.target.iloc[0]
    Z = stats.grid_matrix(run.table, "gradient_ascent", key, target, "forget_acc")  # balanced: no seed lost a row
    assert Z.size == len(ga[(ga.dataset + "/" + ga.setting == key) & (ga.target.astype(str) == str(target))])


def test_an_edited_or_damaged_results_table_is_refused_naming_the_rows(tmp_path):
    d = str(tmp_path / "r")
    study.run("smoke", d, {"designs": ["paper"], "methods": ["original", "finetune"]}, executor="local", progress=False)
    path = os.path.join(d, "results.csv")
    good = open(path).read()
    t = pd.read_csv(path)
    t.loc[3, "forget_acc"] = 99.5
    t.to_csv(path, index=False)
    r = t.loc[3]
    with pytest.raises(ConfigError, match=re.escape(f"results.csv differs from the job files it was assembled from in 1 "
                                                    f"row(s) ({r.method} s_t={r.train_seed} s_u={r.unlearn_seed}); rerun "
                                                    f"python -m mu_core run --profile smoke")):
        study.open_run(d)
    for damaged in (b"", os.urandom(300), good[: len(good) // 2].encode()):
        open(path, "wb").write(damaged)
        with pytest.raises(ConfigError) as err:
            study.open_run(d)
        assert "results.csv" in str(err.value) and "rerun python -m mu_core run" in str(err.value)
    open(path, "w").write(good)
    assert len(study.open_run(d).table) == len(t)
    for side in os.listdir(os.path.join(d, "models")):
        if side.endswith(".json"):
            open(os.path.join(d, "models", side), "w").write("{")
    with pytest.raises(ConfigError, match="sidecars .* are missing or damaged"):
        study.open_run(d)
