"""Faults, concurrency, damaged files, executors and input validation."""
import json
import os
import pickle
import random
import time

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from fresh import run_cli, start_cli
from mu_core import ConfigError, plan, profiles, store, study
from mu_core.images.methods import METHODS

# every method; a grid of 84 unlearning jobs over 6 original models: big enough to kill in many places
FAULT = {"targets": {"mnist10/full_class": ["7"]}, "grid_targets": {"mnist5/sub_class": ["7"]},
         "methods": list(METHODS), "j_per_method": {}, "paper.I": 2, "paper.J": 3, "grid.I": 3, "grid.J": 3}
CLI_SETS = sum([["--set", f"{k}={json.dumps(v)}"] for k, v in FAULT.items()], [])
METRICS = ["retain_acc", "forget_acc", "test_acc", "mia"]


def cli(run_dir, *extra):
    """``python -m mu_core`` arguments of a FAULT run (run by ``fresh.start_cli``: a new process
    forked from a server that has imported torch, 5 s faster than an interpreter start)."""
    return ["run", "--profile", "smoke", "--run-dir", str(run_dir), "--no-progress", "--executor", "local", "--json",
            *CLI_SETS, *extra]


def without_time(t):
    return t.drop(columns=plan.VOLATILE)


@pytest.fixture(scope="module")
def reference_table(tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted")
    run_cli(cli(d))
    return pd.read_csv(d / "results.csv")


def n_done(run_dir):
    jobs = os.path.join(run_dir, "jobs")
    return len([f for f in os.listdir(jobs) if f.endswith(".json")]) if os.path.isdir(jobs) else 0


@pytest.mark.slow
def test_kill_minus_9_anywhere_then_resume_loses_nothing(tmp_path, reference_table):
    """Kill the run with SIGKILL at 10 points spread over the grid, resume each time."""
    d = tmp_path / "run"
    total = len(set(zip(*[reference_table[c] for c in ("method", "train_seed", "unlearn_seed", "design")])))
    rng = random.Random(0)
    points = sorted(rng.sample(range(0, 76), 10))  # kill once this many jobs are stored
    kills = 0
    for point in points:
        proc = start_cli(cli(d))
        deadline = time.time() + 120
        while proc.is_alive() and n_done(d) < point and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))  # land inside a job, or inside training, or a write
        if proc.is_alive():
            proc.kill()  # SIGKILL
            kills += 1
        proc.join()
        assert not (d / "results.csv").exists() or pd.read_csv(d / "results.csv").notna().all().all()
    assert kills >= 8  # the run is long enough that almost every point lands mid-run
    run_cli(cli(d))  # the resume
    final = pd.read_csv(d / "results.csv")
    assert len(final) == len(reference_table) and total > 0
    assert set(final.method) == set(METHODS)
    pd.testing.assert_frame_equal(without_time(final), without_time(reference_table), check_exact=True)
    leftovers = [f for sub in ("", "models", "jobs") for f in os.listdir(d / sub) if f.startswith(".tmp-")]
    assert leftovers == []  # what killed runs left half-written was swept by the resume


@pytest.mark.slow
def test_two_concurrent_runs_compute_each_job_once(tmp_path, reference_table):
    d = tmp_path / "run"
    outs = [tmp_path / f"out{i}" for i in range(2)]
    procs = [start_cli(cli(d), str(o)) for o in outs]
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    counted = [json.loads(o.read_text().strip().splitlines()[-1]) for o in outs]
    n_models = len([f for f in os.listdir(d / "models") if f.endswith(".pt")])
    n_jobs = n_done(d)
    assert sum(c["trained"] for c in counted) == n_models and sum(c["jobs"] for c in counted) == n_jobs
    pd.testing.assert_frame_equal(without_time(pd.read_csv(d / "results.csv")), without_time(reference_table))


