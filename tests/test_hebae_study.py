"""The HEBAE study's claims and figures (vaelab.lab.hebae_study) on synthetic results of known outcome."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vaelab.data.images import decode_images, encode_images  # noqa: E402
from vaelab.experiments.hebae_runs import LAMBDAS, STUDY_POINTS  # noqa: E402
from vaelab.lab import hebae_study as hs  # noqa: E402
from vaelab.lab.compare import VERDICTS, ordering_verdict  # noqa: E402
from vaelab.lab.plots import book_style  # noqa: E402

book_style()  # the figures must draw under the book's style, as they do on the page


def fake_result(kind, k, lam, form, *, elbo, ll, mic=0.3, corr=0.05, fd=20.0, se=0.2, epochs=100, collapsed=0):
    curve = list(np.linspace(elbo - 50, elbo, epochs))
    means_var = np.where(np.arange(k) < collapsed, 0.001, 1.0)  # a collapsed dimension's mean hardly varies
    r = {"kind": kind, "k": k, "lam": lam, "form": form if kind == "hebae" else None, "label": kind.upper(),
         "per_epoch": {"loss": [-v for v in curve]}, "test_objective": -elbo,
         "codes": {"cov": np.eye(k).tolist(), "corr": np.eye(k).tolist(), "mean_abs_offdiag_corr": corr},
         "codes_mean": {"cov": np.diag(means_var).tolist(), "corr": np.eye(k).tolist(),
                        "mean_abs_offdiag_corr": corr},
         "mic": {"mic": list(mic + 0.01 * np.arange(k) - 0.005 * k), "mean_mic": mic,
                 "tic": list(100 * mic + np.arange(k)), "mean_tic": 100 * mic + (k - 1) / 2},
         "fd_classifier": fd, "pictures": {"samples": encode_images(torch.rand(16, 1, 28, 28))}}
    if kind != "wae":
        r["per_epoch"]["test_std_elbo"] = curve
        r["std_elbo"] = {"mean": elbo, "se": se}
        r["is_ll"] = {"mean": ll, "se": se}
        r["active_units"] = k - collapsed
    return r


def study(hebae_gain=2.0, hebae_spread=5.0, vae_spread=50.0, mics=(0.2, 0.4, 0.6), collapsed=(3, 0, 0)):
    out = {}
    for name, (kind, k, lam, form) in STUDY_POINTS.items():
        i = LAMBDAS.index(lam) if lam in LAMBDAS else 3
        base = -100.0 - (vae_spread if kind == "vae" else hebae_spread) * abs(i - 3) / 3
        gain = hebae_gain if kind == "hebae" else 0.0
        mic = {"vae": mics[0], "hebae": mics[1], "wae": mics[2]}[kind]
        out[name] = fake_result(kind, k, lam, form, elbo=base + gain, ll=base + 5 + gain, mic=mic,
                                corr={"vae": 0.05, "hebae": 0.02, "wae": 0.04}[kind],
                                fd={"vae": 30.0, "hebae": 20.0, "wae": 25.0}[kind],
                                collapsed=dict(zip(("vae", "hebae", "wae"), collapsed))[kind])
    return out


def by_claim(rows):
    return {r["claim"]: r["verdict"] for r in rows}


def test_ordering_verdict_uses_two_standard_errors():
    assert ordering_verdict(2.1, 1.0, +1) == "reproduced"
    assert ordering_verdict(1.9, 1.0, +1) == "within noise"
    assert ordering_verdict(-2.1, 1.0, +1) == "not reproduced"
    assert ordering_verdict(-2.1, 1.0, -1) == "reproduced"
    with pytest.raises(ValueError, match="expected_sign"):
        ordering_verdict(1.0, 1.0, 0)


def test_every_claim_holds_on_a_study_built_to_hold_them():
    rows = hs.claims(study())
    assert len(rows) == 11 and {r["verdict"] for r in rows} == {"reproduced"}


def test_claims_fail_where_the_numbers_say_so():
    v = by_claim(hs.claims(study(hebae_gain=-3.0, hebae_spread=60.0, mics=(0.5, 0.4, 0.6))))
    own = "HEBAE's own objective (what its training minimises) is below the VAE's negative ELBO at every k"
    assert v[own] == "not reproduced"
    assert v["HEBAE reaches a higher standard ELBO than the VAE at every k (λ = 1)"] == "not reproduced"
    assert v["HEBAE reaches the VAE's final standard ELBO in fewer epochs"] == "not reproduced"
    assert v["HEBAE's own training objective falls to the VAE's final negative ELBO in fewer epochs"] == \
        "not reproduced"
    assert v["HEBAE's standard ELBO varies less over λ = 0.01..100 than the VAE's (k = 20)"] == "not reproduced"
    assert v["MIC(index, z) orders VAE < HEBAE < WAE"] == "not reproduced"
    collapsed = by_claim(hs.claims(study(collapsed=(3, 1, 0))))
    assert collapsed["Only the VAE has latent dimensions whose posterior mean hardly varies (variance < 0.01)"] == \
        "not reproduced"
    # a gain of 0.3 nats with a combined s.e. of 0.28 is noise
    assert hs.claims(study(hebae_gain=0.3))[1]["verdict"] == "within noise"


def test_missing_points_are_not_run_yet_and_the_figures_still_draw():
    s = study()
    partial = {n: r for n, r in s.items() if n in ("vae_k20", "hebae_k20")}
    rows = hs.claims(partial)
    assert {r["verdict"] for r in rows} <= set(VERDICTS)
    assert by_claim(rows)["HEBAE's samples are better than the VAE's and the WAE's (k = 10)"] == "not run yet"
    for draw in (hs.fig1a_top, hs.fig1a_bottom, hs.fig2, hs.fig4):
        for st in ({}, partial, s):
            plt.close(draw(st, plt))


def test_spread_and_epochs_to_reach():
    s = study(vae_spread=50.0, hebae_spread=5.0)
    assert hs.lambda_spread(s, "vae", "std_elbo") == (pytest.approx(50.0), 7)
    assert hs.lambda_spread({}, "hebae", "is_ll") == (None, 0)
    assert hs.epochs_to_reach([1.0, 2.0, 3.0], 2.0) == 2 and hs.epochs_to_reach([1.0], 2.0) is None
    assert hs.unpaired({"mean": 3.0, "se": 0.3}, {"mean": 1.0, "se": 0.4}) == (2.0, pytest.approx(0.5))


def test_the_spread_over_lambda_carries_its_standard_error():
    # every point has s.e. 0.2: a spread (highest minus lowest point) has s.e. sqrt(2) * 0.2
    s = study(vae_spread=50.0, hebae_spread=5.0)
    assert hs.lambda_spread_se(s, "vae", "is_ll") == pytest.approx(0.2 * math.sqrt(2))
    s["vae_lam1"]["is_ll"]["se"] = 0.5  # lambda = 0.01 is the VAE's lowest point (a spread of 50 below)
    assert hs.lambda_spread_se(s, "vae", "is_ll") == pytest.approx(math.hypot(0.5, 0.2))
    assert hs.lambda_spread_se({}, "hebae", "is_ll") == 0.0
    # spreads 0.3 apart with a combined s.e. of 0.4 are level; 1 nat apart, ordered
    claim = "HEBAE's IS log-likelihood varies less over λ = 0.01..100 than the VAE's (k = 20)"
    level = {r["claim"]: r for r in hs.claims(study(vae_spread=5.3, hebae_spread=5.0))}[claim]
    assert level["verdict"] == "within noise" and "HEBAE 5.0 ± 0.3, VAE 5.3 ± 0.3" in level["measured"]
    assert by_claim(hs.claims(study(vae_spread=6.0, hebae_spread=5.0)))[claim] == "reproduced"
    assert by_claim(hs.claims(study(vae_spread=4.0, hebae_spread=5.0)))[claim] == "not reproduced"


def test_pictures_round_trip_through_the_record():
    x = torch.rand(4, 1, 28, 28)
    back = decode_images(encode_images(x))
    assert back.shape == x.shape and (back - x).abs().max() <= 0.5 / 255 + 1e-6


def test_load_study_refuses_unknown_points():
    with pytest.raises(ValueError, match="STUDY_POINTS"):
        hs.load_study([{"results": {"runs": {"vae_k3": {}}}}])
    assert math.isclose(hs.load_study([{"results": {"runs": {"vae_k20": {"x": 1}}}}])["vae_k20"]["x"], 1)


def chapter1_records(elbos, k=20):
    """Chapter 1's full-scale records as its sweep writes them: one VAE per record, one sweep row each."""
    return [{"git": {"commit": "abc"},
             "results": {"run": f"vae{i}", "kl_per_dim": {f"{lam:g}": [0.1] * k},
                         "sweep": [{"lam": lam, "elbo": e}]}}
            for i, (lam, e) in enumerate(zip(LAMBDAS, elbos), 1)]


