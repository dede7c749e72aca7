"""One point of chapter 02's study (vaelab.experiments.hebae_runs.train_mnist_run) at a tiny scale: what its
result records, in particular Fig. 2's two covariances (of the posterior means, and of one draw per image)."""
import json

import numpy as np
import pytest
import torch

from vaelab.data.images import ImageData, Splits
from vaelab.experiments import hebae_runs as hr
from vaelab.training.runs import load_checkpoint

TINY = hr.HebaeSettings(epochs=1, train_size=64, batch_size=32, track_images=16, track_samples=4, tau_images=8, is_images=8,
                        is_samples=4, elbo_images=40, mic_points=24, mic_samples=3, fd_samples=16,
                        classifier_epochs=1, n_pictures=4)


def toy_splits():
    g = torch.Generator().manual_seed(0)

    def images(n):  # noise with labels 0..9 (the Frechet distance's classifier needs them)
        return ImageData.from_float(torch.rand(n, 1, 28, 28, generator=g), targets=torch.arange(n) % 10)

    return Splits(images(64), images(8), images(40))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("hebae_runs")
    data = toy_splits()
    return out, {kind: hr.train_mnist_run(kind, 3, 1.0, data, out, TINY, progress=False)
                 for kind in ("vae", "wae")}


def test_the_wae_codes_are_its_means(runs):
    _, r = runs
    assert r["wae"]["codes_mean"] == r["wae"]["codes"]


def test_a_draw_adds_the_posterior_variance_that_the_means_leave_out(runs):
    """After one epoch on noise the VAE's posterior sits near its prior: the means hardly vary, while one
    draw per image has variance near 1 (Cov z = Cov mu + E diag sigma^2)."""
    _, r = runs
    draw, mean = (np.diag(np.asarray(r["vae"][key]["cov"])) for key in ("codes", "codes_mean"))
    assert draw.shape == mean.shape == (3,)
    assert mean.max() < 0.1 * draw.min()  # here about 0.002 against 0.5


def test_the_result_file_holds_what_the_study_reads(runs):
    out, r = runs
    saved = json.loads((out / hr.run_name("vae", 3, 1.0) / "result.json").read_text())
    assert saved["codes_mean"] == r["vae"]["codes_mean"]
    for key in ("per_epoch", "std_elbo", "is_ll", "codes", "codes_mean", "mic", "fd_classifier", "pictures"):
        assert key in saved, key
    assert len(saved["per_epoch"]["test_std_elbo"]) == TINY.epochs


def test_a_resumed_point_reports_the_training_time_of_every_attempt(runs):
    """Called again, the point finds itself trained and evaluates anew: its training seconds are the earlier
    attempt's (History.train_time_s from the checkpoint), not the instant this call spent."""
    out, r = runs
    again = hr.train_mnist_run("vae", 3, 1.0, toy_splits(), out, TINY, progress=False)
    saved = load_checkpoint(out / hr.run_name("vae", 3, 1.0) / "checkpoint.pt")["history"]["train_time_s"]
    assert again["train_s"] == saved == r["vae"]["train_s"] > 0  # the checkpoint's count, kept across attempts
    assert again["std_elbo"] == r["vae"]["std_elbo"]
