"""HEBAE's MNIST claims measured on the study's runs (chapter 02 and its study page 02b).

``load_study(source)`` gathers the per-point results of ``vaelab.experiments.hebae_runs`` (from the
records in ``reference/02b_hebae_study/`` or from a sweep directory); the figure functions draw the
paper's Figs. 1a, 2 and 4 from them; ``claims`` measures each claim of the paper as it states it and
gives a verdict from ``vaelab.lab.compare.VERDICTS``. Missing points are "not run yet", never guessed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vaelab.data.images import decode_images
from vaelab.experiments.hebae_runs import LAMBDAS, STUDY_POINTS
from vaelab.lab.compare import ordering_verdict
from vaelab.lab.plots import legend_above

__all__ = ["load_study", "chapter1_sweep", "unpaired", "epochs_to_reach", "fig1a_top", "fig1a_bottom", "fig2", "fig4",
           "claims", "form_control", "models_at", "mean_codes", "lambda_curve", "lambda_spread",
           "lambda_spread_se", "lambda_table", "chapter1_gaps", "point"]

KS = (2, 5, 10, 20)
MODELS = ("VAE", "HEBAE", "WAE")


def load_study(records: list[dict] | None = None, sweep_dir: str | Path | None = None) -> dict[str, dict]:
    """Point name -> result, from the study's records (``load_records("02b_hebae_study")``) or from the
    ``results.json`` files of a sweep directory (``--out`` of ``python -m vaelab.lab.sweep``)."""
    out: dict[str, dict] = {}
    if sweep_dir is not None:
        for path in sorted(Path(sweep_dir).glob("*/results.json")):
            out.update(json.loads(path.read_text()).get("runs", {}))
    for rec in records or []:
        out.update(rec["results"].get("runs", {}))
    unknown = sorted(set(out) - set(STUDY_POINTS))
    if unknown:
        raise ValueError(f"points {unknown} are not in vaelab.experiments.hebae_runs.STUDY_POINTS")
    return out


def chapter1_sweep(records: list[dict] | None = None) -> dict[float, dict]:
    """Chapter 1's recorded VAE sweep at full scale, KL weight -> ``{"std_elbo": {"mean"}, "commit"}``, from
    ``records`` (default: the committed full-scale records of ``01b_collapse_study``).

    Chapter 1 (``01b_collapse_study``) trains the same VAE as this study (App. B.1's network at k = 20,
    Adam 1e-3 decayed by 0.995 per epoch, batch 128, 100 epochs on all 60,000 images) at the same seven
    weights ``LAMBDAS`` and measures the same standard ELBO (one posterior sample per image, closed-form
    KL, all 10,000 test images); it only keeps each epoch's last, incomplete batch, which the study drops.
    So it stands for the VAE's side of Fig. 1a, bottom, until the study's own VAE points are recorded
    (``lambda_curve``). It keeps no standard error and no IS log-likelihood. A record at another latent
    size or weight is refused, not skipped."""
    if records is None:
        from vaelab.lab.chapter import spec_of
        from vaelab.lab.records import load_records
        records = load_records("01b_collapse_study", where=spec_of("01b_collapse_study").full)
    out: dict[float, dict] = {}
    for rec in records:
        r = rec["results"]
        for row in r.get("sweep", []):
            lam = float(f"{row['lam']:.6g}")
            k = len(next(iter(r["kl_per_dim"].values())))
            if lam not in LAMBDAS or k != 20:
                raise ValueError(f"chapter 1's record {r['run']!r} is at lambda={lam:g}, k={k}: the study's "
                                 f"Fig. 1a bottom needs k = 20 at one of {LAMBDAS}")
            out[lam] = {"std_elbo": {"mean": float(row["elbo"])}, "commit": rec["git"]["commit"]}
    return dict(sorted(out.items()))


def unpaired(a: dict, b: dict) -> tuple[float, float]:
    """(mean a - mean b, its s.e.) of two ``{"mean", "se"}`` summaries over the same test images,
    combining the two means' standard errors (the per-image values are not kept in the records)."""
    return a["mean"] - b["mean"], math.hypot(a["se"], b["se"])


def epochs_to_reach(curve, target: float) -> int | None:
    """The first epoch (1-based) whose value is at least ``target``; None when it never is."""
    for i, v in enumerate(curve, 1):
        if v >= target:
            return i
    return None


