"""vaelab: the tested PyTorch package behind the vaelab book.

Modules (one idea each): ``config`` (data root, device, smoke switch), ``checks`` (a chapter's
parameters checked before any work, the smoke cell's replacements printed), ``data`` (device-resident
data sets, index batches, binarisation), ``datasets`` (each data set's source and cache, and the FID
weights), ``densities`` (log-densities, Gaussian KLs), ``posteriors`` (q(z|x) as a distribution, and
the one way to sample it), ``nets`` (network builders), ``priors``, ``vae``, ``schedules`` (the weight
in ``rec + weight * reg``), ``train`` (the one training loop, in named parts), ``runs`` (a run
directory's identity, checksummed checkpoint, lock and atomic writes), ``mmd`` and ``wae`` (WAE-MMD),
``diagnostics`` (active units, KL per dimension, ELBO surgery, MIC/TIC, latent covariance), ``hebae``
(the hierarchical empirical Bayes autoencoder), ``likelihood`` (importance-sampled log-likelihood),
``classifier`` (a small MNIST classifier for Frechet distances of digits), ``vamp`` (mixture-of-Gaussians
prior and VampPrior), ``hvae`` (the two-level VAE), ``constrained`` (GECO, REWO and App. B.1's REWO
schedules), ``vhp`` (the learned hierarchical prior of Klushyn et al.), ``angle`` (the pendulum's angle
regression), ``graph_interp`` (graph-based interpolation with A*), ``conv`` (the CelebA conv networks
and their FLOP count), ``speed`` (peak rates for benchmarks), ``plots``, ``results``, ``fid``.

Names, one per idea across the modules:

* ``rec``, ``reg``: a model's per-example terms, -log p(x|z) and the regulariser; ``weight``: what
  multiplies ``reg`` in the one loss ``rec + weight * reg``, owned by a schedule (``Constant(weight)``; the chapters'
  parameter ``lam`` is this weight, named lambda as in chapter 01);
* ``multiplier``: a Lagrange multiplier lambda (GECO; REWO's App. B.1 form), whose weight is 1 / lambda
  (GECO) or 1 / (1 + tau (lambda - 1)) (App. B.1); ``beta`` keeps each paper's meaning inside its
  module: REWO's weight (Klushyn et al.) and HEBAE's batch mean of mu (Cheng et al., Theorem 1);
* ``posterior(x)``: q(z | x) of a model as a ``torch.distributions.Distribution``; ``encode(x)``:
  the encoder's raw outputs; ``z``: a code or a draw of q; ``mu``, ``logvar``: the mean and log
  variance of a diagonal Gaussian q;
* ``log_importance_weights``: log p(x, z) - log q(z | x) of importance sampling (``likelihood``, and
  the VHP prior's bound on log p(z)); ``log_weights``: log mixture weights (``vamp``);
* ``generator``: the ``torch.Generator`` that makes a draw repeatable (``posteriors.normal``).
"""
from .checks import (ParameterError, check_bool, check_choice, check_choice_list, check_device, check_float,
                     check_int, check_number_dict, check_number_list, check_path, replace_params)
from .config import data_root, get_device, is_smoke
from .data import ImageData, Splits, load_dataset
from .schedules import Constant, LinearWarmup, Schedule, objective
from .train import History, NonFiniteLossError, evaluate, fit
from .vae import VAE, mlp_vae
from .wae import WAE, mlp_wae

__version__ = "0.1.0"
__all__ = ["ParameterError", "check_bool", "check_choice", "check_choice_list", "check_device", "check_float",
           "check_int", "check_number_dict", "check_number_list", "check_path", "replace_params",
           "data_root", "get_device", "is_smoke", "ImageData", "Splits", "load_dataset", "Constant",
           "LinearWarmup", "Schedule", "objective", "History", "NonFiniteLossError", "evaluate", "fit", "VAE",
           "mlp_vae", "WAE", "mlp_wae", "__version__"]
