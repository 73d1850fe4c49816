"""CPU benchmark: the grid engine against a reference-style baseline, same slice, one run.

The slice: the classroom profile's paper design for one target per setting (mnist10/full_class
'7', mnist5/full_class '1-7', mnist5/sub_class '7'), protocol A (training seed 1, eleven
unlearning seeds) and protocol B (training seeds 100-101), all eight methods, Retrain with one
unlearning seed per model as in the classroom profile. ``--small``: the first setting only.

The baseline does the same work the way the reference code did: one model at a time; a torch
DataLoader over a Dataset that normalises (and for training, augments) each sample; every row
of the table computed on its own (deterministic methods rerun for every unlearning seed);
evaluation as separate loader passes per metric; SSD's whole-training-set importance recomputed
for every run. Our engine: ``study.run`` with the dask executor (2 single-threaded workers) from
an empty cache. Run: ``make bench`` (or ``.venv/bin/python benchmarks/cpu_engine_vs_reference.py``).
"""
import copy
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2 as T

from mu_core import plan, profiles, study
from mu_core.images import data as D, models
from mu_core.images import engine as IE

SLICE = {"designs": ["paper"], "paper.I": 2,
         "targets": {"mnist10/full_class": ["7"], "mnist5/full_class": ["1-7"], "mnist5/sub_class": ["7"]}}
if "--small" in sys.argv:  # one setting only: the engine's fixed start-up cost weighs more
    SLICE["targets"] = {"mnist10/full_class": ["7"]}


class PerSample(Dataset):
    """The reference pipeline: one sample at a time through torchvision transforms."""
    def __init__(self, x, y, data, augment=None):
        self.x, self.y = x, y
        ops = []
        if augment and augment.get("crop_pad"):
            ops.append(T.RandomCrop(x.shape[-1], padding=augment["crop_pad"]))
        ops.append(T.Normalize(data.mean, data.std))
        self.t = T.Compose(ops)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.t(self.x[i]), self.y[i]


def loop(model, loader, opt, epochs, loss_fn=F.cross_entropy, sched=None):
    for epoch in range(1, epochs + 1):
        model.train()
        for it, (xb, yb) in enumerate(loader):
            if sched:
                for g in opt.param_groups:
                    g["lr"] = sched(epoch, it, len(loader))
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def sgd(model, r):
    return torch.optim.SGD(model.parameters(), lr=r["lr"], momentum=r.get("momentum", 0), weight_decay=r.get("weight_decay", 0))


def adam(model, lr):
    return torch.optim.Adam(model.parameters(), lr=lr)


def schedule(r):
    from mu_core.images.train import lr_at
    return lambda e, it, steps: lr_at(r, e, it, steps)


@torch.no_grad()
def accuracy(model, loader):
    model.eval()
    accs = [(model(xb).argmax(1) == yb).float().mean().item() for xb, yb in loader]
    return 100 * float(np.mean(accs))


@torch.no_grad()
def entropies(model, loader):
    model.eval()
    out = []
    for xb, _ in loader:
        p = torch.softmax(model(xb), 1)
        out.append(-(p * torch.log(p + 1e-12)).sum(1))
    return torch.cat(out).numpy()


def evaluate(model, s, data):
    L = lambda idx, x, y: DataLoader(PerSample(x[idx], y[idx], data), batch_size=64)
    d = s.data
    res = {"retain_acc": accuracy(model, L(s.test_retain, d.test_x, s.y_test)),
           "forget_acc": accuracy(model, L(s.test_forget, d.test_x, s.y_test)),
           "test_acc": accuracy(model, DataLoader(PerSample(d.test_x, s.y_test, data), batch_size=64))}
    er = entropies(model, L(s.retain, d.train_x, s.y_train))
    et = entropies(model, DataLoader(PerSample(d.test_x, s.y_test, data), batch_size=64))
    ef = entropies(model, L(s.forget, d.train_x, s.y_train))
    clf = LogisticRegression(class_weight="balanced").fit(np.r_[er, et][:, None], np.r_[np.ones(len(er)), np.zeros(len(et))])
    res["mia"] = 100 * clf.predict(ef[:, None]).mean()
    return res


def importance(model, loader, kind):
    model.eval()
    imp = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for xb, yb in loader:
        model.zero_grad()
        out = model(xb)
        (F.cross_entropy(out, yb) if kind == "ssd" else out.pow(2).sum(1).mean()).backward()
        for n, p in model.named_parameters():
            imp[n] += p.grad.pow(2) if kind == "ssd" else p.grad.abs()
    return {n: v / len(loader) for n, v in imp.items()}