def point(study: dict, kind: str, k: int, lam: float = 1.0, form: str = "exact") -> dict | None:
    """The study's recorded result for one model (``kind``, latent size ``k``, KL weight ``lam``, HEBAE's
    ``form``), or None while it is not recorded (``STUDY_POINTS`` names each)."""
    for name, (kd, kk, ll, ff) in STUDY_POINTS.items():
        if (kd, kk, ll, ff) == (kind, k, lam, form) and name in study:
            return study[name]
    return None


def fig1a_top(study: dict, plt):
    """Standard ELBO of the test images over epochs, VAE and HEBAE, one panel per k (Fig. 1a, top)."""
    fig, axes = plt.subplots(1, 4, figsize=(7.2, 2.3), sharex=True, layout="constrained")
    for ax, k in zip(axes, KS):
        for kind, style in (("vae", "-"), ("hebae", "--")):
            r = point(study, kind, k)
            if r is not None:
                y = r["per_epoch"]["test_std_elbo"]
                ax.plot(range(1, len(y) + 1), y, style, label=kind.upper())
        ax.set_title(f"k = {k}", fontsize=9)
        ax.set_xlabel("epoch")
        if not ax.lines:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
    axes[0].set_ylabel("test standard ELBO (nats)")
    drawn = [ax for ax in axes if ax.lines]
    if drawn:
        legend_above(fig, drawn)
    return fig


def lambda_curve(study: dict, kind: str, key: str, chapter1: dict | None = None) -> tuple[list, str]:
    """``[(lam, final value)]`` of a final metric (``std_elbo`` or ``is_ll``) over the KL weights at k = 20,
    and where it comes from: ``"study"``, or ``"chapter 1"`` for the VAE's standard ELBO while the study's
    own VAE points are not all recorded and ``chapter1`` (``chapter1_sweep``) has every weight."""
    pts = [(lam, r[key]["mean"]) for lam in LAMBDAS if (r := point(study, kind, 20, lam)) is not None]
    if (kind == "vae" and key == "std_elbo" and chapter1 and len(pts) < len(LAMBDAS)
            and set(chapter1) == set(LAMBDAS)):
        return [(lam, chapter1[lam]["std_elbo"]["mean"]) for lam in LAMBDAS], "chapter 1"
    return pts, "study"


def chapter1_gaps(study: dict, chapter1: dict) -> dict[float, float]:
    """The study's VAE minus chapter 1's (``chapter1_sweep``) in final standard ELBO, at every KL weight
    (k = 20) where both are recorded: how closely chapter 1's sweep stands for the study's own VAE points
    (the two differ only in the last, incomplete batch of each epoch; chapter 2b's page, Fig. 1a bottom)."""
    return {lam: r["std_elbo"]["mean"] - chapter1[lam]["std_elbo"]["mean"]
            for lam in LAMBDAS if lam in chapter1 and (r := point(study, "vae", 20, lam)) is not None}


def lambda_spread(study: dict, kind: str, key: str, chapter1: dict | None = None) -> tuple[float | None, int]:
    """Max minus min over the KL weights of a final metric at k = 20 (``lambda_curve``), and how many of
    the seven weights it has."""
    vals = [v for _, v in lambda_curve(study, kind, key, chapter1)[0]]
    return (max(vals) - min(vals) if len(vals) >= 2 else None), len(vals)


def lambda_spread_se(study: dict, kind: str, key: str, chapter1: dict | None = None) -> float:
    """Standard error (over test images) of ``lambda_spread``: that of the difference between its highest
    and its lowest point, sqrt(se_max^2 + se_min^2). Chapter 1's sweep records no standard error, so a
    curve from it counts 0 (its runs' test-image noise is of the study's size, a few tenths of a nat)."""
    pts, source = lambda_curve(study, kind, key, chapter1)
    if len(pts) < 2 or source == "chapter 1":
        return 0.0
    vals = {lam: v for lam, v in pts}
    hi, lo = max(vals, key=vals.get), min(vals, key=vals.get)
    return math.hypot(point(study, kind, 20, hi)[key]["se"], point(study, kind, 20, lo)[key]["se"])


