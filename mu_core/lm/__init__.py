"""The language-model domain (TOFU's analogue, trained from scratch): synthetic facts (``data``), a
small decoder-only transformer with the answer-only NLL, the GradAscent, GradDiff and NPO losses
and the training loop (``model``), the methods (``methods``), TOFU's metrics (``metrics``) and the
evaluation of one model (``evaluate``), the engine's view of the domain (``engine``) and the
chapter's sentences (``report``)."""
