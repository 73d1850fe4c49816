import os

import pytest
import torch

from mu_core import ConfigError
from mu_core.images import data as D
from conftest import FINE_TO_COARSE


@pytest.fixture(scope="module")
def mnist():
    return D.load({"source": "mnist5k", "image_size": 14})


def test_mnist_split_is_fixed_stratified_and_real(mnist):
    assert mnist.train_x.shape == (4000, 1, 14, 14) and mnist.test_x.shape == (1000, 1, 14, 14)
    assert torch.bincount(mnist.train_fine).tolist() == [400] * 10
    assert torch.bincount(mnist.test_fine).tolist() == [100] * 10
    again = D.load_mnist5k(14)  # no training seed enters the split
    assert torch.equal(again.train_x, mnist.train_x) and torch.equal(again.test_fine, mnist.test_fine)
    assert 0.05 < mnist.train_x.mean() < 0.3  # real digits: mostly dark background


def test_super_class_grouping(mnist):
    groups = {frozenset(d for d, g in D.MNIST_SUPER.items() if g == k) for k in range(5)}
    assert groups == {frozenset(s) for s in ({0, 6}, {1, 7}, {2, 8}, {3, 5}, {4, 9})}
    for d, g in D.MNIST_SUPER.items():
        assert str(d) in D.MNIST5_NAMES[g]
    assert torch.equal(mnist.train_coarse, torch.tensor([D.MNIST_SUPER[int(d)] for d in mnist.train_fine]))


@pytest.mark.parametrize("key,target,n_forget,n_test_forget", [
    ("mnist10/full_class", "7", 400, 100), ("mnist5/full_class", "1-7", 800, 200),
    ("mnist5/sub_class", "7", 400, 100)])
def test_splits_sizes_disjoint_and_class_ordered(mnist, key, target, n_forget, n_test_forget):
    ds, setting = key.split("/")
    s = D.make_split(mnist, ds, setting, target)
    assert len(s.forget) == n_forget and len(s.retain) == 4000 - n_forget
    assert len(s.test_forget) == n_test_forget and len(s.test_retain) == 1000 - n_test_forget
    for a, b, n in ((s.retain, s.forget, 4000), (s.test_retain, s.test_forget, 1000)):
        assert not set(a.tolist()) & set(b.tolist())
        assert sorted(a.tolist() + b.tolist()) == list(range(n))
    assert bool((s.group_train[s.retain].diff() >= 0).all())  # class by class
    if setting == "sub_class":  # labels stay super-classes; the split is by digit
        assert set(mnist.train_fine[s.forget].tolist()) == {7}
        assert set(s.y_train[s.forget].tolist()) == {D.MNIST_SUPER[7]}
        assert s.forget_label == D.MNIST_SUPER[7] and s.num_classes == 5


def test_unknown_target_names_allowed_names():
    with pytest.raises(ConfigError, match="allowed: 0-6, 1-7"):
        D.target_index("mnist5", "full_class", "7")
    assert D.target_index("cifar100", "full_class", "pine") == 59  # the paper's alias
    assert D.target_index("cifar20", "full_class", "vehicle2") == 19
    assert [D.target_index("cifar100", "full_class", t) for t in
            ("rocket", "mushroom", "baby", "lamp", "sea", "fox", "pine")] == [69, 51, 2, 40, 71, 34, 59]


def test_cifar_archive_loads_through_torchvision_with_both_label_kinds(cifar_root):
    d = D.load_cifar100(cifar_root)
    assert d.train_x.shape == (300, 3, 32, 32) and d.test_x.shape == (100, 3, 32, 32)
    assert torch.equal(d.train_coarse, torch.tensor(FINE_TO_COARSE)[d.train_fine])
    s = D.make_split(d, "cifar20", "full_class", "vehicle2")
    assert set(d.train_coarse[s.forget].tolist()) == {19} and len(s.forget) == 5 * 3
    s = D.make_split(d, "cifar20", "sub_class", "rocket")
    assert set(d.train_fine[s.forget].tolist()) == {69} and s.forget_label == 19


def test_corrupted_or_missing_archive_is_refused(cifar_root, tmp_path):
    path = os.path.join(cifar_root, "cifar-100-python", "train")
    blob = bytearray(open(path, "rb").read())
    blob[200] ^= 0xFF
    open(path, "wb").write(bytes(blob))
    with pytest.raises(ConfigError, match="data.root.*integrity"):
        D.load_cifar100(cifar_root)
    with pytest.raises(ConfigError, match="data.root"):
        D.load_cifar100(str(tmp_path / "nowhere"))
