"""Edits that change results, each applied alone and shown failing the golden tests.

``python tests/mutate_golden.py [NAME ...]`` applies each edit to its file, runs the golden jobs it
should trip (``pytest tests/engine/test_golden.py -k ...``), restores the file, and prints one line per
edit: caught (the job that failed and the message's first words) or MISSED. It exits 1 if any edit
is missed. An edit whose text is not found (the code moved) is reported, not silently skipped.

The golden tests are meant to catch code changes, not processors: every edit here must fail them
on every numerical path their tolerances were measured on (``test_golden.PATHS``).
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (file, text, replacement, golden jobs it must trip (a pytest -k expression))
MUTATIONS = {
    "split seed": ("mu_core/images/data.py", "SPLIT_SEED = 0", "SPLIT_SEED = 1", "data"),
    "ReLU -> Tanh in the MLP": ("mu_core/images/models.py", "nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))",
                                "nn.BatchNorm1d(hidden), nn.Tanh())", "models"),
    "corrected accuracy drops the last sample": ("mu_core/images/metrics.py", "return 100 * correct.mean().item()",
                                                 "return 100 * correct[:-1].mean().item()", "accuracy"),
    "MIA threshold > 0 -> >= 0.01": ("mu_core/images/metrics.py", "w * ent_target + b > 0", "w * ent_target + b >= 0.01",
                                     "metrics"),
    "a collapse at up to 1.5 times chance": ("mu_core/images/metrics.py", "COLLAPSE = 1.25", "COLLAPSE = 1.5", "collapse"),
    "UNSIR's retain batch ignored": ("mu_core/images/engine.py", 'ctx.mode == "reference" else None',
                                     'ctx.mode == "never" else None', "retain_batch"),
    "warm-up one step ahead": ("mu_core/images/train.py", "done = (epoch - 1) * steps + it ", "done = (epoch - 1) * steps + it + 1 ",
                               "train"),
    "milestone one epoch late": ("mu_core/images/train.py", "k = sum(m <= epoch for m", "k = sum(m < epoch for m", "train"),
    "Random-Labels may keep the true label": ("mu_core/images/methods.py", "torch.randint(1, split.num_classes",
                                              "torch.randint(0, split.num_classes", "random_labels"),
    "Bad-Teacher keeps half of D_r": ("mu_core/images/methods.py", 'int(p["retain_fraction"] * len(split.retain))',
                                      "int(0.5 * len(split.retain))", "bad_teacher"),
    "UNSIR uses every noise image in reference mode": ("mu_core/images/methods.py", "kept = noise[: noise.shape[1]] if ref else noise",
                                                       "kept = noise", "unsir and reference"),
    "SSD dampens twice as hard": ("mu_core/images/methods.py", "factor = (lam * imp_all[n] / imp_forget[n]).clamp(max=1)",
                                  "factor = (lam * imp_all[n] / imp_forget[n]).clamp(max=1) / 2", "ssd"),
    "LFSSD's corrected loss: L1 of the logits": ("mu_core/images/methods.py", "return lambda out, y: out.pow(2).sum(1).mean()",
                                                 "return lambda out, y: out.abs().sum(1).mean()", "lfssd and corrected"),
    "SCRUB's decay on >= ": ("mu_core/images/deepunlearn.py", "rate ** sum(epoch > d for d in decay)",
                             "rate ** sum(epoch >= d for d in decay)", "scrub"),
    "SCRUB's corrected i* = 0 returns the final student": ("mu_core/images/deepunlearn.py",
                                                           'elif ctx.mode == "corrected":\n        model.load_state_dict(original)',
                                                           'elif ctx.mode == "never":\n        model.load_state_dict(original)',
                                                           "scrub_original"),
    "MSG re-initialises the largest gradients": ("mu_core/images/deepunlearn.py", "torch.topk(-w.grad.abs().flatten(), k)",
                                                 "torch.topk(w.grad.abs().flatten(), k)", "msg"),
    "SRL's reference labels from seed 124": ("mu_core/images/deepunlearn.py", "np.random.RandomState(123)",
                                             "np.random.RandomState(124)", "srl and reference"),
    "EU-k resets BatchNorm1d in reference mode too": ("mu_core/images/deepunlearn.py",
                                                       'norms = (nn.BatchNorm2d,) if mode == "reference" else (nn.BatchNorm1d, nn.BatchNorm2d)',
                                                       "norms = (nn.BatchNorm1d, nn.BatchNorm2d)", "eu_k and reference"),
    "EU-k's reference augmentation without Deep Unlearn's flip": ("mu_core/images/deepunlearn.py",
                                                                  '"mnist": {"crop_pad": 0, "flip": True, "rotate": 0}',
                                                                  '"mnist": {"crop_pad": 0, "flip": False, "rotate": 0}',
                                                                  "eu_k and reference"),
    "MSG's reference forget pass in grad_batch": ("mu_core/images/deepunlearn.py",
                                                  'forget_batch = p["batch"] if ctx.mode == "reference" else p["grad_batch"]',
                                                  'forget_batch = p["grad_batch"]', "msg and reference"),
    "SCRUB's reference forget-validation set is the forgotten class": ("mu_core/images/deepunlearn.py",
                                                                      'if mode == "reference" and split.setting == "sub_class":',
                                                                      "if False:", "scrub and reference"),
    "U-LiRA's pool from another seed": ("mu_core/images/data.py", "POOL_SEED = ", "POOL_SEED = 1 + ", "ulira"),
    "LM fine-tuning warm-up one step ahead": ("mu_core/lm/model.py", "lambda s: s / max(1, warm)", "lambda s: (s + 1) / max(1, warm)",
                                              "lm and train"),
    "LM retain partner from the global generator": ("mu_core/lm/methods.py",
                                                    "torch.randint(len(retain), (len(idx),), generator=gen)",
                                                    "torch.randint(len(retain), (len(idx),))", "grad_diff"),
    "GradAscent's loss on the retain batch": ("mu_core/lm/methods.py", "lambda f, r: LM.grad_ascent_loss(model, f)",
                                              "lambda f, r: LM.grad_ascent_loss(model, r)", "grad_ascent"),
    "greedy answers run past <eos>": ("mu_core/lm/evaluate.py", "for k in (~done).nonzero().flatten().tolist():",
                                      "for k in range(len(idx)):", "lm and method and reference"),
    "NPO's beta doubled": ("mu_core/lm/model.py", "F.softplus(beta * ratio)", "F.softplus(2 * beta * ratio)", "npo"),
    "Fine-tuning's reference scores the last aggregate": ("mu_core/ltr/methods.py",
                                                          "np.mean(ups, axis=0)\n    # quirk (reference): its reported ndcg_server[-1] "
                                                          "is logged before the last round's aggregation\n    return scored",
                                                          "np.mean(ups, axis=0)\n    return w", "fine_tuning and reference"),
    "nDCG's discount log2(i + 3)": ("mu_core/ltr/fpdgd.py", "disc = 1.0 / np.log2(np.arange(k) + 2)",
                                    "disc = 1.0 / np.log2(np.arange(k) + 3)", "ltr and train"),
    "a click on u1 <= P(click)": ("mu_core/ltr/fpdgd.py", "if u1 < p_click[rel]:", "if u1 <= p_click[rel] + 0.01:", "ltr and train"),
    "FedEraser's reference evaluation at 0.2": ("mu_core/ltr/methods.py", 'return trained["w"] + 0.1 * np.sum(U, axis=0)',
                                                'return trained["w"] + 0.2 * np.sum(U, axis=0)', "fed_eraser and reference"),
    "PGA ascends at half the rate": ("mu_core/ltr/methods.py", "spec[\"lr\"], gen, sign=-1.0,",
                                     "spec[\"lr\"], gen, sign=-0.5,", "pga"),
}


def run(name: str) -> tuple[bool, str]:
    path, old, new, jobs = MUTATIONS[name]
    full = os.path.join(ROOT, path)
    with open(full) as f:
        text = f.read()
    if text.count(old) != 1:
        return False, f"edit not applicable: {old!r} occurs {text.count(old)} times in {path}"
    try:
        with open(full, "w") as f:
            f.write(text.replace(old, new))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/engine/test_golden.py",
                            "-k", f"test_a_result_changes_only_with_a_version and ({jobs})"],
                           cwd=ROOT, capture_output=True, text=True)
    finally:
        with open(full, "w") as f:
            f.write(text)
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
    if r.returncode == 1 and failed and "computes a different result" in r.stdout:
        return True, failed[0].split("[")[-1].split("]")[0]
    return False, f"pytest exit {r.returncode}: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]}"


if __name__ == "__main__":
    names = sys.argv[1:] or list(MUTATIONS)
    missed = 0
    for name in names:
        ok, what = run(name)
        missed += not ok
        print(f"{'caught' if ok else 'MISSED'}  {name}: {what}", flush=True)
    print(f"{len(names) - missed} of {len(names)} edits caught")
    sys.exit(1 if missed else 0)
