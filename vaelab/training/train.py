"""One training loop for every model and schedule in the book (introduced in chapter 00).

``fit`` minimises ``mean(rec) + weight * mean(reg)`` (``vaelab.objectives.schedules.objective``) over index
batches of an ``ImageData`` on the model's device, and records every logged term and the weight
at every step (``History.steps``) and per epoch (``History.epochs``, with validation terms).

It is built from named parts, each testable alone: ``RunSettings`` (every setting of a run, one
object, saved whole in the checkpoint), ``prepare_model`` (device, precision, channels-last,
compile), ``RunDirectory`` (the checkpoint with the run's identity and every random number
generator's state, the lock, resume), ``StepLog`` (the per-step record and its NaN check),
``EarlyStopping`` (the VampPrior paper's look-ahead) and ``fit``'s epoch loop. The learning-rate
factor per epoch is ``torch.optim.lr_scheduler.LambdaLR``'s.

The order inside a step is Algorithm 1 of Klushyn et al. (2019) (and GECO's of Rezende & Viola,
2018): forward pass, ``schedule.observe(terms, t)`` with this batch's terms (GECO and REWO update
their multiplier from C_hat_t here), then the loss with ``schedule.weight`` (beta_t), the gradient
step, then ``schedule.update(record, t)``. A schedule whose ``freeze_prior`` is True (REWO's initial
phase) keeps ``model.prior``'s parameters from being updated in that step.

Robustness (``vaelab.training.runs``): with ``out_dir`` set, the directory is locked for the run, checked
writable before any work, and a checkpoint (checksummed, written atomically) follows every
``checkpoint_every`` epochs; calling ``fit`` again with the same ``out_dir`` resumes from it and, on
CPU, ends bit-identical to an uninterrupted run. A resume with other settings is refused with the
list of differences; a larger ``epochs`` continues a finished run. A non-finite loss stops training
with ``NonFiniteLossError``; so does a non-finite state at the end of an epoch
(``vaelab.training.guard``: parameters, optimiser state and, with ``valid``, the validation terms),
which is checked before its checkpoint is written. A checkpoint is thus only ever written for a
checked state, a diverged one found on resume (saved by an earlier vaelab) is refused, and the
checkpoint on disk is the last good one. Before training, the run refuses a directory without
room for its checkpoint; a save that runs out of space raises ``DiskFullError`` (the file, the
epoch not saved, the space needed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from vaelab.core.validate import positive_int
from vaelab.data.images import ImageData, batch_indices, n_batches
from vaelab.core.modes import eval_mode
from vaelab.core.malloc import keep_freed_memory
from vaelab.training import guard
from vaelab.training.runs import (CheckpointError, DiskFullError, IdentityError, RunLock, check_free_space,
                                  check_writable, checkpoint_size_estimate, describe_diff, identity_diff,
                                  load_checkpoint, remove_stale_temporaries, run_identity, save_checkpoint)
from vaelab.objectives.schedules import Constant, Schedule, objective

__all__ = ["fit", "History", "NonFiniteLossError", "CheckpointError", "IdentityError", "DiskFullError", "load_checkpoint",
           "logged_terms", "evaluate", "exponential_lr", "step_lr", "PRECISIONS", "check_precision",
           "RunSettings", "prepare_model", "RunDirectory", "StepLog", "EarlyStopping"]

CHECKPOINT = "checkpoint.pt"
PRECISIONS = ("fp32", "bf16")
STEP_BAR_MIN_STEPS = 200  # epochs with at least this many steps get a progress bar of their own
SEED_RANGE = (0, 2**64 - 1)  # what torch.manual_seed accepts (negative seeds alias large ones)


class NonFiniteLossError(RuntimeError):
    """The loss, or the state at the end of an epoch, became NaN or infinite; the message says where,
    which checkpoint is the last good one, and the fix."""


@dataclass
class History:
    """Per-step and per-epoch records: ``steps[name]`` and ``epochs[name]`` are lists of floats.

    ``train_time_s``: seconds ``fit`` spent training up to this state, summed over every attempt
    (a resumed run counts the attempts before; time lost to a kill after the last checkpoint is
    not counted, as that work is redone). Histories saved before it existed get the sum of their
    epochs' ``time_s`` (the step loops only).
    """

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)
    train_time_s: float = 0.0

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
        return {"steps": {k: list(v) for k, v in self.steps.items()},
                "epochs": {k: list(v) for k, v in self.epochs.items()}, "train_time_s": self.train_time_s}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        epochs = {k: list(v) for k, v in state["epochs"].items()}
        seconds = state.get("train_time_s")
        if seconds is None:  # saved before train_time_s existed: the step loops' time
            seconds = math.fsum(t for t in epochs.get("time_s", []) if math.isfinite(t))
        return cls({k: list(v) for k, v in state["steps"].items()}, epochs, float(seconds))


def logged_terms(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batch means of the terms a model returns that are per example (batch,) or per batch ()."""
    return {k: v.detach().float().mean() for k, v in terms.items() if v.ndim <= 1}


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000) -> dict[str, float]:
    """Means over ``data`` of the logged terms (model in eval mode; one posterior sample per image)."""
    sums: dict[str, torch.Tensor] = {}
    with eval_mode(model):
        for idx in batch_indices(len(data), batch_size, shuffle=False, device=data.device):
            for k, v in logged_terms(model(data.batch(idx))).items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
    return {k: (v / len(data)).item() for k, v in sums.items()}


