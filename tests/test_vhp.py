"""The VHP prior (vaelab.models.vhp): the importance-weighted bound against brute force, shapes, names, REWO's freeze
(through ``fit``: needs its order, observe before the weight and the freeze of a step are read)."""
import math

import pytest
import torch
from torch import nn

import vaelab
from vaelab.objectives.constrained import REWO
from vaelab.training.train import fit
from vaelab.models.vhp import VHPPrior, vhp_prior
from toys import log_normal_full, smooth_images


class LinearGaussian(nn.Module):
    """p(z | zeta) = N(A zeta + b, s^2 I): fixed, no parameters."""

    def __init__(self, A, b, s):
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("b", b)
        self.logvar = 2 * math.log(s)

    def forward(self, zeta):
        mean = zeta @ self.A.T + self.b
        return torch.cat([mean, torch.full_like(mean, self.logvar)], -1)


class DiagPosterior(nn.Module):
    """The exact p(zeta | z) for A = diag(a): N(S a (z - b) / s^2, S), S = 1 / (1 + a^2 / s^2) per dimension."""

    def __init__(self, a, b, s):
        super().__init__()
        self.a, self.b, self.s2 = a, b, s**2
        self.var = 1 / (1 + a**2 / self.s2)

    def forward(self, z):
        mean = self.var * self.a * (z - self.b) / self.s2
        return torch.cat([mean, torch.log(self.var).expand_as(mean)], -1)


class Fixed(nn.Module):
    """q(zeta | z) = N(m, diag e^lv) whatever z (e.g. the prior N(0, I) as the proposal)."""

    def __init__(self, m, lv):
        super().__init__()
        self.m, self.lv = m, lv

    def forward(self, z):
        return torch.cat([self.m.expand(*z.shape[:-1], -1), self.lv.expand(*z.shape[:-1], -1)], -1)


def marginal_log_prob(A, b, s, z):
    """log N(z | b, A A^T + s^2 I): the closed-form marginal of the linear-Gaussian model."""
    cov = A @ A.T + s**2 * torch.eye(len(b), dtype=A.dtype)
    return log_normal_full(z, b, torch.linalg.cholesky(cov))


Z = torch.tensor([[0.3, -0.2], [1.5, 0.7], [-2.0, 1.0], [0.0, 0.0], [3.0, -2.5]], dtype=torch.float64)


def test_bound_is_exact_with_the_exact_posterior():
    a, b, s = torch.tensor([1.3, 0.6], dtype=torch.float64), torch.tensor([0.2, -0.4], dtype=torch.float64), 0.5
    prior = VHPPrior(LinearGaussian(torch.diag(a), b, s), DiagPosterior(a, b, s), latent_dim=2, zeta_dim=2)
    exact = marginal_log_prob(torch.diag(a), b, s, Z)
    g = torch.Generator().manual_seed(0)
    for k in (1, 3, 50):
        # every importance weight equals p(z): the bound is log p(z) for any K and any draw
        torch.testing.assert_close(prior.log_prob(Z, n_samples=k, generator=g), exact)


def test_bound_tightens_with_k_towards_the_closed_form():
    A = torch.tensor([[1.0, 0.8], [-0.5, 0.9]], dtype=torch.float64)
    b, s = torch.tensor([0.1, 0.3], dtype=torch.float64), 0.6
    zeros = torch.zeros(2, dtype=torch.float64)
    prior = VHPPrior(LinearGaussian(A, b, s), Fixed(zeros, zeros), latent_dim=2, zeta_dim=2)  # q = p(zeta)
    z = Z[:3]
    exact = marginal_log_prob(A, b, s, z)
    reps = 400
    g = torch.Generator().manual_seed(1)
    zr = z.repeat(reps, 1)
    means = []
    for k in (1, 4, 16, 128, 2048):
        bound = prior.log_prob(zr, n_samples=k, generator=g).view(reps, -1)
        means.append(bound.mean(0))
    gaps = [exact - m for m in means]
    for gap in gaps:
        assert (gap > -0.01).all()  # below log p(z) (up to Monte Carlo error)
    for g1, g2 in zip(gaps, gaps[1:]):
        assert (g2 < g1).all()  # tighter with more samples
    assert gaps[0].min() > 0.2  # K = 1 is far from it ...
    assert gaps[-1].abs().max() < 0.02  # ... K = 2048 close


