"""Evaluation of trained models.

Modules:

* ``likelihood``: importance-sampled log-likelihood
* ``diagnostics``: active units, KL per dimension, ELBO surgery, MIC/TIC, latent covariance
* ``classifier``: a small MNIST classifier for Frechet distances of digits
* ``fid``: the FID with pytorch-fid's Inception
* ``fid_weights``: the FID Inception weights placed under the data root (``python -m vaelab.evaluation.fid_weights``)
* ``angle``: the pendulum's angle regression (chapter 04)
* ``interpolation``: latent interpolation tests (chapter 04)
* ``graph_interp``: graph-based interpolation with A* (chapter 04)
* ``seed_effects``: seed or method: two-way ANOVA and Friedman's test
"""
