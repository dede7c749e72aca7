"""Training: the one loop and its run directory.

Modules:

* ``train``: fit, evaluate, the learning-rate factors
* ``runs``: a run directory's identity, checksummed checkpoint, lock and atomic writes
"""