class exponential_lr:
    """Learning-rate factor gamma^(epoch - 1) (HEBAE App. B.1: gamma = 0.995 per epoch)."""

    def __init__(self, gamma: float):
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, epoch: int) -> float:
        return self.gamma ** (epoch - 1)

    def __repr__(self):
        return f"exponential_lr({self.gamma})"


class step_lr:
    """Factor 1/d after the epochs given as {epoch: d} (HEBAE App. B.2: {30: 2, 50: 5, 70: 10})."""

    def __init__(self, divisors: dict[int, float]):
        self.items = sorted(divisors.items())

    def __call__(self, epoch: int) -> float:
        out = 1.0
        for after, d in self.items:
            if epoch > after:
                out = 1.0 / d
        return out

    def __repr__(self):
        return f"step_lr({dict(self.items)})"


def _no_lr_factor(epoch: int) -> float:
    return 1.0


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


def _progress_default() -> bool:
    """Progress bars unless ``VAELAB_PROGRESS=0`` (``=1`` forces them on)."""
    value = os.environ.get("VAELAB_PROGRESS", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    return True


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class RunSettings:
    """Every setting of one ``fit`` call except the model, the data and the callbacks; checked on creation.

    ``to_dict()`` is what the checkpoint keeps (``lr_factor`` by its ``repr``); which of them make up
    the run's identity is ``vaelab.training.runs.run_identity``'s business.
    """

    epochs: int
    batch_size: int
    lr: float = 1e-3
    lr_factor: Callable[[int], float] = _no_lr_factor
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    grad_clip: float | None = None
    drop_last: bool = False
    patience: int | None = None
    patience_after: int = 0
    checkpoint_every: int = 1
    sync_every: int | None = None
    resume: bool = True

    def __post_init__(self):
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float)) and self.lr > 0
                                             and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not callable(self.lr_factor):
            raise TypeError(f"lr_factor must be a function epoch -> factor (e.g. exponential_lr(0.995)), "
                            f"got {type(self.lr_factor).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ValueError(f"seed must be an integer in [0, 2**64 - 1] (torch's seed range), got {self.seed}: "
                             "pass a seed in that range")
        positive_int("checkpoint_every", self.checkpoint_every)
        if self.sync_every is not None:
            positive_int("sync_every", self.sync_every)
        if self.patience is not None:
            positive_int("patience", self.patience, " (epochs of early stopping), or None")
        if isinstance(self.patience_after, bool) or not isinstance(self.patience_after, int) or self.patience_after < 0:
            raise ValueError(f"patience_after must be an integer >= 0, got {self.patience_after!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number or None, got {self.grad_clip!r}")
        for name in ("channels_last", "compile", "drop_last", "resume"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}"
                                + (" (papermill passes -p resume false as a string: use -p resume False)"
                                   if isinstance(getattr(self, name), str) else ""))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown: use one of {PRECISIONS}")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["lr_factor"] = repr(self.lr_factor) if self.lr_factor is not _no_lr_factor else None
        return out


