"""How fast can one training step of the classroom MLP be on this CPU? The floor under issue 12.

One thread (as each engine worker runs), the classroom network (14 x 14 digits -> Linear 196x128
-> BatchNorm -> ReLU -> Linear 128x10), batch 64, SGD with momentum and weight decay. Measured:

* ``fit's step``: what ``train.fit`` does per step (module forward, cross-entropy, autograd
  backward, fused SGD);
* ``hand-written step``: the same forward, backward and update written out with torch operations
  and no autograd, no optimiser object, no module calls: nothing left but the arithmetic and one
  dispatch per operation, about the least a per-model step built from torch operations can cost;
* ``hand-written, 11 models stacked``: the same for eleven models at once as batched matrix
  products (the "several runs in one operation" idea), per model;
* ``matrix products alone``: the step's five matrix products and nothing else.

Before timing, the hand-written steps are checked against autograd and the fused optimiser (same
initial weights and batch, five steps, every parameter equal to a relative 1e-4): the floor is
the cost of the same computation. With ``--run DIR --time-log FILE`` (a classroom run and the
``/usr/bin/time -v`` output of the command that made it), it also projects that run at the
floor: its seconds inside methods and training (every stored job's ``method_seconds``, every
original model's ``train_seconds``) scaled by (hand-written step) / (fit's step), once for each
hand-written path, and the wall time at the run's own parallelism ((user + system) / wall). The
projection assumes that all the time inside methods and training shrinks as a step does (most of
it is steps; SSD's importances and UNSIR's noise are not, and are assumed to shrink alike). Run::

    .venv/bin/python benchmarks/cpu_step_floor.py [--run DIR --time-log FILE]
    .venv/bin/python benchmarks/cpu_step_floor.py --smoke     # a few steps (make test)
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import sys
import time

import torch
import torch.nn.functional as F

from mu_core import profiles
from mu_core.images import models

WD, MOMENTUM, LR, BATCH, STACK = 5e-4, 0.9, 0.1, 64, 11
PROF = profiles.load("classroom")


def fit_step(model, opt, x, y):
    """``train.fit``'s inner step (its order: zero, forward, loss, backward, update)."""
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def hand_step(p, buf, x, onehot):
    """Forward, backward and SGD of the MLP written out; ``p`` = [W1, b1, gamma, beta, W2, b2],
    leading dimension K for K stacked models (biases shaped K x 1 x n), ``buf`` the momenta."""
    w1, b1, gamma, beta, w2, b2 = p
    n = x.shape[-2]
    z = torch.baddbmm(b1, x, w1.transpose(1, 2))                    # Linear 1
    zc = z - z.mean(1, keepdim=True)
    inv = torch.rsqrt((zc * zc).mean(1, keepdim=True) + 1e-5)      # BatchNorm, batch statistics
    zh = zc * inv
    a = torch.relu(zh * gamma + beta)
    out = torch.baddbmm(b2, a, w2.transpose(1, 2))                  # Linear 2
    g_out = (torch.softmax(out, 2) - onehot) / n                    # d mean cross-entropy / d logits
    g_a = (g_out @ w2) * (a > 0)
    g_zh = g_a * gamma
    g_z = inv * (g_zh - g_zh.mean(1, keepdim=True) - zh * (g_zh * zh).mean(1, keepdim=True))
    grads = [g_z.transpose(1, 2) @ x, g_z.sum(1, keepdim=True), (g_a * zh).sum(1, keepdim=True),
             g_a.sum(1, keepdim=True), g_out.transpose(1, 2) @ a, g_out.sum(1, keepdim=True)]
    torch._foreach_add_(grads, p, alpha=WD)                          # SGD: weight decay,
    if buf[0] is None:                                               # momentum (first step: the gradient),
        buf[:] = [g.clone() for g in grads]
    else:
        torch._foreach_mul_(buf, MOMENTUM)
        torch._foreach_add_(buf, grads)
    torch._foreach_add_(p, buf, alpha=-LR)                           # update


