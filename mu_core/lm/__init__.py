"""The language-model domain (issue 22, in progress): the synthetic facts (``data``), a small
decoder-only transformer with the answer-only NLL and the GradAscent, GradDiff and NPO losses
(``model``), and TOFU's metrics as OpenUnlearning computes them (``metrics``). Training, the
oracle, the engine's wiring and the chapter are not built yet."""
