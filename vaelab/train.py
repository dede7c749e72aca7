"""One training loop for every model and schedule in the book (introduced in chapter 00).

``fit`` minimises ``mean(rec) + weight * mean(reg)`` (``vaelab.schedules.objective``) over index
batches of an ``ImageData`` on the model's device, and records every logged term and the weight
at every step (``History.steps``) and per epoch (``History.epochs``, with validation terms).

Robustness: with ``out_dir`` set, a checkpoint is written atomically after every
``checkpoint_every`` epochs; calling ``fit`` again with the same ``out_dir`` resumes from it and, on
CPU, ends bit-identical to an uninterrupted run (model, optimiser, schedule, history and every
random number generator are restored). A non-finite loss stops training with
``NonFiniteLossError``; the checkpoint on disk is then the last good one.

Speed switches (each off by default, chapter ``book/celeba``): ``precision="bf16"`` (the training
forward pass under ``torch.autocast`` with bfloat16), ``channels_last=True`` (convolution weights
and activations in NHWC) and ``compile=True`` (``torch.compile`` of the training forward pass).
A switch that the device cannot honour raises an error naming the argument; none falls back.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from .data import ImageData, batch_indices
from .schedules import Constant, Schedule, objective

__all__ = ["fit", "History", "NonFiniteLossError", "CheckpointError", "load_checkpoint", "logged_terms",
           "evaluate", "exponential_lr", "step_lr", "PRECISIONS", "check_precision"]

CHECKPOINT = "checkpoint.pt"
PRECISIONS = ("fp32", "bf16")
FORMAT = "vaelab-checkpoint-1"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message says where and which checkpoint is the last good one."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not belong to this run."""


@dataclass
class History:
    """Per-step and per-epoch records: ``steps[name]`` and ``epochs[name]`` are lists of floats."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)

    def _add(self, table: dict, row: dict[str, float], length: int) -> None:
        for key, value in row.items():
            col = table.setdefault(key, [math.nan] * length)
            col.append(float(value))
        for key, col in table.items():
            if len(col) < length + 1:
                col.append(math.nan)

    def add_epoch(self, row: dict[str, float]) -> None:
        self._add(self.epochs, row, len(self.epochs.get("epoch", [])))

    def state_dict(self) -> dict:
        return {"steps": {k: list(v) for k, v in self.steps.items()}, "epochs": {k: list(v) for k, v in self.epochs.items()}}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls({k: list(v) for k, v in state["steps"].items()}, {k: list(v) for k, v in state["epochs"].items()})


def logged_terms(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batch means of the terms a model returns that are per example (batch,) or per batch ()."""
    return {k: v.detach().float().mean() for k, v in terms.items() if v.ndim <= 1}


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000) -> dict[str, float]:
    """Means over ``data`` of the logged terms (model in eval mode; one posterior sample per image)."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for idx in batch_indices(len(data), batch_size, shuffle=False, device=data.device):
        for k, v in logged_terms(model(data.batch(idx))).items():
            sums[k] = sums.get(k, 0.0) + v * len(idx)
    model.train(was_training)
    return {k: (v / len(data)).item() for k, v in sums.items()}


def exponential_lr(gamma: float) -> Callable[[int], float]:
    """Learning-rate factor gamma^(epoch - 1) (HEBAE App. B.1: gamma = 0.995 per epoch)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return lambda epoch: gamma ** (epoch - 1)


def step_lr(divisors: dict[int, float]) -> Callable[[int], float]:
    """Factor 1/d after the epochs given as {epoch: d} (HEBAE App. B.2: {30: 2, 50: 5, 70: 10})."""
    items = sorted(divisors.items())

    def factor(epoch: int) -> float:
        out = 1.0
        for after, d in items:
            if epoch > after:
                out = 1.0 / d
        return out

    return factor


