"""Objectives and schedules: the weight in ``rec + weight * reg`` and the regularisers that are not KLs.

Modules:

* ``schedules``: Constant, LinearWarmup and the Schedule interface
* ``constrained``: GECO, REWO and App. B.1's REWO (chapter 04)
* ``mmd``: the unbiased MMD estimator of WAE-MMD (chapter 01)
"""
