"""The CelebA conv networks (vaelab.models.conv), their FLOP count, and fit's speed switches on CPU.

Tolerances: bf16 autocast rounds every convolution/matmul input to 8 mantissa bits (relative
error 2^-9 per operand); through 9 layers the outputs of an untrained network differ from float32
by about 1 % of their scale. We check 5 % on outputs and regulariser, and 2 % on the loss after a
short training. channels_last changes only the memory layout (and the convolution algorithm):
results agree with the default to 1e-4 relative.
"""
from __future__ import annotations

import inspect

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vaelab.models.conv import (ConvDecoder, ConvEncoder, conv_hebae, conv_model, conv_vae, conv_wae,
                         forward_flops_per_image, measured_flops_per_image, train_flops_per_image)
from vaelab.data.images import ImageData
from vaelab.models.hebae import HEBAE
from vaelab.lab.speed import flop_bound_epoch_s, gpu_peak_bf16
from vaelab.training.train import check_precision, fit, load_checkpoint
from vaelab.models.wae import WAE

TINY = dict(width=1 / 32)  # channels 4..32: the same layers, a thousandth of the work


def images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth pictures (a ramp plus a blob) so that the networks have something to fit
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64)
    blob = torch.exp(-((torch.arange(64).view(1, 1, 64, 1) - 32) ** 2) / 200.0)
    x = 0.5 * ramp * torch.rand(n, 3, 1, 1, generator=g) + 0.4 * blob * torch.rand(n, 3, 1, 1, generator=g)
    x = x + 0.05 * torch.rand(n, 3, 64, 64, generator=g)
    return ImageData.from_float(x.clamp(0, 1), scale="signed")


# ------------------------------------------------------------------------------------ shapes
def test_full_size_shapes_on_meta_device():
    with torch.device("meta"):
        enc, dec = ConvEncoder(128), ConvDecoder(64)
        x = torch.empty(5, 3, 64, 64)
        h = enc.convs(x)
        assert tuple(h.shape) == (5, 1024, 4, 4)  # four stride-2 convolutions: 64 -> 4
        assert tuple(enc(x).shape) == (5, 128)
        assert tuple(enc(x.flatten(1)).shape) == (5, 128)  # VAE.encode hands in flattened images
        assert tuple(dec.fc(torch.empty(5, 64)).shape) == (5, 1024 * 8 * 8)
        assert tuple(dec(torch.empty(5, 64)).shape) == (5, 3, 64, 64)
    assert [m.out_channels for m in enc.convs if isinstance(m, torch.nn.Conv2d)] == [128, 256, 512, 1024]
    assert [m.out_channels for m in dec.deconvs if isinstance(m, torch.nn.ConvTranspose2d)] == [512, 256, 128]
    assert all(m.kernel_size == (5, 5) for m in enc.convs if isinstance(m, torch.nn.Conv2d))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in [*enc.convs, *dec.deconvs]) == 7


@pytest.mark.parametrize("name, out_dim", [("vae", 2 * 8), ("hebae", 2 * 8), ("wae", 8)])
def test_models_terms_and_ranges(name, out_dim):
    torch.manual_seed(0)
    model = conv_model(name, 8, **TINY)
    assert model.encoder.fc.out_features == out_dim and model.likelihood == "gaussian"
    x = images(12).batch()
    terms = model(x)
    assert terms["rec"].shape == (12,) and torch.isfinite(terms["rec"]).all()
    assert terms["reg"].shape in ((12,), ())
    model.eval()
    out = model.reconstruct(x)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1  # tanh means in [-1, 1]
    assert isinstance(conv_hebae(8, **TINY), HEBAE) and isinstance(conv_wae(8, **TINY), WAE)


def test_gaussian_rec_is_squared_error_over_two_sigma_squared():
    torch.manual_seed(0)
    model = conv_wae(8, obs_sigma=0.5, **TINY).eval()  # deterministic encoder: rec is exact
    x = images(6).batch()
    mean = model.decode(model.encode(x))
    expected = ((x - mean) ** 2).sum((1, 2, 3)) / (2 * 0.25) + 0.5 * x[0].numel() * torch.log(torch.tensor(2 * torch.pi * 0.25))
    torch.testing.assert_close(model(x)["rec"], expected, rtol=1e-5, atol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="model='gan' is unknown"):
        conv_model("gan")
    with pytest.raises(ValueError, match="width must be a number in"):
        conv_vae(8, width=2)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        conv_vae(0)
    with pytest.raises(ValueError, match="data_shape"):
        ConvEncoder(8, (3, 60, 60))