def lambda_table(study: dict, chapter1: dict | None = None) -> list[dict]:
    """Fig. 1a, bottom, as numbers: one row per KL weight (k = 20) with both models' final standard ELBO
    and IS log-likelihood, each "mean ± s.e." over the test images, HEBAE's active units and both models'
    Frechet distance of samples (classifier features, 10,000 samples of N(0, I); lower is closer). The VAE's
    standard ELBO comes from chapter 1's sweep (marked "ch. 1", no s.e.) where ``lambda_curve`` takes it
    from there; a point not recorded yet is "–"."""
    sources = {key: lambda_curve(study, "vae", key, chapter1) for key in ("std_elbo", "is_ll")}
    rows = []
    for lam in LAMBDAS:
        row = {"λ": f"{lam:.3g}"}
        v, h = point(study, "vae", 20, lam), point(study, "hebae", 20, lam)
        for key, name in (("std_elbo", "standard ELBO"), ("is_ll", "IS log-lik.")):
            pts, source = sources[key]
            if source == "chapter 1":
                row[f"VAE {name}"] = f"{dict(pts)[lam]:.2f} (ch. 1)"
            else:
                row[f"VAE {name}"] = f"{v[key]['mean']:.2f} ± {v[key]['se']:.2f}" if v else "–"
            row[f"HEBAE {name}"] = f"{h[key]['mean']:.2f} ± {h[key]['se']:.2f}" if h else "–"
        row["HEBAE active units"] = f"{h['active_units']}" if h else "–"
        for kind, r in (("VAE", v), ("HEBAE", h)):
            row[f"{kind} FD"] = f"{r['fd_classifier']:.1f}" if r else "–"
        rows.append(row)
    return rows


