"""A nested two-seed study simulated with numpy alone, for teaching protocol A against B.

Each training seed s has its own mean m(s) ~ N(mu, sigma_b²) and its own spread under unlearning,
sigma_w(s) = sigma_w · exp(tau·eps_s - tau²), so that E sigma_w(S)² = sigma_w²; tau = 0 makes every
seed equally variable. Then V_A(s) = sigma_w(s)² exactly, and V_B = sigma_b² + E V_A(S) (equation 2).
"""
from __future__ import annotations

import numpy as np


def simulate(sigma_b: float, sigma_w: float, tau: float, mu: float, I: int, J: int,
             n_seeds: int, seed: int = 0) -> dict:
    """V_A(s) over ``n_seeds`` simulated training seeds (and the sample variance of J runs for
    each), V_B, one protocol-A sample (J values of the first seed) and one protocol-B sample
    (I other seeds, one value each)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(mu, sigma_b, n_seeds)
    spreads = sigma_w * np.exp(tau * rng.normal(size=n_seeds) - tau ** 2)
    v_a = spreads ** 2
    v_b = sigma_b ** 2 + float(np.mean(v_a))
    a_values = rng.normal(means[0], spreads[0], J)
    b_values = rng.normal(means[1:I + 1], spreads[1:I + 1])
    # what protocol A actually reports: the sample variance of J runs, V_A(s) · chi²_{J-1} / (J-1)
    v_a_sample = v_a * rng.chisquare(J - 1, n_seeds) / (J - 1)
    return {"v_a": v_a, "v_a_sample": v_a_sample, "v_b": v_b, "a_values": a_values, "b_values": b_values,
            "frac_over": float(np.mean(v_a > v_b)), "frac_under_half": float(np.mean(v_a < v_b / 2)),
            "frac_sample_over": float(np.mean(v_a_sample > v_b))}
