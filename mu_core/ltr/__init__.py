"""Federated online learning-to-rank, the paper's later version's second domain (issue 20).

So far: the LETOR data (``data``) and FPDGD training with offline nDCG@10 (``fpdgd``), tested on
their own; the unlearning methods and the engine's path to them are not built yet.
"""
