"""Federated online learning-to-rank, the paper's later version's second domain: the LETOR data
(``data``), FPDGD training with offline nDCG@10 (``fpdgd``), the five client-unlearning methods in
reference and corrected mode (``methods``), and what the engine asks of the domain (``engine``).
"""
