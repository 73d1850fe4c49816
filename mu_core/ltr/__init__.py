"""Federated online learning-to-rank, the paper's later version's second domain (issue 20).

So far: the LETOR data (``data``), FPDGD training with offline nDCG@10 (``fpdgd``) and the five
client-unlearning methods in reference and corrected mode (``methods``), each tested against an
independent computation; the engine's path to them (profiles, plan, store, the chapter) is not
built yet.
"""
