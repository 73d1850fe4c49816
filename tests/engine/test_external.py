"""`python -m mu_core analyse`: the statistics for anyone's results table, checked against the
engine's own functions on the same rows, and every way a table can fall short in one line."""
import os

import numpy as np
import pandas as pd
import pytest

from mu_core import ConfigError, analysis, external, stats
from mu_core.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
MAP = {"method": "algorithm", "train_seed": "seed_train", "unlearn_seed": "seed_unlearn"}


def engine_rows(name, design):
    """The example's rows as the engine's own table (its names, its design and protocol columns)."""
    t = pd.read_csv(os.path.join(EXAMPLES, name)).rename(columns={v: k for k, v in MAP.items()})
    t = t.assign(dataset="all", target=t.target.astype(str), design=design)
    if design == "grid":
        return t.assign(protocol="grid")
    a_seed = t.groupby("train_seed").unlearn_seed.nunique().idxmax()  # the seed unlearned several times
    return t.assign(protocol=np.where(t.train_seed == a_seed, "A", "B"))


def test_the_grid_example_gives_the_engines_components_and_rank_flips(tmp_path):
    out = external.analyse(os.path.join(EXAMPLES, "grid_results.csv"), str(tmp_path), MAP, ["forget_acc", "retain_acc"])
    got = pd.read_csv(out["components"])
    want = stats.components_table(engine_rows("grid_results.csv", "grid"), metrics=("forget_acc", "retain_acc"))
    cols = ["sigma_b2", "sigma_w2", "icc", "V_B", "A_overstates_p"]
    pd.testing.assert_frame_equal(got.sort_values(["method", "metric"])[cols].reset_index(drop=True),
                                  want.sort_values(["method", "metric"])[cols].reset_index(drop=True))
    flips = pd.read_csv(out["rank_flips"])
    want_flips = analysis.rank_flips(engine_rows("grid_results.csv", "grid"), "forget_acc")
    assert flips[flips.metric == "forget_acc"].p_flip.tolist() == pytest.approx(want_flips.p_flip.tolist(), nan_ok=True)
    assert os.path.exists(out["components_forget_acc"]) and "equal unit costs" in open(out["summary"]).read()
    summary = open(out["summary"]).read()  # the seed recommendation, as the book's rule computes it
    f = want[want.metric == "forget_acc"]
    f = f[~f.method.isin(analysis.DETERMINISTIC + analysis.UNRANKED)]
    a = stats.seeds_for(f.sigma_b2.median(), f.sigma_w2.median(), 1.0, 1.0, 0.5)
    assert "how many seeds (forget_acc; standard error 0.5; equal unit costs): for the median stochastic method" in summary
    assert f"needs {a['I']} training seeds with {a['J']} unlearning seed" in summary


def test_the_paper_example_finds_protocols_a_and_b_and_gives_the_engines_w2(tmp_path):
    out = external.analyse(os.path.join(EXAMPLES, "paper_results.csv"), str(tmp_path), MAP)
    got = pd.read_csv(out["w2"]).sort_values(["method", "metric"]).reset_index(drop=True)
    t = engine_rows("paper_results.csv", "paper")
    assert set(t[t.protocol == "A"].train_seed) == {1}  # one training seed with several unlearning seeds
    want = stats.paper_w2(t).sort_values(["method", "metric"]).reset_index(drop=True)
    assert got.w2.tolist() == pytest.approx(want.w2.tolist())
    assert "protocols A and B for 4 method-group(s)" in open(out["summary"]).read()


def test_the_command_line_writes_the_statistics_and_says_what_it_found(tmp_path, capsys):
    code = main(["analyse", os.path.join(EXAMPLES, "grid_results.csv"), "--out", str(tmp_path / "o"),
                 "--column", "method=algorithm", "--column", "train_seed=seed_train", "--column", "unlearn_seed=seed_unlearn",
                 "--metrics", "forget_acc", "--train-seconds", "2.0"])
    out = capsys.readouterr().out
    assert code == 0 and "supports a grid for 4 method-group(s)" in out and "--train-seconds" in out
    budget = pd.read_csv(tmp_path / "o" / "seed_budget.csv")
    assert (budget.c_unlearn_s > 0).all() and set(budget.metric) == {"forget_acc"}


def _table(tmp_path, df):
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    return str(p)


