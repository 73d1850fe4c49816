"""Shared fixtures: a small CIFAR-100 archive in the original pickle format, read by torchvision;
and a run killed at given points, for the interruption tests."""
import hashlib
import os
import pickle
import time

import numpy as np
import pytest

from mu_core.images import data as D

# CIFAR-100's fine -> coarse table (the archive's coarse_labels), used to write a faithful archive.
FINE_TO_COARSE = [4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7,
                  6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18,
                  10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0,
                  1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17,
                  8, 14, 13]
COARSE_ARCHIVE_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"]


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def write_cifar100(root, n_train=3, n_test=1, seed=0):
    """Write cifar-100-python/{train,test,meta} with n_* images per fine class; return md5s.

    The format is the original one: pickled dicts with 'data' (N x 3072 uint8, channel-major),
    'fine_labels', 'coarse_labels', 'filenames', 'batch_label'; 'meta' holds the label names.
    """
    rng = np.random.RandomState(seed)
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    sums = {}
    for name, n in (("train", n_train), ("test", n_test)):
        fine = np.repeat(np.arange(100), n)
        rng.shuffle(fine)
        # each class a different mean colour, plus noise: learnable, and cheap
        base = (np.arange(100)[:, None] * 37 % 200 + 20).astype(np.float64)
        images = np.clip(base[fine] + rng.randn(len(fine), 3072) * 30, 0, 255).astype(np.uint8)
        entry = {"batch_label": f"{name} batch", "fine_labels": fine.tolist(),
                 "coarse_labels": [FINE_TO_COARSE[f] for f in fine], "data": images,
                 "filenames": [f"img_{i}.png" for i in range(len(fine))]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(entry, f, protocol=2)
        sums[name] = _md5(os.path.join(folder, name))
    with open(os.path.join(folder, "meta"), "wb") as f:
        pickle.dump({"fine_label_names": D.CIFAR100_NAMES, "coarse_label_names": COARSE_ARCHIVE_NAMES}, f, protocol=2)
    sums["meta"] = _md5(os.path.join(folder, "meta"))
    return sums


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A small archive, with torchvision's expected checksums pointed at it (its real MD5 check runs)."""
    from torchvision.datasets import CIFAR100
    sums = write_cifar100(str(tmp_path))
    monkeypatch.setattr(CIFAR100, "train_list", [["train", sums["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", sums["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": sums["meta"]})
    D._CACHE.clear()
    yield str(tmp_path)
    D._CACHE.clear()


@pytest.fixture(scope="session")
def dask_scheduler():
    """The address of one LocalCluster (two single-threaded worker processes, as the executor
    starts) shared by the tests that run jobs under dask, instead of a cluster each (6 s to start);
    its workers outlive a test, so a job also meets workers that ran other tests' jobs.
    ``tests/engine/test_reliability.py`` still lets the executor start its own."""
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


def kill_at(argv: list, run_dir, points) -> int:
    """Start ``python -m mu_core ARGV`` (a run into ``run_dir``; a new process, ``fresh.start_cli``)
    once per point and SIGKILL it as soon as that many job results are stored (or let it finish);
    returns how many runs were killed."""
    from fresh import start_cli
    kills = 0
    for point in points:
        proc = start_cli(argv)
        deadline = time.time() + 120
        jobs = os.path.join(run_dir, "jobs")
        while proc.is_alive() and time.time() < deadline and \
                len(os.listdir(jobs) if os.path.isdir(jobs) else []) < point:
            time.sleep(0.005)
        if proc.is_alive():
            proc.kill()
            kills += 1
        proc.join()
    return kills
