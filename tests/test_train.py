"""The training loop: resume bit-identical, NaN stop, checkpoints, schedules, bad input."""
import math

import pytest
import torch
from torch import nn

import vaelab
from toys import smooth_images
from vaelab.objectives.schedules import Constant, LinearWarmup, Schedule
from vaelab.training.train import CheckpointError, NonFiniteLossError, exponential_lr, fit, load_checkpoint, step_lr


def toy_data(n=300, binarize="none", seed=0):
    return smooth_images(n, binarize, seed)


def toy_model(seed=0, k=3):
    torch.manual_seed(seed)
    return vaelab.mlp_vae(latent_dim=k, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,))


def run(tmp, epochs, binarize="dynamic", schedule=None, **kw):
    model = toy_model()
    hist = fit(model, toy_data(binarize=binarize), epochs=epochs, batch_size=64, out_dir=tmp, progress=False,
               schedule=schedule or LinearWarmup(7), lr_factor=exponential_lr(0.9), **kw)
    return model, hist


def test_resume_is_bit_identical(tmp_path):
    full_model, full_hist = run(tmp_path / "full", 4)
    run(tmp_path / "part", 2)  # "killed" after epoch 2
    part_model, part_hist = run(tmp_path / "part", 4)  # same call again resumes
    for (n, a), (_, b) in zip(full_model.state_dict().items(), part_model.state_dict().items()):
        assert torch.equal(a, b), n
    assert full_hist.steps == part_hist.steps
    assert full_hist.epochs["loss"] == part_hist.epochs["loss"]


def test_on_epoch_joins_the_history_and_does_not_change_training(tmp_path):
    seen = []

    def probe(epoch, model):
        seen.append(epoch)
        torch.randn(1000)  # draws random numbers: training must not notice
        model.eval()       # and changes the mode: fit restores it
        return {"probe": 10.0 * epoch}

    plain_model, plain_hist = run(tmp_path / "plain", 3)
    probed_model, probed_hist = run(tmp_path / "probed", 3, on_epoch=probe)
    assert seen == [1, 2, 3]
    assert probed_hist.epochs["probe"] == [10.0, 20.0, 30.0]
    assert probed_hist.steps == plain_hist.steps
    for (n, a), (_, b) in zip(plain_model.state_dict().items(), probed_model.state_dict().items()):
        assert torch.equal(a, b), n
    with pytest.raises(TypeError, match="on_epoch returned list"):
        run(tmp_path / "bad", 1, on_epoch=lambda e, m: [1.0])
    with pytest.raises(TypeError, match="on_epoch must be a function"):
        run(tmp_path / "bad2", 1, on_epoch=3)


def test_completed_run_is_not_trained_again(tmp_path):
    model, hist = run(tmp_path, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model2, hist2 = run(tmp_path, 2)
    assert all(torch.equal(before[k], v) for k, v in model2.state_dict().items())
    assert hist2.epochs["epoch"] == [1.0, 2.0]


def test_history_records_every_term_and_weight(tmp_path):
    _, hist = run(tmp_path, 2, valid=toy_data(100, "fixed", 5))
    steps_per_epoch = math.ceil(300 / 64)
    for key in ("loss", "rec", "reg", "weight"):
        assert len(hist.steps[key]) == 2 * steps_per_epoch
    # linear warm-up over 7 steps: the weight used at step t is t/7 (t = 0, 1, ...), then 1
    assert hist.steps["weight"][:9] == pytest.approx([0, 1 / 7, 2 / 7, 3 / 7, 4 / 7, 5 / 7, 6 / 7, 1, 1])
    loss = torch.tensor(hist.steps["loss"])
    expected = torch.tensor(hist.steps["rec"]) + torch.tensor(hist.steps["weight"]) * torch.tensor(hist.steps["reg"])
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-3)
    assert "valid_rec" in hist.epochs and len(hist.epochs["valid_rec"]) == 2
    assert hist.epochs["lr"] == pytest.approx([1e-3, 0.9e-3])


