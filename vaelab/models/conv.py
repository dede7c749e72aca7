"""The convolutional encoder and decoder of HEBAE App. B.2 for CelebA 64x64 (the WAE CelebA network).

HEBAE (Cheng et al. 2020, App. B.2) trains on CelebA with the network of the Wasserstein
autoencoder (Tolstikhin et al. 2018, App. C.2), latent size k = 64, images in [-1, 1] and a squared
error reconstruction term. The layers follow the WAE authors' code (github.com/tolstikhin/wae,
``configs.py: config_celebA`` and ``models.py: dcgan_encoder`` / ``dcgan_decoder`` with
``g_arch = 'dcgan_mod'``), with 5x5 filters (``conv_filters_dim = 5``), "SAME" padding and BatchNorm:

* encoder: x (3, 64, 64) -> [Conv 5x5 / 2 -> BN -> ReLU] with 128, 256, 512, 1024 channels
  (32, 16, 8, 4 pixels) -> flatten (1024 * 4 * 4) -> Linear to ``out_dim`` numbers;
* decoder: z (k,) -> Linear to 1024 * 8 * 8 -> ReLU -> [ConvTranspose 5x5 / 2 -> BN -> ReLU] with
  512, 256, 128 channels (16, 32, 64 pixels) -> a stride-1 5x5 convolution to 3 channels -> tanh
  (the code's ``input_normalize_sym``: data and means in [-1, 1]). The stride-1 transposed
  convolution of the code is written as an ordinary convolution (the same family of maps).

Where the WAE paper's table and the code differ, the code is followed: the paper lists a BatchNorm
after the decoder's first linear layer, the code has a ReLU only there.

``out_dim`` says what the encoder returns: 2k for the VAE (mu, log sigma^2), k + k for HEBAE
(mu, log sigma), k for the WAE. The encoder also accepts flattened images (batch, 3 * 64 * 64):
``VAE.encode`` flattens its input, so the models of ``vaelab.models.vae`` / ``hebae`` / ``wae`` take these
networks unchanged.

Speed switches (``vaelab.training.train.fit``): the networks follow the memory format of their weights
(``model.to(memory_format=torch.channels_last)`` makes them compute in NHWC, which tensor cores
prefer) and always return float32, also under ``torch.autocast`` (bf16): the models' terms (KL,
batch covariance, MMD, squared error) are then computed from float32 tensors.

``train_flops_per_image`` counts the multiply-adds of one forward pass (2 FLOPs each) and three
times that for a training step, the usual estimate (backward = 2 x forward); the test checks it
against ``torch.utils.flop_counter.FlopCounterMode``. Chapter ``book/celeba`` uses all of this.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vaelab.core.validate import positive_int
from vaelab.models.hebae import HEBAE
from vaelab.models.vae import VAE
from vaelab.models.wae import WAE

__all__ = ["ConvEncoder", "ConvDecoder", "conv_vae", "conv_hebae", "conv_wae", "conv_model", "MODELS",
           "CELEBA_SHAPE", "forward_flops_per_image", "train_flops_per_image", "measured_flops_per_image",
           "describe"]

CELEBA_SHAPE = (3, 64, 64)
MODELS = ("hebae", "vae", "wae")
KERNEL = 5


def _channels_last(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory format of the 4-d ``weight`` (NHWC when the model was made channels-last)."""
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _check_shape(data_shape: Sequence[int], depth: int) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % 2**depth:
        raise ValueError(f"data_shape must be (channels, side, side) with side divisible by 2^{depth}, got {data_shape}")
    return shape


class ConvEncoder(nn.Module):
    """x (batch, C, H, W) or flattened (batch, C*H*W) -> (batch, out_dim); the WAE CelebA encoder."""

    def __init__(self, out_dim: int, data_shape: Sequence[int] = CELEBA_SHAPE,
                 channels: Sequence[int] = (128, 256, 512, 1024), kernel: int = KERNEL):
        super().__init__()
        self.data_shape = _check_shape(data_shape, len(channels))
        layers: list[nn.Module] = []
        c_in = self.data_shape[0]
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel, stride=2, padding=kernel // 2),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        side = self.data_shape[1] // 2 ** len(channels)
        self.fc = nn.Linear(c_in * side * side, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.data_shape)
        h = self.convs(_channels_last(self.convs[0].weight, x))
        return self.fc(h.flatten(1)).float()


