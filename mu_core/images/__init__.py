"""Image classification, the paper's own domain: the data (MNIST digits, CIFAR-100/20) and their
splits, the networks, training, the unlearning methods (the paper's seven, each beside its
equation) and the metrics. The engine reaches it through ``mu_core.domains``.
"""
