"""The GPU benchmark runs end to end on the CPU in its smoke mode (what it measures, not how fast)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["reference style (PIL per sample, fp32)", "fit before (per-step CPU draws, fp32)", "fit (fp32)", "fit (bf16)"]


def test_gpu_benchmark_smoke_mode_reports_every_path():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), "--smoke"],
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


def test_gpu_benchmark_rejects_less_than_a_batch():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), "--smoke", "--images", "10"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "--images must be at least one batch" in proc.stderr
