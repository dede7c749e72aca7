"""Benchmark: importance-sampled log-likelihood, ``vaelab`` beside a bare vectorised estimator.

For the MNIST MLP VAE (784-300-300-40 / 40-300-300-784, Bernoulli decoder; the VampPrior paper's
one-layer model) with the standard prior and with a VampPrior (K = 500), prints seconds per test
image at S samples for

* ``vaelab.evaluation.likelihood.importance_log_likelihood`` (default chunking), and
* a bare estimator written here: encode once, draw S x k normals, decode ~1,000 rows per call,
  log w = log Bernoulli + log prior - log q by hand, logsumexp,

measured interleaved in one run (median of ``--repeats``), their ratio and the target "within 5 %
of the bare estimator", and the projected time for the 10,000 MNIST test images.

Run: ``python benchmarks/loglik.py [--threads 1] [--samples 5000] [--images 20] [--repeats 3]``.
Not part of the tests: nothing here is timed in CI. Weights are random (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from vaelab.evaluation.likelihood import importance_log_likelihood
from vaelab.models.vae import mlp_vae
from vaelab.models.vamp import VampPrior

LOG2PI = math.log(2 * math.pi)


@torch.no_grad()
def bare_loglik(model, x: torch.Tensor, n_samples: int, rows: int = 1000) -> torch.Tensor:
    """log p(x) for each image of x by importance sampling, with nothing but tensor operations."""
    out = []
    for xi in x:
        mu, logvar = model.encode(xi[None])
        std = torch.exp(0.5 * logvar)
        chunk = max(1, rows)
        lw = []
        for start in range(0, n_samples, chunk):
            c = min(chunk, n_samples - start)
            eps = torch.randn(c, mu.shape[1])
            z = mu + std * eps
            log_q = (-0.5 * (eps**2 + LOG2PI) - 0.5 * logvar).sum(1)
            log_p = model.prior.log_prob(z)
            logits = model.decode(z).flatten(1)
            log_lik = -F.binary_cross_entropy_with_logits(logits, xi.flatten()[None].expand(c, -1),
                                                          reduction="none").sum(1)
            lw.append(log_lik + log_p - log_q)
        out.append(torch.logsumexp(torch.cat(lw), 0) - math.log(n_samples))
    return torch.stack(out)


def build(prior: str):
    torch.manual_seed(0)
    model = mlp_vae(latent_dim=40, data_shape=(1, 28, 28), enc_hidden=(784, 300, 300), dec_hidden=(300, 300))
    if prior == "vamp":
        model = mlp_vae(latent_dim=40, data_shape=(1, 28, 28), enc_hidden=(784, 300, 300), dec_hidden=(300, 300),
                        prior=VampPrior(n_pseudo=500, data_shape=(1, 28, 28)))
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = (torch.rand(args.images, 1, 28, 28) > 0.5).float()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; S = {args.samples}, {args.images} images, median of {args.repeats}")
    print(f"{'prior':<10} {'vaelab s/img':>13} {'bare s/img':>11} {'ratio':>6} {'target':>7} {'10k images':>11}")
    for prior in ("standard", "vamp"):
        model = build(prior)
        cache = model.prior.cache_components if prior == "vamp" else None
        times = {"vaelab": [], "bare": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            importance_log_likelihood(model, x, n_samples=args.samples, batch_size=1)
            times["vaelab"].append((time.perf_counter() - t0) / args.images)
            t0 = time.perf_counter()
            if cache is not None:
                with cache():
                    bare_loglik(model, x, args.samples)
            else:
                bare_loglik(model, x, args.samples)
            times["bare"].append((time.perf_counter() - t0) / args.images)
        v, b = statistics.median(times["vaelab"]), statistics.median(times["bare"])
        ok = "met" if v <= 1.05 * b else "missed"
        print(f"{prior:<10} {v:13.4f} {b:11.4f} {v / b:6.2f} {ok:>7} {v * 10_000 / 60:9.1f} min")


if __name__ == "__main__":
    main()