def test_bound_against_grid_integration_for_a_nonlinear_prior():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    with torch.no_grad():
        net[2].weight[2:] *= 0.2  # moderate log-variances
        net[2].bias[2:] = -1.0
    zeros = torch.zeros(2, dtype=torch.float64)
    prior = VHPPrior(net, Fixed(zeros, zeros), latent_dim=2, zeta_dim=2).double()
    # brute force: log int p(z|zeta) N(zeta; 0, I) dzeta on a 2-D grid over [-7, 7]^2
    h = 0.02
    axis = torch.arange(-7, 7 + h / 2, h, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mean, logvar = prior.conditional(grid)
        z = prior.sample(4, generator=torch.Generator().manual_seed(0)).double()
        log_joint = (vaelab.core.densities.log_normal_diag(z[:, None], mean, logvar)
                     + vaelab.core.densities.log_standard_normal(grid))
        brute = torch.logsumexp(log_joint, -1) + 2 * math.log(h)
        reps = 50
        bound = prior.log_prob(z.repeat(reps, 1), n_samples=2000,
                               generator=torch.Generator().manual_seed(2)).view(reps, -1)
    assert (bound.mean(0) < brute + 0.01).all()
    torch.testing.assert_close(bound.mean(0), brute, atol=0.05, rtol=0)


def test_shapes_builder_and_gradients():
    prior = vhp_prior(latent_dim=3, zeta_dim=2, hidden=(8, 8), n_samples=5)
    z = torch.randn(7, 3, requires_grad=True)
    lp = prior.log_prob(z)
    assert lp.shape == (7,)
    assert prior.log_importance_weights(z).shape == (5, 7)
    assert prior.log_importance_weights(z, n_samples=2).shape == (2, 7)
    assert prior.sample(11).shape == (11, 3)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(prior.sample(6, generator=g1), prior.sample(6, generator=g2))
    lp.sum().backward()  # reparameterised: gradients reach z and both networks
    assert z.grad is not None and all(p.grad is not None for p in prior.parameters())
    big = vhp_prior()  # Klushyn et al. Table 3: four 256-unit ReLU layers each way
    assert [m.out_features for m in big.p_net if isinstance(m, nn.Linear)] == [256, 256, 256, 256, 4]
    assert [m.out_features for m in big.q_net if isinstance(m, nn.Linear)] == [256, 256, 256, 256, 4]
    with pytest.raises(ValueError, match=r"expected \(batch, 3\)"):
        prior.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="n_samples"):
        prior.log_prob(torch.randn(4, 3), n_samples=0)
    with pytest.raises(ValueError, match="zeta_dim"):
        VHPPrior(nn.Identity(), nn.Identity(), latent_dim=2, zeta_dim=0)


def toy_data(n=200, seed=0):
    return smooth_images(n, seed=seed)


def vhp_vae():
    torch.manual_seed(0)
    return vaelab.mlp_vae(latent_dim=2, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,),
                          prior=vhp_prior(2, 2, hidden=(16, 16), n_samples=3))


def test_parameter_names_inside_a_vae():
    vae = vhp_vae()
    names = [n for n, _ in vae.named_parameters()]
    prior_names = {f"prior.{n}" for n, _ in vae.prior.named_parameters()}
    assert prior_names and prior_names <= set(names)
    assert {n for n in names if n.startswith("prior.")} == prior_names
    assert all(n.startswith(("prior.p_net.", "prior.q_net.")) for n in prior_names)
    out = vae(toy_data().batch(slice(0, 8)))
    assert out["reg"].shape == (8,) and torch.isfinite(out["reg"]).all()
    assert vae.sample(4).shape == (4, 1, 6, 6)


