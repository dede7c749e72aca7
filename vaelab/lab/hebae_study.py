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

__all__ = ["load_study", "unpaired", "epochs_to_reach", "fig1a_top", "fig1a_bottom", "fig2", "fig4", "claims", "models_at",
           "lambda_spread"]

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


def _point(study, kind, k, lam=1.0, form="exact"):
    for name, (kd, kk, ll, ff) in STUDY_POINTS.items():
        if (kd, kk, ll, ff) == (kind, k, lam, form) and name in study:
            return study[name]
    return None


def fig1a_top(study: dict, plt):
    """Standard ELBO of the test images over epochs, VAE and HEBAE, one panel per k (Fig. 1a, top)."""
    fig, axes = plt.subplots(1, 4, figsize=(7.2, 2.3), sharex=True, layout="constrained")
    for ax, k in zip(axes, KS):
        for kind, style in (("vae", "-"), ("hebae", "--")):
            r = _point(study, kind, k)
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


def lambda_spread(study: dict, kind: str, key: str) -> tuple[float | None, int]:
    """Max minus min over the KL weights of a final metric (``std_elbo`` or ``is_ll``) at k = 20, and how
    many of the seven weights are recorded."""
    vals = [r[key]["mean"] for lam in LAMBDAS if (r := _point(study, kind, 20, lam)) is not None]
    return (max(vals) - min(vals) if len(vals) >= 2 else None), len(vals)


def fig1a_bottom(study: dict, plt):
    """Final standard ELBO and IS log-likelihood against lambda, k = 20 (Fig. 1a, bottom)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6), layout="constrained")
    for ax, key, label in zip(axes, ("std_elbo", "is_ll"), ("standard ELBO", "IS log-likelihood")):
        for kind, marker in (("vae", "o-"), ("hebae", "s--")):
            pts = [(lam, r[key]["mean"]) for lam in LAMBDAS if (r := _point(study, kind, 20, lam)) is not None]
            if pts:
                ax.plot(*zip(*pts), marker, label=kind.upper())
        ax.set(xscale="log", xlabel=r"KL weight $\lambda$", ylabel=f"test {label} (nats)")
    if axes[0].get_legend_handles_labels()[0]:
        legend_above(fig, axes)
    return fig


def models_at(study: dict, k: int, wae_lam: float) -> dict:
    """The VAE's, HEBAE's (lambda = 1) and the WAE's (MMD weight ``wae_lam``) results at latent size ``k``,
    by model name; None where the study has no record."""
    return {"VAE": _point(study, "vae", k), "HEBAE": _point(study, "hebae", k),
            "WAE": _point(study, "wae", k, wae_lam)}


def fig2(study: dict, plt):
    """|covariance| and |correlation| of the test codes, k = 20, and MIC per dimension (Fig. 2a-c)."""
    trio = {m: r for m, r in models_at(study, 20, 1.0).items() if r is not None}
    if not trio:
        return _not_run_yet(plt, "Fig. 2: no point of the study recorded yet")
    fig, axes = plt.subplots(2, len(trio) + 1, figsize=(7.2, 4.2), squeeze=False, layout="constrained")
    for col, (name, r) in enumerate(trio.items()):
        for row, key in enumerate(("cov", "corr")):
            ax = axes[row, col]
            im = ax.imshow(np.abs(np.asarray(r["codes"][key])), cmap="viridis", vmin=0,
                           vmax=None if key == "cov" else 1)
            ax.set_title(f"{name}: |{'covariance' if key == 'cov' else 'correlation'}|", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[0, -1]
    for i, (name, r) in enumerate(trio.items()):
        ax.bar(np.arange(len(r["mic"]["mic"])) + 0.27 * (i - 1), r["mic"]["mic"], width=0.27, label=name)
    ax.set(xlabel="latent dimension", ylabel="MIC(index, $z_j$)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
    axes[1, -1].axis("off")
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


def claims(study: dict) -> list[dict]:
    """One row per claim of the paper: the claim, what was measured (with its s.e.), the verdict."""
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

    def faster(v, h):
        epochs = len(v["per_epoch"]["test_std_elbo"])
        reach = epochs_to_reach(h["per_epoch"]["test_std_elbo"], v["per_epoch"]["test_std_elbo"][-1])
        return (f"not within {epochs} epochs" if reach is None else f"at epoch {reach} of {epochs}",
                "reproduced" if reach is not None and reach < epochs else "not reproduced")

    add("HEBAE reaches the VAE's final standard ELBO in fewer epochs", "Fig. 1a, top (curves)",
        *_at_every_k(study, faster))
    # Fig. 1a, bottom: less sensitive to lambda
    for key, what in (("std_elbo", "standard ELBO"), ("is_ll", "IS log-likelihood")):
        (sv, nv), (sh, nh) = lambda_spread(study, "vae", key), lambda_spread(study, "hebae", key)
        if nv < len(LAMBDAS) or nh < len(LAMBDAS):
            measured = f"{nv} of {len(LAMBDAS)} VAE and {nh} of {len(LAMBDAS)} HEBAE weights recorded"
            verdict = "not run yet"
        else:
            measured = f"spread over λ: HEBAE {sh:.1f}, VAE {sv:.1f} nats"
            verdict = "reproduced" if sh < sv else "not reproduced"
        add(f"HEBAE's {what} varies less over λ = 0.01..100 than the VAE's (k = 20)", "Fig. 1a, bottom (curves)",
            measured, verdict)
    # Fig. 2: correlations and MIC
    trio = models_at(study, 20, 1.0)
    if all(trio.values()):
        c = {m: trio[m]["codes"]["mean_abs_offdiag_corr"] for m in MODELS}
        add("HEBAE's codes are the least correlated (mean |off-diagonal correlation|)", "Fig. 2a, b (matrices)",
            ", ".join(f"{m} {c[m]:.3f}" for m in MODELS),
            "reproduced" if c["HEBAE"] < min(c["VAE"], c["WAE"]) else "not reproduced")
        mic = {m: _mean_se(trio[m]["mic"]["mic"]) for m in MODELS}
        d1 = (mic["HEBAE"][0] - mic["VAE"][0], math.hypot(mic["HEBAE"][1], mic["VAE"][1]))
        d2 = (mic["WAE"][0] - mic["HEBAE"][0], math.hypot(mic["WAE"][1], mic["HEBAE"][1]))
        add("MIC(index, z) orders VAE < HEBAE < WAE", "Fig. 2c (bars)",
            ", ".join(f"{m} {mic[m][0]:.3f} ± {mic[m][1]:.3f}" for m in MODELS),
            _combine([ordering_verdict(*d1, +1), ordering_verdict(*d2, +1)]))
    else:
        add("HEBAE's codes are the least correlated (mean |off-diagonal correlation|)", "Fig. 2a, b (matrices)",
            "-", "not run yet")
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
        v, h = _point(study, "vae", k), _point(study, "hebae", k)
        if v is None or h is None:
            verdicts.append("not run yet")
            continue
        part, verdict = measure(v, h)
        parts.append(f"k={k}: {part}")
        verdicts.append(verdict)
    return "; ".join(parts) or "-", _combine(verdicts)


def _combine(verdicts: list[str]) -> str:
    """One verdict for a claim made "at every k": any refutation refutes it; all confirmations confirm it."""
    if "not reproduced" in verdicts:
        return "not reproduced"
    if "not run yet" in verdicts:
        return "not run yet"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "within noise"