class NaNAfter(nn.Module):
    """Wraps a VAE and makes rec NaN from the ``after``-th forward call on."""

    def __init__(self, inner, after):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        if self.calls > self.after:
            out["rec"] = out["rec"] * float("nan")
        return out


def test_nan_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path):
    model = NaNAfter(toy_model(), after=12)  # 5 steps per epoch: NaN in epoch 3
    with pytest.raises(NonFiniteLossError, match=r"loss=nan, rec=nan\) at epoch 3, step 13.*end of epoch 2"):
        fit(model, toy_data(), epochs=5, batch_size=64, out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_nan_detected_with_delayed_sync(tmp_path):
    model = NaNAfter(toy_model(), after=3)
    with pytest.raises(NonFiniteLossError, match="step 4"):
        fit(model, toy_data(), epochs=2, batch_size=64, progress=False, sync_every=10)


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt.*resume=False"):
        run(tmp_path, 1)
    run(tmp_path, 1, resume=False)  # the way out that the message names works


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    run(tmp_path, 1)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        run(tmp_path, 2)


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    run(tmp_path, 1)
    with pytest.raises(CheckpointError, match="batch_size: checkpoint has 64, this run has 32(.|\n)*another out_dir"):
        fit(toy_model(), toy_data(binarize="dynamic"), epochs=2, batch_size=32, out_dir=tmp_path, progress=False)


def test_checkpoint_loads_with_weights_only(tmp_path):
    run(tmp_path, 1)
    outer = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no pickled code anywhere
    assert outer["format"] == "vaelab-checkpoint-2" and outer["payload"].dtype == torch.uint8
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


class FreezePrior(Schedule):
    freeze_prior = True


def test_schedule_can_freeze_the_prior():
    from vaelab.models.vamp import MixtureOfGaussians
    torch.manual_seed(0)
    model = vaelab.mlp_vae(latent_dim=3, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,),
                           prior=MixtureOfGaussians(3, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, toy_data(), epochs=1, batch_size=64, schedule=FreezePrior(), progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("prior."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder"))
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(TypeError, match="has no prior module"):
        fit(FixedValidLoss(toy_model(), [1.0]), toy_data(), epochs=1, batch_size=64, schedule=FreezePrior(),
            progress=False)


def test_training_lowers_the_loss():
    model = toy_model()
    hist = fit(model, toy_data(600), epochs=8, batch_size=64, progress=False, lr=3e-3)
    assert hist.epochs["loss"][-1] < hist.epochs["loss"][0] - 2.0


def test_drop_last_skips_the_short_batch():
    hist = fit(toy_model(), toy_data(), epochs=1, batch_size=64, progress=False, drop_last=True)
    assert len(hist.steps["loss"]) == 300 // 64


class FixedValidLoss(nn.Module):
    """Wraps a VAE; in eval mode its terms follow a scripted validation curve (one value per epoch)."""

    def __init__(self, inner, curve):
        super().__init__()
        self.inner, self.curve, self.evals = inner, curve, 0

    def forward(self, x):
        out = self.inner(x)
        if not self.training:
            value = self.curve[min(self.evals, len(self.curve) - 1)]
            out = {"rec": torch.full_like(out["rec"], value), "reg": torch.zeros_like(out["reg"])}
        return out


def test_early_stopping_keeps_the_best_epoch_and_resumes(tmp_path):
    curve = [10, 9, 8, 8.5, 7, 7.5, 7.2, 7.9, 8.0, 6.0]  # best 7 at epoch 5, no improvement for 3 after it

    def make():
        model = FixedValidLoss(toy_model(), curve)
        valid = toy_data(64, seed=3)
        original = vaelab.training.train.evaluate

        def counting_evaluate(m, data, batch_size=1000):
            res = original(m, data, batch_size)
            m.evals += 1
            return res
        return model, valid, counting_evaluate

    model, valid, counting = make()
    import unittest.mock as mock
    with mock.patch.object(vaelab.training.train, "evaluate", counting):
        hist = fit(model, toy_data(), epochs=10, batch_size=64, valid=valid, patience=3, patience_after=1,
                   out_dir=tmp_path, progress=False)
    assert hist.epochs["epoch"][-1] == 8 and hist.epochs["best_epoch"][-1] == 5
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["stopping"]["stopped"] and ckpt["stopping"]["epoch"] == 5
    for k, v in model.state_dict().items():  # the model is left at the best epoch's weights
        assert torch.equal(v, ckpt["stopping"]["state"][k])
    # calling fit again does not train on after the stop
    model2, _, counting2 = make()
    with mock.patch.object(vaelab.training.train, "evaluate", counting2):
        hist2 = fit(model2, toy_data(), epochs=10, batch_size=64, valid=valid, patience=3, patience_after=1,
                    out_dir=tmp_path, progress=False)
    assert hist2.epochs["epoch"][-1] == 8
    for k, v in model2.state_dict().items():
        assert torch.equal(v, ckpt["stopping"]["state"][k])


def test_early_stopping_needs_a_validation_set():
    with pytest.raises(ValueError, match="needs a validation set"):
        fit(toy_model(), toy_data(), epochs=2, batch_size=64, patience=2, progress=False)
    with pytest.raises(ValueError, match="patience must be a positive integer"):
        fit(toy_model(), toy_data(), epochs=2, batch_size=64, patience=0, valid=toy_data(64), progress=False)


def test_lr_factors():
    f = step_lr({30: 2, 50: 5, 70: 10})
    assert [f(e) for e in (1, 30, 31, 50, 51, 70, 71, 100)] == [1, 1, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1]
    assert exponential_lr(0.995)(3) == pytest.approx(0.995**2)


def test_constant_and_warmup_schedules():
    assert Constant(0.3).weight == 0.3
    w = LinearWarmup(4, final=2.0, unit="epoch")
    seen = []
    for epoch in range(1, 7):
        seen.append(w.weight)
        w.update({}, 0)
        w.end_epoch(epoch)
    assert seen == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.0])


# ---- bad input: each gives a clear error that names the argument and the fix ----

@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": 10_000}, "batch_size=10000 is larger than the training set"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"schedule": 0.5}, "schedule must be a vaelab.objectives.schedules.Schedule"),
    ({"checkpoint_every": 0}, "checkpoint_every must be a positive integer"),
])
def test_fit_bad_arguments(kwargs, match):
    args = {"epochs": 1, "batch_size": 64, "progress": False, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        fit(toy_model(), toy_data(), **args)


@pytest.mark.parametrize("make,match", [
    (lambda: Constant(-1.0), "weight must be a finite number >= 0.*cannot be negative"),
    (lambda: Constant(float("nan")), "weight must be a finite number"),
    (lambda: LinearWarmup(10, final=-2.0), "final must be a finite number >= 0"),
    (lambda: LinearWarmup(0), "length must be a positive integer"),
    (lambda: LinearWarmup(5, unit="minute"), "unit='minute' is unknown"),
])
def test_schedule_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_input_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 6, 6\)"):
        toy_model()(torch.rand(4, 1, 28, 28))