class Spy(REWO):
    """REWO that records, at every step, freeze_prior and the prior's and encoder's parameters before the
    step (in observe) and after it (in update)."""

    def __init__(self, model, *args, **kw):
        super().__init__(*args, **kw)
        self.model, self.log = model, []

    def params(self):
        prior = torch.cat([p.detach().flatten() for p in self.model.prior.parameters()]).clone()
        enc = torch.cat([p.detach().flatten() for p in self.model.encoder.parameters()]).clone()
        return prior, enc

    def observe(self, terms, step):
        super().observe(terms, step)
        self.before = (self.freeze_prior, *self.params())

    def update(self, terms, step):
        super().update(terms, step)
        self.log.append((*self.before, *self.params()))  # (freeze, prior before, enc before, prior after, enc after)


def test_rewo_freezes_the_prior_in_the_initial_phase():
    """Needs fit's order: observe, then freeze_prior and the weight of the same step."""
    start = torch.cat([p.detach().flatten() for p in vhp_vae().prior.parameters()])

    def train(kappa, epochs=3):
        model = vhp_vae()
        spy = Spy(model, kappa=kappa, nu=0.05, alpha=0.5, beta_init=1e-2)
        hist = fit(model, toy_data(), epochs=epochs, batch_size=50, lr=1e-2, schedule=spy, progress=False)
        return model, spy, hist

    # a run whose kappa is never met: the prior never moves, the encoder trains
    _, spy, hist = train(kappa=1e-3)
    assert all(freeze for freeze, *_ in spy.log)
    assert all(torch.equal(prior_after, start) for _, _, _, prior_after, _ in spy.log)
    assert not torch.equal(spy.log[-1][4], spy.log[0][2])
    # its C_hat trajectory is that of every run until the phase ends: put kappa^2 just below its
    # first new minimum after step 2, at step i + 1, so that the phase ends in the observe of step i + 1
    c_hat, traj = None, []
    for rec in hist.steps["rec"]:
        c_hat = rec if c_hat is None else 0.5 * c_hat + 0.5 * rec
        traj.append(c_hat)
    i = next(i for i in range(2, len(traj)) if traj[i] < min(traj[:i]))
    kappa = math.sqrt((traj[i] + min(traj[:i])) / 2)
    model, spy, hist = train(kappa)
    freeze = [f for f, *_ in spy.log]
    assert freeze == [True] * i + [False] * (len(freeze) - i)  # step i + 1 already trains everything
    assert all(torch.equal(prior_after, start) for _, _, _, prior_after, _ in spy.log[:i])  # fixed through step i
    assert torch.equal(spy.log[i][1], start) and not torch.equal(spy.log[i][3], start)  # trained in step i + 1
    w = hist.steps["weight"]
    assert w[:i] == [pytest.approx(1e-2)] * i and w[i] != w[i - 1]  # beta moves in step i + 1 itself
    assert all(p.requires_grad for p in model.parameters())  # fit leaves everything trainable


def test_vhp_vae_is_klushyns_table3_model():
    """vhp_vae: four 256-unit ReLU layers in all four MLPs, 2 latents, Gaussian decoder, K = 16; 'standard' swaps the prior."""
    from vaelab.models.priors import StandardNormal
    from vaelab.models.vhp import vhp_vae

    m = vhp_vae()
    for net in (m.encoder, m.decoder, m.prior.p_net, m.prior.q_net):
        linears = [l for l in net if isinstance(l, nn.Linear)]
        assert [l.out_features for l in linears[:-1]] == [256] * 4
        assert sum(isinstance(l, nn.ReLU) for l in net) == 4
    assert (m.encoder[0].in_features, m.encoder[-1].out_features, m.decoder[-1].out_features) == (256, 4, 256)
    assert m.likelihood == "gaussian" and m.prior.n_samples == 16 and m.latent_dim == 2
    assert m.obs_logvar == pytest.approx(2 * math.log(0.02))
    x = torch.rand(5, 1, 16, 16)
    out = m(x)
    assert out["rec"].shape == out["reg"].shape == (5,)
    s = vhp_vae(prior="standard", hidden=(32,))
    assert isinstance(s.prior, StandardNormal) and s.encoder[0].out_features == 32
    with pytest.raises(ValueError, match="unknown"):
        vhp_vae(prior="vamp")


