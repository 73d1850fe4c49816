"""The language-model domain (issue 22, in progress): TOFU's metrics as OpenUnlearning computes them."""
