"""One point of a study: train one model at a paper's settings and return its numbers.

Modules:

* ``hebae_runs``: HEBAE's MNIST experiments (chapter 02's study)
* ``pendulum_runs``: Klushyn et al.'s Table 1 (chapter 04's study)
* ``vamp_runs``: the VampPrior paper's Tables 1-3 on MNIST (chapter 03 and its study)
"""
