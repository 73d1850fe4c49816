"""Every stored result is a function of (original model, split, method parameters, s_u) alone.

For every method in both modes, a job's stored result is compared, bit for bit, with the same job
computed first in a fresh process, after other jobs and after the global generators were
advanced in this process, and under the dask executor. (Kill and resume: test_reliability.)
"""
import os
import random
import sys

import pytest

from mu_core import store, study

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the tests' helpers (fresh, one_job)
import fresh  # noqa: E402
import one_job  # noqa: E402

pytestmark = pytest.mark.slow  # whole runs, fresh processes, the book: make test-fast leaves them out


def stored(run_dir):
    out = {}
    for name in os.listdir(os.path.join(run_dir, "jobs")):
        if name.endswith(".json"):
            payload = store.load_json(os.path.join(run_dir, "jobs", name), name[:-5])
            payload.pop("method_seconds"), payload.pop("computed")
            out[name[:-5]] = payload
    return out


@pytest.fixture(scope="module", params=["reference", "corrected"])
def engine_run(request, tmp_path_factory):
    """The engine's own results: every job run in one process, one after another."""
    mode = request.param
    d = str(tmp_path_factory.mktemp(f"trust-{mode}"))
    study.run(one_job.profile(mode), d, executor="local", progress=False)
    return mode, d, stored(d)


def test_each_job_first_in_a_fresh_process_gives_the_stored_result(engine_run):
    mode, d, results = engine_run
    with fresh.pool() as pool:
        done = {m: pool.submit(one_job.first_in_process, d, mode, m) for m in one_job.METHODS}
        for m, fut in done.items():
            pid, (key, out) = fut.result(timeout=300)
            assert out == results[key], (mode, m)
    assert len({fut.result()[0] for fut in done.values()}) == len(done)  # one process per job


def test_after_other_jobs_and_advanced_global_generators_the_result_is_the_same(engine_run):
    mode, d, results = engine_run
    order = list(one_job.METHODS)
    random.Random(mode).shuffle(order)
    for i, m in enumerate(order):
        key, out = one_job.compute(d, mode, m, n=17 + 101 * i)
        assert out == results[key], (mode, m)


def test_the_dask_executor_stores_the_same_results(engine_run, tmp_path, dask_scheduler):
    mode, d, results = engine_run
    study.run(one_job.profile(mode), str(tmp_path / "dask"), executor="dask", scheduler=dask_scheduler, progress=False)
    assert stored(str(tmp_path / "dask")) == results
