"""Benchmark: CelebA-64 training and FID feature throughput of the HEBAE App. B.2 conv network.

Prints the machine, threads or GPU, batch size and, for each combination of the speed switches of
``vaelab.fit`` (precision fp32/bf16, channels_last off/on, torch.compile off/on where asked):

* training images per second through ``vaelab.fit`` itself (uint8 data on the device, index
  batches, the real loop with its bookkeeping), from the second of two epochs (the first pays for
  warm-up and compilation), and the step time;
* FLOPs per training image (counted by ``torch.utils.flop_counter.FlopCounterMode``), the achieved
  FLOP/s and its share of the peak: on a GPU the vendor's dense bf16 rate from
  ``vaelab.lab.speed.GPU_PEAK_BF16_TFLOPS``, with the target "a CelebA epoch (162,770 images) within 2x
  the FLOP-bound time"; on a CPU the best measured rate of large matrix products (fp32 and bf16);
* Inception (FID) feature extraction, images per second.

Throughput does not depend on the pixels: without a CelebA cache the images are random uint8
tensors of CelebA's shape (the script says which it used).

Run on a GPU: ``python benchmarks/celeba_throughput.py`` (defaults: batch 100, 20 steps per epoch,
all 8 switch combinations). On a CPU, keep it small, e.g.
``python benchmarks/celeba_throughput.py --device cpu --batch-size 16 --steps 2 --model vae --fid-images 8``.
Not part of the tests.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import time

import numpy as np
import torch

import vaelab
from vaelab.evaluation import fid
from vaelab.models.conv import conv_model, measured_flops_per_image
from vaelab.data.images import ImageData
from vaelab.objectives.schedules import Constant
from vaelab.lab.speed import flop_bound_epoch_s, gpu_peak_bf16, measured_matmul_peak, sync
from vaelab.training.train import fit

CELEBA_TRAIN = 162_770


def celeba_or_random(n: int, device: torch.device, root) -> tuple[torch.Tensor, str]:
    """n training images: the CelebA cache when it exists (no preparation is started), else random."""
    path = vaelab.data_root(root) / "celeba" / "train_images.npy"
    if path.is_file():
        images = np.load(path, mmap_mode="r")
        if len(images) >= n:
            return torch.from_numpy(np.ascontiguousarray(images[:n])).to(device), f"CelebA ({path})"
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8).to(device), \
        "random uint8 tensors of CelebA's shape (no CelebA cache found)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="hebae", choices=["hebae", "vae", "wae"])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1: the paper's network)")
    parser.add_argument("--compile", choices=["off", "on", "both"], default=None,
                        help="torch.compile switch to try (default: both on a GPU, off on a CPU)")
    parser.add_argument("--fid-images", type=int, default=2000)
    parser.add_argument("--fid-batch", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--root", default=None, help="data root (CelebA cache, FID weights)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = vaelab.get_device(args.device)
    gpu = device.type == "cuda"
    compile_choice = args.compile or ("both" if gpu else "off")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_choice]

    print(f"machine: {platform.machine()} {platform.processor() or ''} {platform.platform()}, torch {torch.__version__}")
    if gpu:
        name = torch.cuda.get_device_name(device)
        peak, peak_what = gpu_peak_bf16(name), "vendor peak dense bf16"
        print(f"device: {name}")
        if peak is None:
            print(f"  {name} is not in vaelab.lab.speed.GPU_PEAK_BF16_TFLOPS: no share of peak printed")
    else:
        print(f"device: {device}, {torch.get_num_threads()} threads")
        peak_fp32 = measured_matmul_peak(device, torch.float32, n=2048)
        peak_bf16 = measured_matmul_peak(device, torch.bfloat16, n=2048)
        print(f"measured matmul peak (2048^3): fp32 {peak_fp32 / 1e9:.0f} GFLOP/s, bf16 {peak_bf16 / 1e9:.0f} GFLOP/s")

    n = args.batch_size * args.steps
    images, source = celeba_or_random(n, device, args.root)
    data = ImageData(images, scale="signed")
    print(f"data: {n} images, {source}; batch size {args.batch_size}; model {args.model}, k = {args.latent_dim}, "
          f"width {args.width:g}")
    with torch.device("meta"):
        flops = measured_flops_per_image(conv_model(args.model, args.latent_dim, width=args.width), batch_size=2)
    print(f"FLOPs per training image (FlopCounterMode, forward + backward): {flops / 1e9:.2f} GFLOP")
    if gpu and peak:
        bound = flop_bound_epoch_s(CELEBA_TRAIN, flops, peak)
        print(f"target: a CelebA epoch ({CELEBA_TRAIN} images) within 2 x {bound:.2f} s = {2 * bound:.2f} s "
              f"(FLOP-bound at {peak / 1e12:.0f} TFLOP/s)")

    print(f"\n{'precision':9} {'ch_last':7} {'compile':7} {'img/s':>9} {'step ms':>9} {'TFLOP/s':>9} {'share':>8}"
          + ("  CelebA epoch s (target)" if gpu and peak else ""))
    for precision, channels_last, compiled in itertools.product(["fp32", "bf16"], [False, True], compiles):
        torch.manual_seed(0)
        model = conv_model(args.model, args.latent_dim, width=args.width)
        sync(device)
        hist = fit(model, data, epochs=2, batch_size=args.batch_size, schedule=Constant(1.0), lr=1e-4,
                   progress=False, drop_last=True, precision=precision, channels_last=channels_last,
                   compile=compiled, sync_every=args.steps)
        sync(device)
        epoch_s = hist.epochs["time_s"][-1]
        img_s = n / epoch_s
        rate = img_s * flops
        if gpu:
            ref = peak
        else:
            ref = peak_bf16 if precision == "bf16" else peak_fp32
        share = f"{rate / ref:8.1%}" if ref else f"{'-':>8}"
        line = (f"{precision:9} {str(channels_last):7} {str(compiled):7} {img_s:9.1f} "
                f"{1e3 * epoch_s / args.steps:9.1f} {rate / 1e12:9.3f} {share}")
        if gpu and peak:
            line += f"  {CELEBA_TRAIN / img_s:8.2f} ({2 * flop_bound_epoch_s(CELEBA_TRAIN, flops, peak):.2f})"
        print(line, flush=True)
        del model, hist

    if args.fid_images > 0:
        fake = torch.randint(0, 256, (args.fid_images, 3, 64, 64), dtype=torch.uint8)
        fid.inception_features(fake[: min(args.fid_batch, args.fid_images)], batch_size=args.fid_batch,
                               device=device, root=args.root)  # load the network, warm up
        sync(device)
        t0 = time.perf_counter()
        fid.inception_features(fake, batch_size=args.fid_batch, device=device, root=args.root)
        sync(device)
        fid_s = args.fid_images / (time.perf_counter() - t0)
        print(f"\nFID Inception features (64x64 uint8 -> 299x299, fp32): {fid_s:.1f} images/s, "
              f"{args.fid_images} images, batch {args.fid_batch}; the 10,000 generated images of one FID at full "
              f"scale would take {10_000 / fid_s / 60:.1f} min")
    if not gpu:
        print("\n(CPU run: the CUDA path and the GPU targets were not measured here)")


if __name__ == "__main__":
    main()