def fig1a_bottom(study: dict, plt, chapter1: dict | None = None):
    """Final standard ELBO and IS log-likelihood against lambda, k = 20 (Fig. 1a, bottom); the VAE's
    standard ELBO from chapter 1's sweep while the study's own VAE points are missing (``lambda_curve``)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6), layout="constrained")
    for ax, key, label in zip(axes, ("std_elbo", "is_ll"), ("standard ELBO", "IS log-likelihood")):
        for kind, marker, color in (("vae", "o-", "C0"), ("hebae", "s--", "C1")):
            pts, source = lambda_curve(study, kind, key, chapter1)
            if pts:
                borrowed = source == "chapter 1"  # open markers: another page's runs
                ax.plot(*zip(*pts), marker, color=color, mfc="white" if borrowed else color,
                        label=kind.upper() + (" (chapter 1's sweep)" if borrowed else ""))
        ax.set(xscale="log", xlabel=r"KL weight $\lambda$", ylabel=f"test {label} (nats)")
    if any(ax.lines for ax in axes):
        legend_above(fig, axes)
    return fig


def models_at(study: dict, k: int, wae_lam: float) -> dict:
    """The VAE's, HEBAE's (lambda = 1) and the WAE's (MMD weight ``wae_lam``) results at latent size ``k``,
    by model name; None where the study has no record."""
    return {"VAE": point(study, "vae", k), "HEBAE": point(study, "hebae", k),
            "WAE": point(study, "wae", k, wae_lam)}


def aggregate_variances(study: dict, k: int, wae_lam: float) -> dict[str, tuple[float, float]]:
    """The smallest and largest variance per latent dimension of each model's codes at latent size ``k``
    (one posterior draw per test image, so the aggregate posterior's variances; the WAE's codes f(x)): how
    well the aggregate matches the scale of the prior N(0, I) from which Fig. 4 samples (chapter 02, 6.7)."""
    out = {}
    for name, r in models_at(study, k, wae_lam).items():
        if r is not None:
            d = np.diag(np.asarray(r["codes"]["cov"], dtype=float))
            out[name] = (float(d.min()), float(d.max()))
    return out


def mean_codes(result: dict) -> dict | None:
    """The covariance and correlation of a run's posterior means mu(x) over the test images (the paper's
    Fig. 2a, b); for the WAE its codes f(x), which are the means; None for a run recorded before the means
    were (``codes`` holds one posterior draw per image, whose covariance adds E[sigma^2] to the diagonal)."""
    return result.get("codes_mean") or (result["codes"] if result["kind"] == "wae" else None)


def fig2(study: dict, plt):
    """|covariance| and |correlation| of the posterior means, k = 20 (Fig. 2a, b), and MIC and TIC between
    the data index and each latent dimension (Fig. 2c, d): one column of matrices per model, the two
    information coefficients below them, one marker per dimension and model."""
    trio = {m: r for m, r in models_at(study, 20, 1.0).items() if r is not None}
    if not trio:
        return _not_run_yet(plt, "Fig. 2: no point of the study recorded yet")
    n = len(trio)
    fig = plt.figure(figsize=(7.2, 6.6), layout="constrained")
    grid = fig.add_gridspec(3, 2 * n, height_ratios=(1, 1, 0.9))
    for col, (name, r) in enumerate(trio.items()):
        codes = mean_codes(r)
        for row, key in enumerate(("cov", "corr")):
            ax = fig.add_subplot(grid[row, 2 * col:2 * col + 2])
            ax.set_title(f"{name}: |{'covariance' if key == 'cov' else 'correlation'}|", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            if codes is None:
                ax.text(0.5, 0.5, "means not\nrecorded yet", ha="center", va="center", fontsize=8,
                        transform=ax.transAxes)
                ax.set_box_aspect(1)  # the size of a matrix panel
                continue
            im = ax.imshow(np.abs(np.asarray(codes[key])), cmap="viridis", vmin=0,
                           vmax=None if key == "cov" else 1)
            fig.colorbar(im, ax=ax, fraction=0.046)
    mic_ax, tic_ax = fig.add_subplot(grid[2, :n]), fig.add_subplot(grid[2, n:])  # the bottom row, halved
    for (name, r), marker in zip(trio.items(), "os^"):
        dims = np.arange(1, len(r["mic"]["mic"]) + 1)
        for ax, key in ((mic_ax, "mic"), (tic_ax, "tic")):
            ax.plot(dims, r["mic"][key], marker, ms=4, ls="-", lw=0.6, label=name)
    for ax, key in ((mic_ax, "MIC"), (tic_ax, "TIC")):
        ax.set(xlabel="latent dimension $j$", ylabel=f"{key}(index, $z_j$)")
        ax.set_xticks([1, 5, 10, 15, 20])
        ax.grid(alpha=0.3)
    mic_ax.set_ylim(bottom=0), tic_ax.set_ylim(bottom=0)
    fig.legend(*mic_ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(trio), fontsize=8)
    return fig


def fig4(study: dict, plt):
    """Samples of N(0, I) decoded, k = 10: the VAE and HEBAE at lambda = 1, the WAE at 10 (Fig. 4)."""
    trio = {m: r for m, r in models_at(study, 10, 10.0).items() if r is not None}
    if not trio:
        return _not_run_yet(plt, "Fig. 4: no point of the study recorded yet")
    fig, axes = plt.subplots(len(trio), 1, figsize=(7.2, 0.75 * len(trio) + 0.2), squeeze=False,
                             layout="constrained")
    for ax, (name, r) in zip(axes[:, 0], trio.items()):
        imgs = decode_images(r["pictures"]["samples"])[:16, 0]
        ax.imshow(np.concatenate(list(imgs.numpy()), axis=1), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"{name}: FD {r['fd_classifier']:.1f}", fontsize=8, loc="left")
    return fig


def _not_run_yet(plt, text: str):
    fig, ax = plt.subplots(figsize=(7.2, 1.0), layout="constrained")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def form_control(study: dict) -> list[dict]:
    """The study's control: the official code's form of HEBAE beside the exact form (Eq. 8), k = 20,
    lambda = 1 (chapter 02, section 6.4, at full scale). One row per yardstick with both values and the
    difference code minus exact, with its standard error (``unpaired``) where the yardstick is a mean
    over the test images. Each form's standard ELBO uses its own posterior (the code form's is the
    diagonal of the exact one's covariance); the IS log-likelihood, with the same kind of proposal for
    both, compares the two generative models. Empty until both points are recorded."""
    exact, code = point(study, "hebae", 20), point(study, "hebae", 20, form="code")
    if exact is None or code is None:
        return []
    rows = [{"yardstick": "own objective (test)", "exact": exact["test_objective"],
             "code": code["test_objective"], "code − exact": f"{code['test_objective'] - exact['test_objective']:+.2f}"}]
    for key, name in (("std_elbo", "standard ELBO"), ("is_ll", "IS log-likelihood")):
        d, se = unpaired(code[key], exact[key])
        rows.append({"yardstick": name, "exact": exact[key]["mean"], "code": code[key]["mean"],
                     "code − exact": f"{d:+.2f} ± {se:.2f}"})
    for name, get, fmt in (("active units", lambda r: r["active_units"], "+d"),
                           ("mean MIC", lambda r: r["mic"]["mean_mic"], "+.3f"),
                           ("Frechet distance (classifier)", lambda r: r["fd_classifier"], "+.1f")):
        rows.append({"yardstick": name, "exact": get(exact), "code": get(code),
                     "code − exact": format(get(code) - get(exact), fmt)})
    return rows


def claims(study: dict, chapter1: dict | None = None) -> list[dict]:
    """One row per claim of the paper: the claim, what was measured (with its s.e.), the verdict; the VAE's
    standard ELBO over lambda from chapter 1's sweep (``chapter1_sweep``) while the study lacks its own."""
    rows = []

    def add(claim, where, measured, verdict):
        rows.append({"claim": claim, "paper": where, "measured": measured, "verdict": verdict})

    # Fig. 1a, top: a higher ELBO at every k, reached faster. The quantity the paper plots as HEBAE's
    # "ELBO" is its own training objective (reconstruction + lambda * batch KL), not a bound on log p(x)
    def objective(v, h):
        d = v["test_objective"] - h["test_objective"]
        return (f"VAE {v['test_objective']:.1f}, HEBAE {h['test_objective']:.1f}",
                "reproduced" if d > 0 else "not reproduced")

    add("HEBAE's own objective (what its training minimises) is below the VAE's negative ELBO at every k",
        "Fig. 1a, top (curves)", *_at_every_k(study, objective))
    for key, what in (("std_elbo", "standard ELBO"), ("is_ll", "IS log-likelihood")):
        def higher(v, h, key=key):
            d, se = unpaired(h[key], v[key])
            return f"{d:+.2f} ± {se:.2f}", ordering_verdict(d, se, +1)

        add(f"HEBAE reaches a higher {what} than the VAE at every k (λ = 1)", "Fig. 1a, top (curves)",
            *_at_every_k(study, higher))

    def reached(curve, target):
        """When a curve (higher is better) reaches ``target``, as text and verdict."""
        reach = epochs_to_reach(curve, target)
        return (f"not within {len(curve)} epochs" if reach is None else f"at epoch {reach} of {len(curve)}",
                "reproduced" if reach is not None and reach < len(curve) else "not reproduced")

    def faster(v, h):
        return reached(h["per_epoch"]["test_std_elbo"], v["per_epoch"]["test_std_elbo"][-1])

    add("HEBAE reaches the VAE's final standard ELBO in fewer epochs", "Fig. 1a, top (curves)",
        *_at_every_k(study, faster))

    def faster_own(v, h):  # the training objectives per epoch (the VAE's: its negative ELBO, lambda = 1)
        return reached([-x for x in h["per_epoch"]["loss"]], -v["per_epoch"]["loss"][-1])

    add("HEBAE's own training objective falls to the VAE's final negative ELBO in fewer epochs",
        "Fig. 1a, top (curves)", *_at_every_k(study, faster_own))
    # Fig. 1a, bottom: less sensitive to lambda
    for key, what in (("std_elbo", "standard ELBO"), ("is_ll", "IS log-likelihood")):
        (sv, nv), (sh, nh) = lambda_spread(study, "vae", key, chapter1), lambda_spread(study, "hebae", key)
        vae_from = " (chapter 1's sweep)" if lambda_curve(study, "vae", key, chapter1)[1] == "chapter 1" else ""
        if nv < len(LAMBDAS) or nh < len(LAMBDAS):
            measured = (f"{nv} of {len(LAMBDAS)} VAE{vae_from} and {nh} of {len(LAMBDAS)} HEBAE weights "
                        "recorded")
            verdict = "not run yet"
        else:
            seh, sev = lambda_spread_se(study, "hebae", key), lambda_spread_se(study, "vae", key, chapter1)
            sev_text = f" ± {sev:.1f}" if not vae_from else " (no s.e. recorded)"
            measured = f"spread over λ: HEBAE {sh:.1f} ± {seh:.1f}, VAE{vae_from} {sv:.1f}{sev_text} nats"
            verdict = ordering_verdict(sv - sh, math.hypot(seh, sev), +1)
        add(f"HEBAE's {what} varies less over λ = 0.01..100 than the VAE's (k = 20)", "Fig. 1a, bottom (curves)",
            measured, verdict)
    # Fig. 2: the posterior means' variances and correlations, and MIC
    trio = models_at(study, 20, 1.0)
    means = {m: mean_codes(r) if r is not None else None for m, r in trio.items()}
    corr_claim = "HEBAE's posterior means are the least correlated (mean |off-diagonal correlation|)"
    var_claim = "Only the VAE has latent dimensions whose posterior mean hardly varies (variance < 0.01)"
    if all(means.values()):
        c = {m: means[m]["mean_abs_offdiag_corr"] for m in MODELS}
        add(corr_claim, "Fig. 2b (matrices)", ", ".join(f"{m} {c[m]:.3f}" for m in MODELS),
            "reproduced" if c["HEBAE"] < min(c["VAE"], c["WAE"]) else "not reproduced")
        low = {m: int((np.diag(np.asarray(means[m]["cov"])) < 0.01).sum()) for m in MODELS}
        k = len(means["VAE"]["cov"])
        add(var_claim, "Fig. 2a (diagonals)", ", ".join(f"{m} {low[m]} of {k}" for m in MODELS),
            "reproduced" if low["VAE"] > 0 and low["HEBAE"] == low["WAE"] == 0 else "not reproduced")
    else:
        unrun = [m for m in MODELS if trio[m] is None]
        no_means = [m for m in MODELS if trio[m] is not None and not means[m]]
        said = ([f"{_listed(unrun)} not run yet"] if unrun else []) + (
            [f"posterior means not recorded yet: {_listed(no_means)}"] if no_means else [])
        for claim, where in ((corr_claim, "Fig. 2b (matrices)"), (var_claim, "Fig. 2a (diagonals)")):
            add(claim, where, "; ".join(said), "not run yet")
    if all(trio.values()):
        mic = {m: _mean_se(trio[m]["mic"]["mic"]) for m in MODELS}
        d1 = (mic["HEBAE"][0] - mic["VAE"][0], math.hypot(mic["HEBAE"][1], mic["VAE"][1]))
        d2 = (mic["WAE"][0] - mic["HEBAE"][0], math.hypot(mic["WAE"][1], mic["HEBAE"][1]))
        add("MIC(index, z) orders VAE < HEBAE < WAE", "Fig. 2c (bars)",
            ", ".join(f"{m} {mic[m][0]:.3f} ± {mic[m][1]:.3f}" for m in MODELS),
            _combine([ordering_verdict(*d1, +1), ordering_verdict(*d2, +1)]))
    else:
        add("MIC(index, z) orders VAE < HEBAE < WAE", "Fig. 2c (bars)", "-", "not run yet")
    # Fig. 4: better samples
    trio4 = models_at(study, 10, 10.0)
    if all(trio4.values()):
        fd = {m: trio4[m]["fd_classifier"] for m in MODELS}
        add("HEBAE's samples are better than the VAE's and the WAE's (k = 10)", "Fig. 4 (pictures only)",
            "Frechet distance, classifier features, 10,000 samples: "
            + ", ".join(f"{m} {fd[m]:.1f}" for m in MODELS),
            "reproduced" if fd["HEBAE"] < min(fd["VAE"], fd["WAE"]) else "not reproduced")
    else:
        add("HEBAE's samples are better than the VAE's and the WAE's (k = 10)", "Fig. 4 (pictures only)", "-",
            "not run yet")
    return rows


def _at_every_k(study: dict, measure) -> tuple[str, str]:
    """What a claim made "at every k" (``KS``) measured and its verdict: ``measure(vae, hebae)`` gives the
    text and the verdict at one k where both points at lambda = 1 are recorded; a k without them is "not
    run yet" (``_combine`` makes the one verdict)."""
    parts, verdicts = [], []
    for k in KS:
        v, h = point(study, "vae", k), point(study, "hebae", k)
        if v is None or h is None:
            verdicts.append("not run yet")
            continue
        part, verdict = measure(v, h)
        parts.append(f"k={k}: {part}")
        verdicts.append(verdict)
    return "; ".join(parts) or "-", _combine(verdicts)


def _listed(names: list[str]) -> str:
    """``["VAE", "HEBAE", "WAE"]`` -> "VAE, HEBAE and WAE"."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _combine(verdicts: list[str]) -> str:
    """One verdict for a claim made "at every k": any refutation refutes it; all confirmations confirm it."""
    if "not reproduced" in verdicts:
        return "not reproduced"
    if "not run yet" in verdicts:
        return "not run yet"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "within noise"
