"""The language-model domain (issue 22, in progress): the synthetic facts (``data``) and TOFU's
metrics as OpenUnlearning computes them (``metrics``). The model, the methods and the engine's
wiring are not built yet."""