@pytest.mark.slow
def test_damaged_files_are_detected_and_recomputed(tmp_path):
    """A truncated result and a flipped byte in the checkpoint that result needs are both reported
    and recomputed; the table comes back the same. (A checkpoint is read when a missing result
    needs it: a run whose results are all stored reads none.)"""
    d = str(tmp_path / "run")
    over = {**FAULT, "methods": ["original", "finetune"]}
    first = study.run("smoke", d, over, executor="local", progress=False).table
    job = sorted(os.listdir(os.path.join(d, "jobs")))[0]
    with open(os.path.join(d, "jobs", job), "r+b") as f:  # truncate a result
        f.truncate(20)
    _, _, groups = plan.schedule(profiles.load("smoke", over))
    ckpt = next(tkey for tkey, jobs in groups.items() if job[:-5] in [j["key"] for j in jobs]) + ".pt"
    blob = bytearray(open(os.path.join(d, "models", ckpt), "rb").read())
    blob[len(blob) // 2] ^= 0xFF  # flip a byte in a checkpoint
    open(os.path.join(d, "models", ckpt), "wb").write(bytes(blob))
    with pytest.warns(UserWarning) as record:
        again = study.run("smoke", d, over, executor="local", progress=False)
    text = " ".join(str(w.message) for w in record)
    assert "damaged cache file" in text and "damaged checkpoint" in text
    assert again.computed["trained"] == 1 and again.computed["jobs"] >= 1
    pd.testing.assert_frame_equal(without_time(again.table), without_time(first))


def test_a_checkpoint_that_is_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    path = str(tmp_path / "models" / "m.pt")
    os.makedirs(os.path.dirname(path))
    body = pickle.dumps({"w": Evil()})
    open(path, "wb").write(body)
    import hashlib
    open(path + ".sha256", "w").write(hashlib.sha256(b"m" + body).hexdigest())  # a valid checksum
    with pytest.warns(UserWarning, match="cannot be loaded as plain weights"):
        assert store.load_model_state(path, "m") is None
    assert not marker.exists()


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_table(tmp_path, reference_table):
    study.run("smoke", str(tmp_path / "dask"), FAULT, executor="dask", progress=False)
    table = pd.read_csv(tmp_path / "dask" / "results.csv")
    pd.testing.assert_frame_equal(without_time(table), without_time(reference_table), check_exact=True)


@pytest.mark.slow
def test_cpu_runs_are_bit_identical(tmp_path, reference_table):
    study.run("smoke", str(tmp_path / "again"), FAULT, executor="local", progress=False)
    on_disk = pd.read_csv(tmp_path / "again" / "results.csv")
    pd.testing.assert_frame_equal(without_time(on_disk), without_time(reference_table), check_exact=True)


# --- validation, property-based ----------------------------------------------------------

NAMES = list(METHODS)


def oracle(field, value):
    """Independent statement of what is valid for a few fields."""
    if field in ("paper.I", "paper.J", "grid.I", "grid.J", "train.batch", "train.epochs.mnist10"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if field == "mode":
        return value in ("reference", "corrected")
    if field == "device":
        return value in ("auto", "cpu", "cuda")
    if field == "methods":
        return isinstance(value, list) and 0 < len(value) == len(set(value)) and all(v in NAMES for v in value)
    if field == "designs":
        return isinstance(value, list) and 0 < len(value) == len(set(value)) and all(v in ("paper", "grid") for v in value)
    if field == "train.lr":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    raise AssertionError(field)


values = st.one_of(st.integers(-3, 30), st.booleans(), st.floats(-1, 1, allow_nan=False), st.text(max_size=8),
                   st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e-3]),
                   st.sampled_from(["reference", "corrected", "cpu", "auto", "cuda", "paper", "grid"]),
                   st.lists(st.sampled_from(NAMES + ["magic", "paper", "grid"]), max_size=4))
fields = st.sampled_from(["paper.I", "paper.J", "grid.I", "grid.J", "train.batch", "train.epochs.mnist10",
                          "mode", "device", "methods", "designs", "train.lr"])


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=fields, value=values)
def test_validation_accepts_exactly_the_valid_values(field, value):
    if field == "device" and value == "cuda" and not torch.cuda.is_available():
        pass  # validation accepts it; the run itself refuses when no GPU is there
    try:
        profiles.load("smoke", {field: value})
        ok = True
    except ConfigError as err:
        ok = False
        assert field.split(".")[-1] in str(err) or field.split(".")[0] in str(err), (field, value, str(err))
    assert ok == oracle(field, value), (field, value)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(field=st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=12))
def test_unknown_fields_are_refused(field):
    prof = profiles.load("smoke")
    node, known = prof, True
    for k in field.split("."):
        if isinstance(node, dict) and k in node and k != "profile":
            node = node[k]
        else:
            known = False
            break
    if known:
        return
    # 'domain' is a field an images profile may leave out: refused as fixed; 'profile' is chosen apart
    first = field.split(".")[0]
    words = {"domain": "domain is fixed", "profile": "chosen with --profile"}.get(first, "has no field")
    with pytest.raises(ConfigError, match=words):
        profiles.load("smoke", {field: 1})


@pytest.mark.slow
def test_a_notebook_refuses_a_bad_parameter_before_any_work(tmp_path):
    import papermill as pm
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with pytest.raises(pm.PapermillExecutionError, match="parameter n_boot must be an integer >= 10"):
        pm.execute_notebook(os.path.join(root, "notebooks", "05_beyond.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "run_dir": str(tmp_path / "run"), "n_boot": 3},
                            progress_bar=False, kernel_name="python3")
    assert not (tmp_path / "run").exists()