def test_unknown_likelihood_and_bad_sizes():
    with pytest.raises(ValueError, match="likelihood='poisson' is unknown"):
        vaelab.mlp_vae(2, likelihood="poisson")
    with pytest.raises(ValueError, match="sizes must be at least two positive integers"):
        vaelab.core.nets.mlp([784, 0, 10])


# ---- a diverged state is never saved nor called good (issue 29) ----

def test_a_state_that_diverged_on_the_last_step_of_an_epoch_is_not_saved(tmp_path, capsys):
    """lr 1e6 with one step per epoch: the step's loss is finite, the weights after it are ~1e6 and the
    validation terms NaN. Epoch 1 must not be saved, fit must not return, a rerun must not say 'already trained'."""
    for epochs in (1, 2):
        out = tmp_path / f"e{epochs}"
        for attempt in range(2):
            with pytest.raises(NonFiniteLossError, match=r"(?s)after the last step of epoch 1 \(step 1\): "
                               r"valid_rec=nan.*epoch 1 was not saved.*no checkpoint yet.*Lower lr \(it is 1e\+06\)"):
                fit(toy_model(), toy_data(128), epochs=epochs, batch_size=128, lr=1e6, valid=toy_data(64, seed=3),
                    out_dir=out, progress=False)
            assert not (out / "checkpoint.pt").exists()
            assert "already trained" not in capsys.readouterr().out