# ----------------------------------------------------------------------------- set-up
def prepare_model(model: nn.Module, device: torch.device, settings: RunSettings):
    """Move ``model`` to ``device`` (and channels-last); return ``(forward, amp)``.

    ``forward`` is the model or ``torch.compile(model)``; ``amp()`` is the context of the training
    forward pass (bf16 autocast or nothing). Unsupported choices raise naming the argument.
    """
    check_precision(settings.precision, device)
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if settings.precision == "bf16":
        def amp():
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    else:
        amp = contextlib.nullcontext
    forward = model
    if settings.compile:
        if not hasattr(torch, "compile"):
            raise RuntimeError("compile=True needs torch.compile (PyTorch 2.0 or newer): upgrade torch or pass "
                               "compile=False")
        forward = torch.compile(model)
    return forward, amp


def _make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    try:  # fused Adam: the same update in one kernel (1.3-1.4x faster steps on CPU)
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def _check_data_range(model: nn.Module, data: ImageData, arg: str) -> None:
    """A Bernoulli decoder needs pixels in [0, 1]: refuse data scaled to [-1, 1]."""
    if getattr(model, "likelihood", None) == "bernoulli" and data.scale != "unit":
        raise ValueError(f"{arg} has scale={data.scale!r} (pixels in [-1, 1]) but the model's likelihood is "
                         "'bernoulli', which needs pixels in [0, 1]: load the data with scale='unit', or "
                         "build the model with likelihood='gaussian'")


