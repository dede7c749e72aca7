"""The machine-readable record of a chapter run: ``out_dir/results.json`` (README, chapter conventions)."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import torch

from vaelab.core.files import atomic_write_json

__all__ = ["save_results", "machine"]


def machine() -> dict:
    """Where a run happened: CPU/GPU name, threads, torch version."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def save_results(out_dir: str | os.PathLike, results: dict) -> Path:
    """Write ``results`` (plus the machine) to ``out_dir/results.json`` atomically; returns the path."""
    path = Path(out_dir) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, _clean({**results, "machine": machine()}))

