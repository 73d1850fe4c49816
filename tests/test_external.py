"""`python -m mu_core analyse`: the statistics for anyone's results table, checked against the
engine's own functions on the same rows, and every way a table can fall short in one line."""
import os

import numpy as np
import pandas as pd
import pytest

from mu_core import ConfigError, analysis, external, stats
from mu_core.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
