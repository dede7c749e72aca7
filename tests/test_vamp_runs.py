"""Chapter 03's study: one model per point (vaelab.experiments.vamp_runs), Table 1 against the records
(vaelab.lab.vamp_study), the one-level pair recorded by chapter 03 before the study existed, and the
study page's sweep command."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from vaelab.data.images import ImageData, Splits, decode_images
from vaelab.experiments import vamp_runs as vr
from vaelab.lab import records, vamp_study as vs
from vaelab.lab.chapter import spec_of
from vaelab.models.hvae import HVAE
from vaelab.models.priors import StandardNormal
from vaelab.models.vamp import MixtureOfGaussians, VampPrior
from vaelab.training.runs import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = vr.VampSettings(epochs=1, warmup_epochs=1, patience=0, n_pseudo=4, latent_dim=3, hidden=8, batch_size=20,
                       ll_samples=5, ll_images=6)


def toy_splits(n_train=60, n_eval=20) -> Splits:
    g = torch.Generator().manual_seed(0)

    def images(n, binarize, seed):
        return ImageData.from_float(torch.rand(n, 1, 28, 28, generator=g), binarize=binarize, seed=seed)

    return Splits(images(n_train, "dynamic", 0), images(n_eval, "fixed", 1), images(n_eval, "fixed", 2))


@pytest.mark.parametrize("kind", list(vr.MODELS))
def test_make_model_builds_each_model_alike_from_the_seed(kind):
    # fresh data for each: "VampPrior data" draws its binarised images from the data set's generator
    a, b = (vr.make_model(kind, TINY, toy_splits().train) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    prior = {"standard": StandardNormal, "vamp": VampPrior, "mog": MixtureOfGaussians}[kind.split("_")[1]]
    assert isinstance(a.prior, prior) and isinstance(a, HVAE) == kind.startswith("hvae")
    if kind == "hvae_vamp_data":  # K binarised training images, fixed
        u = a.prior.pseudo_inputs()
        assert not a.prior.learn_pseudo_inputs and u.shape == (4, 1, 28, 28)
        assert set(u.unique().tolist()) <= {0.0, 1.0}
    if prior is not StandardNormal:
        small = vr.make_model(kind, TINY, toy_splits().train, n_components=2).prior
        assert (small.n_pseudo if prior is VampPrior else small.n_components) == 2


def test_make_model_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="kind='vae' is unknown"):
        vr.make_model("vae", TINY)
    with pytest.raises(ValueError, match="pass train=data.train"):
        vr.make_model("hvae_vamp_data", TINY)
    with pytest.raises(ValueError, match="run='vae_mog' is unknown"):
        vr.train_vamp_run("vae_mog", toy_splits(), "unused", TINY)


def test_settings_default_to_the_papers_and_read_a_chapters_parameters():
    assert spec_of("03b_vampprior_study").full == {  # the parameters the one-level pair was recorded with
        "epochs": 2000, "warmup_epochs": 100, "patience": 50, "train_size": 50_000, "n_pseudo": 500,
        "ll_images": 10_000}
    s = vr.VampSettings()
    assert (s.latent_dim, s.hidden, s.batch_size, s.lr, s.ll_samples, s.seed) == (40, 300, 100, 5e-4, 5000, 0)
    s = vr.VampSettings.from_params({"epochs": 3, "k_grid": [1, 2], "out_dir": "x"})
    assert s.epochs == 3 and s.n_pseudo == 500


def test_paper_numbers_are_table_1_and_the_static_fallback():
    assert vr.PAPER_LL["VAE VampPrior"][0] - vr.PAPER_LL["VAE standard"][0] == pytest.approx(2.12)
    assert vr.paper_difference("HVAE VampPrior", "HVAE standard") == pytest.approx(1.18)
    assert vr.paper_difference("HVAE VampPrior", "HVAE MoG") == pytest.approx(1.88)  # static MNIST, Table 2
    assert {a for a, *_ in vr.ORDERINGS} | {b for _, b, *_ in vr.ORDERINGS} <= set(vr.PAPER_LL)


@pytest.mark.parametrize("run", ["vae_vamp", "hvae_vamp"])
def test_a_point_trains_measures_and_writes_its_result(run, tmp_path):
    result = vr.train_vamp_run(run, toy_splits(), tmp_path, TINY, progress=False)
    row = result["tables_1_2"][0]
    assert row["model"] == vr.MODELS[run] and row["epochs_trained"] == 1 and "ll_images" not in row
    assert row["test_ll"] >= row["ll_set_elbo"] and row["test_ll_se"] > 0
    assert set(result["active_units"]) == ({"z2", "z1"} if run.startswith("hvae") else {"z"})
    assert decode_images(result["pseudo_inputs"]).shape == (4, 1, 28, 28)  # all K = 4 of them
    saved = json.loads((tmp_path / vr.run_dir_name(run) / "result.json").read_text())
    assert saved["tables_1_2"] == [pytest.approx(row)] and saved["run"] == run
    # called again, the point is trained already: its training time is still that of the epochs it ran
    again = vr.train_vamp_run(run, toy_splits(), tmp_path, TINY, progress=False)["tables_1_2"][0]
    checkpoint = load_checkpoint(tmp_path / vr.run_dir_name(run) / "checkpoint.pt")
    assert again["train_seconds"] == checkpoint["history"]["train_time_s"] == row["train_seconds"] > 0
    assert again["test_ll"] == row["test_ll"]


def test_table1_and_orderings_judge_the_records():
    recorded = {"VAE standard": {"tables_1_2": [{"test_ll": -84.39, "test_ll_se": 0.22}]},
                "VAE VampPrior": {"tables_1_2": [{"test_ll": -83.50, "test_ll_se": 0.22}]}}
    rows = {r["model"]: r for r in vs.table1(recorded)}
    assert rows["VAE standard"]["verdict"] == "reproduced" and rows["VAE standard"]["full scale"] == "-84.39 ± 0.22"
    assert rows["VAE VampPrior"]["verdict"] == "not reproduced"  # 1.12 from the paper, s.e. 0.22
    assert rows["HVAE standard"]["verdict"] == "not run yet" and rows["HVAE MoG"]["verdict"] == "not reported"
    first = vs.orderings(recorded)[0]
    assert first["full scale"] == "+0.89 ± 0.31" and first["verdict"] == "reproduced"
    assert all(r["verdict"] == "not run yet" for r in vs.orderings(recorded)[1:])
    build = {name: {"test_ll": -90.0, "test_ll_se": 0.3, "ll_images": [-90.0 + i, -91.0 + i, -89.0 + i, -88.0]}
             for i, name in enumerate(vr.PAPER_LL)}
    paired = vs.orderings(recorded, build)[0]  # VampPrior minus standard, image by image: 1, 1, 1, 0
    assert paired["d"] == pytest.approx(0.75) and paired["se"] == pytest.approx(0.25)
    assert paired["this build"] == "+0.75 ± 0.25" and paired["at this scale"] == "reproduced"


def test_the_one_level_pair_recorded_by_chapter_03_is_the_studys():
    """Chapter 03 recorded vae_standard and vae_vamp itself, before the study page existed; their records stay
    in reference/03_vampprior/ (their chapter field names that page) and load as the study's."""
    full = spec_of("03b_vampprior_study").full
    loaded = records.load_records("03b_vampprior_study", where=full, root=REPO / "reference")
    by_run = {r["results"]["run"]: r for r in loaded}
    assert {"vae_standard", "vae_vamp"} <= set(by_run)
    assert records.chapter_name(by_run["vae_standard"]["chapter"]) == "03_vampprior"
    assert by_run["vae_standard"]["results"]["tables_1_2"][0]["test_ll"] == pytest.approx(-84.394, abs=1e-3)
    assert spec_of("03_vampprior").study == "03b_vampprior_study" and spec_of("03_vampprior").full == full


