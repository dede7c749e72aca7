"""A chapter's plumbing behind two calls: ``setup`` after the parameters cell, ``Chapter.finish`` at the end.

A chapter's parameters cell (papermill's, tagged ``parameters``) holds the default values; its *spec*
(``vaelab.lab.chapters.<module>.SPEC``, one per chapter) holds everything else about them, once:
each parameter's type and range (``P``), the checks across parameters, the values at smoke scale and
the paper's (full-scale) settings that the chapter, the sweep command, the record checks and the docs
all read. The parameters every page has (``seed``, ``device``, ``data_root``, ``out_dir``, ``resume``)
are written once, here (``page_params``); a study page's spec takes those it shares with its lesson from
the lesson's spec. In the chapter::

    ch = setup(globals(), "00_vae_in_a_few_lines")   # checks, converts, applies smoke scale, device
    ...
    ch.finish({"test_elbo": elbo})                    # results.json, run time, machine, glue

``setup`` refuses a parameter the chapter does not have (papermill's ``-p epochz 100`` only prints a
warning), checks and converts every parameter (papermill passes ``-p train_size 1e3`` as 1000.0 and
``-p resume false`` as a string) with a message that names it and the fix, then, under
``VAELAB_SMOKE=1``, applies the smoke values to the *checked* values: a number only ever shrinks
(smoke scale never widens what a user asked for), ``out_dir`` gets ``/smoke`` appended (except for a
study's gather step, which reads the sweep's directory as given), ``resume`` becomes False. The checked values are written back into the notebook's namespace, so the lesson
reads ``epochs``, not ``ch.params["epochs"]``.
"""
from __future__ import annotations

import difflib
import importlib
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping

from vaelab.core.config import get_device, is_smoke
from vaelab.lab import checks as C

__all__ = ["P", "Spec", "Chapter", "setup", "spec_of", "full_command", "IPYTHON_NAMES", "POSITIVE", "SEED",
           "DEVICE", "DATA_ROOT", "RESUME", "page_params"]

_UNSET = object()
# names IPython (or the Colab cell) defines in a notebook's namespace that are not parameters
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


@dataclass(frozen=True)
class P:
    """One parameter's contract: ``kind`` and its range, the example its message suggests, and its
    smoke value.

    Kinds: ``int``, ``float``, ``bool``, ``choice`` (``choices``), ``path``, ``device``, ``int_list``,
    ``float_list`` (``scalar=True``: a single number is the list of it), ``choice_list``,
    ``number_dict``. ``none_ok`` lets None through (``int``, ``path``). ``smoke``: the value at smoke
    scale; for numbers (sizes) the smaller of it and the user's value, unless ``shrink_only=False``
    (a number that is a choice, such as which latent size a figure uses).
    """

    kind: str
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple = ()
    none_ok: bool = False
    scalar: bool = False
    example: Any = None
    note: str = ""
    smoke: Any = _UNSET
    shrink_only: bool = True

    def check(self, name: str, value):
        """``value`` converted and checked (``vaelab.lab.checks``), or a ``ParameterError`` naming the fix."""
        k = self.kind
        if k == "int":
            return C.check_int(name, value, min=self.min, max=self.max, example=self.example, note=self.note,
                               none_ok=self.none_ok)
        if k == "float":
            return C.check_float(name, value, min=self.min, max=self.max, min_open=self.min_open,
                                 max_open=self.max_open, example=self.example, note=self.note)
        if k == "bool":
            return C.check_bool(name, value)
        if k == "choice":
            return C.check_choice(name, value, self.choices)
        if k == "path":
            return C.check_path(name, value, none_ok=self.none_ok,
                                **({} if self.example is None else {"example": self.example}))
        if k == "device":
            return C.check_device(name, value)
        if k in ("int_list", "float_list"):
            return C.check_number_list(name, value, integer=k == "int_list", min=self.min, max=self.max,
                                       min_open=self.min_open, example=self.example, scalar=self.scalar)
        if k == "choice_list":
            return C.check_choice_list(name, value, self.choices)
        if k == "number_dict":
            return C.check_number_dict(name, value, key_min=self.min, value_min=self.max,
                                       value_min_open=self.max_open, example=self.example)
        raise ValueError(f"P(kind={k!r}) is not a kind of parameter: use one of int, float, bool, choice, "
                         "path, device, int_list, float_list, choice_list, number_dict")

    def shrink(self, value):
        """The smoke value for a checked ``value``: numbers never grow, other kinds take the smoke value."""
        if self.smoke is _UNSET:
            return value
        if self.shrink_only and self.kind in ("int", "float") and value is not None and self.smoke is not None:
            return min(value, self.smoke)
        return self.smoke