# -- the restructured computations against the formulas they replace --------------------------------
def _old_log_weights(prior, z, eps):
    """log w as three ``log_normal_diag`` / ``log_standard_normal`` calls (the form before restructuring)."""
    from vaelab.core.densities import log_normal_diag, log_standard_normal
    q_mean, q_logvar = prior.q_zeta(z)
    zeta = q_mean + torch.exp(0.5 * q_logvar) * eps
    p_mean, p_logvar = prior.conditional(zeta)
    return (log_normal_diag(z, p_mean, p_logvar) + log_standard_normal(zeta)
            - log_normal_diag(zeta, q_mean, q_logvar))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_weights_equal_the_three_log_densities(dtype):
    torch.manual_seed(0)
    prior = vhp_prior(latent_dim=2, zeta_dim=3, hidden=(16, 16), n_samples=5).to(dtype)
    z = (2 * torch.randn(9, 2, dtype=dtype)).requires_grad_()
    new = prior.log_importance_weights(z, generator=torch.Generator().manual_seed(1))
    eps = torch.randn((5, 9, 3), generator=torch.Generator().manual_seed(1), dtype=dtype)
    old = _old_log_weights(prior, z, eps)
    tol = dict(rtol=1e-12, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(new, old, **tol)
    params = [z, *prior.parameters()]
    g_new = torch.autograd.grad(new.sum(), params)
    g_old = torch.autograd.grad(old.sum(), params)
    for a, b in zip(g_new, g_old):
        torch.testing.assert_close(a, b, **tol)


def test_vae_terms_equal_the_log_normal_diag_forms():
    """The VAE's Gaussian log-likelihood and its one-sample log q(z|x) equal ``log_normal_diag``'s, and under
    bf16 autocast the networks' outputs and every term are float32."""
    from vaelab.core.densities import log_normal_diag
    from vaelab.models.vhp import vhp_vae as build
    torch.manual_seed(0)
    model = build(data_shape=(1, 4, 4), hidden=(16, 16), n_samples=3).double()
    x = torch.rand(6, 1, 4, 4, dtype=torch.float64)
    out = model.decode(torch.randn(6, 2, dtype=torch.float64))
    torch.testing.assert_close(model.log_likelihood(x, out),
                               log_normal_diag(x, out, torch.tensor(model.obs_logvar, dtype=torch.float64), event_dims=3))
    torch.manual_seed(3)
    terms = model(x)
    torch.manual_seed(3)  # the former forward pass, from the same random state (z, then the prior's K draws)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    torch.testing.assert_close(terms["z"], z, rtol=0, atol=0)  # the same draw as before
    torch.testing.assert_close(terms["reg"], log_normal_diag(z, mu, logvar) - model.prior.log_prob(z))
    model = model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = model(x.float())
        assert all(model.encode(x.float())[i].dtype == torch.float32 for i in range(2))
    assert all(t.dtype == torch.float32 for t in terms.values())


def test_frozen_prior_steps_skip_its_gradients_and_train_as_before(monkeypatch):
    """While REWO freezes the prior, fit's backward computes no gradient for the prior's parameters (``inputs=``):
    the run ends bit-identical to the former full backward whose prior gradients were then dropped."""
    calls = []
    orig = torch.Tensor.backward

    def spy(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        calls.append(inputs is not None)
        return orig(self, gradient, retain_graph, create_graph, inputs)

    def train():
        model = vhp_vae()
        fit(model, toy_data(), epochs=2, batch_size=50, lr=1e-2, progress=False,
            schedule=REWO(kappa=1e-3, nu=0.05, alpha=0.5, beta_init=1e-2))  # kappa never met: frozen throughout
        return model.state_dict()

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    new = train()
    assert calls and all(calls)
    monkeypatch.setattr(torch.Tensor, "backward",
                        lambda self, gradient=None, retain_graph=None, create_graph=False, inputs=None:
                        orig(self, gradient, retain_graph, create_graph))  # the former: every gradient
    old = train()
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)
