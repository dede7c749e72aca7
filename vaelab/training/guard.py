"""What ``fit`` checks before it keeps a state: nothing non-finite is ever saved or called good.

A state is *good* when every floating-point tensor of the model's state dict and of the
optimiser's state is finite and, when the run has a validation set, its validation terms
(``valid_*`` of the epoch's row) are finite. ``fit`` runs these checks after the last step of
every epoch, before the checkpoint is written, and on every checkpoint it resumes from (a
checkpoint written before these checks existed may hold a diverged state). Without a validation
set no forward pass of the saved state is checked: finite weights that are far off (e.g. after a
step with lr = 1e6) are caught by the next step's loss check, and the messages say so.

Each check returns a list of problems (empty: good), each a short phrase naming the tensor or
term, for the error message; ``describe`` joins them.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import nn


__all__ = ["nonfinite_tensors", "state_problems", "checkpoint_problems", "row_problems", "describe"]

MAX_LISTED = 4  # problems named in a message; the rest are counted


def _tensors(tree: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every floating-point tensor in nested dicts / lists / tuples."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() or tree.is_complex():
            yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}.{i}" if prefix else str(i))


def nonfinite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """The tensors of ``tree`` (a tensor, or nested dicts/lists of them) holding NaN or Inf, as
    ``"name (k of n values)"``. One host synchronisation when all are finite."""
    named = list(_tensors(tree, prefix))
    if not named:
        return []
    flags = torch.stack([torch.isfinite(t.detach()).all().to("cpu", non_blocking=False) for _, t in named])
    if bool(flags.all()):
        return []
    out = []
    for (name, t), ok in zip(named, flags.tolist()):
        if not ok:
            bad = int((~torch.isfinite(t.detach())).sum())
            out.append(f"{name} ({bad} of {t.numel()} values)")
    return out


def _optimizer_names(optimizer_state: dict, model: nn.Module | None) -> dict:
    """Parameter index in ``optimizer_state["state"]`` -> the parameter's name in ``model``."""
    if model is None:
        return {}
    names = [n for n, _ in model.named_parameters()]
    indices = [i for group in optimizer_state.get("param_groups", []) for i in group.get("params", [])]
    return {i: names[k] for k, i in enumerate(indices) if k < len(names)}


def _optimizer_problems(optimizer_state: dict, model: nn.Module | None) -> list[str]:
    names = _optimizer_names(optimizer_state, model)
    out = []
    for index, slots in (optimizer_state.get("state") or {}).items():
        for slot, value in (slots or {}).items():
            for problem in nonfinite_tensors(value):
                out.append(f"optimiser {slot} of {names.get(index, f'parameter {index}')}{problem}")
    return out


def state_problems(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The model's parameters and buffers, then the optimiser's state, that are not finite."""
    problems = nonfinite_tensors(model.state_dict())
    return problems + _optimizer_problems(optimizer.state_dict(), model)


def checkpoint_problems(ckpt: dict, model: nn.Module | None = None) -> list[str]:
    """``state_problems`` of a checkpoint's saved weights and optimiser state, and ``row_problems``
    of its last epoch's validation terms (``model`` only names the optimiser's slots)."""
    problems = nonfinite_tensors(ckpt.get("model", {}))
    problems += _optimizer_problems(ckpt.get("optimizer") or {}, model)
    epochs = (ckpt.get("history") or {}).get("epochs", {})
    last = {k: v[-1] for k, v in epochs.items() if k.startswith("valid_") and v}
    return problems + row_problems(last)


def row_problems(row: dict[str, float], prefix: str = "valid_") -> list[str]:
    """The terms of ``row`` whose names start with ``prefix`` and are NaN or infinite, as ``name=value``."""
    return [f"{k}={v}" for k, v in row.items() if k.startswith(prefix) and not math.isfinite(v)]


def describe(problems: list[str]) -> str:
    """The first few problems, then how many more."""
    text = ", ".join(problems[:MAX_LISTED])
    if len(problems) > MAX_LISTED:
        text += f" and {len(problems) - MAX_LISTED} more"
    return text
