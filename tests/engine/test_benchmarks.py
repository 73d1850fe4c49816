"""The benchmarks run end to end in their smoke modes (what they measure and how they add it up, not how fast)."""
import json
import os
import re
import subprocess
import sys

import pytest


from mu_core.images import stages, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATHS = ["reference style (PIL per sample, fp32)", "fit before (per-step CPU draws, fp32)", "fit (fp32)", "fit (bf16)"]


@pytest.mark.slow
def test_gpu_benchmark_smoke_mode_reports_every_path(tmp_path):
    out = tmp_path / "gpu-2026-01-02-cpu.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| path", "| ---"))]
    assert [r[0] for r in rows] == PATHS, proc.stdout
    for name, rate, tflops, mem, hours in rows:
        assert float(rate.replace(",", "")) > 0 and float(hours.replace(",", "")) > 0, (name, rate, hours)
        assert mem == "n/a" or float(mem) > 0
    # the FLOP count is measured on the network in use: a width-4 ResNet-18 costs far less than
    # the full network's 3.33 GFLOP per training image
    header = proc.stdout.splitlines()[0]
    gflop = float(header.split(" GFLOP per training image")[0].rsplit(" ", 1)[1])
    assert 0 < gflop < 0.1, header
    # the record the GPU-hour projections read: the rates printed, with device, torch, date, command
    rec = json.loads(out.read_text())
    assert set(rec["images_per_second"]) == {"reference style", "fit before", "fit (fp32)", "fit (bf16)"}
    fp32 = next(float(r[1].replace(",", "")) for r in rows if r[0] == "fit (fp32)")
    assert abs(rec["images_per_second"]["fit (fp32)"] - fp32) <= 1 + 1e-3 * fp32
    assert rec["torch"] and rec["device"] and "--smoke" in rec["command"] and rec["train_version"] >= 1
    rate, source = stages.gpu_rate(str(tmp_path))
    assert rate == rec["images_per_second"]["fit (fp32)"] and rec["date"] in source and "days ago" in source


def test_projections_read_the_newest_recorded_rate_and_say_its_age(tmp_path):
    assert stages.gpu_rate(str(tmp_path)) is None
    for date, rate, tv in (("2026-01-01", 100.0, 1), ("2026-02-01", 200.0, train.TRAIN_VERSION)):
        (tmp_path / f"gpu-{date}-x.json").write_text(json.dumps(
            {"date": date, "device": "GPU X", "torch": "9", "train_version": tv, "images_per_second": {"fit (fp32)": rate}}))
    rate, source = stages.gpu_rate(str(tmp_path))
    assert rate == 200.0 and "2026-02-01" in source and "the training code in use" in source
    (tmp_path / "gpu-2026-03-01-x.json").write_text(json.dumps(
        {"date": "2026-03-01", "device": "GPU Y", "torch": "9", "train_version": 0, "images_per_second": {"fit (fp32)": 50}}))
    rate, source = stages.gpu_rate(str(tmp_path))
    assert rate == 50 and "an earlier version of the training code" in source
    # the shipped record is read by the book's cost table
    assert stages.gpu_rate() is not None and "benchmarks/results/" in stages.gpu_rate()[1]


@pytest.mark.slow
def test_gpu_benchmark_rejects_less_than_a_batch():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), "--smoke", "--images", "10"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "--images must be at least one batch" in proc.stderr