# ----------------------------------------------------------------------------- the run directory
class RunDirectory:
    """``out_dir`` of one run: lock, identity, checkpoint with every generator's state, resume.

    ``open()`` locks the directory, checks it writable and removes the temporary files of a save
    that a kill cut short; ``read(...)`` returns a matching checkpoint (or raises ``IdentityError``
    listing the differences); ``save(...)`` writes the whole state atomically (``DiskFullError``
    when it does not fit). Without ``out_dir`` every method does nothing.
    """

    def __init__(self, out_dir: str | os.PathLike | None, identity: dict | None, settings: RunSettings):
        self.out = None if out_dir is None else Path(out_dir)
        self.path = None if self.out is None else self.out / CHECKPOINT
        self.identity, self.settings = identity, settings
        self.lock: RunLock | None = None
        self.last_saved: int | None = None
        self.validated = True  # whether saved states had their validation terms checked (fit sets it)

    def open(self) -> "RunDirectory":
        if self.out is not None:
            check_writable(self.out)
            self.lock = RunLock(self.out).acquire()
            removed = remove_stale_temporaries(self.out, CHECKPOINT)
            if removed:
                print(f"removed {len(removed)} temporary file(s) of an interrupted checkpoint save in {self.out}: "
                      f"{', '.join(p.name for p in removed)}", flush=True)
        return self

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def read(self, device) -> dict | None:
        """The checkpoint to resume from after checking its identity, or None (no out_dir, none yet, resume=False)."""
        if self.path is None or not self.settings.resume or not self.path.exists():
            return None
        ckpt = load_checkpoint(self.path, map_location=device)
        diffs = identity_diff(ckpt["identity"], self.identity)
        if diffs:
            raise IdentityError(describe_diff(self.path, diffs))
        return ckpt

    def refuse_diverged(self, ckpt: dict, problems: list[str]) -> None:
        """Raise ``CheckpointError`` for a checkpoint that holds a non-finite state (written before
        ``fit`` checked states before saving): it is no good state to resume from."""
        if problems:
            raise CheckpointError(
                f"checkpoint {self.path} (end of epoch {int(ckpt['epoch'])}) holds a diverged state: "
                f"{guard.describe(problems)}. It is not a good state to resume from (an earlier vaelab saved it "
                f"without checking): delete it or pass resume=False, and train again with a lower lr "
                f"(this run's is {self.settings.lr:g}) or grad_clip")

    def save(self, state: dict, epoch: int) -> None:
        if self.path is None:
            return
        save_checkpoint({"identity": self.identity, "settings": self.settings.to_dict(), "epoch": epoch, **state},
                        self.path, epoch=epoch,
                        last_good=None if self.last_saved is None else f"the checkpoint of epoch {self.last_saved}")
        self.last_saved = epoch

    @staticmethod
    def rng_state(gen: torch.Generator, data: ImageData) -> dict:
        state = {"torch": torch.get_rng_state(), "batches": gen.get_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        data_state = data.rng_state()
        if data_state is not None:
            state["data"] = data_state
        return state

    @staticmethod
    def set_rng_state(state: dict, gen: torch.Generator, data: ImageData) -> None:
        torch.set_rng_state(state["torch"])
        gen.set_state(state["batches"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        data.set_rng_state(state.get("data"))

    def where(self) -> str:
        """Where the last good state is, for the NaN message."""
        if self.path is None:
            return "no checkpoint (pass out_dir=... to keep one)"
        if self.last_saved is None:
            return f"no checkpoint yet in {self.out} (no epoch had finished)"
        note = "" if self.validated else ("; its weights are finite, but without valid= no forward pass of it "
                                          "was checked")
        return f"checkpoint {self.path} (end of epoch {self.last_saved}{note})"


# ----------------------------------------------------------------------------- the step log
class StepLog:
    """Per-step records kept on the device and copied to the host every ``sync_every`` steps.

    ``flush()`` checks them for NaN/Inf (raising ``NonFiniteLossError`` with the step and the
    offending terms) and appends them to ``history.steps`` and to the epoch's sums.
    """

    def __init__(self, history: History, sync_every: int, where: Callable[[], str]):
        self.history, self.sync_every, self.where = history, sync_every, where
        self.pending: list[dict[str, torch.Tensor]] = []
        self.sums: dict[str, float] = {}
        self.n_steps = 0

    def start_epoch(self) -> None:
        self.sums, self.n_steps = {}, 0

    def add(self, record: dict[str, torch.Tensor], step: int, epoch: int) -> None:
        self.pending.append(record)
        if len(self.pending) >= self.sync_every:
            self.flush(step, epoch)

    def flush(self, step: int, epoch: int) -> None:
        if not self.pending:
            return
        keys = list(self.pending[0])
        values = torch.stack([torch.stack([row[k] for k in keys]) for row in self.pending]).cpu()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            bad_row = int((~finite).any(1).nonzero()[0])
            bad_step = step - len(self.pending) + bad_row + 1
            bad = ", ".join(f"{k}={values[bad_row, j].item()}" for j, k in enumerate(keys) if not finite[bad_row, j])
            self.pending.clear()
            raise NonFiniteLossError(
                f"non-finite values ({bad}) at epoch {epoch}, step {bad_step}; training stopped. Last good state: "
                f"{self.where()}. Lower lr, check the data for NaN, or clip gradients.")
        for row in values.tolist():
            for k, v in zip(keys, row):
                self.history.steps.setdefault(k, []).append(v)
                self.sums[k] = self.sums.get(k, 0.0) + v
        self.n_steps += len(self.pending)
        self.pending.clear()

    def epoch_means(self) -> dict[str, float]:
        return {k: v / max(self.n_steps, 1) for k, v in self.sums.items()}


# ----------------------------------------------------------------------------- early stopping
class EarlyStopping:
    """Stop once the validation loss has not improved for ``patience`` epochs after ``patience_after``.

    The validation loss is the negative ELBO ``valid_rec + valid_reg`` (weight 1). The best epoch's
    weights are kept (``state``); ``stopped`` says whether training ended by the look-ahead.
    """

    def __init__(self, patience: int | None, patience_after: int = 0):
        self.patience, self.patience_after = patience, patience_after
        self.loss, self.epoch, self.state, self.stopped = math.inf, 0, None, False

    def observe(self, epoch: int, row: dict[str, float], model: nn.Module) -> None:
        if self.patience is None:
            return
        vloss = row["valid_rec"] + row["valid_reg"]
        if epoch > self.patience_after and vloss < self.loss:
            self.loss, self.epoch = vloss, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.stopped = epoch - max(self.epoch, self.patience_after) >= self.patience
        row["best_epoch"] = self.epoch

    def state_dict(self) -> dict:
        return {"loss": self.loss, "epoch": self.epoch, "state": self.state, "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        self.loss, self.epoch, self.state, self.stopped = state["loss"], state["epoch"], state["state"], state["stopped"]

    def restore_best(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


# ----------------------------------------------------------------------------- fit
def fit(model: nn.Module, train: ImageData, *, epochs: int, batch_size: int, schedule: Schedule | None = None,
        lr: float = 1e-3, lr_factor: Callable[[int], float] | None = None, valid: ImageData | None = None,
        out_dir: str | os.PathLike | None = None, checkpoint_every: int = 1, resume: bool = True, seed: int = 0,
        progress: bool | None = None, desc: str | None = None, sync_every: int | None = None,
        grad_clip: float | None = None, drop_last: bool = False, patience: int | None = None,
        patience_after: int = 0, on_epoch: Callable[[int, nn.Module], dict[str, float] | None] | None = None,
        precision: str = "fp32", channels_last: bool = False, compile: bool = False) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; returns the ``History``.

    ``schedule`` supplies the regulariser weight (default ``Constant(1.0)``: the ELBO). Adam with
    learning rate ``lr * lr_factor(epoch)`` (``LambdaLR``). The model is moved to the data's device.
    ``sync_every`` steps the recorded terms are copied to the host and checked for NaN/Inf (default:
    every step on CPU, every 50 on a GPU, where each copy stalls the queue). ``drop_last`` skips the
    last, smaller batch of each epoch (batch-level regularisers such as the MMD or HEBAE's batch
    covariance need enough images per batch).

    ``out_dir``: the run directory (module docstring): locked, checkpointed, resumed when called
    again (``resume=False`` starts afresh and overwrites). Before the first step it must have room
    for the checkpoint (``DiskFullError`` otherwise); after the last step of each epoch the
    parameters, the optimiser state and (with ``valid``) the validation terms must be finite, else
    ``NonFiniteLossError`` names the epoch, the step, the last good checkpoint and the fix, and the
    epoch is not saved. ``seed``: an integer in [0, 2**64 - 1]. The returned history's
    ``train_time_s`` counts every attempt of a resumed run. Resuming prints "resumed at epoch N of M
    from PATH"; a finished run prints "already trained (N epochs): nothing to do"; a larger
    ``epochs`` than the finished run's continues it and says so.

    Early stopping (the VampPrior paper's look-ahead): with ``patience`` and ``valid``, training stops
    once the validation negative ELBO (``valid_rec + valid_reg``, weight 1) has not improved for
    ``patience`` epochs, counting only epochs after ``patience_after`` (e.g. the warm-up); the model is
    then left at the weights of its best validation epoch (``history.epochs["best_epoch"]``).

    ``on_epoch(epoch, model)``, when given, runs after each epoch (and its validation) and may return
    a dict of numbers that joins that epoch's row of the history (e.g. a test log-likelihood per
    epoch, chapter 02). It runs under ``torch.random.fork_rng``: whatever random numbers it draws,
    training continues exactly as without it. It must leave the model's weights unchanged.

    ``progress``: a bar over epochs, and one over the steps of epochs with at least 200 steps;
    default on unless the environment sets ``VAELAB_PROGRESS=0`` (the book build does). ``desc``
    labels the bar (chapters that train many models name the model there).

    Speed switches (all off by default; the results agree with the default up to rounding):

    * ``precision``: ``"fp32"`` (default) or ``"bf16"``: the training forward pass runs under
      ``torch.autocast(dtype=torch.bfloat16)`` (matrix products and convolutions in bfloat16,
      float32 master weights and optimiser state, no loss scaling needed). Networks should return
      float32 so that the model's terms are computed in float32 (``vaelab.models.conv`` does). Supported on
      CUDA GPUs with native bfloat16 (Ampere, Hopper and newer) and on CPU; elsewhere a
      ``ValueError`` names the fix. Validation (``evaluate``) runs in float32.
    * ``channels_last``: move the model to ``torch.channels_last`` (NHWC convolutions; the weights
      in the checkpoint keep that layout, values are unchanged).
    * ``compile``: train through ``torch.compile(model)`` (the same parameters; checkpoints hold the
      plain model's state dict). It pays off on a GPU for long runs; on CPU the first steps compile
      for a minute or more.
    """
    settings = RunSettings(epochs=epochs, batch_size=batch_size, lr=lr, lr_factor=lr_factor or _no_lr_factor,
                           seed=seed, precision=precision, channels_last=channels_last, compile=compile,
                           grad_clip=grad_clip, drop_last=drop_last, patience=patience,
                           patience_after=patience_after, checkpoint_every=checkpoint_every,
                           sync_every=sync_every, resume=resume)
    if not isinstance(train, ImageData):
        raise TypeError(f"train must be a vaelab.ImageData (e.g. load_dataset(...).train), got {type(train).__name__}")
    if batch_size > len(train):
        raise ValueError(f"batch_size={batch_size} is larger than the training set ({len(train)} images): lower it")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch must be a function (epoch, model) -> dict or None, got {type(on_epoch).__name__}")
    if patience is not None and valid is None:
        raise ValueError("patience (early stopping) needs a validation set: pass valid=...")
    schedule = Constant(1.0) if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a vaelab.objectives.schedules.Schedule (e.g. Constant(1.0)), got {type(schedule).__name__}")
    device = train.device
    if valid is not None and valid.device != device:
        raise ValueError(f"valid is on {valid.device} but train is on {device}: load both with the same device")
    _check_data_range(model, train, "train")
    if valid is not None:
        _check_data_range(model, valid, "valid")
    if progress is None:
        progress = _progress_default()
    # the identity (a hash of the pixels, the lr factor per epoch) only matters for a run directory
    identity = None
    if out_dir is not None:
        identity = run_identity(model=model, schedule=schedule, train=train, valid=valid, epochs=epochs,
                                batch_size=batch_size, lr=lr, lr_factor=settings.lr_factor, seed=seed,
                                precision=precision, grad_clip=grad_clip, drop_last=drop_last,
                                patience=patience, patience_after=patience_after)
    run_dir = RunDirectory(out_dir, identity, settings).open()
    try:
        return _train(model, train, valid, schedule, settings, run_dir, device, progress, desc, on_epoch)
    finally:
        run_dir.close()


def _prior_parameters(model: nn.Module) -> list[nn.Parameter]:
    prior = getattr(model, "prior", None)
    if not isinstance(prior, nn.Module):
        raise TypeError(f"the schedule freezes the prior, but {type(model).__name__} has no prior module "
                        "(model.prior): use a model with a learned prior, or another schedule")
    return list(prior.parameters())


def _train(model, train, valid, schedule, settings: RunSettings, run_dir: RunDirectory, device, progress, desc,
           on_epoch) -> History:
    forward, amp = prepare_model(model, device, settings)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults for the same tensors every step (vaelab.core.malloc)
    sync_every = settings.sync_every or (1 if device.type == "cpu" else 50)
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    optimizer = _make_optimizer(list(model.parameters()), settings.lr)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: settings.lr_factor(i + 1))
    history = History()
    stopping = EarlyStopping(settings.patience, settings.patience_after)
    start_epoch, step = 0, 0
    epochs = settings.epochs

    run_dir.validated = valid is not None
    ckpt = run_dir.read(device)
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{run_dir.path} holds another model's weights ({err}): use another out_dir") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        lr_schedule.load_state_dict(ckpt["lr_schedule"])
        schedule.load_state_dict(ckpt["schedule"])
        history = History.from_state_dict(ckpt["history"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        RunDirectory.set_rng_state(ckpt["rng"], gen, train)
        stopping.load_state_dict(ckpt["stopping"])
        # an earlier vaelab saved states unchecked: a diverged one is refused, never called good
        run_dir.refuse_diverged(ckpt, guard.checkpoint_problems(ckpt, model))
        run_dir.last_saved = start_epoch
        saved_target = int(ckpt["identity"]["epochs"])
        if stopping.stopped:
            print(f"already trained: stopped early at epoch {start_epoch} (best epoch {stopping.epoch}), "
                  f"{run_dir.path}: nothing to do", flush=True)
        elif start_epoch >= epochs:
            print(f"already trained ({start_epoch} epochs), {run_dir.path}: nothing to do", flush=True)
        elif saved_target < epochs and start_epoch >= saved_target:
            print(f"continuing a finished run of {saved_target} epochs to {epochs} epochs from {run_dir.path}",
                  flush=True)
        else:
            print(f"resumed at epoch {start_epoch} of {epochs} from {run_dir.path}", flush=True)
        if stopping.stopped or start_epoch >= epochs:
            stopping.restore_best(model)
            return history

    if run_dir.path is not None:  # room for a checkpoint, before any work
        needed = checkpoint_size_estimate(model, epochs * n_batches(len(train), settings.batch_size,
                                                                    settings.drop_last),
                                          best_copy=settings.patience is not None)
        if run_dir.path.exists():
            needed = max(needed, run_dir.path.stat().st_size)
        check_free_space(run_dir.out, needed)
    seconds_before, attempt_start = history.train_time_s, time.perf_counter()

    def save(epoch: int) -> None:
        history.train_time_s = seconds_before + (time.perf_counter() - attempt_start)
        run_dir.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "lr_schedule": lr_schedule.state_dict(), "schedule": schedule.state_dict(),
                      "history": history.state_dict(), "rng": RunDirectory.rng_state(gen, train),
                      "stopping": stopping.state_dict()}, epoch)

    log = StepLog(history, sync_every, run_dir.where)
    prior_params: list[nn.Parameter] | None = None
    other_params: list[nn.Parameter] | None = None
    steps_per_epoch = n_batches(len(train), settings.batch_size, settings.drop_last)
    step_bar = progress and steps_per_epoch >= STEP_BAR_MIN_STEPS
    bar = tqdm(range(start_epoch + 1, epochs + 1), desc=desc or "epochs", disable=not progress,
               initial=start_epoch, total=epochs, leave=True, mininterval=1.0, file=sys.stderr)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        log.start_epoch()
        batches = batch_indices(len(train), settings.batch_size, generator=gen, device=device,
                                drop_last=settings.drop_last)
        if step_bar:
            batches = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}", leave=False, mininterval=2.0,
                           file=sys.stderr)
        for idx in batches:
            with amp():
                terms = forward(train.batch(idx))
            logged = logged_terms(terms)
            schedule.observe(logged, step + 1)  # Algorithm 1: C_hat_t and beta_t from this batch
            weight = schedule.weight
            loss = objective(terms, weight)
            optimizer.zero_grad(set_to_none=True)
            if sync_every == 1 and not torch.isfinite(loss):
                step += 1
                log.add({"loss": loss.detach(), **logged}, step, epoch)
                log.flush(step, epoch)
            if schedule.freeze_prior:  # the prior's gradients are not needed: backward does not compute them
                prior_params = _prior_parameters(model) if prior_params is None else prior_params
                if other_params is None:
                    frozen = {id(p) for p in prior_params}
                    other_params = [p for p in model.parameters() if p.requires_grad and id(p) not in frozen]
                loss.backward(inputs=other_params or None)
                for p in prior_params:
                    p.grad = None
            else:
                loss.backward()
            if settings.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            step += 1
            record = {"loss": loss.detach(), **logged}
            record["weight"] = torch.as_tensor(weight, dtype=torch.float32, device=device).detach()
            schedule.update(record, step)
            log.add(record, step, epoch)
        log.flush(step, epoch)
        # nothing is kept, validated or saved from a state that is not finite (vaelab.training.guard)
        _stop_if_diverged(guard.state_problems(model, optimizer), epoch, step, run_dir, settings)
        schedule.end_epoch(epoch)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "time_s": time.perf_counter() - t0}
        lr_schedule.step()
        row.update(log.epoch_means())
        if valid is not None:
            row.update({f"valid_{k}": v for k, v in evaluate(model, valid).items()})
            _stop_if_diverged(guard.row_problems(row), epoch, step, run_dir, settings)
        if on_epoch is not None:
            was_training = model.training
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                extra = on_epoch(epoch, model)
            model.train(was_training)
            if extra is not None:
                if not isinstance(extra, dict):
                    raise TypeError(f"on_epoch returned {type(extra).__name__}; it must return a dict of numbers or None")
                row.update({k: float(v) for k, v in extra.items()})
        stopping.observe(epoch, row, model)
        history.add_epoch(row)
        bar.set_postfix(loss=f"{row.get('loss', math.nan):.2f}", refresh=False)
        if epoch % settings.checkpoint_every == 0 or epoch == epochs or stopping.stopped:
            save(epoch)
        if stopping.stopped:
            break
    bar.close()
    # train_time_s stays as the last save set it (the last epoch is always saved): the history returned is
    # the checkpoint's, so a resumed run counts exactly the seconds its earlier attempts saved
    stopping.restore_best(model)
    return history


def _stop_if_diverged(problems: list[str], epoch: int, step: int, run_dir: RunDirectory,
                      settings: RunSettings) -> None:
    """Raise ``NonFiniteLossError`` (epoch, step, what is not finite, the last good checkpoint, the fix)
    when ``problems`` (``vaelab.training.guard``) is not empty; the epoch is then not saved."""
    if problems:
        raise NonFiniteLossError(
            f"non-finite state after the last step of epoch {epoch} (step {step}): {guard.describe(problems)}; "
            f"training stopped and epoch {epoch} was not saved. Last good state: {run_dir.where()}. Lower lr "
            f"(it is {settings.lr:g}), check the data (train and valid) for NaN, or clip gradients (grad_clip).")