def check_precision(precision: str, device: torch.device) -> None:
    """Raise unless ``precision`` ("fp32" or "bf16") can run on ``device``; the message names the fix."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown: use one of {PRECISIONS}")
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(f"precision='bf16' needs a GPU with native bfloat16 (compute capability 8.0 or newer); "
                             f"{torch.cuda.get_device_name(device)} has none: use precision='fp32'")
        if device.type not in ("cuda", "cpu"):
            raise ValueError(f"precision='bf16' is supported on 'cuda' and 'cpu' devices, not {device.type!r}: "
                             "use precision='fp32'")


def _make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    try:  # fused Adam: the same update in one kernel (1.3-1.4x faster steps on CPU, PERFORMANCE.md)
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def _rng_state(gen: torch.Generator, data: ImageData) -> dict:
    state = {"torch": torch.get_rng_state(), "batches": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    data_state = data.rng_state()
    if data_state is not None:
        state["data"] = data_state
    return state


def _set_rng_state(state: dict, gen: torch.Generator, data: ImageData) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    data.set_rng_state(state.get("data"))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a vaelab checkpoint safely (``weights_only=True``), with a clear error when it is unusable."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated file, wrong format, pickled objects
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); it is "
                              "corrupt or not a vaelab checkpoint: delete it to start afresh, or pass resume=False") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a vaelab checkpoint (format {FORMAT!r}): delete it or pass resume=False")
    return ckpt


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(model: nn.Module, train: ImageData, *, epochs: int, batch_size: int, schedule: Schedule | None = None,
        lr: float = 1e-3, lr_factor: Callable[[int], float] | None = None, valid: ImageData | None = None,
        out_dir: str | os.PathLike | None = None, checkpoint_every: int = 1, resume: bool = True, seed: int = 0,
        progress: bool = True, sync_every: int | None = None, grad_clip: float | None = None,
        drop_last: bool = False, patience: int | None = None, patience_after: int = 0,
        on_epoch: Callable[[int, nn.Module], dict[str, float] | None] | None = None,
        precision: str = "fp32", channels_last: bool = False, compile: bool = False) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; returns the ``History``.

    ``schedule`` supplies the regulariser weight (default ``Constant(1.0)``: the ELBO). Adam with
    learning rate ``lr * lr_factor(epoch)``. The model is moved to the data's device. ``sync_every``
    steps the recorded terms are copied to the host and checked for NaN/Inf (default: every step on
    CPU, every 50 on a GPU, where each copy stalls the queue). ``drop_last`` skips the last, smaller
    batch of each epoch (batch-level regularisers such as the MMD or HEBAE's batch covariance need
    enough images per batch).

    Early stopping (the VampPrior paper's look-ahead): with ``patience`` and ``valid``, training stops
    once the validation negative ELBO (``valid_rec + valid_reg``, weight 1) has not improved for
    ``patience`` epochs, counting only epochs after ``patience_after`` (e.g. the warm-up); the model is
    then left at the weights of its best validation epoch (``history.epochs["best_epoch"]``).

    ``on_epoch(epoch, model)``, when given, runs after each epoch (and its validation) and may return
    a dict of numbers that joins that epoch's row of the history (e.g. a test log-likelihood per
    epoch, chapter 02). It runs under ``torch.random.fork_rng``: whatever random numbers it draws,
    training continues exactly as without it. It must leave the model's weights unchanged.

    Speed switches (all off by default; the results agree with the default up to rounding):

    * ``precision``: ``"fp32"`` (default) or ``"bf16"``: the training forward pass runs under
      ``torch.autocast(dtype=torch.bfloat16)`` (matrix products and convolutions in bfloat16,
      float32 master weights and optimiser state, no loss scaling needed). Networks should return
      float32 so that the model's terms are computed in float32 (``vaelab.conv`` does). Supported on
      CUDA GPUs with native bfloat16 (Ampere, Hopper and newer) and on CPU; elsewhere a
      ``ValueError`` names the fix. Validation (``evaluate``) runs in float32.
    * ``channels_last``: move the model to ``torch.channels_last`` (NHWC convolutions; the weights
      in the checkpoint keep that layout, values are unchanged).
    * ``compile``: train through ``torch.compile(model)`` (the same parameters; checkpoints hold the
      plain model's state dict). It pays off on a GPU for long runs; on CPU the first steps compile
      for a minute or more.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or not 1 <= batch_size:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > len(train):
        raise ValueError(f"batch_size={batch_size} is larger than the training set ({len(train)} images): lower it")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch must be a function (epoch, model) -> dict or None, got {type(on_epoch).__name__}")
    if patience is not None:
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer number of epochs (or None), got {patience!r}")
        if valid is None:
            raise ValueError("patience (early stopping) needs a validation set: pass valid=...")
    for name, flag in (("channels_last", channels_last), ("compile", compile)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    schedule = Constant(1.0) if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a vaelab.schedules.Schedule (e.g. Constant(1.0)), got {type(schedule).__name__}")
    device = train.device
    check_precision(precision, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    forward = model
    if compile:
        if not hasattr(torch, "compile"):
            raise RuntimeError("compile=True needs torch.compile (PyTorch 2.0 or newer): upgrade torch or pass compile=False")
        forward = torch.compile(model)
    if valid is not None and valid.device != device:
        raise ValueError(f"valid is on {valid.device} but train is on {device}: load both with the same device")
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" else 50
    factor = lr_factor or (lambda epoch: 1.0)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    optimizer = _make_optimizer([p for p in model.parameters()], lr)
    history = History()
    start_epoch, step = 0, 0
    config = {"batch_size": batch_size, "lr": float(lr), "seed": seed, "n_train": len(train)}

    # early stopping: the best validation loss so far, its epoch and weights, and whether we stopped
    best = {"loss": math.inf, "epoch": 0, "state": None, "stopped": False}
    ckpt_path = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ckpt_path = out / CHECKPOINT
        if resume and ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path, map_location=device)
            for key, value in config.items():
                if ckpt["config"].get(key) != value:
                    raise CheckpointError(
                        f"{ckpt_path} was written by a run with {key}={ckpt['config'].get(key)!r}, this run has "
                        f"{key}={value!r}: use another out_dir, or resume=False to overwrite it")
            try:
                model.load_state_dict(ckpt["model"])
            except RuntimeError as err:
                raise CheckpointError(f"{ckpt_path} holds another model's weights ({err}): use another out_dir") from None
            optimizer.load_state_dict(ckpt["optimizer"])
            schedule.load_state_dict(ckpt["schedule"])
            history = History.from_state_dict(ckpt["history"])
            start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
            _set_rng_state(ckpt["rng"], gen, train)
            best = ckpt.get("best", best)
            if start_epoch >= epochs or best["stopped"]:
                if best["state"] is not None:
                    model.load_state_dict(best["state"])
                return history

    last_saved = start_epoch if start_epoch > 0 else None

    def save(epoch: int) -> None:
        nonlocal last_saved
        if ckpt_path is None:
            return
        last_saved = epoch
        _save_atomic({"format": FORMAT, "epoch": epoch, "step": step, "config": config,
                      "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "schedule": schedule.state_dict(), "history": history.state_dict(),
                      "rng": _rng_state(gen, train), "best": best}, ckpt_path)

    named = list(model.named_parameters())
    applied_frozen: tuple[str, ...] | None = None
    bar = tqdm(range(start_epoch + 1, epochs + 1), desc="epochs", disable=not progress,
               initial=start_epoch, total=epochs, leave=True, mininterval=1.0)
    for epoch in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * factor(epoch)
        model.train()
        t0 = time.perf_counter()
        pending: list[dict[str, torch.Tensor]] = []
        sums: dict[str, float] = {}
        n_steps = 0

        def flush():
            nonlocal n_steps
            if not pending:
                return
            keys = list(pending[0])
            values = torch.stack([torch.stack([row[k] for k in keys]) for row in pending]).cpu()
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                bad_row = int((~finite).any(1).nonzero()[0])
                bad_step = step - len(pending) + bad_row + 1
                bad = ", ".join(f"{k}={values[bad_row, j].item()}" for j, k in enumerate(keys) if not finite[bad_row, j])
                where = f"checkpoint {ckpt_path} (end of epoch {last_saved})" if last_saved is not None \
                    else "no checkpoint (pass out_dir=... to keep one)"
                raise NonFiniteLossError(
                    f"non-finite values ({bad}) at epoch {epoch}, step {bad_step}; "
                    f"training stopped. Last good state: {where}. Lower lr, check the data for NaN, or clip gradients.")
            for row in values.tolist():
                for k, v in zip(keys, row):
                    history.steps.setdefault(k, []).append(v)
                    sums[k] = sums.get(k, 0.0) + v
            n_steps += len(pending)
            pending.clear()

        for idx in batch_indices(len(train), batch_size, generator=gen, device=device, drop_last=drop_last):
            if schedule.frozen != applied_frozen:
                applied_frozen = schedule.frozen
                for name, p in named:
                    p.requires_grad_(not name.startswith(applied_frozen) if applied_frozen else True)
            weight = schedule.weight
            with amp():
                terms = forward(train.batch(idx))
            loss = objective(terms, weight)
            optimizer.zero_grad(set_to_none=True)
            if sync_every == 1 and not torch.isfinite(loss):
                pending.append({"loss": loss.detach(), **logged_terms(terms)})
                step += 1
                flush()
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            step += 1
            record = {"loss": loss.detach(), **logged_terms(terms)}
            record["weight"] = torch.as_tensor(weight, dtype=torch.float32, device=device).detach()
            pending.append(record)
            schedule.update(record, step)
            if len(pending) >= sync_every:
                flush()
        flush()
        schedule.end_epoch(epoch)
        row = {"epoch": epoch, "lr": lr * factor(epoch), "time_s": time.perf_counter() - t0}
        row.update({k: v / max(n_steps, 1) for k, v in sums.items()})
        if valid is not None:
            row.update({f"valid_{k}": v for k, v in evaluate(model, valid).items()})
        if on_epoch is not None:
            was_training = model.training
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                extra = on_epoch(epoch, model)
            model.train(was_training)
            if extra is not None:
                if not isinstance(extra, dict):
                    raise TypeError(f"on_epoch returned {type(extra).__name__}; it must return a dict of numbers or None")
                row.update({k: float(v) for k, v in extra.items()})
        if patience is not None:
            vloss = row["valid_rec"] + row["valid_reg"]
            if epoch > patience_after and vloss < best["loss"]:
                best.update(loss=vloss, epoch=epoch,
                            state={k: v.detach().clone() for k, v in model.state_dict().items()})
            counted_from = max(best["epoch"], patience_after)
            best["stopped"] = epoch - counted_from >= patience
            row["best_epoch"] = best["epoch"]
        history.add_epoch(row)
        bar.set_postfix(loss=f"{row.get('loss', math.nan):.2f}", refresh=False)
        if epoch % checkpoint_every == 0 or epoch == epochs or best["stopped"]:
            save(epoch)
        if best["stopped"]:
            break
    bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    for _, p in named:
        p.requires_grad_(True)
    return history