def test_chapter1_sweep_reads_the_vae_side_and_refuses_other_settings():
    elbos = [-140.0, -120.0, -105.0, -98.0, -115.0, -190.0, -205.0]
    ch1 = hs.chapter1_sweep(chapter1_records(elbos))
    assert list(ch1) == list(LAMBDAS) and [v["std_elbo"]["mean"] for v in ch1.values()] == elbos
    with pytest.raises(ValueError, match="k = 20"):
        hs.chapter1_sweep(chapter1_records(elbos, k=10))
    bad = chapter1_records(elbos)
    bad[0]["results"]["sweep"][0]["lam"] = 0.5
    with pytest.raises(ValueError, match="lambda=0.5"):
        hs.chapter1_sweep(bad)


def test_the_vae_side_of_fig1a_bottom_comes_from_chapter1_until_the_study_has_its_own():
    ch1 = hs.chapter1_sweep(chapter1_records([-140.0, -120.0, -105.0, -98.0, -115.0, -190.0, -205.0]))
    full = study(vae_spread=50.0, hebae_spread=5.0)
    no_vae = {n: r for n, r in full.items() if not n.startswith("vae_lam")}
    pts, source = hs.lambda_curve(no_vae, "vae", "std_elbo", ch1)
    assert source == "chapter 1" and pts[3] == (1.0, -98.0)
    assert hs.lambda_spread(no_vae, "vae", "std_elbo", ch1) == (pytest.approx(107.0), 7)
    # the IS log-likelihood is not chapter 1's: the VAE has only its lambda = 1 point there
    assert hs.lambda_curve(no_vae, "vae", "is_ll", ch1)[1] == "study"
    assert hs.lambda_spread(no_vae, "vae", "is_ll", ch1)[1] == 1
    # once the study's own seven VAE points are recorded, they are used
    assert hs.lambda_curve(full, "vae", "std_elbo", ch1)[1] == "study"
    assert hs.lambda_spread(full, "vae", "std_elbo", ch1) == (pytest.approx(50.0), 7)
    rows = {r["claim"]: r for r in hs.claims(no_vae, ch1)}
    elbo = rows["HEBAE's standard ELBO varies less over λ = 0.01..100 than the VAE's (k = 20)"]
    assert elbo["verdict"] == "reproduced"
    assert "VAE (chapter 1's sweep) 107.0 (no s.e. recorded)" in elbo["measured"]
    assert hs.lambda_spread_se(no_vae, "vae", "std_elbo", ch1) == 0.0
    ll = rows["HEBAE's IS log-likelihood varies less over λ = 0.01..100 than the VAE's (k = 20)"]
    assert ll["verdict"] == "not run yet"
    assert by_claim(hs.claims(no_vae))[elbo["claim"]] == "not run yet"  # without chapter 1's records
    fig = hs.fig1a_bottom(no_vae, plt, ch1)
    left, right = fig.axes[:2]
    assert [line.get_label() for line in left.lines] == ["VAE (chapter 1's sweep)", "HEBAE"]
    assert [line.get_color() for line in right.lines] == [left.lines[0].get_color(), left.lines[1].get_color()]
    plt.close(fig)