def stacked_autograd_step(p, opt, x, y):
    """Eleven models as one: the same forward on K-stacked parameters (``p`` as in ``hand_step``,
    leaves that require gradients), the K mean cross-entropies summed, autograd, fused SGD on the
    stacked tensors. What a method written once with autograd would do with a stacked network."""
    w1, b1, gamma, beta, w2, b2 = p
    opt.zero_grad(set_to_none=True)
    z = torch.baddbmm(b1, x, w1.transpose(1, 2))
    zc = z - z.mean(1, keepdim=True)
    a = torch.relu(zc * torch.rsqrt((zc * zc).mean(1, keepdim=True) + 1e-5) * gamma + beta)
    out = torch.baddbmm(b2, a, w2.transpose(1, 2))
    F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1).sum().backward()
    opt.step()


def products(p, x, g_z, a, g_out):
    """The step's five matrix products alone (forward 2, weight gradients 2, one input gradient)."""
    torch.bmm(x, p[0].transpose(1, 2))
    torch.bmm(a, p[4].transpose(1, 2))
    g_z.transpose(1, 2) @ x
    g_out.transpose(1, 2) @ a
    g_out @ p[4]


def stacked(model, k):
    """The MLP's parameters as K-stacked tensors (biases K x 1 x n)."""
    lin1, bn, fc = model.features[1], model.features[2], model.fc
    ps = [lin1.weight, lin1.bias[None], bn.weight[None], bn.bias[None], fc.weight, fc.bias[None]]
    return [t.detach()[None].repeat(k, *[1] * t.dim()).contiguous() for t in ps]


def sgd_stack(model):
    """STACK copies of ``model``'s parameters as stacked leaves, and fused SGD over them."""
    p = [t.requires_grad_() for t in stacked(model, STACK)]
    return p, torch.optim.SGD(p, lr=LR, momentum=MOMENTUM, weight_decay=WD, fused=True)


def agree(model, x, y, steps=5) -> float:
    """Largest relative difference between fit's step and the other steps (hand-written alone, and
    model 0 of a stack of STACK, hand-written and with autograd, the others on other data) after
    ``steps`` steps from the same weights."""
    ref = models.build(PROF["model"], 10, (1, 14, 14), seed=0)
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(ref.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD, fused=True)
    alone, buf_a = stacked(model, 1), [None] * 6
    stack, buf_s = stacked(model, STACK), [None] * 6
    auto, auto_opt = sgd_stack(model)
    gen = torch.Generator().manual_seed(1)
    xs = torch.rand(STACK, BATCH, 196, generator=gen)
    xs[0] = x.flatten(1)
    ys = torch.randint(0, 10, (STACK, BATCH), generator=gen)
    ys[0] = y
    for _ in range(steps):
        fit_step(ref, opt, x, y)
        hand_step(alone, buf_a, xs[:1], F.one_hot(ys[:1], 10).float())
        hand_step(stack, buf_s, xs, F.one_hot(ys, 10).float())
        stacked_autograd_step(auto, auto_opt, xs, ys)
    want = stacked(ref, 1)
    worst = 0.0
    for w, a, s, t in zip(want, alone, stack, auto):
        for got in (a[0], s[0], t.detach()[0]):
            worst = max(worst, ((got - w[0]).abs().max() / w[0].abs().max()).item())
    return worst