def test_a_former_pages_folder_is_read_and_guarded(tmp_path, monkeypatch):
    monkeypatch.setitem(records.FORMER_PAGES, "study", ("lesson",))
    (tmp_path / "lesson").mkdir()
    (tmp_path / "study").mkdir()
    old = {"chapter": "book/lesson.ipynb", "point": "run=a", "values": {"run": "a"}, "parameters": {"run": "a"},
           "results": {"x": 1}}
    (tmp_path / "lesson" / "run=a.json").write_text(json.dumps(records.seal_record(old)))
    (tmp_path / "study" / "run=b.json").write_text(json.dumps(records.seal_record(
        {**old, "point": "run=b", "values": {"run": "b"}, "parameters": {"run": "b"}})))
    assert [r["point"] for r in records.load_records("study", root=tmp_path)] == ["run=a", "run=b"]
    assert [r["point"] for r in records.load_records("lesson", root=tmp_path)] == ["run=a"]
    again = {"point": "run=a", "values": {"run": "a"}}
    assert records.recorded_elsewhere(tmp_path / "lesson", again) is None  # the same name is itself ...
    assert records.recorded_elsewhere(tmp_path / "lesson", again, any_name=True).name == "run=a.json"  # ... or a twin


def test_the_study_pages_command_is_the_spec_s():
    """The sweep command the study page prints in its text is the one its spec's full settings give."""
    text = (REPO / "book" / "03b_vampprior_study.py").read_text()
    block = re.search(r"# ```bash\n(.*?)# ```", text, re.S).group(1)
    lines = [line[2:].rstrip(" \\") for line in block.splitlines()]
    shown = " ".join(" ".join(lines).split())
    full = spec_of("03b_vampprior_study").full
    expected = records.record_command("03b_vampprior_study", {"run": ["hvae_standard", "hvae_vamp"]}, full,
                                      out="runs/full/03b")
    assert shown == " ".join(expected.replace(" && ", " ").split())


def test_the_study_pages_defaults_are_the_papers_where_the_sweep_leaves_them():
    """The sweep passes only the spec's full settings: the records of the study rely on the page's other
    defaults being the paper's (the one-level pair was recorded with chapter 03's, the same values)."""
    import jupytext

    for page in ("03b_vampprior_study", "03_vampprior"):
        cell = next(c for c in jupytext.read(REPO / "book" / f"{page}.py").cells
                    if "parameters" in c.metadata.get("tags", []))
        defaults: dict = {}
        exec(cell.source, defaults)
        for name in ("latent_dim", "hidden", "batch_size", "lr", "ll_samples", "seed"):
            assert defaults[name] == getattr(vr.VampSettings(), name), (page, name)