class ConvDecoder(nn.Module):
    """z (batch, k) -> image means (batch, C, H, W) in [-1, 1]; the WAE CelebA decoder (``dcgan_mod``)."""

    def __init__(self, latent_dim: int, data_shape: Sequence[int] = CELEBA_SHAPE,
                 channels: Sequence[int] = (1024, 512, 256, 128), kernel: int = KERNEL):
        super().__init__()
        self.data_shape = _check_shape(data_shape, len(channels) - 1)
        self.side0 = self.data_shape[1] // 2 ** (len(channels) - 1)
        self.c0 = channels[0]
        self.fc = nn.Linear(latent_dim, channels[0] * self.side0**2)
        layers: list[nn.Module] = []
        for c_in, c in zip(channels[:-1], channels[1:]):
            # "SAME" transposed convolution: output side = 2 x input side
            layers += [nn.ConvTranspose2d(c_in, c, kernel, stride=2, padding=kernel // 2, output_padding=1),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.deconvs = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels[-1], self.data_shape[0], kernel, stride=1, padding=kernel // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(z)).view(z.shape[0], self.c0, self.side0, self.side0)
        h = self.deconvs(_channels_last(self.deconvs[0].weight, h))
        return torch.tanh(self.out(h).float())


ENC_CHANNELS = (128, 256, 512, 1024)
DEC_CHANNELS = (1024, 512, 256, 128)


def _nets(out_dim: int, latent_dim: int, data_shape, width: float) -> tuple[ConvEncoder, ConvDecoder]:
    positive_int("latent_dim", latent_dim)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"width must be a number in (0, 1] (1: the paper's channel counts), got {width!r}")

    def scaled(channels):
        return tuple(max(1, round(c * width)) for c in channels)

    return (ConvEncoder(out_dim, data_shape, scaled(ENC_CHANNELS)),
            ConvDecoder(latent_dim, data_shape, scaled(DEC_CHANNELS)))


def conv_vae(latent_dim: int = 64, data_shape: Sequence[int] = CELEBA_SHAPE, obs_sigma: float = 1.0,
             width: float = 1.0) -> VAE:
    """VAE with the App. B.2 networks: encoder -> (mu, log sigma^2), Gaussian decoder N(mean, obs_sigma^2 I).

    ``width`` scales every channel count (1: the paper's; smaller only for tests and smoke runs).
    """
    enc, dec = _nets(2 * latent_dim, latent_dim, data_shape, width)
    return VAE(enc, dec, latent_dim, data_shape, likelihood="gaussian", obs_sigma=obs_sigma)


def conv_hebae(latent_dim: int = 64, data_shape: Sequence[int] = CELEBA_SHAPE, obs_sigma: float = 1.0,
               width: float = 1.0, form: str = "code", **kwargs) -> HEBAE:
    """HEBAE with the App. B.2 networks: encoder -> (mu, log sigma) of k numbers each; Gaussian decoder.

    ``form="code"`` by default: the official code's diagonal sampling, which produced the paper's
    CelebA numbers (``vaelab.models.hebae`` explains the two forms). Batches need at least k + 1 images.
    """
    enc, dec = _nets(2 * latent_dim, latent_dim, data_shape, width)
    return HEBAE(enc, dec, latent_dim, data_shape, likelihood="gaussian", obs_sigma=obs_sigma, form=form, **kwargs)


def conv_wae(latent_dim: int = 64, data_shape: Sequence[int] = CELEBA_SHAPE, obs_sigma: float = 1.0,
             width: float = 1.0) -> WAE:
    """WAE-MMD with the App. B.2 networks: deterministic encoder -> z (k numbers); Gaussian decoder."""
    enc, dec = _nets(latent_dim, latent_dim, data_shape, width)
    return WAE(enc, dec, latent_dim, data_shape, likelihood="gaussian", obs_sigma=obs_sigma)


def conv_model(name: str, latent_dim: int = 64, **kwargs) -> VAE:
    """``conv_hebae``, ``conv_vae`` or ``conv_wae`` by name ("hebae", "vae", "wae"); keyword
    arguments go to the builder (``obs_sigma``, ``width``, ...)."""
    builders = {"hebae": conv_hebae, "vae": conv_vae, "wae": conv_wae}
    if name not in builders:
        raise ValueError(f"model={name!r} is unknown: use one of {MODELS}")
    return builders[name](latent_dim, **kwargs)


# ------------------------------------------------------------------------------------------ FLOPs
def _conv_macs(module: nn.Module, in_hw: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    """Multiply-adds of one image through ``module`` (Conv2d / ConvTranspose2d / Linear) and its output side."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        out = tuple((s + 2 * p - k) // st + 1 for s, p, k, st in zip(in_hw, module.padding, module.kernel_size,
                                                                        module.stride))
        return out[0] * out[1] * module.out_channels * module.in_channels // module.groups * kh * kw, out
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        # every input pixel is multiplied with the whole (C_in, C_out, kh, kw) kernel once
        out = tuple((s - 1) * st - 2 * p + k + op for s, st, p, k, op in zip(in_hw, module.stride, module.padding,
                                                                               module.kernel_size, module.output_padding))
        return in_hw[0] * in_hw[1] * module.in_channels * module.out_channels // module.groups * kh * kw, out
    raise TypeError(f"no FLOP rule for {type(module).__name__}")


def forward_flops_per_image(model: VAE) -> int:
    """FLOPs (2 per multiply-add) of one image's forward pass through the encoder and decoder.

    Counts the convolutions, transposed convolutions and linear layers (over 99.9 % of the work);
    BatchNorm, activations and the loss terms are left out, as FLOP counters usually do.
    """
    enc, dec = model.encoder, model.decoder
    if not isinstance(enc, ConvEncoder) or not isinstance(dec, ConvDecoder):
        raise TypeError("forward_flops_per_image needs a model built by vaelab.models.conv (ConvEncoder and ConvDecoder)")
    macs = 0
    hw = enc.data_shape[1:]
    for m in enc.convs:
        if isinstance(m, nn.Conv2d):
            n, hw = _conv_macs(m, hw)
            macs += n
    macs += enc.fc.in_features * enc.fc.out_features
    macs += dec.fc.in_features * dec.fc.out_features
    hw = (dec.side0, dec.side0)
    for m in [*dec.deconvs, dec.out]:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n, hw = _conv_macs(m, hw)
            macs += n
    return 2 * macs


def train_flops_per_image(model: VAE) -> int:
    """FLOPs of one training image: forward + backward ~ 3 x forward (the backward computes the
    gradients with respect to both inputs and weights, each as costly as the forward)."""
    return 3 * forward_flops_per_image(model)


def measured_flops_per_image(model: VAE, batch_size: int = 4, backward: bool = True) -> float:
    """FLOPs per image as counted by ``torch.utils.flop_counter.FlopCounterMode`` for one training
    step of the model's objective (forward, and backward when ``backward``) on random images."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.rand(batch_size, *model.data_shape, device=device) * 2 - 1
    was_training = model.training
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            terms = model(x)
            loss = terms["rec"].mean() + terms["reg"].mean()
            if backward:
                loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops() / batch_size


def describe(model: VAE) -> str:
    """One line: parameters and FLOPs per training image."""
    params = sum(p.numel() for p in model.parameters())
    return (f"{type(model).__name__}: {params / 1e6:.1f} M parameters, "
            f"{train_flops_per_image(model) / 1e9:.2f} GFLOP per training image (3 x forward)")