def timings(paths: dict, n: int, rounds: int) -> dict:
    """Seconds per call of each ``(fn, calls per model)`` in ``paths``: the paths take turns,
    ``rounds`` times, ``n`` steps per model each; the fastest round of each counts (this VM's
    speed drifts by tens of per cent within a minute; turns and minima keep the ratios fair)."""
    best = {name: float("inf") for name in paths}
    for name, (fn, per) in paths.items():  # warm-up
        for _ in range(max(n // (10 * per), 3)):
            fn()
    for _ in range(rounds):
        for name, (fn, per) in paths.items():
            calls = max(n // per, 3)
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / (calls * per))
    return best


def run_seconds(run_dir: str, time_log: str) -> tuple[float, float, float]:
    """(seconds inside methods and training, user + system seconds, wall seconds) of a run: every
    stored job's ``method_seconds`` and every original model's ``train_seconds``."""
    inside = 0.0
    for f in glob.glob(os.path.join(run_dir, "jobs", "*.json")) + glob.glob(os.path.join(run_dir, "models", "*.json")):
        with open(f) as fh:
            payload = json.load(fh)["payload"]
        inside += payload.get("method_seconds", 0.0) + payload.get("train_seconds", 0.0)
    with open(time_log) as fh:
        text = fh.read()
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text)[1])
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", text)[1])
    parts = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)[1].split(":")
    wall = sum(float(v) * 60 ** i for i, v in enumerate(reversed(parts)))
    return inside, user + system, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few steps per path (checks that it runs)")
    ap.add_argument("--run", help="a classroom run folder to project at the floor")
    ap.add_argument("--time-log", help="/usr/bin/time -v output of the command that made --run")
    args = ap.parse_args(argv)
    if bool(args.run) != bool(args.time_log):
        ap.error("--run and --time-log go together")
    torch.set_num_threads(1)
    n, rounds = (20, 1) if args.smoke else (1000, 7)
    gen = torch.Generator().manual_seed(0)
    model = models.build(PROF["model"], 10, (1, 14, 14), seed=0)
    x, y = torch.rand(BATCH, 1, 14, 14, generator=gen), torch.randint(0, 10, (BATCH,), generator=gen)

    diff = agree(model, x, y)
    print(f"the other steps against fit's (autograd + fused SGD), 5 steps: largest relative difference {diff:.1e}")
    if not diff < 1e-4:
        sys.exit("a step here does not compute fit's step; comparing their times would mean nothing")

    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD, fused=True)
    one, buf1 = stacked(model, 1), [None] * 6
    many, bufk = stacked(model, STACK), [None] * 6
    auto, auto_opt = sgd_stack(model)
    x1, oh1 = x.flatten(1)[None], F.one_hot(y, 10).float()[None]
    xk, yk = torch.rand(STACK, BATCH, 196, generator=gen), torch.randint(0, 10, (STACK, BATCH), generator=gen)
    ohk = F.one_hot(yk, 10).float()  # eleven models, each with its own batch
    gz, a, g = torch.rand(1, BATCH, 128), torch.rand(1, BATCH, 128), torch.rand(1, BATCH, 10)
    times = timings({
        "fit's step (modules, autograd, fused SGD)": (lambda: fit_step(model, opt, x, y), 1),
        "hand-written step (no autograd, no optimiser object)": (lambda: hand_step(one, buf1, x1, oh1), 1),
        f"{STACK} models stacked, autograd, fused SGD (per model)": (lambda: stacked_autograd_step(auto, auto_opt, xk, yk), STACK),
        f"hand-written, {STACK} models stacked (per model)": (lambda: hand_step(many, bufk, xk, ohk), STACK),
        "the five matrix products alone": (lambda: products(one, x1, gz, a, g), 1),
    }, n, rounds)
    fit_ms = times["fit's step (modules, autograd, fused SGD)"] * 1e3
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, one thread, "
          f"{datetime.date.today()}, fastest of {rounds} turns of {n} steps per path{' (smoke: timings mean nothing)' if args.smoke else ''}")
    print("| path | ms per step | fit's step / this |")
    print("| --- | --- | --- |")
    for name, sec in times.items():
        print(f"| {name} | {sec * 1e3:.3f} | {fit_ms / (sec * 1e3):.2f} |")
    if args.run:
        inside, cpu, wall = run_seconds(args.run, args.time_log)
        rest = cpu - inside
        print(f"run {args.run}: {wall:.0f} s wall, {cpu:.0f} CPU-s ({cpu / wall:.2f} busy cores), "
              f"{inside:.0f} CPU-s inside methods and training")
        for name in list(times)[1:4]:
            at_floor = inside * times[name] * 1e3 / fit_ms
            print(f"every step at the {name.split(' (')[0]} cost: {at_floor:.0f} CPU-s inside, "
                  f"{at_floor + rest:.0f} CPU-s in all, about {(at_floor + rest) / (cpu / wall):.0f} s wall "
                  f"at the same parallelism; {at_floor / (cpu / wall):.0f} s if nothing else took any time")

if __name__ == "__main__":
    main()
