"""Training throughput of the paper's ResNet-18 on whatever device torch finds, in one run.

Measured, on CIFAR-100-shaped data (32 x 32 RGB, 100 classes, batch 64, SGD, the reference
augmentation: crop with 4 px padding, horizontal flip, rotation by up to 15 degrees):

* ``reference style``: a DataLoader (no workers) over per-sample torchvision transforms on PIL
  images, as the paper's code trained;
* ``fit before``: ``train.fit``'s step loop as it was before the epoch-level draws (a copy is
  kept below: per step, fresh indices and augmentation parameters drawn on the CPU and copied to
  the device);
* ``fit``: ``train.fit`` as shipped, fp32 and with ``amp: bf16``.

For each: images per second, TFLOP/s (training FLOPs per image counted by torch's
``FlopCounterMode`` on one forward and backward pass: 3.33 GFLOP for the full-width network),
peak GPU memory, and the projected hours for the ``paper`` profile's whole plan
(``images.engine.training_images``) at that rate. Run::

    .venv/bin/python benchmarks/gpu.py            # on a GPU: about 2 minutes on an H100
    .venv/bin/python benchmarks/gpu.py --smoke    # a narrow network, a few steps (make test)

On a GPU (full width) the rates are recorded as JSON in ``benchmarks/results/gpu-DATE-DEVICE.json``
with the device, torch version, date, command, commit and ``TRAIN_VERSION``; the book's GPU-hour
projections (``images.stages.gpu_rate``) read the newest one. ``--out PATH`` writes it elsewhere.

Not measured because not built yet: a CUDA-graph-captured step and several models on CUDA
streams (issue 12); the paper-scale run itself.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as T

from mu_core import plan, profiles, provenance
from mu_core.images import data as D, models, train
from mu_core.images import engine as IE

AUG = {"crop_pad": 4, "flip": True, "rotate": 15}
MEAN, STD = D.NORMALISATION["cifar100"]


class PIL32(Dataset):
    """The reference pipeline: one uint8 image at a time through PIL-based transforms."""
    def __init__(self, x_uint8, y):
        self.x, self.y = x_uint8, y
        self.t = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(15),
                            T.ToTensor(), T.Normalize(MEAN, STD)])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.t(Image.fromarray(self.x[i])), int(self.y[i])


def fit_before(model, x, y, recipe, gen, data):
    """``train.fit``'s loop before this round's change (constant lr here): per step, indices and
    augmentation parameters drawn on the CPU and copied to the device."""
    dev = next(model.parameters()).device
    opt = train.optimizer(recipe, model.parameters())
    for _ in range(recipe["epochs"]):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(recipe["batch"]):
            idx = idx.to(dev)
            xb = D.normalise(train.augment(x[idx], gen, **recipe["augment"]), data)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def reference_style(model, x_uint8, y, recipe, gen, data):
    dev = next(model.parameters()).device
    opt = train.optimizer(recipe, model.parameters())
    loader = DataLoader(PIL32(x_uint8, y), batch_size=recipe["batch"], shuffle=True, generator=gen)
    for _ in range(recipe["epochs"]):
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb.to(dev)), yb.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def flops_per_image(net, dev) -> float:
    x = torch.randn(8, 3, 32, 32, device=dev)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def measure(name, run, n_images, dev, flops, paper_images):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    rate = n_images / seconds
    mem = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if dev.type == "cuda" else "n/a"
    print(f"| {name} | {rate:,.0f} | {rate * flops / 1e12:.3g} | {mem} | {paper_images / rate / 3600:,.1f} |",
          flush=True)
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a narrow network and a few steps (CPU-friendly)")
    ap.add_argument("--images", type=int, default=None, help="images per measurement (default 12,800; smoke 128)")
    ap.add_argument("--out", default=None, help="where to write the JSON record (default: benchmarks/results/ "
                                                "on a GPU at full width; nothing otherwise)")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width = 4 if args.smoke else 64
    n = args.images or (128 if args.smoke else 12_800)
    if n < 64:
        ap.error(f"--images must be at least one batch (64); got {n}")
    torch.manual_seed(0)  # the reference style's transforms draw from torch's global generator
    x_uint8 = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = torch.from_numpy(np.random.default_rng(1).integers(0, 100, n))
    x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float().div(255).contiguous()
    data = D.Data(train_x=x, train_fine=y, train_coarse=y, test_x=x[:0], test_fine=y[:0], test_coarse=y[:0],
                  mean=MEAN, std=STD)
    x, y = x.to(dev), y.to(dev)
    recipe = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch": 64,
              "epochs": 1, "augment": AUG}
    paper = profiles.load("paper")
    paper_images = IE.training_images(*plan.schedule(paper)[1:], D.CIFAR_SIZES)
    net = lambda: models.build({"arch": "resnet18", "width": width}, 100, (3, 32, 32), 0).to(dev)
    flops = flops_per_image(net(), dev)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU ({platform.machine()})"
    print(f"device: {name}; torch {torch.__version__}; {datetime.date.today()}; ResNet-18 width {width}, "
          f"{n:,} images per row, batch 64; {flops / 1e9:.3f} GFLOP per training image; paper plan "
          f"{paper_images / 1e9:.2f} G training images\n")
    print("| path | img/s | TFLOP/s | peak GPU GiB | paper plan, hours |")
    print("| --- | --- | --- | --- | --- |")
    gen = lambda: torch.Generator().manual_seed(0)
    # one warm-up step per path (kernel selection, allocator) outside the timed runs
    fit_before(net(), x[:64], y[:64], recipe, gen(), data)
    rates = {}
    rates["reference style"] = measure("reference style (PIL per sample, fp32)",
            lambda: reference_style(net(), x_uint8, y.cpu(), recipe, gen(), data), n, dev, flops, paper_images)
    rates["fit before"] = measure("fit before (per-step CPU draws, fp32)",
            lambda: fit_before(net(), x, y, recipe, gen(), data), n, dev, flops, paper_images)
    for amp in (None, "bf16"):
        r = {**recipe, "amp": amp}
        train.fit(net(), x[:64], y[:64], r, gen(), data)
        rates[f"fit ({amp or 'fp32'})"] = measure(f"fit ({amp or 'fp32'})", lambda: train.fit(net(), x, y, r, gen(), data), n, dev, flops, paper_images)
    if dev.type == "cuda":
        print(f"\nbf16 dense peak of an H100 SXM: 989 TFLOP/s; paper plan at that peak: "
              f"{paper_images * flops / 989e12 / 3600:.1f} hours")


    out = args.out or (os.path.join(os.path.dirname(__file__), "results",
                                    f"gpu-{datetime.date.today()}-{name.split()[-1].lower()}.json")
                       if dev.type == "cuda" and not args.smoke else None)
    if out:
        record = {"benchmark": "benchmarks/gpu.py", "command": " ".join(["python"] + sys.argv),
                  "date": str(datetime.date.today()), "device": name, "torch": torch.__version__,
                  "commit": provenance.commit(), "train_version": train.TRAIN_VERSION, "width": width,
                  "images_per_measurement": n, "batch": 64, "images_per_second": rates}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
        print(f"\nrecorded in {out}")


if __name__ == "__main__":
    main()