def unlearn(method, model, s, P, r, data, seed, prof):
    torch.manual_seed(seed)
    d = s.data
    xr, yr, xf, yf = d.train_x[s.retain], s.y_train[s.retain], d.train_x[s.forget], s.y_train[s.forget]
    p = P.get(method, {})
    if method == "original":
        pass  # the trained model, evaluated as it is
    elif method == "retrain":
        for c in model.children():
            if hasattr(c, "reset_parameters"):
                c.reset_parameters()
        rr = {**r, "lr": p["lr"]}
        loop(model, DataLoader(PerSample(xr, yr, data), batch_size=64, shuffle=True), sgd(model, rr), rr["epochs"], sched=schedule(rr))
    elif method == "finetune":
        loop(model, DataLoader(PerSample(xr, yr, data), batch_size=p["batch"], shuffle=True), sgd(model, p), p["epochs"])
    elif method == "random_labels":
        wrong = (yf + torch.randint(1, s.num_classes, (len(yf),))) % s.num_classes
        ds = PerSample(torch.cat([xr, xf]), torch.cat([yr, wrong]), data)
        loop(model, DataLoader(ds, batch_size=p["batch"], shuffle=True), adam(model, p["lr"]), p["epochs"])
    elif method == "bad_teacher":
        good = copy.deepcopy(model).eval()
        bad = models.build(prof["model"], s.num_classes, tuple(d.train_x.shape[1:]), seed).eval()
        keep = torch.randperm(len(xr))[: int(p["retain_fraction"] * len(xr))]
        x = torch.cat([xf, xr[keep]])
        flag = torch.cat([torch.ones(len(xf)), torch.zeros(len(keep))])
        ds = PerSample(x, flag, data)
        opt = adam(model, p["lr"])
        for _ in range(p["epochs"]):
            model.train()
            for xb, fl in DataLoader(ds, batch_size=p["batch"], shuffle=True):
                with torch.no_grad():  # teachers rerun per batch, as the reference does
                    tgt = torch.where(fl[:, None] > 0, torch.softmax(bad(xb), 1), torch.softmax(good(xb), 1))
                out = model(xb)
                loss = (torch.special.xlogy(tgt, tgt) - tgt * torch.log_softmax(out, 1)).mean()
                opt.zero_grad(); loss.backward(); opt.step()
    elif method == "unsir":
        noise = torch.randn(p["noise_batch"], *xr.shape[1:], requires_grad=True)
        opt = torch.optim.Adam([noise], lr=p["noise_lr"])
        tgt = torch.full((p["noise_batch"],), s.forget_label)
        model.train()
        for _ in range(p["noise_steps"][s.setting]):
            loss = -F.cross_entropy(model(noise), tgt) + p["reg"] * noise.pow(2).sum((1, 2, 3)).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        noisy = noise.detach()[: noise.shape[1]].repeat(p["noise_copies"], 1, 1, 1)
        mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
        x = torch.cat([noisy * std + mean, xr])
        y = torch.cat([torch.full((len(noisy),), s.forget_label), yr])
        loop(model, DataLoader(PerSample(x, y, data), batch_size=p["impair_batch"], shuffle=True), adam(model, p["lr"]), 1)
        loop(model, DataLoader(PerSample(xr, yr, data), batch_size=p["repair_batch"], shuffle=True), adam(model, p["lr"]), 1)
    elif method in ("ssd", "lfssd"):
        fl = DataLoader(PerSample(xf, yf, data), batch_size=64)
        al = DataLoader(PerSample(torch.cat([xr, xf]), torch.cat([yr, yf]), data), batch_size=64)
        i_f, i_d = importance(model, fl, method), importance(model, al, method)  # I_D recomputed every run
        alpha = p["alpha_full_class"] if method == "lfssd" and s.setting == "full_class" else p["alpha"]
        with torch.no_grad():
            for n, q in model.named_parameters():
                sel = i_f[n] > alpha * i_d[n]
                q[sel] *= (p["lambda"] * i_d[n] / i_f[n]).clamp(max=1)[sel]
    else:  # never benchmark a method this baseline does not implement as if it were Original
        raise ValueError(f"the reference-style baseline does not implement method {method!r}")
    return model


def baseline(prof):
    data = D.load(prof["data"])
    rows = plan.rows(prof)
    trained = {}
    for r in rows:
        key = (r["dataset"], r["train_seed"])
        if key not in trained:
            rec = IE.recipe(prof, r["dataset"])
            torch.manual_seed(r["train_seed"])
            m = models.build(prof["model"], D.NUM_CLASSES[r["dataset"]], tuple(data.train_x.shape[1:]), r["train_seed"])
            y, yt = D.labels(data, r["dataset"])
            loader = DataLoader(PerSample(data.train_x, y, data, rec["augment"]), batch_size=64, shuffle=True)
            best, state = -1, None
            opt = sgd(m, rec)
            for epoch in range(1, rec["epochs"] + 1):  # with the reference's per-epoch test evaluation
                loop(m, loader, opt, 1, sched=lambda e, it, n, ep=epoch: schedule(rec)(ep, it, n))
                acc = accuracy(m, DataLoader(PerSample(data.test_x, yt, data), batch_size=64))
                if acc > best:
                    best, state = acc, copy.deepcopy(m.state_dict())
            m.load_state_dict(state)
            trained[key] = m
        s = D.make_split(data, r["dataset"], r["setting"], r["target"])
        u = unlearn(r["method"], copy.deepcopy(trained[key]), s, prof["method_params"],
                    IE.recipe(prof, r["dataset"]), data, r["unlearn_seed"], prof)
        evaluate(u, s, data)
    return len(rows), len(trained)


def main():
    prof = profiles.load("classroom", SLICE)
    torch.set_num_threads(2)  # the reference style: one process, torch's default threads
    t0 = time.perf_counter()
    n_rows, n_models = baseline(prof)
    t_base = time.perf_counter() - t0
    run_dir = tempfile.mkdtemp(prefix="bench-")
    try:
        t0 = time.perf_counter()
        table = study.run(prof, run_dir, executor="dask", progress=False).table
        t_ours = time.perf_counter() - t0
    finally:
        shutil.rmtree(run_dir)
    assert len(table) == n_rows
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"slice: classroom, {SLICE}; {n_rows} rows, {n_models} original models")
    print(f"reference-style baseline: {t_base:7.1f} s")
    print(f"mu_core engine (dask, 2 workers, empty cache): {t_ours:7.1f} s")
    print(f"speed-up: {t_base / t_ours:.1f}x")


if __name__ == "__main__":
    main()