def test_fig2_reads_the_posterior_means_and_waits_for_runs_recorded_without_them():
    s = study()
    rows = {r["claim"]: r for r in hs.claims(s)}
    assert rows["Only the VAE has latent dimensions whose posterior mean hardly varies (variance < 0.01)"][
        "measured"] == "VAE 3 of 20, HEBAE 0 of 20, WAE 0 of 20"
    # a VAE and a HEBAE recorded before the means were: their draws are not the paper's matrices
    old = {n: {k: v for k, v in r.items() if k != "codes_mean"} for n, r in s.items()}
    assert hs.mean_codes(old["wae_k20"]) is old["wae_k20"]["codes"]  # the WAE's codes are its means
    assert hs.mean_codes(old["vae_k20"]) is None
    rows = {r["claim"]: r for r in hs.claims(old)}
    corr = rows["HEBAE's posterior means are the least correlated (mean |off-diagonal correlation|)"]
    assert corr["verdict"] == "not run yet" and corr["measured"] == "posterior means not recorded yet: VAE and HEBAE"
    no_wae = {n: r for n, r in old.items() if n != "wae_k20"}
    assert {r["claim"]: r for r in hs.claims(no_wae)}[corr["claim"]]["measured"] == \
        "WAE not run yet; posterior means not recorded yet: VAE and HEBAE"
    assert rows["MIC(index, z) orders VAE < HEBAE < WAE"]["verdict"] == "reproduced"
    for st in (s, old):
        plt.close(hs.fig2(st, plt))
    fig = hs.fig2(s, plt)  # Fig. 2c and 2d: one line per model, its values per dimension
    panels = {ax.get_ylabel(): ax for ax in fig.axes if ax.get_ylabel().startswith(("MIC", "TIC"))}
    assert sorted(panels) == ["MIC(index, $z_j$)", "TIC(index, $z_j$)"]
    for key, ax in zip(("mic", "tic"), (panels["MIC(index, $z_j$)"], panels["TIC(index, $z_j$)"])):
        assert [list(line.get_ydata()) for line in ax.lines] == [s[n]["mic"][key] for n in
                                                                   ("vae_k20", "hebae_k20", "wae_k20")]
    plt.close(fig)


