"""Benchmark: training throughput of the MNIST MLP VAE through ``vaelab.fit``.

Prints, per device (CPU always; CUDA where available) and thread count:

* training images per second of ``vaelab.fit`` (HEBAE App. B.1 MLP 784-784-800-2k / k-800-800-784,
  k = 20, batch 128, Adam) on 60,000 MNIST-shaped uint8 images (throughput does not depend on the
  pixels, so the images are random);
* the same for a bare loop that only runs forward, backward and the optimiser step on batches that
  are already floats on the device, measured interleaved with ``fit`` in one run;
* the share of ``fit``'s epoch spent outside forward, backward and the optimiser step
  (1 - bare time / fit time), the target being under 5 % (PERFORMANCE.md);
* the achieved GFLOP/s (3 x the forward matmul FLOPs per image) against a measured matmul peak.

Run: ``make bench`` or ``python benchmarks/train_mlp_vae.py [--threads 1 2] [--epochs 1] [--repeats 3]``.
Not part of the tests: nothing here is timed in CI.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import vaelab
from vaelab.data.images import ImageData, batch_indices
from vaelab.objectives.schedules import objective
from vaelab.training.train import _make_optimizer

N_IMAGES, BATCH, K = 60_000, 128, 20


def mlp_flops_per_image(model) -> int:
    """Multiply-adds x 2 of every Linear layer, forward only."""
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_fit(model, data, epochs):
    sync(data.device)
    t0 = time.perf_counter()
    vaelab.fit(model, data, epochs=epochs, batch_size=BATCH, progress=False)
    sync(data.device)
    return time.perf_counter() - t0


def time_bare(model, data, epochs):
    """Forward, backward, optimiser step only, on float batches prepared beforehand (not timed)."""
    opt = _make_optimizer(model.parameters(), 1e-3)
    batches = [data.batch(idx) for idx in batch_indices(len(data), BATCH, generator=torch.Generator().manual_seed(0),
                                                          device=data.device)]
    sync(data.device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x in batches:
            loss = objective(model(x), 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(data.device)
    return time.perf_counter() - t0


def matmul_peak(device, n=1024, reps=20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * reps / best / 1e9


def bench(device, threads, epochs, repeats):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    data = ImageData((torch.rand(N_IMAGES, 1, 28, 28, generator=g) * 255).to(torch.uint8).to(device))
    torch.manual_seed(0)
    model = vaelab.mlp_vae(latent_dim=K).to(device)
    time_fit(model, data.subset(BATCH * 20), 1)  # warm-up
    fit_t, bare_t = [], []
    for _ in range(repeats):  # interleaved, medians
        fit_t.append(time_fit(model, data, epochs))
        bare_t.append(time_bare(model, data, epochs))
    fit_s, bare_s = statistics.median(fit_t), statistics.median(bare_t)
    n = N_IMAGES * epochs
    flops = 3 * mlp_flops_per_image(model)
    peak = matmul_peak(device)
    achieved = flops * n / fit_s / 1e9
    print(f"{device.type:5s} threads={threads:<2d} batch={BATCH} | fit {n / fit_s:8.0f} img/s | bare loop "
          f"{n / bare_s:8.0f} img/s | outside fwd/bwd/step {100 * (1 - bare_s / fit_s):5.1f} % (target < 5 %) | "
          f"{achieved:6.1f} GFLOP/s = {100 * achieved / peak:4.0f} % of measured matmul peak {peak:.0f} GFLOP/s "
          f"(target >= 70 %)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, torch {torch.__version__}; "
          f"MLP VAE 784-784-800-{2 * K} / {K}-800-800-784, {N_IMAGES} images x {args.epochs} epoch(s), "
          f"median of {args.repeats}")
    for threads in dict.fromkeys(args.threads):
        bench(torch.device("cpu"), threads, args.epochs, args.repeats)
    if torch.cuda.is_available():
        print(f"gpu: {torch.cuda.get_device_name(0)}")
        bench(torch.device("cuda"), torch.get_num_threads(), max(args.epochs, 5), args.repeats)
    else:
        print("cuda: not available on this machine (GPU figures not measured)")


if __name__ == "__main__":
    main()
