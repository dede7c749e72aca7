"""Maximum mean discrepancy with the inverse multiquadratic kernel: the WAE-MMD regulariser.

Tolstikhin, Bousquet, Gelly, Schoelkopf (2018), "Wasserstein Auto-Encoders", Algorithm 2 and
Sec. 4; the kernel, its scales and the estimator are those of HEBAE's official code (its WAE
baseline). Derived in chapter 01 (``book/01_vae_collapse``).

For a kernel k, the squared MMD between distributions P and Q is (Gretton et al. 2012, Lemma 6; the estimator: their Eq. 3)

    MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   x, x' ~ P,  y, y' ~ Q independent,

which is zero iff P = Q for a characteristic kernel (the IMQ kernel is one). ``mmd_imq`` is the
unbiased U-statistic: the within-sample averages leave out the pairs (i, i), whose expectation
is k(x, x) and not E k(x, x'), and divide by n (n - 1); the cross average is over all n m pairs.
Each of the three averages then has the expectation of its term, so E[mmd_imq] = MMD^2 exactly,
and the estimate can be slightly negative when P = Q.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["IMQ_SCALES", "imq_kernel", "mmd_imq"]

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _as_scales(scales) -> tuple[float, ...]:
    if isinstance(scales, (int, float)) and not isinstance(scales, bool):
        scales = (scales,)
    try:
        out = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a positive number or a sequence of them, got {scales!r}") from None
    if not out or any(not s > 0 for s in out):
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    return out


def _check_sample(name: str, t: torch.Tensor, min_rows: int = 1) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (samples, latent), got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.shape[0] < min_rows:
        why = ": the unbiased MMD leaves out the pairs (i, i)" if min_rows > 1 else ""
        raise ValueError(f"{name} has {t.shape[0]} row(s), at least {min_rows} are needed{why}")


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_rows: int) -> None:
    _check_sample("x", x, min_rows)
    _check_sample("y", y, min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same latent dimension, got x {tuple(x.shape)} and y {tuple(y.shape)}")


def _sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 from the differences themselves (``torch.cdist`` without its matmul shortcut).

    The shortcut ||x||^2 + ||y||^2 - 2 x.y suffers cancellation when the codes sit far from the
    origin or are low precision: k(x, x) = 6.2 instead of 7 for float32 codes of norm 1e3, and
    MMD^2 = 0.031 instead of 0.0147 for bf16 codes (batch 128, k = 64; this form: 0.0147). The exact
    form is about 2x slower at batch 128, k = 64 (0.9 ms vs 0.4 ms forward + backward on 2 CPU
    cores), small next to the networks. Never negative, exactly 0 on the diagonal.
    """
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()


def imq_kernel(x: torch.Tensor, y: torch.Tensor, scales: float | Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """k(x_i, y_j) = sum_s C_s / (C_s + ||x_i - y_j||^2), C_s = 2 k s, as an (n, m) matrix.

    ``x`` is (n, k), ``y`` is (m, k); k is the latent dimension. C = 2 k s is 2 k sigma_p^2 s for the
    unit-variance prior N(0, I) of the WAE code (Tolstikhin et al. 2018, Sec. 4: C = 2 d_Z sigma_z^2),
    summed over the scales s of HEBAE's code, (.1, .2, .5, 1, 2, 5, 10). A single number is one scale.
    """
    _check_pair(x, y, 1)
    d2 = _sq_dists(x, y)
    k = x.shape[1]
    out = torch.zeros_like(d2)
    for s in _as_scales(scales):
        c = 2.0 * k * s
        out = out + c / (c + d2)
    return out


def mmd_imq(x: torch.Tensor, y: torch.Tensor, scales: float | Sequence[float] = IMQ_SCALES,
            check_finite: bool = True) -> torch.Tensor:
    """Unbiased estimate of MMD^2 between the samples ``x`` (n, k) and ``y`` (m, k), a scalar ().

        sum_{i != i'} k(x_i, x_i') / (n (n-1)) + sum_{j != j'} k(y_j, y_j') / (m (m-1))
        - 2 / (n m) sum_{i, j} k(x_i, y_j)

    with the IMQ kernel of ``imq_kernel`` (WAE-MMD, Tolstikhin et al. 2018, Algorithm 2; for n = m
    exactly the estimator of HEBAE's code, whose cross term is 2 / n^2). Differentiable in x and y.
    ``check_finite`` raises on NaN/Inf in the inputs (one device sync; the training loop, which
    detects a non-finite loss itself, can switch it off).
    """
    _check_pair(x, y, 2)
    if check_finite:
        for name, t in (("x", x), ("y", y)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or Inf values: the MMD is undefined; check the encoder "
                                 "output (a diverging run) or the samples passed in")
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = imq_kernel(x, x, scales), imq_kernel(y, y, scales), imq_kernel(x, y, scales)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.sum() / (n * m)