GOOD = pd.DataFrame({"method": ["a"] * 4, "train_seed": [1, 1, 2, 2], "unlearn_seed": [1, 2, 3, 4], "q": [0.1, 0.2, 0.3, 0.5]})


@pytest.mark.parametrize("df,kw,words", [
    (GOOD.drop(columns="unlearn_seed"), {}, "lacks the column(s) unlearn_seed; map yours with --column unlearn_seed=YOUR_NAME"),
    (pd.concat([GOOD, GOOD.iloc[:1]]), {}, "rows sharing (method, train_seed, unlearn_seed)"),
    (GOOD.assign(q=["x"] * 4), {}, "no numeric metric column; name them with --metrics"),
    (GOOD, {"metrics": ["nope"]}, "metric column(s) nope missing or not numeric"),
    (GOOD, {"columns": {"method": "algo"}}, "--column maps to 'algo', which the table lacks"),
    (GOOD.assign(unlearn_seed=[1, 1, 1, 1], train_seed=[1, 2, 3, 4]), {}, "supports no analysis"),
    (GOOD.assign(train_seed=[1.5, 1.5, 2, 2]), {}, "column train_seed must hold whole numbers"),
])
def test_a_table_that_falls_short_is_refused_in_one_line(tmp_path, df, kw, words):
    with pytest.raises(ConfigError) as err:
        external.analyse(_table(tmp_path, df), str(tmp_path / "out"), **kw)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_column_maps_read_the_same_from_the_command_line_and_the_notebook():
    assert external.parse_columns(["method=algorithm", "train_seed=seed"]) == external.parse_columns(
        "method=algorithm, train_seed=seed") == {"method": "algorithm", "train_seed": "seed"}
    assert external.parse_columns("") == {}
    with pytest.raises(ConfigError, match=r"columns take OURS=THEIRS \(e.g. method=algorithm\), got \['method'\]"):
        external.parse_columns("method")


# --- tables as their authors lay them out --------------------------------------------------------

