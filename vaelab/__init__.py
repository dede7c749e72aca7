"""vaelab: the tested PyTorch package behind the vaelab book.

Subpackages, one layer each (each one's docstring lists its modules; ``tests/test_layout.py`` checks
that the lists are whole and that no layer imports one above it):

* ``core``: probability and networks (densities, posteriors, network builders, device and data root);
* ``models``: the VAE, WAE, HEBAE, VampPrior, two-level VAE, VHP and the CelebA networks;
* ``objectives``: the schedules that own the weight of ``rec + weight * reg``, GECO, REWO, the MMD;
* ``training``: the one training loop and its run directory (identity, checkpoint, lock);
* ``evaluation``: log-likelihood, diagnostics, Frechet distances, the pendulum's scores;
* ``data``: device-resident image sets and each data set's source and cache;
* ``experiments``: one point of a study at a paper's settings (chapters 02, 03 and 04);
* ``lab``: the book's part (chapter parameters, glue, comparison, plots, records, sweeps); the library
  never imports it, and ``import vaelab`` imports none of Ray, papermill, myst-nb or pandas.

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
from vaelab.core.config import data_root, get_device, is_smoke
from vaelab.data.images import ImageData, Splits, load_dataset
from vaelab.objectives.schedules import Constant, LinearWarmup, Schedule, objective
from vaelab.training.train import History, NonFiniteLossError, evaluate, fit
from vaelab.models.vae import VAE, mlp_vae
from vaelab.models.wae import WAE, mlp_wae

__version__ = "0.1.0"
__all__ = ["data_root", "get_device", "is_smoke", "ImageData", "Splits", "load_dataset", "Constant",
           "LinearWarmup", "Schedule", "objective", "History", "NonFiniteLossError", "evaluate", "fit", "VAE",
           "mlp_vae", "WAE", "mlp_wae", "__version__"]
