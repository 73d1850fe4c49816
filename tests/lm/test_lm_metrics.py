"""TOFU's metrics (mu_core.lm.metrics) on worked examples, computed by hand."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from mu_core.lm import metrics as LM


def test_answer_probability_and_truth_ratio_by_hand():
    assert LM.answer_prob([0.0, math.log(2)]).tolist() == pytest.approx([1.0, 0.5])
    # paraphrase NLL 1; perturbed NLLs 2 and 4 (mean 3): TR = exp(-3) / exp(-1) = exp(-2)
    tr = LM.truth_ratio([1.0], [[2.0, 4.0]])
    assert tr[0] == pytest.approx(math.exp(-2))
    assert LM.forget_truth_ratio([0.5, 2.0, 1.0]) == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # min(TR, 1/TR)
    assert LM.true_truth_ratio([0.25, 1.5]) == pytest.approx((0.75 + 0.0) / 2)  # max(0, 1 - TR)


def test_forget_quality_is_the_ks_p_value():
    a = np.linspace(0.1, 0.9, 40)
    assert LM.forget_quality(a, a) == pytest.approx(1.0)
    far = LM.forget_quality(a, a + 5)
    assert far == pytest.approx(sps.ks_2samp(a, a + 5).pvalue) and far < 1e-10


def test_normalised_probability_by_hand():
    # P_true = 0.5, perturbed 0.25 and 0.25: 0.5 / (0.5 + 0.5)
    assert LM.normalised_prob([math.log(2)], [[math.log(4), math.log(4)]])[0] == pytest.approx(0.5)


def test_rouge_l_recall_worked_examples():
    # LCS of "the cat sat on the mat" and "the cat was on the mat" is 5 of the reference's 6 tokens
    assert LM.rouge_l_recall("the cat was on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # tokens longer than 3 characters are Porter-stemmed: running -> run, dogs -> dog
    assert LM.rouge_l_recall("run dog", "Running dogs!") == pytest.approx(1.0)
    # non-alphanumerics become spaces, case is ignored: "E17's" -> "e17 s"
    assert LM.rouge_l_recall("e17 s city is c3", "E17's city is C3.") == pytest.approx(1.0)
    assert LM.rouge_l_recall("nothing alike", "the cat sat") == 0.0


def test_model_utility_is_the_harmonic_mean_and_zero_with_any_zero():
    retain = {"prob": 0.5, "rouge": 1.0, "truth": 0.5}
    control = {"prob": 0.25, "rouge": 0.5, "truth": 1.0}
    expected = 9 / sum(1 / v for v in (0.5, 1.0, 0.5, 0.25, 0.5, 1.0, 0.25, 0.5, 1.0))
    assert LM.model_utility(retain, [control, control]) == pytest.approx(expected)
    assert LM.model_utility({**retain, "rouge": 0.0}, [control, control]) == 0.0


def test_reference_mode_adds_open_unlearnings_epsilons_past_20_nats():
    """OpenUnlearning: TR = P_pert / (P_para + 1e-10), the forget aggregate min(TR, 1 / (TR + 1e-10)),
    the normalised probability P_true / (P_true + sum P_pert + 1e-10). Past about 20 nats per token
    the epsilon dominates; corrected computes the ratios from the NLLs."""
    para, pert = np.array([30.0]), np.full((1, 5), 25.0)
    ref = math.exp(-25) / (math.exp(-30) + 1e-10)
    assert LM.truth_ratio(para, pert, "reference")[0] == pytest.approx(ref, rel=1e-12)
    assert ref == pytest.approx(0.13875, rel=1e-3)  # saturated: the exact ratio is e^5
    assert LM.truth_ratio(para, pert, "corrected")[0] == pytest.approx(math.exp(5), rel=1e-12)
    assert LM.forget_truth_ratio([ref], "reference") == pytest.approx(min(ref, 1 / (ref + 1e-10)), rel=1e-12)
    assert LM.forget_truth_ratio([math.exp(5)], "corrected") == pytest.approx(math.exp(-5), rel=1e-12)
    true, wrong = np.array([30.0]), np.full((1, 5), 40.0)
    p_true, p_wrong = math.exp(-30), 5 * math.exp(-40)
    assert LM.normalised_prob(true, wrong, "reference")[0] == pytest.approx(p_true / (p_true + p_wrong + 1e-10), rel=1e-12)
    assert LM.normalised_prob(true, wrong, "corrected")[0] == pytest.approx(p_true / (p_true + p_wrong), rel=1e-12)
    low = np.array([1.0]), np.full((1, 5), 2.0)  # at ordinary NLLs the two modes agree to 1e-9
    assert LM.truth_ratio(*low, "reference")[0] == pytest.approx(LM.truth_ratio(*low, "corrected")[0], rel=1e-8)
