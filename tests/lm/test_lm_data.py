"""The synthetic facts of the language-model analogue (mu_core.lm.data)."""
import pytest

from mu_core import ConfigError
from mu_core.lm import data as LD


def test_facts_are_a_function_of_the_seed_and_split_by_entity():
    a, b, c = LD.facts(3), LD.facts(3), LD.facts(4)
    assert a == b and a != c
    by = {}
    for f in a:
        by.setdefault(f["entity"], set()).add(f["split"])
    assert all(len(s) == 1 for s in by.values())  # every fact of an entity is in one split
    splits = [next(iter(s)) for s in by.values()]
    assert splits.count("forget") == 10 and splits.count("retain") == 90 and splits.count("control") == 40
    assert len(a) == 140 * len(LD.TEMPLATES)


def test_each_question_has_a_paraphrase_and_five_distinct_wrong_answers():
    for f in LD.facts(0, n_entities=20, n_control=5):
        assert len(f["perturbed"]) == LD.N_PERTURBED == len(set(f["perturbed"]))
        assert f["answer"] not in f["perturbed"] and f["paraphrase"] not in f["perturbed"] and f["paraphrase"] != f["answer"]
        assert f["entity"] in f["question"] and f["entity"] in f["answer"]
        # a perturbed answer differs in the value only from the paraphrase (a control fact: the answer)
        base = f["answer"] if f["split"] == "control" else f["paraphrase"]
        diff = [sum(x != y for x, y in zip(base.split(), p.split())) for p in f["perturbed"]]
        assert diff == [1] * LD.N_PERTURBED


@pytest.mark.parametrize("fraction,n", [(0.01, 1), (0.05, 5), (0.5, 50)])
def test_forget_fractions_and_bad_input(fraction, n):
    fs = LD.facts(1, forget_fraction=fraction)
    assert len({f["entity"] for f in fs if f["split"] == "forget"}) == n
    for bad in (0, 0.6, -0.1):
        with pytest.raises(ConfigError, match=r"data.forget_fraction must be a number > 0 and <= 0.5"):
            LD.facts(1, forget_fraction=bad)


def test_the_vocabulary_covers_every_text_word_level():
    fs = LD.facts(2, n_entities=10, n_control=3)
    vocab = LD.vocabulary(fs)
    assert vocab[:4] == LD.SPECIALS and len(set(vocab)) == len(vocab)
    words = set(vocab)
    assert all(w in words for f in fs for w in (f["question"] + " " + f["answer"] + " " + " ".join(f["perturbed"])).split())