def authors_table(coding=("1", "2"), shared_twice=True, I=11, J=11, seed=0):
    """A per-seed table as the paper's authors publish theirs: an ``algorithm`` column coded for the
    two protocols (A: training seed 1 unlearned with seeds 1..J; B: training seeds 1..I, each with
    s_u = s_t, so the model (1, 1) belongs to both), a scenario and a click model, one metric."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, shift in (("retrain", 0.0), ("pga", 0.05)):
        value = {(s, u): 0.4 + shift + 0.03 * rng.normal() for s in range(1, I + 1) for u in range(1, J + 1)}
        rows += [dict(algorithm=coding[0], scenario="clean", model="perfect", method=method, train_seed=1,
                      unlearn_seed=u, ndcg=value[(1, u)]) for u in range(1, J + 1)]
        rows += [dict(algorithm=coding[1], scenario="clean", model="perfect", method=method, train_seed=s,
                      unlearn_seed=s, ndcg=value[(s, s)]) for s in range(1 if shared_twice else 2, I + 1)]
    return pd.DataFrame(rows)


def recipe_w2(df, method):
    """The authors' recipe: A = training seed 1's J values, B = the I matched values (1, 1) included."""
    d = df[df.method == method]
    a = d[d.train_seed == 1].drop_duplicates(["train_seed", "unlearn_seed"]).ndcg
    b = d[d.unlearn_seed == d.train_seed].drop_duplicates(["train_seed", "unlearn_seed"]).ndcg
    return stats.w2(a, b), len(a), len(b)


COLS = {"setting": "scenario", "target": "model"}


@pytest.mark.parametrize("coding,protocols", [(("1", "2"), {"1": "A", "2": "B"}), (("A", "B"), {})])
def test_a_mapped_protocol_column_gives_the_authors_w2(tmp_path, coding, protocols):
    df = authors_table(coding)
    out = external.analyse(_table(tmp_path, df), str(tmp_path / "o"), {**COLS, "protocol": "algorithm"},
                           protocols=protocols)
    w2 = pd.read_csv(out["w2"]).set_index("method")
    for m in ("retrain", "pga"):
        want, n_a, n_b = recipe_w2(df, m)
        assert w2.loc[m, "w2"] == pytest.approx(want, abs=1e-12) and (w2.loc[m, "n_A"], w2.loc[m, "n_B"]) == (n_a, n_b) == (11, 11)
    assert "from 11 rows under A and 11 under B" in open(out["summary"]).read()


def test_a_protocol_column_with_unmapped_values_is_refused_naming_column_and_values(tmp_path):
    with pytest.raises(ConfigError, match=r"column algorithm holds the value\(s\) '1', '2', which are not protocols"
                                          r" \(A, B or grid\); map them, e.g. --protocol A=1 --protocol B=2"):
        external.analyse(_table(tmp_path, authors_table()), str(tmp_path / "o"), {**COLS, "protocol": "algorithm"})
    weird = authors_table(("A", "B")).assign(algorithm=lambda d: d.algorithm.replace({"B": "b"}))
    weird.loc[0, "algorithm"] = "C"
    with pytest.raises(ConfigError, match=r"holds the value\(s\) 'C', 'b'"):
        external.analyse(_table(tmp_path, weird), str(tmp_path / "o"), {**COLS, "protocol": "algorithm"})
    with pytest.raises(ConfigError, match="--protocol maps 'X', which is not a protocol"):
        external.parse_protocols(["X=1"])
    assert not (tmp_path / "o").exists()


def test_the_shared_model_is_refused_without_a_protocol_map_and_inferred_by_a_stated_rule_once_listed_once(tmp_path):
    twice = authors_table()
    with pytest.raises(ConfigError, match="each evaluated model may appear once; if column algorithm says which "
                                          "protocol a row belongs to, map it: --column protocol=algorithm"):
        external.analyse(_table(tmp_path, twice), str(tmp_path / "o"), COLS)
    once = authors_table(shared_twice=False)
    out = external.analyse(_table(tmp_path, once), str(tmp_path / "o"), COLS)
    w2 = pd.read_csv(out["w2"]).set_index("method")
    for m in ("retrain", "pga"):
        assert w2.loc[m, "w2"] == pytest.approx(recipe_w2(once, m)[0], abs=1e-12) and w2.loc[m, "n_B"] == 11
    summary = open(out["summary"]).read()
    assert external.RULES["shared"] in summary and "(2 row(s))" in summary
    assert "algorithm (values 1, 2) look like design codes, not metrics: left out" in summary


def test_without_a_matched_row_a_is_kept_apart_from_b(tmp_path):
    """The engine's own paper design: A's training seed never serves B (its unlearning seeds start at 100)."""
    out = external.analyse(os.path.join(EXAMPLES, "paper_results.csv"), str(tmp_path), MAP)
    summary = open(out["summary"]).read()
    assert external.RULES["apart"] in summary and external.RULES["shared"] not in summary


def test_openunlearning_and_deep_unlearn_rows_one_per_model_are_a_grid(tmp_path):
    """One row per evaluated model with its seeds, as both frameworks' result files give them."""
    rng = np.random.default_rng(1)
    ou = pd.DataFrame([dict(trainer=t, seed=s, unlearn_seed=u, forget_quality=rng.random(), model_utility=rng.random())
                       for t in ("GradAscent", "NPO") for s in range(1, 5) for u in range(1, 4)])
    out = external.analyse(_table(tmp_path, ou), str(tmp_path / "ou"), {"method": "trainer", "train_seed": "seed"})
    comp = pd.read_csv(out["components"])
    assert set(comp.metric) == {"forget_quality", "model_utility"} and set(comp.I) == {4} and set(comp.J) == {3}
    du = ou.rename(columns={"trainer": "unlearner", "seed": "model_seed", "unlearn_seed": "unlearning_seed"})
    out = external.analyse(_table(tmp_path, du), str(tmp_path / "du"),
                           {"method": "unlearner", "train_seed": "model_seed", "unlearn_seed": "unlearning_seed"})
    assert pd.read_csv(out["components"]).sigma_b2.tolist() == pytest.approx(comp.sigma_b2.tolist())


def engine_table(design_rows):
    """An engine results.csv: paper rows (A, B), grid rows on the same target, init_order rows and seeds columns."""
    rng = np.random.default_rng(2)
    rows = []
    for m in ("retrain", "npo"):
        rows += [dict(design="paper", protocol="A", train_seed=1, unlearn_seed=100 + j) for j in range(4)]
        rows += [dict(design="paper", protocol="B", train_seed=s, unlearn_seed=s) for s in range(2, 6)]
        rows += [dict(design="grid", protocol="grid", train_seed=s, unlearn_seed=(s - 1) * 3 + j) for s in range(1, 4)
                 for j in range(1, 4)]
        rows += [dict(design="init_order", protocol="init_order", train_seed=1, unlearn_seed=j) for j in range(design_rows)]
        for r in rows[-(8 + 9 + design_rows):]:
            r.update(method=m)
    t = pd.DataFrame(rows).assign(dataset="facts", setting="tofu", target="forget10", mode="reference",
                                  init_seed=lambda d: d.train_seed, order_seed=lambda d: d.train_seed, status="ok")
    return t.assign(model_utility=rng.random(len(t)), method_seconds=0.5)