# ------------------------------------------------------------------------------------- FLOPs
def test_flop_count_matches_flop_counter_mode():
    with torch.device("meta"):
        model = conv_vae(64)
    fwd = forward_flops_per_image(model)
    # by hand (multiply-adds x 2): encoder convs at their output sides 32, 16, 8, 4, linear 16384 -> 128;
    # decoder linear 64 -> 65536, transposed convs at their input sides 8, 16, 32, the last conv at 64
    enc = 25 * (3 * 128 * 32**2 + 128 * 256 * 16**2 + 256 * 512 * 8**2 + 512 * 1024 * 4**2) + 16384 * 128
    dec = 64 * 65536 + 25 * (1024 * 512 * 8**2 + 512 * 256 * 16**2 + 256 * 128 * 32**2) + 25 * 128 * 3 * 64**2
    assert fwd == 2 * (enc + dec)
    assert measured_flops_per_image(model, batch_size=2, backward=False) == pytest.approx(fwd, rel=1e-9)
    step = measured_flops_per_image(model, batch_size=2)
    assert step == pytest.approx(train_flops_per_image(model), rel=0.01)  # 3 x forward, less the first input grad
    assert 19e9 < step < 19.5e9
    with FlopCounterMode(display=False) as counter:  # the public counter agrees for a wider batch too
        model(torch.empty(3, 3, 64, 64, device="meta"))
    assert counter.get_total_flops() / 3 == pytest.approx(fwd, rel=1e-6)


def test_speed_helpers():
    assert gpu_peak_bf16("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert gpu_peak_bf16("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert gpu_peak_bf16("NVIDIA A100-SXM4-80GB") == pytest.approx(312e12)
    assert gpu_peak_bf16("NVIDIA A10G") == pytest.approx(70e12)
    assert gpu_peak_bf16("Some Unknown GPU") is None
    assert flop_bound_epoch_s(100, 1e9, 1e10) == pytest.approx(10.0)


# ----------------------------------------------------------------------- precision and layout
def test_bf16_forward_is_close_to_fp32():
    torch.manual_seed(0)
    model = conv_hebae(8, **TINY).eval()
    x = images(16).batch()
    with torch.no_grad():
        torch.manual_seed(1)
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.manual_seed(1)
            low = model(x)
            assert model.decode(low["z"]).dtype == torch.float32  # the networks return float32
        assert low["rec"].dtype == torch.float32 and low["reg"].dtype == torch.float32
        scale = ref["mu"].abs().max()
        assert (ref["mu"] - low["mu"]).abs().max() < 0.05 * scale
        out_ref, out_low = model.decode(ref["z"]), model.decode(low["z"])
        assert (out_ref - out_low).abs().max() < 0.05 * out_ref.abs().max()
        torch.testing.assert_close(low["reg"], ref["reg"], rtol=0.05, atol=0)


def test_hebae_batch_covariance_stays_float32_under_autocast():
    # a bf16 covariance of 100 x 64 codes is not positive definite: batch_moments turns autocast off
    from vaelab.models.hebae import batch_moments

    torch.manual_seed(0)
    mu = torch.randn(100, 64) @ (0.3 * torch.randn(64, 64) + torch.eye(64))
    _, ref = batch_moments(mu)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, low = batch_moments(mu)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref)
    torch.linalg.cholesky(low)


def _fit(tmp=None, epochs=2, name="hebae", **kw):
    torch.manual_seed(0)
    model = conv_model(name, 8, **TINY)
    hist = fit(model, images(), epochs=epochs, batch_size=12, lr=1e-3, out_dir=tmp, progress=False, drop_last=True,
               **kw)
    return model, hist


def test_fit_bf16_and_channels_last_close_to_fp32():
    ref_model, ref = _fit()
    cl_model, cl = _fit(channels_last=True)
    bf_model, bf = _fit(precision="bf16", channels_last=True)
    conv_w = cl_model.encoder.convs[0].weight
    assert conv_w.is_contiguous(memory_format=torch.channels_last) and not conv_w.is_contiguous()
    assert ref_model.encoder.convs[0].weight.is_contiguous()
    for a, b in zip(ref.steps["loss"], cl.steps["loss"]):
        assert b == pytest.approx(a, rel=1e-4)
    for a, b in zip(ref.steps["loss"], bf.steps["loss"]):
        assert b == pytest.approx(a, rel=0.02)
    # (parameters are not compared: Adam's normalised step turns round-off in near-zero gradients
    # into differences of the order of lr)


def test_resume_is_bit_identical_with_the_conv_model_and_switches(tmp_path):
    switches = dict(precision="bf16", channels_last=True)
    full_model, full = _fit(tmp_path / "full", epochs=3, name="wae", **switches)
    _fit(tmp_path / "part", epochs=1, name="wae", **switches)  # "killed" after epoch 1
    part_model, part = _fit(tmp_path / "part", epochs=3, name="wae", **switches)
    for (n, a), (_, b) in zip(full_model.state_dict().items(), part_model.state_dict().items()):
        assert torch.equal(a, b), n  # BatchNorm running statistics included
    assert full.steps == part.steps
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["epoch"] == 3


def test_switches_are_off_by_default_and_checked():
    params = inspect.signature(fit).parameters
    assert params["precision"].default == "fp32"
    assert params["channels_last"].default is False and params["compile"].default is False
    with pytest.raises(ValueError, match="precision='fp16' is unknown"):
        _fit(epochs=1, precision="fp16")
    with pytest.raises(TypeError, match="compile must be True or False"):
        _fit(epochs=1, compile="yes")
    with pytest.raises(ValueError, match="precision='bf16' is supported on 'cuda' and 'cpu'.*use precision='fp32'"):
        check_precision("bf16", torch.device("mps"))
    check_precision("bf16", torch.device("cpu"))
