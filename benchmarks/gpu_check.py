"""The prepared GPU check: CUDA paths and the speed targets of the performance issue, in one JSON report.

One run (under 8 minutes on one H100/H200) that

1. checks the CUDA paths of ``vaelab.fit``: bf16 autocast against fp32 (same loss to 2 %),
   channels-last against contiguous (same outputs), ``compile=True`` (runs, same loss to 2 %), and
   resume (a run interrupted after 1 of 2 epochs and resumed: equal weights, or the largest
   difference when cuDNN's nondeterminism shows);
2. measures 100 MNIST epochs of the HEBAE App. B.1 MLP (60,000 MNIST-shaped images, batch 128;
   target under 10 s), with and without ``compile``;
3. one CelebA-64 epoch of the App. B.2 conv HEBAE, extrapolated from ``--celeba-steps`` timed steps,
   against its FLOP bound at the GPU's dense bf16 peak (target within 2x);
4. pendulum training steps per second of Klushyn et al.'s Table 3 model (VHP + REWO, batch 64);
5. seconds per test image of the importance-sampled log-likelihood at S = 5,000 (VampPrior, K = 500);
6. every chapter of the book executed at smoke scale on the device through papermill (``-p device``),
   pass or fail with the error's last line per chapter (a CUDA path that never ran may not work).

Each section records its figures or its error; the report says which. Run on the device machine:
``python benchmarks/gpu_check.py --out $OUT/gpu_check.json``; on a CPU, ``--quick`` runs every section
at toy size (a check of the script, meaningless numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

import vaelab
from vaelab.models.conv import conv_model, train_flops_per_image
from vaelab.objectives.constrained import REWO
from vaelab.data.images import ImageData
from vaelab.models.hebae import mlp_hebae
from vaelab.evaluation.likelihood import importance_log_likelihood
from vaelab.core.files import atomic_write_json
from vaelab.lab.speed import flop_bound_epoch_s, gpu_peak_bf16, sync
from vaelab.models.vae import mlp_vae
from vaelab.models.vamp import VampPrior
from vaelab.models.vhp import vhp_vae

CELEBA_TRAIN = 162_770


def random_images(n, shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8).to(device))


def timed_fit(model, data, **kw):
    sync(data.device)
    t0 = time.perf_counter()
    hist = vaelab.fit(model, data, progress=False, **kw)
    sync(data.device)
    return time.perf_counter() - t0, hist


def check_paths(device, quick, tmp: Path) -> dict:
    n = 512 if quick else 4096
    data = random_images(n, (1, 28, 28), device)
    out = {}
    losses = {}
    for name, kw in (("fp32", {}), ("bf16", {"precision": "bf16"}), ("compile", {"compile": True})):
        torch.manual_seed(0)
        _, hist = timed_fit(mlp_hebae(20, enc_hidden=(784, 256), dec_hidden=(256, 784)), data, epochs=1,
                            batch_size=128, drop_last=True, **kw)
        losses[name] = hist.epochs["loss"][-1]
    for name in ("bf16", "compile"):
        rel = abs(losses[name] - losses["fp32"]) / abs(losses["fp32"])
        out[f"{name}_vs_fp32_rel_loss_diff"] = rel
        out[f"{name}_ok"] = rel < 0.02
    torch.manual_seed(0)
    conv = conv_model("vae", latent_dim=8, width=0.125).to(device).eval()
    x = torch.rand(4, 3, 64, 64, device=device)
    with torch.no_grad():
        a = conv(x)["rec"]
        conv.to(memory_format=torch.channels_last)
        b = conv(x.contiguous(memory_format=torch.channels_last))["rec"]
    out["channels_last_max_rel_diff"] = float(((a - b).abs() / a.abs().clamp_min(1e-6)).max())
    out["channels_last_ok"] = out["channels_last_max_rel_diff"] < 1e-3
    models = []
    for part in ("full", "part"):
        torch.manual_seed(0)
        model = mlp_vae(20, enc_hidden=(784, 256), dec_hidden=(256,))
        if part == "part":
            vaelab.fit(model, data, epochs=1, batch_size=128, out_dir=tmp / part, progress=False)
            torch.manual_seed(0)
            model = mlp_vae(20, enc_hidden=(784, 256), dec_hidden=(256,))
        vaelab.fit(model, data, epochs=2, batch_size=128, out_dir=tmp / part, progress=False)
        models.append(model.state_dict())
    diff = max(float((models[0][k].float() - models[1][k].float()).abs().max()) for k in models[0])
    out["resume_max_abs_weight_diff"] = diff
    out["resume_bit_identical"] = diff == 0.0
    return out


def hebae_100_epochs(device, quick) -> dict:
    n, epochs = (2048, 2) if quick else (60_000, 100)
    data = random_images(n, (1, 28, 28), device)
    out = {"images": n, "epochs": epochs}
    for name, kw in (("eager", {}), ("compile", {"compile": True})):
        torch.manual_seed(0)
        model = mlp_hebae(20)
        # one epoch to warm up (and compile), then the timed run
        vaelab.fit(model, data, epochs=1, batch_size=128, drop_last=True, progress=False, **kw)
        seconds, _ = timed_fit(model, data, epochs=epochs, batch_size=128, drop_last=True, **kw)
        out[f"{name}_s"] = seconds
        out[f"{name}_images_per_s"] = n * epochs / seconds
    out["target_s"] = 10.0
    out["target_met"] = min(out["eager_s"], out["compile_s"]) < 10.0 and not quick
    return out


def celeba_epoch(device, quick) -> dict:
    batch, steps = (8, 2) if quick else (100, 40)
    width = 0.125 if quick else 1.0
    data = random_images(batch * steps, (3, 64, 64), device)
    data.scale = "signed"
    torch.manual_seed(0)
    model = conv_model("hebae", latent_dim=4 if quick else 64, width=width)
    precision = "bf16" if device.type == "cuda" else "fp32"
    vaelab.fit(model, data.subset(batch * 2), epochs=1, batch_size=batch, precision=precision,
               channels_last=True, progress=False)
    seconds, _ = timed_fit(model, data, epochs=1, batch_size=batch, precision=precision, channels_last=True)
    per_image = seconds / (batch * steps)
    flops = train_flops_per_image(model)
    peak = gpu_peak_bf16(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    out = {"batch": batch, "steps": steps, "precision": precision, "s_per_image": per_image,
           "epoch_s": per_image * CELEBA_TRAIN, "train_flops_per_image": flops}
    if peak:
        bound = flop_bound_epoch_s(CELEBA_TRAIN, flops, peak * 1e12)
        out.update(peak_tflops=peak, flop_bound_epoch_s=bound, ratio_to_bound=out["epoch_s"] / bound,
                   target_met=out["epoch_s"] <= 2 * bound)
    return out


def pendulum_its(device, quick) -> dict:
    steps = 20 if quick else 2000
    data = random_images(64 * steps, (1, 16, 16), device)
    torch.manual_seed(0)
    model = vhp_vae(hidden=(64,) * 2 if quick else (256,) * 4)
    sched = REWO(kappa=0.02, nu=5.0, tau=3.0)
    vaelab.fit(model, data.subset(64 * 4), epochs=1, batch_size=64, schedule=REWO(0.02, 5.0), progress=False)
    seconds, _ = timed_fit(model, data, epochs=1, batch_size=64, schedule=sched, lr=1e-4)
    return {"steps": steps, "its_per_s": steps / seconds, "target_its_per_s": 200}


def loglik(device, quick) -> dict:
    images, samples = (2, 200) if quick else (100, 5000)
    torch.manual_seed(0)
    model = mlp_vae(40, enc_hidden=(784, 300, 300), dec_hidden=(300, 300),
                    prior=VampPrior(n_pseudo=500)).to(device)
    x = (torch.rand(images, 1, 28, 28, device=device) > 0.5).float()
    importance_log_likelihood(model, x[:1], n_samples=samples)
    sync(device)
    t0 = time.perf_counter()
    importance_log_likelihood(model, x, n_samples=samples, batch_size=10)
    sync(device)
    per_image = (time.perf_counter() - t0) / images
    return {"images": images, "samples": samples, "s_per_image": per_image, "test_set_10k_s": per_image * 10_000}


REPO = Path(__file__).resolve().parents[1]


def book_chapters() -> list[str]:
    """Every page of the book with a parameters cell (the results and records pages have none)."""
    def has_parameters(path):
        cells = json.loads(path.read_text(encoding="utf8"))["cells"]
        return any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return sorted(p.stem for p in (REPO / "book").glob("*.ipynb") if has_parameters(p))


def chapters_on_device(device, tmp: Path, names: list[str], timeout_s: float) -> dict:
    """Each chapter at smoke scale on ``device`` through papermill: passed, seconds, the error's last line."""
    out = {}
    env = {**os.environ, "VAELAB_SMOKE": "1", "VAELAB_PROGRESS": "0"}
    for name in names:
        run_dir = tmp / "chapters" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "papermill", str(REPO / "book" / f"{name}.ipynb"),
               str(run_dir / f"{name}.out.ipynb"), "-k", "python3", "--cwd", str(REPO),
               "-p", "device", str(device), "-p", "out_dir", str(run_dir)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
            ok, tail = proc.returncode == 0, (proc.stderr.strip().splitlines() or [""])[-1]
        except subprocess.TimeoutExpired:
            ok, tail = False, f"timed out after {timeout_s:.0f} s"
        out[name] = {"passed": ok, "seconds": round(time.perf_counter() - t0, 1), **({} if ok else {"error": tail})}
        print(f"  {name}: {'passed' if ok else 'FAILED'} in {out[name]['seconds']} s", flush=True)
    out["all_passed"] = all(v["passed"] for v in out.values() if isinstance(v, dict))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="toy sizes: checks the script, not the GPU")
    ap.add_argument("--chapters", nargs="*", default=None,
                    help="the chapters to execute at smoke scale (default: every page of the book)")
    ap.add_argument("--chapter-timeout", type=float, default=300.0, help="seconds per chapter")
    args = ap.parse_args(argv)
    names = book_chapters() if args.chapters is None else args.chapters
    unknown = sorted(set(names) - set(book_chapters()))
    if unknown:
        ap.error(f"--chapters {unknown}: not pages of the book; use names from {book_chapters()}")
    device = vaelab.get_device(args.device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
              or platform.machine(), "torch": torch.__version__, "quick": args.quick,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = Path(args.out).resolve().parent / "gpu_check_runs"
    sections = {"paths": lambda: check_paths(device, args.quick, tmp), "hebae_mlp_100_epochs":
                lambda: hebae_100_epochs(device, args.quick), "celeba_epoch": lambda: celeba_epoch(device, args.quick),
                "pendulum": lambda: pendulum_its(device, args.quick), "loglik": lambda: loglik(device, args.quick),
                "chapters": lambda: chapters_on_device(device, tmp, names, args.chapter_timeout)}
    for name, run in sections.items():
        t0 = time.perf_counter()
        try:
            report[name] = run()
        except Exception:  # recorded in the report; the other sections still run
            report[name] = {"error": traceback.format_exc(limit=3)}
        report[name]["section_s"] = time.perf_counter() - t0
        print(name, json.dumps(report[name], indent=1), flush=True)
        atomic_write_json(args.out, report)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