# a number > 0: ``P("float", **POSITIVE, example=...)``
POSITIVE = {"min": 0, "min_open": True}
# the parameters every page has, one definition each (``page_params`` gives them in the pages' order)
SEED = P("int", min=0)
DEVICE = P("device")
DATA_ROOT = P("path", none_ok=True, example="None")  # None: $VAELAB_DATA or ~/.cache/vaelab
RESUME = P("bool")


def page_params(out_dir: str, *, seed: bool = True) -> dict[str, P]:
    """``seed``, ``device``, ``data_root``, ``out_dir`` and ``resume``, in the order every parameters cell
    lists them: ``out_dir`` is the page's default output folder (the example its message suggests);
    ``seed=False`` leaves ``seed`` out, for a page without one or one that has it elsewhere (``SEED``)."""
    return {**({"seed": SEED} if seed else {}), "device": DEVICE, "data_root": DATA_ROOT,
            "out_dir": P("path", example=out_dir), "resume": RESUME}


@dataclass(frozen=True)
class Spec:
    """A chapter's parameters, once: ``params`` (name -> ``P``, every name of the parameters cell),
    ``check`` (the constraints across parameters: raises ``ParameterError``), ``derive`` (names the
    lesson computes from the parameters, e.g. the grid of weights), ``full`` (the paper's settings as
    papermill parameters), ``study`` (the page whose records hold the full-scale runs, if not this) and
    ``check_device`` (a check that needs the resolved torch device, e.g. bf16 on this GPU)."""

    name: str
    params: Mapping[str, P]
    full: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], None] | None = None
    derive: Callable[[dict], dict] | None = None
    study: str | None = None
    check_device: Callable[[dict, Any], None] | None = None


def spec_of(name: str) -> Spec:
    """The spec of chapter ``name`` (``"00_vae_in_a_few_lines"``): ``vaelab.lab.chapters`` holds one
    module per chapter, named ``ch`` + the chapter's file name."""
    module = "ch" + name if name[0].isdigit() else name
    try:
        mod = importlib.import_module(f"vaelab.lab.chapters.{module}")
    except ModuleNotFoundError:
        raise ValueError(f"no spec for chapter {name!r}: add vaelab/lab/chapters/{module}.py with a SPEC") from None
    return mod.SPEC


def full_command(name: str, out: str | None = None) -> str:
    """The papermill command that runs chapter ``name`` at the paper's settings (its spec's ``full``)."""
    spec = spec_of(name)
    args = ["papermill", f"book/{name}.ipynb", out or f"{name}.out.ipynb"]
    for key, value in spec.full.items():
        args += ["-p", key, str(value)]
    return shlex.join(args)


_PAPERMILL_VALUES = (bool, int, float, str, type(None), list, dict, tuple)


def _unknown_names(namespace: Mapping[str, Any], known) -> list[str]:
    """Names in a fresh notebook namespace that hold a value papermill can pass (a number, string,
    bool, None, list or dict) but are not parameters: a misspelt ``-p``. Modules, functions and
    IPython's names are not values papermill passes."""
    return sorted(k for k, v in namespace.items()
                  if not k.startswith("_") and k not in known and k not in IPYTHON_NAMES
                  and isinstance(v, _PAPERMILL_VALUES))