def test_speed_on_the_own_objective_is_judged_apart_from_the_standard_elbo():
    """HEBAE's training objective may fall below the VAE's final negative ELBO early while its standard ELBO
    never reaches the VAE's: the study says which."""
    s = study(hebae_gain=-3.0)
    for k in hs.KS:
        s[f"hebae_k{k}"]["per_epoch"]["loss"] = list(np.linspace(80.0, 60.0, 100))  # below the VAE's 100 at once
    v = by_claim(hs.claims(s))
    assert v["HEBAE's own training objective falls to the VAE's final negative ELBO in fewer epochs"] == "reproduced"
    assert v["HEBAE reaches the VAE's final standard ELBO in fewer epochs"] == "not reproduced"
    row = {r["claim"]: r for r in hs.claims(s)}[
        "HEBAE's own training objective falls to the VAE's final negative ELBO in fewer epochs"]
    assert row["measured"].startswith("k=2: at epoch 1 of 100")


def test_aggregate_variances_are_the_diagonal_of_the_codes_covariance():
    s = study()
    s["hebae_k10"]["codes"]["cov"] = np.diag(np.linspace(0.5, 2.0, 10)).tolist()
    got = hs.aggregate_variances(s, 10, 10.0)
    assert list(got) == ["VAE", "HEBAE", "WAE"]
    assert got["HEBAE"] == (pytest.approx(0.5), pytest.approx(2.0)) and got["VAE"] == (1.0, 1.0)
    del s["wae_k10"]
    assert list(hs.aggregate_variances(s, 10, 10.0)) == ["VAE", "HEBAE"]