def test_the_last_good_checkpoint_is_the_epoch_before_the_divergence(tmp_path):
    factor = step_lr({1: 1e-9})  # lr 1e-3 in epoch 1, 1e6 from epoch 2 on
    with pytest.raises(NonFiniteLossError, match=rf"(?s)epoch 2 \(step 2\).*epoch 2 was not saved.*Last good "
                       rf"state: checkpoint {tmp_path / 'checkpoint.pt'} \(end of epoch 1\)\."):
        fit(toy_model(), toy_data(128), epochs=3, batch_size=128, lr_factor=factor, valid=toy_data(64, seed=3),
            out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(math.isfinite(v) for v in ckpt["history"]["epochs"]["valid_rec"])


class NaNGradAt(nn.Module):
    """Wraps a VAE; on forward call ``at`` the loss stays finite but its gradient is NaN
    (d/dp sqrt(0 * p) = inf * 0), so the optimiser step writes NaN into the parameters."""

    def __init__(self, inner, at):
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        if self.calls == self.at:
            w = next(self.inner.parameters())
            out["rec"] = out["rec"] + torch.sqrt(0.0 * w.sum())
        return out


def test_nonfinite_parameters_after_the_last_step_of_an_epoch_stop_before_saving(tmp_path):
    model = NaNGradAt(toy_model(), at=10)  # 300 images, batch 64: 5 steps per epoch; step 10 ends epoch 2
    with pytest.raises(NonFiniteLossError, match=r"(?s)after the last step of epoch 2 \(step 10\): "
                       r"inner\.encoder\.0\.weight \(\d+ of \d+ values\).*epoch 2 was not saved.*end of epoch 1"):
        fit(model, toy_data(), epochs=2, batch_size=64, out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_nan_in_the_validation_data_stops_the_run_before_saving(tmp_path, capsys):
    valid = toy_data(64, seed=3)
    valid.batch = lambda idx=None: torch.full((len(idx), 1, 6, 6), float("nan"))
    for _ in range(2):  # the rerun does not find a finished run either
        with pytest.raises(NonFiniteLossError, match=r"(?s)epoch 1 \(step 5\): valid_rec=nan.*check the data "
                           r"\(train and valid\) for NaN"):
            fit(toy_model(), toy_data(), epochs=1, batch_size=64, valid=valid, out_dir=tmp_path, progress=False)
        assert not (tmp_path / "checkpoint.pt").exists()
        assert "already trained" not in capsys.readouterr().out


def test_a_diverged_checkpoint_saved_by_an_earlier_version_is_refused(tmp_path, capsys):
    """Before fit checked states, a diverged epoch was saved; resuming from it, or calling it finished, is refused."""
    from vaelab.training.runs import save_checkpoint
    valid = toy_data(64, seed=3)
    fit(toy_model(), toy_data(), epochs=1, batch_size=64, valid=valid, out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    ckpt["history"]["epochs"]["valid_rec"][-1] = float("nan")  # as the old loop saved it
    save_checkpoint(ckpt, path)
    capsys.readouterr()
    for epochs in (1, 2):
        with pytest.raises(CheckpointError, match=rf"(?s){path} \(end of epoch 1\) holds a diverged state: "
                           r"valid_rec=nan.*resume=False.*lower lr"):
            fit(toy_model(), toy_data(), epochs=epochs, batch_size=64, valid=valid, out_dir=tmp_path, progress=False)
    assert "already trained" not in capsys.readouterr().out
    ckpt["model"]["decoder.0.weight"][0, 0] = float("inf")
    save_checkpoint(ckpt, path)
    with pytest.raises(CheckpointError, match=r"holds a diverged state: decoder\.0\.weight \(1 of 48 values\)"):
        fit(toy_model(), toy_data(), epochs=1, batch_size=64, valid=valid, out_dir=tmp_path, progress=False)
