"""The models: each returns per-example terms ``rec`` and ``reg`` (the one objective ``rec + weight * reg``).

Modules:

* ``priors``: the standard normal prior
* ``vae``: the VAE (chapter 00)
* ``wae``: WAE-MMD (chapter 01)
* ``hebae``: HEBAE, both forms (chapter 02)
* ``vamp``: mixture-of-Gaussians prior and VampPrior (chapter 03)
* ``hvae``: the two-level VAE (chapter 03)
* ``vhp``: the learned hierarchical prior of Klushyn et al. (chapter 04)
* ``conv``: the CelebA conv networks and their FLOP count
"""
