"""Benchmark: the training step of this checkout beside an earlier commit's, one thread, side by side.

For each model the book trains with ``vaelab.fit`` (the MNIST MLP VAE of chapter 01, HEBAE of chapter 02,
the VampPrior VAE and the two-level HVAE of chapter 03, the pendulum VAE with the VHP prior of chapter 04)
it times ``fit`` over the same batches in this checkout and in ``--base`` (default: the commit before
``posterior(x)`` came in, 0b83a28), each in its own fresh process, the two versions alternating and their
order swapped every repeat. It prints the median seconds per step of each and the median of the paired
ratios this / base (below 1: this checkout is faster). Images are random (a step's time does not depend
on the pixels); every model keeps its constructor's defaults and ``fit``'s default schedule (the ELBO).

Run: ``make bench`` or ``python benchmarks/step_vs_commit.py [--base REV] [--repeats 5] [--steps 60]``.
Time it on a quiet machine: it measures one thread, and a second busy process skews the ratios.
Not part of the tests: nothing here is timed in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE = "0b83a28"
BATCH = 100
# name -> (module, builder, keyword arguments, image shape)
MODELS = {
    "VAE (ch. 01)": ("vaelab.models.vae", "mlp_vae", {}, (1, 28, 28)),
    "HEBAE (ch. 02)": ("vaelab.models.hebae", "mlp_hebae", {}, (1, 28, 28)),
    "VampPrior VAE (ch. 03)": ("vaelab.models.vamp", "vamp_vae", {}, (1, 28, 28)),
    "HVAE + VampPrior (ch. 03)": ("vaelab.models.hvae", "hvae", {}, (1, 28, 28)),
    "pendulum VAE + VHP (ch. 04)": ("vaelab.models.vhp", "vhp_vae", {}, (1, 16, 16)),
}


def time_steps(name: str, steps: int) -> float:
    """Seconds per step of ``vaelab.fit`` on ``steps`` batches of model ``name`` (after one warm-up epoch)."""
    import importlib
    import time

    import torch

    import vaelab
    from vaelab.data.images import ImageData

    torch.set_num_threads(1)
    module, builder, kwargs, shape = MODELS[name]
    torch.manual_seed(0)
    model = getattr(importlib.import_module(module), builder)(**kwargs)
    g = torch.Generator().manual_seed(0)
    data = ImageData((torch.rand(BATCH * steps, *shape, generator=g) * 255).to(torch.uint8))
    vaelab.fit(model, data.subset(BATCH * 5), epochs=1, batch_size=BATCH, progress=False)  # warm-up
    t0 = time.perf_counter()
    vaelab.fit(model, data, epochs=1, batch_size=BATCH, progress=False)
    return (time.perf_counter() - t0) / steps


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (its ``vaelab`` package) unpacked under ``into``."""
    archive = into / "tree.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "vaelab"], stdout=f, check=True)
    with tarfile.open(archive) as t:
        t.extractall(into / "tree", filter="data")
    return into / "tree"


def run_version(tree: Path, steps: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(steps)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default=DEFAULT_BASE, help="the commit to compare with (default %(default)s)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.repeats < 1 or args.steps < 10:
        p.error("--repeats must be >= 1 and --steps >= 10")
    if args.worker:
        print(json.dumps({name: time_steps(name, args.steps) for name in MODELS}))
        return
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True,
                          text=True)
    if base.returncode:
        p.error(f"--base {args.base!r} is not a commit of this repository ({base.stderr.strip()})")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "vaelab"], capture_output=True,
                           text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": export(args.base, Path(tmp)), "this": ROOT}
        times = {"base": [], "this": []}
        for r in range(args.repeats):
            for version in (("base", "this") if r % 2 == 0 else ("this", "base")):
                times[version].append(run_version(trees[version], args.steps))
    import torch
    print(f"training step, one thread, batch {BATCH}, {args.steps} steps, {args.repeats} paired repeats; "
          f"this = {head}{' + uncommitted changes' if dirty else ''}, base = {base.stdout.strip()}; "
          f"torch {torch.__version__}")
    print(f"{'model':30s} {'base ms/step':>13s} {'this ms/step':>13s} {'this / base':>12s} {'ratio range':>15s}")
    for name in MODELS:
        b = [t[name] for t in times["base"]]
        h = [t[name] for t in times["this"]]
        ratios = [x / y for x, y in zip(h, b)]
        print(f"{name:30s} {1e3 * statistics.median(b):13.2f} {1e3 * statistics.median(h):13.2f} "
              f"{statistics.median(ratios):12.3f} {min(ratios):7.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