@dataclass
class Chapter:
    """What ``setup`` returns: the chapter's name and spec, its checked parameters, the device, the start time."""

    name: str
    spec: Spec
    params: dict
    device: Any
    smoke: bool
    t_start: float

    @property
    def out_dir(self) -> str:
        return self.params["out_dir"]

    @property
    def prefix(self) -> str:
        """The glue names' prefix: ``ch00`` for ``00_vae_in_a_few_lines``."""
        return "ch" + self.name.split("_", 1)[0]

    def full_command(self) -> str:
        return full_command(self.name)

    def records(self, where: Mapping[str, Any] | None = None) -> list[dict]:
        """The recorded full-scale runs of this chapter (or of its study page), at the spec's full settings
        unless ``where`` says otherwise."""
        from vaelab.lab.records import load_records
        return load_records(self.spec.study or self.name, where=dict(self.spec.full if where is None else where))

    def machine(self) -> str:
        """The device in words, for the page: ``CPU, 2 torch threads`` or ``CUDA (NVIDIA H100 ...)``."""
        import torch
        dev = self.device
        name = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
        return f"{dev.type.upper()}{name}, {torch.get_num_threads()} torch threads"

    def finish(self, results: dict) -> Path:
        """Write ``out_dir/results.json`` (``results`` with the scale, unless they give their own, the
        device, the run time and the machine), glue ``<prefix>_runtime_min`` and ``<prefix>_machine``, print one line; returns the path."""
        from vaelab.lab.prose import glue
        from vaelab.lab.results import save_results
        runtime = time.perf_counter() - self.t_start
        scale = "smoke" if self.smoke else {k: v for k, v in self.params.items() if k in self.spec.full}
        path = save_results(self.out_dir, {"scale": scale, **results, "device": str(self.device),
                                           "runtime_s": runtime})
        glue(f"{self.prefix}_runtime_min", runtime / 60, ".1f")
        glue(f"{self.prefix}_machine", self.machine())
        print(f"{self.name}: {runtime / 60:.1f} min on {self.machine()};\n  results in {path}")
        return path


def setup(namespace: MutableMapping[str, Any], name: str, *, seed_torch: bool = True) -> Chapter:
    """Check, convert and (at smoke scale) shrink chapter ``name``'s parameters in ``namespace``
    (the notebook's ``globals()``), write them back with the spec's derived names, style the figures,
    resolve the device and seed torch with ``seed``; returns the ``Chapter``. Nothing is loaded or
    trained before every check has passed."""
    spec = spec_of(name)
    known = set(spec.params)
    unknown = _unknown_names(namespace, known)
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, sorted(known), n=1)
            hints.append(f"{u} (did you mean {close[0]}?)" if close else u)
        raise C.ParameterError(
            f"{', '.join(hints)}: not {'a parameter' if len(unknown) == 1 else 'parameters'} of {name}; "
            f"its parameters are {', '.join(spec.params)}: check the spelling of -p")
    missing = [k for k in spec.params if k not in namespace]
    if missing:
        raise RuntimeError(f"the parameters cell of {name} lacks {missing}, which its spec "
                           f"(vaelab/lab/chapters) declares: keep the two in step")
    values = {k: p.check(k, namespace[k]) for k, p in spec.params.items()}
    if spec.check is not None:
        spec.check(values)
    smoke = is_smoke()
    if smoke:
        new = {k: p.shrink(values[k]) for k, p in spec.params.items()}
        if "out_dir" in values and not values.get("gather"):  # a gather reads the sweep's out_dir as given
            new["out_dir"] = values["out_dir"].rstrip("/") + "/smoke"
        if "resume" in values:
            new["resume"] = False
        namespace.update(values)
        C.replace_params(namespace, **new)
        values = {k: namespace[k] for k in spec.params}
        if spec.check is not None:
            spec.check(values)  # the smoke values must satisfy the same constraints
    if spec.derive is not None:
        values_derived = spec.derive(values)
    else:
        values_derived = {}
    namespace.update(values)
    namespace.update(values_derived)
    from vaelab.lab.plots import book_style
    book_style()  # figures drawn at the width of the book's column
    import torch
    if seed_torch and "seed" in values:
        torch.manual_seed(values["seed"])
    device = get_device(values.get("device", "auto"))
    if spec.check_device is not None:
        spec.check_device(values, device)
    print(f"{name}: device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
          + ("; smoke scale (numbers meaningless)" if smoke else ""))
    return Chapter(name, spec, values, device, smoke, time.perf_counter())
