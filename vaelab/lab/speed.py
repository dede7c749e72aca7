"""Throughput arithmetic for the benchmarks and the CelebA chapter: peak rates and shares of them.

* ``gpu_peak_bf16(name)``: the vendor's peak *dense* bfloat16 tensor-core rate (FLOP/s, no
  sparsity) of a GPU, from a small table keyed by the name that ``torch.cuda.get_device_name``
  returns; ``None`` for a GPU not in the table (the caller then says so; no guess).
* ``measured_matmul_peak(device, dtype)``: the best rate of large square matrix products measured
  on the device, the reference "peak" on a CPU, where no vendor figure applies.
* ``flop_bound_epoch_s``: the time an epoch needs at a given rate: images x FLOPs per image / rate.
"""
from __future__ import annotations

import time

import torch

__all__ = ["GPU_PEAK_BF16_TFLOPS", "gpu_peak_bf16", "measured_matmul_peak", "flop_bound_epoch_s", "sync"]

#: vendor data sheets, dense BF16 tensor-core TFLOP/s (without the 2:4 sparsity doubling); the first
#: key contained in the device name wins, so the more specific names come first
GPU_PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "GH200": 989.4,
    "H200": 989.4,
    "H100": 989.4,   # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
}


def gpu_peak_bf16(name: str) -> float | None:
    """Peak dense bf16 FLOP/s of the GPU called ``name`` (e.g. "NVIDIA H100 80GB HBM3"), or None."""
    for key, tflops in GPU_PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measured_matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024,
                         repeats: int = 5) -> float:
    """Best FLOP/s of ``repeats`` products of two n x n matrices (2 n^3 FLOPs each) on ``device``."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flop_bound_epoch_s(images: int, flops_per_image: float, rate: float) -> float:
    """Seconds for ``images`` images of ``flops_per_image`` FLOPs each at ``rate`` FLOP/s."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    return images * flops_per_image / rate