def test_the_engines_own_table_analyses_its_grid_beside_its_protocols_and_no_seed_columns(tmp_path):
    t = engine_table(3)
    t.loc[0, "status"] = "failed: non-finite weights"
    out = external.analyse(_table(tmp_path, t), str(tmp_path / "o"))
    summary = open(out["summary"]).read()
    assert "protocols A and B for 2 method-group(s); a grid for 2 method-group(s)" in summary  # same target
    assert "metrics: model_utility;" in summary  # not init_seed, order_seed or method_seconds
    assert "init_order (6 rows)" in summary and "1 row(s) whose status is not ok" in summary
    assert set(pd.read_csv(out["components"]).metric) == {"model_utility"}


def test_protocol_a_alone_says_b_is_missing(tmp_path):
    t = engine_table(0).query("protocol != 'B'").drop(columns="design").query("protocol == 'A'")
    with pytest.raises(ConfigError, match="supports no analysis.*protocol B has no row"):
        external.analyse(_table(tmp_path, t), str(tmp_path / "o"))


@pytest.mark.parametrize("cell", ["", "n/a", "abc", "inf", "nan"])
def test_a_missing_or_bad_cell_is_left_out_with_a_note_and_the_metric_kept(tmp_path, cell):
    df = pd.read_csv(os.path.join(EXAMPLES, "grid_results.csv")).astype({"forget_acc": object})
    df.loc[5, "forget_acc"] = cell
    out = external.analyse(_table(tmp_path, df), str(tmp_path / "o"), MAP)
    summary = open(out["summary"]).read()
    assert "metric forget_acc: 1 cell(s) empty, not a number or infinite, left out (rows 7)" in summary
    comp = pd.read_csv(out["components"])
    assert set(comp.metric) == {"forget_acc", "retain_acc", "method_seconds"} - {"method_seconds"}
    row = df.iloc[5]
    kept = comp[(comp.metric == "forget_acc") & (comp.method == row.algorithm)]
    assert int(kept.I.iloc[0]) == df[df.algorithm == row.algorithm].seed_train.nunique() - 1  # its seed dropped, for every method
    assert set(comp[comp.metric == "forget_acc"].I) == {int(kept.I.iloc[0])}


def test_a_metric_empty_everywhere_is_left_out_and_a_table_with_none_refused(tmp_path):
    df = pd.read_csv(os.path.join(EXAMPLES, "grid_results.csv")).assign(forget_acc=np.nan)
    out = external.analyse(_table(tmp_path, df), str(tmp_path / "o"), MAP)
    assert "metric forget_acc has no finite value: left out" in open(out["summary"]).read()
    with pytest.raises(ConfigError, match="no metric column holds a finite value"):
        external.analyse(_table(tmp_path, df.assign(retain_acc=np.nan)), str(tmp_path / "p"), MAP, ["forget_acc", "retain_acc"])


@pytest.mark.parametrize("args,words", [
    (["--train-seconds", "nan"], "--train-seconds must be a finite number of seconds > 0, got nan"),
    (["--train-seconds", "-5"], "--train-seconds must be a finite number of seconds > 0, got -5.0"),
    (["--out", ""], "--out must name a folder"),
    (["--out", "FILE"], "exists and is not a folder"),
    (["TABLE_IS_DIR"], "is a folder, not a CSV file"),
])
def test_bad_options_are_one_line_naming_the_option_and_write_nothing(tmp_path, capsys, args, words):
    (tmp_path / "FILE").write_text("x")
    table = os.path.join(EXAMPLES, "grid_results.csv")
    if args == ["TABLE_IS_DIR"]:
        table, args = str(tmp_path), []
    argv = ["analyse", table, "--out", str(tmp_path / "o"), "--column", "method=algorithm", "--column",
            "train_seed=seed_train", "--column", "unlearn_seed=seed_unlearn"]
    if "--out" in args:
        argv[argv.index("--out") + 1] = str(tmp_path / args[1]) if args[1] else ""
        args = []
    code = main(argv + args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()