def test_form_control_sets_the_code_form_beside_the_exact_one():
    s = study()
    assert hs.form_control({n: r for n, r in s.items() if n != "hebae_code_k20"}) == []
    s["hebae_code_k20"]["is_ll"] = {"mean": s["hebae_k20"]["is_ll"]["mean"] - 0.5, "se": 0.3}
    s["hebae_code_k20"]["active_units"], s["hebae_k20"]["active_units"] = 18, 20
    rows = {r["yardstick"]: r for r in hs.form_control(s)}
    ll = rows["IS log-likelihood"]
    assert (ll["code"], ll["exact"]) == (s["hebae_code_k20"]["is_ll"]["mean"], s["hebae_k20"]["is_ll"]["mean"])
    assert ll["code − exact"] == f"-0.50 ± {math.hypot(0.3, 0.2):.2f}"  # the two standard errors combined
    assert rows["active units"]["code − exact"] == "-2"
    assert rows["own objective (test)"]["code − exact"] == "+0.00"  # the fake study's two forms tie


def test_the_lambda_table_sets_both_models_side_by_side_and_marks_what_is_missing():
    ch1 = hs.chapter1_sweep(chapter1_records([-140.0, -120.0, -105.0, -98.0, -115.0, -190.0, -205.0]))
    full = study(vae_spread=50.0, hebae_spread=5.0)
    rows = hs.lambda_table(full, ch1)
    assert [r["λ"] for r in rows] == ["0.01", "0.0464", "0.215", "1", "4.64", "21.5", "100"]
    # lambda = 0.01 is three steps from lambda = 1: -100 - spread, HEBAE 2 above it, IS log-lik. 5 above
    assert rows[0]["VAE standard ELBO"] == "-150.00 ± 0.20" and rows[0]["HEBAE IS log-lik."] == "-98.00 ± 0.20"
    assert rows[3]["HEBAE standard ELBO"] == "-98.00 ± 0.20" and rows[3]["HEBAE active units"] == "20"
    assert (rows[6]["VAE FD"], rows[6]["HEBAE FD"]) == ("30.0", "20.0")
    # without the study's VAE points: chapter 1's standard ELBO, and no IS log-likelihood yet
    part = {n: r for n, r in full.items() if not n.startswith(("vae_lam", "hebae_lam"))}
    rows = hs.lambda_table(part, ch1)
    assert rows[0] == {"λ": "0.01", "VAE standard ELBO": "-140.00 (ch. 1)", "HEBAE standard ELBO": "–",
                       "VAE IS log-lik.": "–", "HEBAE IS log-lik.": "–", "HEBAE active units": "–",
                       "VAE FD": "–", "HEBAE FD": "–"}
    assert rows[3]["VAE standard ELBO"] == "-98.00 (ch. 1)" and rows[3]["VAE IS log-lik."] == "-95.00 ± 0.20"


def test_chapter1_gaps_compare_the_study_vae_with_chapter1_where_both_exist():
    ch1 = hs.chapter1_sweep(chapter1_records([-140.0, -120.0, -105.0, -98.0, -115.0, -190.0, -205.0]))
    full = study(vae_spread=30.0)  # the study's VAE: -100 - 10 per step from lambda = 1
    gaps = hs.chapter1_gaps(full, ch1)
    assert list(gaps) == list(LAMBDAS)
    assert gaps[1.0] == pytest.approx(-2.0) and gaps[0.01] == pytest.approx(-130.0 + 140.0)
    assert gaps[100.0] == pytest.approx(-130.0 + 205.0)
    only_one = {n: r for n, r in full.items() if not n.startswith("vae_lam")}
    assert hs.chapter1_gaps(only_one, ch1) == {1.0: pytest.approx(-2.0)}  # vae_k20 is the lambda = 1 point
    assert hs.chapter1_gaps(only_one, {}) == {}
