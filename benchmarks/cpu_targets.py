"""Benchmark: the CPU speed targets of the performance issue, vaelab beside a bare loop, in one run.

Prints, for one thread (``--threads``):

* the machine, torch, threads, and the measured matrix-product peaks (fp32 and bf16, 1024^3 and the
  shapes that dominate the models: 1024 x 256 x 256 and 64 x 256 x 256);
* **pendulum** (Klushyn et al. Table 3: ``vaelab.models.vhp.vhp_vae()``, four 4 x 256 ReLU MLPs, K = 16, batch 64,
  16 x 16 images): training iterations per second through ``vaelab.fit`` with
  ``REWO(kappa=0.02, nu=5.0, tau=3.0)`` and lr 1e-4, fp32 and bf16, in REWO's initial phase (prior frozen:
  what random data give) and with every parameter trained (``Constant(1.0)``), beside a bare loop (the same
  model's forward, backward and fused Adam step on batches made beforehand); the achieved GFLOP/s
  (products counted by ``torch.utils.flop_counter``) as a share of the measured peak of that precision;
  the ratio to the target 200 it/s;
* **MNIST MLPs** (the VampPrior paper's gated 300-300 VAE with the standard prior and with a VampPrior
  K = 500, batch 100; the HEBAE App. B.1 MLP, k = 20, batch 128): images per second through ``fit``,
  fp32 and bf16, beside the bare loop; bf16 / fp32 against the target 2x;
* **log-likelihood** (``benchmarks/loglik.py``'s models and bare estimator): seconds per image, vaelab /
  bare against the target "within 5 %".

Every figure is the median of ``--repeats`` measurements, the compared programs interleaved in one
process; ratios are taken within a repetition. On a machine shared with other jobs the wall-clock
figures move by 10-30 %: the ratios printed beside them are the comparable numbers. Not part of the
tests (nothing is timed in CI). pythae is not compared here (it is not a dependency; PERFORMANCE.md
has its figures). Run: ``make bench`` or ``python benchmarks/cpu_targets.py [--quick]``.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vaelab  # noqa: E402
from vaelab.objectives.constrained import REWO  # noqa: E402
from vaelab.data.images import ImageData, batch_indices  # noqa: E402
from vaelab.models.hebae import mlp_hebae  # noqa: E402
from vaelab.objectives.schedules import Constant, objective  # noqa: E402
from vaelab.training.train import _make_optimizer  # noqa: E402
from vaelab.models.vamp import std_vae, vamp_vae  # noqa: E402
from vaelab.models.vhp import vhp_vae  # noqa: E402

PENDULUM_TARGET = 200.0  # it/s, one thread
BF16_TARGET = 2.0        # bf16 / fp32 throughput
LOGLIK_TARGET = 1.05     # vaelab / bare seconds per image


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
        flags = Path("/proc/cpuinfo").read_text()
        isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    except OSError:
        isa = []
    return f"{name} ({', '.join(isa) or 'no AVX-512'}), {platform.system()}, torch {torch.__version__}"


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """Best GFLOP/s of (m x k) @ (k x n) products in ``dtype`` (median-free: the best of 5 timed blocks)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    a @ b
    reps = max(3, int(seconds / 5 / max(time.perf_counter() - t0, 1e-6)))
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * m * k * n / best / 1e9


def amp_for(precision: str):
    return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext


def step_flops(model, x, precision: str, frozen: bool = False) -> int:
    """FLOPs of one training step's matrix products (forward and backward), counted by FlopCounterMode."""
    params = [p for n, p in model.named_parameters() if not (frozen and n.startswith("prior."))]
    with FlopCounterMode(display=False) as counter:
        with amp_for(precision)():
            loss = objective(model(x), 1.0)
        loss.backward(inputs=params)
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def bare_loop(model, batches, precision: str, frozen: bool = False):
    """Forward, backward (only the non-prior parameters when ``frozen``), fused Adam step: no fit around it."""
    opt = _make_optimizer(list(model.parameters()), 1e-4)
    params = [p for n, p in model.named_parameters() if not n.startswith("prior.")] if frozen else None
    amp = amp_for(precision)

    def run():
        for x in batches:
            with amp():
                loss = objective(model(x), 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=params)
            opt.step()
    return run


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable, ``repeats`` times, in rotating order (one warm-up call each first)."""
    for fn in fns.values():
        fn()
    out = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            out[k].append(timed(fns[k]))
    return out


def paired_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den))


def random_images(n: int, shape, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8))


# ----------------------------------------------------------------------------- pendulum
def pendulum(steps: int, repeats: int, peaks: dict) -> None:
    batch = 64
    data = random_images(batch * steps, (1, 16, 16))
    batches = [data.batch(i) for i in batch_indices(len(data), batch, generator=torch.Generator().manual_seed(0))]
    x = batches[0]
    print(f"\npendulum: vhp_vae() (4 x 256 ReLU MLPs, K = 16), batch {batch}, 16x16, {steps} steps per measurement, "
          f"lr 1e-4; target {PENDULUM_TARGET:.0f} it/s")
    print(f"  {'phase':<22} {'precision':<9} {'fit it/s':>9} {'bare it/s':>10} {'fit/bare':>9} {'GFLOP/step':>11} "
          f"{'GFLOP/s':>8} {'share of peak':>14} {'/ target':>9}")
    models = {}
    fns = {}
    for phase in ("REWO initial (frozen)", "all trained"):
        frozen = phase.startswith("REWO")
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = models.setdefault((phase, precision), vhp_vae())

            def fit_run(model=model, frozen=frozen, precision=precision):
                schedule = REWO(kappa=0.02, nu=5.0, tau=3.0) if frozen else Constant(1.0)
                vaelab.fit(model, data, epochs=1, batch_size=batch, schedule=schedule, lr=1e-4, precision=precision,
                           progress=False)
            fns[(phase, precision, "fit")] = fit_run
            fns[(phase, precision, "bare")] = bare_loop(model, batches, precision, frozen)
    times = interleave(fns, repeats)
    for phase in ("REWO initial (frozen)", "all trained"):
        for precision in ("fp32", "bf16"):
            fit_t, bare_t = times[(phase, precision, "fit")], times[(phase, precision, "bare")]
            its, bare_its = steps / statistics.median(fit_t), steps / statistics.median(bare_t)
            flops = step_flops(models[(phase, precision)], x, precision, frozen=phase.startswith("REWO"))
            rate = flops * its / 1e9
            print(f"  {phase:<22} {precision:<9} {its:9.1f} {bare_its:10.1f} {paired_ratio(bare_t, fit_t):9.2f} "
                  f"{flops / 1e9:11.3f} {rate:8.1f} {100 * rate / peaks[precision]:13.0f}% "
                  f"{its / PENDULUM_TARGET:9.2f}")
        ratio = paired_ratio(times[(phase, "fp32", "fit")], times[(phase, "bf16", "fit")])
        print(f"  {phase:<22} bf16 / fp32 through fit: {ratio:.2f}x")
    print(f"  share of peak: against the {peaks['label']} peaks; the bf16 floor of one step here is its products "
          f"alone at the measured 1024x256x256 rate: {1.49 / peaks['bf16_1024x256'] * 1e3:.1f} ms "
          f"= {peaks['bf16_1024x256'] / 1.49:.0f} it/s with every parameter trained")


# ----------------------------------------------------------------------------- MNIST MLPs
def mnist_mlps(steps: int, repeats: int, peaks: dict) -> None:
    specs = [("VAE gated 300-300, std prior", std_vae, 100),
             ("VAE gated 300-300, VampPrior K=500", vamp_vae, 100),
             ("HEBAE MLP k=20", lambda: mlp_hebae(latent_dim=20), 128)]
    print(f"\nMNIST MLPs: 28x28 binary images, {steps} steps per measurement; target bf16 >= {BF16_TARGET:.0f}x fp32")
    print(f"  {'model':<36} {'precision':<9} {'fit img/s':>10} {'bare img/s':>11} {'fit/bare':>9} {'GFLOP/s':>8} "
          f"{'share of peak':>14}")
    for name, build, batch in specs:
        data = random_images(batch * steps, (1, 28, 28), seed=1)
        data = ImageData(data.images, binarize="dynamic")
        batches = [data.batch(i) for i in batch_indices(len(data), batch, generator=torch.Generator().manual_seed(0))]
        fns, models = {}, {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = models[precision] = build()

            def fit_run(model=model, precision=precision, batch=batch, data=data):
                vaelab.fit(model, data, epochs=1, batch_size=batch, lr=1e-4, precision=precision, progress=False)
            fns[(precision, "fit")] = fit_run
            fns[(precision, "bare")] = bare_loop(model, batches, precision)
        times = interleave(fns, repeats)
        n = batch * steps
        for precision in ("fp32", "bf16"):
            fit_t, bare_t = times[(precision, "fit")], times[(precision, "bare")]
            flops = step_flops(models[precision], batches[0], precision)
            rate = flops * steps / statistics.median(fit_t) / 1e9
            print(f"  {name:<36} {precision:<9} {n / statistics.median(fit_t):10.0f} "
                  f"{n / statistics.median(bare_t):11.0f} {paired_ratio(bare_t, fit_t):9.2f} {rate:8.1f} "
                  f"{100 * rate / peaks[precision]:13.0f}%")
        ratio = paired_ratio(times[("fp32", "fit")], times[("bf16", "fit")])
        bare_ratio = paired_ratio(times[("fp32", "bare")], times[("bf16", "bare")])
        print(f"  {name:<36} bf16 / fp32: fit {ratio:.2f}x, bare loop {bare_ratio:.2f}x "
              f"({'met' if ratio >= BF16_TARGET else 'missed'}: target {BF16_TARGET:.0f}x)")


# ----------------------------------------------------------------------------- log-likelihood
def loglik(samples: int, images: int, repeats: int) -> None:
    from loglik import bare_loglik, build

    from vaelab.evaluation.likelihood import importance_log_likelihood
    x = (torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    print(f"\nlog-likelihood: MLP VAE 784-300-300-40 (Bernoulli), S = {samples}, {images} images; "
          f"target vaelab within {100 * (LOGLIK_TARGET - 1):.0f} % of the bare estimator")
    print(f"  {'prior':<10} {'vaelab s/img':>13} {'bare s/img':>11} {'vaelab/bare':>12} {'target':>7} {'10k images':>11}")
    for prior in ("standard", "vamp"):
        model = build(prior)

        def bare(model=model, prior=prior):
            with (model.prior.cache_components() if prior == "vamp" else contextlib.nullcontext()):
                bare_loglik(model, x, samples)
        times = interleave({"vaelab": lambda model=model: importance_log_likelihood(model, x, n_samples=samples,
                                                                                     batch_size=1),
                            "bare": bare}, repeats)
        v, b = statistics.median(times["vaelab"]) / images, statistics.median(times["bare"]) / images
        ratio = paired_ratio(times["vaelab"], times["bare"])
        print(f"  {prior:<10} {v:13.4f} {b:11.4f} {ratio:12.2f} {'met' if ratio <= LOGLIK_TARGET else 'missed':>7} "
              f"{v * 10_000 / 60:9.1f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer steps and samples (a check of the script)")
    ap.add_argument("--only", nargs="+", choices=["pendulum", "mnist", "loglik"],
                    default=["pendulum", "mnist", "loglik"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; threads {torch.get_num_threads()}; median of {args.repeats} interleaved "
          "repetitions (on a shared machine compare the ratios, not the absolute rates)")
    peaks = {"fp32": matmul_rate(1024, 1024, 1024, torch.float32), "bf16": matmul_rate(1024, 1024, 1024, torch.bfloat16),
             "bf16_1024x256": matmul_rate(1024, 256, 256, torch.bfloat16), "label": "1024^3"}
    print("matmul GFLOP/s (best of 5): " + ", ".join(
        f"{dt} {shape}: {matmul_rate(*dims, getattr(torch, 'float32' if dt == 'fp32' else 'bfloat16')):.0f}"
        for dt in ("fp32", "bf16") for shape, dims in (("1024^3", (1024, 1024, 1024)), ("1024x256x256", (1024, 256, 256)),
                                                        ("64x256x256", (64, 256, 256)))))
    quick = args.quick
    if "pendulum" in args.only:
        pendulum(steps=8 if quick else 60, repeats=args.repeats, peaks=peaks)
    if "mnist" in args.only:
        mnist_mlps(steps=4 if quick else 30, repeats=args.repeats, peaks=peaks)
    if "loglik" in args.only:
        loglik(samples=100 if quick else 1000, images=2 if quick else 10, repeats=args.repeats)


if __name__ == "__main__":
    main()
