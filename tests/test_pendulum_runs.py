"""One pendulum run of the Table 1 study: schedules by method, both scores, snapshots, resume."""
import dataclasses
import json

import pytest
import torch

import vaelab
from vaelab.objectives.constrained import GECO, REWO, REWOB1
from vaelab.experiments.pendulum_runs import METHODS, PendulumSettings, _schedule, run_name, train_pendulum_run
from vaelab.objectives.schedules import Constant, LinearWarmup

TINY = PendulumSettings(iterations=40, batch_size=32, lr=1e-3, width=16, depth=1, zeta_samples=2,
                        snapshot_iterations=(10, 40), trace_every=5)


@pytest.fixture(scope="module")
def pend():
    splits = vaelab.load_dataset("pendulum", device="cpu", valid_size=100, train_size=320)
    return splits.train, splits.test


def test_methods_map_to_the_papers_schedules():
    kinds = {m: type(_schedule(m, TINY, 256, 10)) for m in METHODS}
    assert kinds == {"rewo": REWO, "rewo_b1": REWOB1, "geco": GECO, "plain": Constant, "wu20": LinearWarmup,
                     "wu200": LinearWarmup, "rewo_elbo": REWO}
    assert _schedule("wu200", TINY, 256, 10).length == 2000   # 200 epochs of 10 steps
    assert _schedule("plain", TINY, 256, 10).weight == 1.0
    # the constraint is the per-pixel MSE whatever the decoder's sigma: C = scale * rec + shift
    sched = _schedule("rewo", PendulumSettings(obs_sigma=0.5), 256, 10)
    rec = torch.tensor(1000.0)
    sse = (rec - 128 * torch.log(torch.tensor(2 * torch.pi * 0.25))) * 2 * 0.25
    torch.testing.assert_close(torch.tensor(sched.scale * 1000.0 + sched.shift, dtype=torch.float32),
                               sse / 256)
    with pytest.raises(ValueError, match="method='iwae' is unknown"):
        _schedule("iwae", TINY, 256, 10)


def test_a_run_reports_both_scores_and_resumes(tmp_path, pend, capsys):
    train, test = pend
    res = train_pendulum_run("rewo", 0, train, test, tmp_path, TINY, progress=False)
    run_dir = tmp_path / run_name("rewo", 0, 1.0)
    assert json.loads((run_dir / "result.json").read_text())["angle_error"] == res["angle_error"]
    assert res["iterations"] == 40 and len(res["beta_trace"]) == 8
    assert 0 <= res["angle_error"] <= torch.pi and 0 <= res["b3_error"] <= torch.pi
    assert sorted(p.name for p in run_dir.glob("snapshot_*.pt")) == ["snapshot_000010.pt", "snapshot_000040.pt"]
    assert res["paper"] == 0.054
    again = train_pendulum_run("rewo", 0, train, test, tmp_path, TINY, progress=False)
    assert "already trained" in capsys.readouterr().out
    assert again["angle_error"] == res["angle_error"] and again["beta_trace"] == res["beta_trace"]


def test_app_b4_control_uses_the_elbo_in_the_prior(tmp_path, pend):
    train, test = pend
    train_pendulum_run("rewo_elbo", 1, train, test, tmp_path, TINY, progress=False)
    ckpt = vaelab.training.train.load_checkpoint(tmp_path / run_name("rewo_elbo", 1, 1.0) / "checkpoint.pt")
    assert ckpt["identity"]["model.prior.n_samples"] == 1


def test_warm_ups_can_be_given_in_steps():
    """Chapter 04's short runs keep the paper's warm-ups as shares of training."""
    short = PendulumSettings(warmup_steps=(75, 752))
    assert _schedule("wu20", short, 256, 10).length == 75
    assert _schedule("wu200", short, 256, 10).length == 752


def test_a_run_can_skip_the_interpolation_and_return_its_model(tmp_path, pend):
    train, test = pend
    settings = dataclasses.replace(TINY, interp_pairs=0, trace_every=1)
    res, model = train_pendulum_run("geco", 0, train, test, tmp_path, settings, progress=False,
                                    return_model=True)
    assert "interpolation" not in res and len(res["beta_trace"]) == res["iterations"] == 40
    with torch.no_grad():
        codes = model.encode(test.batch())[0].numpy()
    from vaelab.evaluation.angle import angle_regression
    assert angle_regression(codes, test.targets.numpy()).error == res["angle_error"]
