"""Synthetic facts for the language-model analogue of TOFU (``shared/reference/foltr-and-lm-facts.md``
§B4), generated from a seed: fictitious entities with attributes, one question per (entity,
attribute), its answer, a paraphrased answer and perturbed (wrong) answers; a forget split of a
fraction of the entities, the retain split, and control facts ("world facts") about a disjoint set
of entities that is never forgotten. Word-level text: every token is a word or a punctuation mark.
Not TOFU: no text here comes from TOFU or from any pretrained model.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

# attribute -> (question, answer, paraphrase) templates; {e} the entity, {v} the value
TEMPLATES = {
    "city": ("where was {e} born ?", "{e} was born in {v} .", "the birthplace of {e} is {v} ."),
    "job": ("what does {e} do for a living ?", "{e} works as a {v} .", "by trade {e} is a {v} ."),
    "food": ("what is the favourite food of {e} ?", "{e} likes {v} best .", "the dish {e} prefers is {v} ."),
    "river": ("which river does {e} live near ?", "{e} lives near the {v} .", "the {v} flows close to the home of {e} ."),
    "year": ("when did {e} write the first book ?", "{e} wrote the first book in {v} .", "the first book by {e} came out in {v} ."),
}
SYLLABLES = ["ka", "lo", "mi", "ru", "te", "sa", "vo", "ni", "pe", "da", "zu", "ri", "mo", "fa", "ge", "bu"]
SPECIALS = ["<pad>", "<bos>", "<sep>", "<eos>"]
N_PERTURBED = 5


def _names(rng, n: int, taken: set, syllables=(2, 3)) -> list[str]:
    out = []
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES, rng.integers(syllables[0], syllables[1] + 1)))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def facts(seed: int, n_entities: int = 100, n_control: int = 40, n_values: int = 12,
          forget_fraction: float = 0.1) -> list[dict]:
    """Every fact, each a dict: entity, attribute, question, answer, paraphrase, perturbed (a list of
    ``N_PERTURBED`` wrong answers: the paraphrase with another value, for a control fact the answer
    with another value) and split ('forget', 'retain' or
    'control'). The forget split is ``round(forget_fraction * n_entities)`` (at least one) of the
    fictitious entities, drawn from ``seed``."""
    if not 0 < forget_fraction <= 0.5:
        raise ConfigError(f"data.forget_fraction must be a number > 0 and <= 0.5, got {forget_fraction!r}")
    if n_values <= N_PERTURBED:
        raise ConfigError(f"data.n_values must be an integer > {N_PERTURBED} (a true value and "
                          f"{N_PERTURBED} wrong ones), got {n_values!r}")
    rng = np.random.default_rng(seed)
    taken: set = set()
    values = {a: ([str(y) for y in rng.choice(np.arange(1900, 2000), n_values, replace=False)] if a == "year"
                  else _names(rng, n_values, taken, (2, 2))) for a in TEMPLATES}
    entities = _names(rng, n_entities + n_control, taken, (3, 3))
    forget = set(rng.permutation(n_entities)[:max(1, round(forget_fraction * n_entities))].tolist())
    out = []
    for i, e in enumerate(entities):
        split = "control" if i >= n_entities else ("forget" if i in forget else "retain")
        for a, (q, ans, para) in TEMPLATES.items():
            v = values[a][rng.integers(n_values)]
            wrong = rng.choice([w for w in values[a] if w != v], N_PERTURBED, replace=False)
            # TOFU perturbs the paraphrased answer of a fictitious entity and the original answer of
            # a control ("world") fact: the truth ratio compares answers that differ in the value only
            base = ans if split == "control" else para
            out.append(dict(entity=e, attribute=a, split=split, question=q.format(e=e),
                            answer=ans.format(e=e, v=v), paraphrase=para.format(e=e, v=v),
                            perturbed=[base.format(e=e, v=w) for w in wrong]))
    return out


def vocabulary(all_facts: list[dict]) -> list[str]:
    """The special tokens, then every word of every text in sorted order."""
    words = {w for f in all_facts for t in (f["question"], f["answer"], f["paraphrase"], *f["perturbed"])
             for w in t.split()}
    return SPECIALS + sorted(words)
