"""A model evaluated without changing it: eval mode and no gradients inside a block, its mode restored after."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module, grad: bool = False):
    """Inside the block ``model`` is in eval mode, without gradients unless ``grad``; its mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            yield model
    finally:
        model.train(was_training)