def _floor(*args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "cpu_step_floor.py"), "--smoke", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.mark.slow
def test_step_floor_times_the_same_computation_as_fit(tmp_path):
    """The other steps are checked against fit's (autograd + fused SGD) before they are timed, and
    a run's projection adds up: seconds inside (jobs + models), the rest, the run's parallelism."""
    run = tmp_path / "run"
    (run / "jobs").mkdir(parents=True)
    (run / "models").mkdir()
    (run / "jobs" / "a.json").write_text('{"key": "a", "payload": {"method_seconds": 3.0}, "sha256": ""}')
    (run / "jobs" / "b.json").write_text('{"key": "b", "payload": {"method_seconds": 1.0}, "sha256": ""}')
    (run / "models" / "train-x.json").write_text('{"key": "x", "payload": {"train_seconds": 4.0}, "sha256": ""}')
    log = tmp_path / "time.log"
    log.write_text("\tUser time (seconds): 10.00\n\tSystem time (seconds): 2.00\n"
                   "\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:08.00\n")
    proc = _floor("--run", str(run), "--time-log", str(log))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    diff = float(out[0].rsplit(" ", 1)[1])
    assert diff < 1e-4, out[0]
    rows = [line.strip("| ").split(" | ") for line in out if line.startswith("| ") and "---" not in line][1:]
    assert [r[0] for r in rows] == ["fit's step (modules, autograd, fused SGD)",
                                    "hand-written step (no autograd, no optimiser object)",
                                    "11 models stacked, autograd, fused SGD (per model)",
                                    "hand-written, 11 models stacked (per model)", "the five matrix products alone"]
    ms = {r[0]: float(r[1]) for r in rows}
    assert all(v > 0 for v in ms.values()), rows
    assert "8 s wall, 12 CPU-s (1.50 busy cores), 8 CPU-s inside methods and training" in proc.stdout
    fit = ms["fit's step (modules, autograd, fused SGD)"]
    lines = [line for line in out if line.startswith("every step at")]
    assert len(lines) == 3, proc.stdout
    for name, line in zip(list(ms)[1:4], lines):
        inside, total = (float(v) for v in re.findall(r"(\d+) CPU-s", line)[:2])
        # 8 CPU-s inside scaled by the step ratio (the table's ms are rounded to 3 places), 4 CPU-s
        # outside unchanged, then divided by the run's 1.5 busy cores
        assert abs(inside - 8 * ms[name] / fit) <= 0.6, line
        assert abs(total - (inside + 4)) <= 1, line
        assert abs(float(re.search(r"about (\d+) s wall", line)[1]) - total / 1.5) <= 1, line


@pytest.mark.slow
def test_step_floor_needs_the_time_log_with_a_run():
    proc = _floor("--run", "somewhere", timeout=120)
    assert proc.returncode == 2 and "--run and --time-log go together" in proc.stderr


@pytest.mark.slow
def test_the_ltr_benchmark_measures_both_loops_and_projects_the_paper_grid():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ltr.py"), "--smoke"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| path", "| ---"))]
    assert [r[0] for r in rows] == ["reference style (one interaction at a time, pair loop)", "mu_core.ltr.fpdgd"]
    total = float(re.search(r"paper grid: ([\d.,]+) M interactions", proc.stdout)[1].replace(",", ""))
    parts = [float(v) for v in re.findall(r"(?:training|retrain|fed_remove|fed_eraser|fine_tuning|pga) ([\d.]+) M", proc.stdout)]
    assert len(parts) == 6 and abs(sum(parts) - total) < 0.2
    for name, r, hours in rows:  # hours = interactions / rate / cores
        assert abs(float(hours.replace(",", "")) - total * 1e6 / float(r.replace(",", "")) / (os.cpu_count() or 1) / 3600) < 0.1


def test_the_rerunning_page_reads_the_newest_portability_measurement(tmp_path):
    """tables.portability: the book's table of how far numbers travel is generated from the newest
    benchmarks/results/portability-*.json, never typed; without one it says so."""
    from mu_core import tables
    assert "No measurement is recorded" in tables.portability(str(tmp_path))
    metrics = {"forget_acc": {"row": 0.0, "rows_differing": 0, "mean": 0.0, "w2": 0.0, "icc": 0.0, "rank_flips_changed": 0},
               "retain_acc": {"row": 1.25, "rows_differing": 3, "mean": 0.01, "w2": 0.2, "icc": 0.03, "rank_flips_changed": 1}}
    for date, row in (("2026-01-01", 9.0), ("2026-02-01", 1.25)):
        rec = {"date": date, "commit": "abcdef1234567", "profile": "classroom", "machine": {"processor": "CPU Z"},
               "paths": {"aten": {"ATEN_CPU_CAPABILITY": "default"}},
               "comparisons": {"aten": {"domains": {"images": {"rows_matched": 40, "metrics": {
                   **metrics, "retain_acc": {**metrics["retain_acc"], "row": row}}}},
                   "book": {"compared": 10, "differ": 2, "differ_results": ["04_figure2/fig2_top"]}}}}
        (tmp_path / f"portability-{date}.json").write_text(json.dumps(rec))
    text = tables.portability(str(tmp_path))
    assert "Measured on 2026-02-01 at commit abcdef1234" in text and "`ATEN_CPU_CAPABILITY=default`" in text
    assert "| images | retain_acc | 1.25 | 3 of 40 | 0.01 | 0.2 | 0.03 | 1 |" in text
    assert "2 differ between the two paths, 1 of them results" in text and "`04_figure2/fig2_top`" in text
