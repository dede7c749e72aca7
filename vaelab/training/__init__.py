"""Training: the one loop and its run directory.

Modules:

* ``train``: fit, evaluate, the learning-rate factors
* ``runs``: a run directory's identity, checksummed checkpoint, lock, atomic writes and disk space
* ``guard``: the checks a state passes before it is saved or resumed from (nothing non-finite)
"""
