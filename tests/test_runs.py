"""Runs you can trust: identity, checksum, one writer, writability, data range, messages (vaelab.training.runs, fit).

Each test reproduces a failure seen on the earlier training loop and checks that it now gets a
clear error, or the right behaviour, with nothing lost.
"""
import json
import multiprocessing as mp
import os
import subprocess
from pathlib import Path

import pytest
import torch

import vaelab
from toys import smooth_images
from vaelab.objectives.constrained import GECO, REWO
from vaelab.data.images import ImageData
from vaelab.models.hebae import mlp_hebae
from vaelab.training.runs import (CheckpointError, IdentityError, RunLock, RunLockedError, atomic_write, identity_diff,
                         load_checkpoint, model_settings, save_checkpoint)
from vaelab.objectives.schedules import Constant
from vaelab.training.train import NonFiniteLossError, fit

REPO = Path(__file__).resolve().parents[1]


def toy_model(seed=0, k=3, **kw):
    torch.manual_seed(seed)
    return vaelab.mlp_vae(latent_dim=k, data_shape=(1, 6, 6), enc_hidden=(16,), dec_hidden=(16,), **kw)


def toy_hebae(form):
    torch.manual_seed(0)
    return mlp_hebae(latent_dim=3, data_shape=(1, 6, 6), enc_hidden=(36, 16), dec_hidden=(16, 36), form=form)


def train_once(out, model=None, data=None, **kw):
    args = dict(epochs=1, batch_size=64, out_dir=out, progress=False)
    args.update(kw)
    return fit(model or toy_model(), data or smooth_images(300), **args)


# ---- a run's identity --------------------------------------------------------------------------------

@pytest.mark.parametrize("first,second,differs", [
    (dict(schedule=Constant(1.0)), dict(schedule=Constant(10.0)), "schedule"),
    (dict(model=toy_hebae("exact")), dict(model=toy_hebae("code")), "model.form"),
    (dict(data=smooth_images(300, seed=0)), dict(data=smooth_images(300, seed=1)), "train_data.sha256"),
    (dict(schedule=GECO(0.1, 1.0)), dict(schedule=Constant(1.0)), "schedule"),
    (dict(schedule=Constant(1.0)), dict(schedule=GECO(0.1, 1.0)), "schedule"),
    (dict(schedule=GECO(0.1, 1.0)), dict(schedule=REWO(0.1, 1.0)), "schedule"),
    (dict(), dict(model=toy_model(k=4)), "model.latent_dim"),
    (dict(), dict(precision="bf16"), "precision"),
    (dict(), dict(lr_factor=vaelab.training.train.exponential_lr(0.5), epochs=2), "lr_factor"),
    (dict(), dict(data=smooth_images(300, binarize="dynamic")), "train_data.binarize"),
])
def test_resume_with_other_settings_names_each_difference(tmp_path, first, second, differs):
    train_once(tmp_path, **first)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(IdentityError, match=rf"(?s){differs}.*checkpoint has .*this run has .*another out_dir"):
        train_once(tmp_path, **second)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before  # nothing lost


def test_fewer_epochs_than_trained_is_refused_and_more_continues(tmp_path, capsys):
    train_once(tmp_path / "a", epochs=3)
    with pytest.raises(IdentityError, match="epochs: checkpoint has 3, this run has 1"):
        train_once(tmp_path / "a", epochs=1)
    capsys.readouterr()
    m_ext = toy_model()
    h_ext = train_once(tmp_path / "a", model=m_ext, epochs=5)
    assert "continuing a finished run of 3 epochs to 5 epochs" in capsys.readouterr().out
    m_full = toy_model()
    h_full = train_once(tmp_path / "b", model=m_full, epochs=5)  # one uninterrupted run of 5 epochs
    assert h_ext.steps == h_full.steps
    for (n, a), (_, b) in zip(m_ext.state_dict().items(), m_full.state_dict().items()):
        assert torch.equal(a, b), n


def test_identity_is_stable_and_diff_reads_well():
    assert model_settings(toy_hebae("exact")) == model_settings(toy_hebae("exact"))
    assert ("model.form", "exact", "code") in identity_diff({"model.form": "exact"}, {"model.form": "code"})
    assert identity_diff({"epochs": 3}, {"epochs": 10}) == []
    assert identity_diff({"lr_factors": [1.0, 0.5]}, {"lr_factors": [1.0, 0.5, 0.25]}) == []


@pytest.mark.parametrize("value", ["false", "False", 0, None])
def test_resume_must_be_a_bool(tmp_path, value):
    with pytest.raises(TypeError, match="resume must be True or False"):
        train_once(tmp_path, resume=value)


def test_resume_false_overwrites(tmp_path):
    train_once(tmp_path, epochs=2)
    train_once(tmp_path, epochs=1, resume=False, schedule=Constant(3.0))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


# ---- the checkpoint file -----------------------------------------------------------------------------

def test_corrupted_checkpoint_is_refused_with_its_path(tmp_path):
    train_once(tmp_path, epochs=1)
    path = tmp_path / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = os.urandom(min(4096, len(data) - mid))
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{path}.*(corrupted|cannot be read)"):
        train_once(tmp_path, epochs=2)


def test_a_single_flipped_byte_in_the_payload_is_caught(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.ones(1000)}, path)
    raw = bytearray(path.read_bytes())
    at = raw.find(torch.ones(1000).numpy().tobytes()[:16])  # inside the tensor's bytes
    assert at > 0
    raw[at + 3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


# ---- one writer --------------------------------------------------------------------------------------

def _hold_lock(out_dir, ready, release):
    with RunLock(out_dir):
        ready.set()
        release.wait(30)


def test_second_writer_gets_an_error_naming_the_holder(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunLockedError, match=rf"in use by another run \(pid {holder.pid} on .*another out_dir"):
            train_once(tmp_path)
        assert not (tmp_path / "checkpoint.pt").exists()
    finally:
        release.set()
        holder.join(30)
    train_once(tmp_path)  # the lock went with its holder
    assert (tmp_path / "checkpoint.pt").exists()


def _hammer(path, seed, n):
    for i in range(n):
        save_checkpoint({"seed": seed, "i": i, "w": torch.full((20_000,), float(seed))}, path)


def test_concurrent_atomic_writes_never_leave_a_broken_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), s, 30)) for s in (0, 1)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        if path.exists():
            ckpt = load_checkpoint(path)  # every installed file is whole
            assert torch.equal(ckpt["w"], torch.full((20_000,), float(ckpt["seed"])))
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert load_checkpoint(path)["i"] == 29
    assert not list(tmp_path.glob("*.tmp"))


def test_atomic_write_uses_unique_temporary_names(tmp_path, monkeypatch):
    names = []
    real = os.replace

    def spy(src, dst):
        names.append(Path(src).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write(tmp_path / "results.json", b"1")
    atomic_write(tmp_path / "results.json", b"2")
    assert len(set(names)) == 2 and all(n != "results.json.tmp" for n in names)


# ---- writability, checked before any work ------------------------------------------------------------

def test_out_dir_that_cannot_be_a_directory_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PermissionError, match=rf"out_dir '{blocker}/run' is not a writable directory"):
        train_once(blocker / "run", model=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """An existing directory this process cannot write to.

    Not root: chmod 555. Root ignores permissions, so a read-only bind mount of a fresh directory;
    where mounting is not allowed, file creation in that directory is made to fail as the kernel would.
    """
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    src = tmp_path / "src"
    src.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(ro)], capture_output=True).returncode == 0
    if not mounted:
        import tempfile
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kw):
            if dir is not None and Path(dir).resolve() == ro.resolve():
                raise PermissionError(30, "Read-only file system", str(dir))
            return real(*args, dir=dir, **kw)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    yield ro
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)


def test_existing_read_only_out_dir_fails_before_training(read_only_dir):
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PermissionError, match=rf"out_dir '{read_only_dir}' is not a writable directory "
                                              r"\(Read-only file system|Permission denied\)"):
        train_once(read_only_dir, model=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---- data range --------------------------------------------------------------------------------------

def test_bernoulli_decoder_refuses_signed_data_before_training():
    signed = ImageData(smooth_images(300).images, scale="signed")
    with pytest.raises(ValueError, match="scale='signed'.*'bernoulli'.*scale='unit'.*likelihood='gaussian'"):
        fit(toy_model(), signed, epochs=1, batch_size=64, progress=False)
    # a Gaussian decoder takes them
    fit(toy_model(likelihood="gaussian"), signed, epochs=1, batch_size=64, progress=False)


def test_pixels_outside_unit_range_cannot_enter_image_data():
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        ImageData.from_float(torch.full((4, 1, 6, 6), 255.0))


# ---- messages ----------------------------------------------------------------------------------------

def test_finished_run_says_nothing_to_do(tmp_path, capsys):
    train_once(tmp_path, epochs=2)
    capsys.readouterr()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    train_once(tmp_path, epochs=2)
    assert f"already trained (2 epochs), {tmp_path / 'checkpoint.pt'}: nothing to do" in capsys.readouterr().out
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_resumed_run_says_where_it_resumed(tmp_path, capsys):
    class Stop(Exception):
        pass

    def stop_after_two(epoch, model):
        if epoch == 2:
            raise Stop
    with pytest.raises(Stop):
        train_once(tmp_path, epochs=4, on_epoch=stop_after_two)
    # the epoch-2 checkpoint was not written (on_epoch raised first); epoch 1's was
    capsys.readouterr()
    train_once(tmp_path, epochs=4)
    assert f"resumed at epoch 1 of 4 from {tmp_path / 'checkpoint.pt'}" in capsys.readouterr().out


class NaNNow(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        out["rec"] = out["rec"] * float("nan")
        return out


def test_nan_before_the_first_checkpoint_says_so(tmp_path):
    with pytest.raises(NonFiniteLossError, match=f"no checkpoint yet in {tmp_path} \\(no epoch had finished\\)"):
        train_once(tmp_path, model=NaNNow(toy_model()))


def test_progress_bars_inside_long_epochs(capsys):
    data = smooth_images(1000)
    fit(toy_model(), data, epochs=1, batch_size=4, progress=True, desc="toy VAE")  # 250 steps
    err = capsys.readouterr().err
    assert "toy VAE" in err and "epoch 1" in err


def test_progress_off_by_environment(monkeypatch, capsys):
    monkeypatch.setenv("VAELAB_PROGRESS", "0")
    fit(toy_model(), smooth_images(300), epochs=1, batch_size=64)
    assert capsys.readouterr().err == ""


# ---- the named parts of fit, each alone ---------------------------------------------------------------

def test_step_log_checks_every_record_and_averages_the_epoch():
    from vaelab.training.train import History, StepLog
    hist = History()
    log = StepLog(hist, sync_every=2, where=lambda: "nowhere")
    log.start_epoch()
    for step, v in enumerate([1.0, 3.0, 5.0], start=1):
        log.add({"loss": torch.tensor(v)}, step, epoch=1)
    assert hist.steps["loss"] == [1.0, 3.0]  # two synced, one pending
    log.flush(3, 1)
    assert hist.steps["loss"] == [1.0, 3.0, 5.0] and log.epoch_means() == {"loss": 3.0}
    log.add({"loss": torch.tensor(1.0)}, 4, 2)
    with pytest.raises(NonFiniteLossError, match=r"loss=inf\) at epoch 2, step 5.*Last good state: nowhere"):
        log.add({"loss": torch.tensor(float("inf"))}, 5, 2)


def test_early_stopping_counts_from_the_best_epoch_after_the_warm_up():
    from vaelab.training.train import EarlyStopping
    model = torch.nn.Linear(1, 1)
    stop = EarlyStopping(patience=2, patience_after=2)
    seen = []
    for epoch, loss in enumerate([1.0, 0.5, 2.0, 1.5, 1.8, 1.9], start=1):
        row = {"valid_rec": loss, "valid_reg": 0.0}
        stop.observe(epoch, row, model)
        seen.append((row["best_epoch"], stop.stopped))
    # epochs 1-2 are the warm-up (0.5 at epoch 2 does not count); best 1.5 at epoch 4; stop at 6
    assert seen == [(0, False), (0, False), (3, False), (4, False), (4, False), (4, True)]
    again = EarlyStopping(2, 2)
    again.load_state_dict(stop.state_dict())
    assert again.stopped and again.epoch == 4


def test_run_settings_check_every_field():
    from vaelab.training.train import RunSettings
    assert RunSettings(epochs=3, batch_size=8).to_dict()["lr_factor"] is None
    for kw, match in [({"epochs": 2.0}, "epochs must be a positive integer"),
                      ({"seed": "1"}, "seed must be an integer"),
                      ({"grad_clip": 0}, "grad_clip must be a positive number"),
                      ({"precision": "fp16"}, "precision='fp16' is unknown"),
                      ({"lr_factor": 0.9}, "lr_factor must be a function"),
                      ({"compile": "yes"}, "compile must be True or False")]:
        with pytest.raises((ValueError, TypeError), match=match):
            RunSettings(**{"epochs": 1, "batch_size": 8, **kw})


def test_prepare_model_moves_and_wraps():
    from vaelab.training.train import RunSettings, prepare_model
    model = toy_model()
    forward, amp = prepare_model(model, torch.device("cpu"), RunSettings(epochs=1, batch_size=8, precision="bf16"))
    assert forward is model
    with amp():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")


def test_run_directory_round_trips_the_random_state(tmp_path):
    from vaelab.training.train import RunDirectory, RunSettings
    data = smooth_images(50, binarize="dynamic")
    gen = torch.Generator().manual_seed(5)
    state = RunDirectory.rng_state(gen, data)
    a = (torch.rand(3), torch.rand(3, generator=gen), data.batch(torch.arange(4)))
    RunDirectory.set_rng_state(state, gen, data)
    b = (torch.rand(3), torch.rand(3, generator=gen), data.batch(torch.arange(4)))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    run = RunDirectory(tmp_path, {"epochs": 2}, RunSettings(epochs=2, batch_size=8)).open()
    run.save({"step": 7}, epoch=1)
    run.close()
    assert RunDirectory(tmp_path, {"epochs": 3}, RunSettings(epochs=3, batch_size=8)).read("cpu")["step"] == 7
    with pytest.raises(IdentityError, match="epochs: checkpoint has 2, this run has 1"):
        RunDirectory(tmp_path, {"epochs": 1}, RunSettings(epochs=1, batch_size=8)).read("cpu")


def test_json_records_keep_traces_and_code_matrices_on_one_line(tmp_path):
    obj = {"b": {"trace": [0.5, 1e-20, None], "codes": [[0.1, -2.0], [3.0, 4.5]]},
           "a": [{"x": 1}, []], "empty": {}, "flag": True, "ints": {10: "ten", 2: "two"}}
    path = vaelab.training.runs.atomic_write_json(tmp_path / "r.json", obj)
    text = path.read_text()
    assert json.loads(text) == json.loads(json.dumps(obj, sort_keys=True))
    lines = text.splitlines()
    assert '    "codes": [[0.1, -2.0], [3.0, 4.5]],' in lines
    assert '    "trace": [0.5, 1e-20, null]' in lines
    assert lines[-4:-2] == ['    "2": "two",', '    "10": "ten"']  # int keys as json writes them
    assert lines[1] == '  "a": [' and lines[-1] == "}"


# ---- clear messages before work (issue 29) -----------------------------------------------------------

@pytest.mark.parametrize("seed", [2**64, -1])
def test_a_seed_out_of_torchs_range_is_refused_with_the_range(seed):
    with pytest.raises(ValueError, match=rf"seed must be an integer in \[0, 2\*\*64 - 1\].*got {seed}"):
        train_once(None, seed=seed)
    train_once(None, seed=2**64 - 1)  # the top of the range trains


def test_a_directory_without_room_for_the_checkpoint_is_refused_before_training(tmp_path, monkeypatch):
    from vaelab.training import runs
    monkeypatch.setattr(runs, "free_bytes", lambda path: 1000)
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(runs.DiskFullError, match=rf"(?s)not enough space for the checkpoint in {tmp_path}: it needs "
                       r"about [\d.]+ MB .*0\.0 MB are free.*nothing was trained.*another out_dir"):
        train_once(tmp_path, model=model, epochs=2)
    assert not (tmp_path / "checkpoint.pt").exists()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_full_disk_during_a_save_names_the_file_the_epoch_and_the_space(tmp_path, monkeypatch, capsys):
    import errno
    from vaelab.training import runs
    calls = []
    real = runs.atomic_write

    def full_on_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)
    monkeypatch.setattr(runs, "atomic_write", full_on_second)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError, match=rf"(?s)no space left on the device of {path}: epoch 2 was not saved \(the "
                       r"checkpoint is [\d.]+ MB, .* MB are free\)\. Free at least .* resumes from the checkpoint "
                       r"of epoch 1") as err:
        train_once(tmp_path, epochs=3)
    assert isinstance(err.value, runs.DiskFullError) and err.value.errno == errno.ENOSPC
    assert load_checkpoint(path)["epoch"] == 1 and not list(tmp_path.glob(".checkpoint.pt.*"))
    monkeypatch.setattr(runs, "atomic_write", real)  # space freed: the same call resumes
    capsys.readouterr()
    train_once(tmp_path, epochs=3)
    assert f"resumed at epoch 1 of 3 from {path}" in capsys.readouterr().out


def test_temporary_files_of_a_killed_save_are_removed_by_the_next_run(tmp_path, capsys):
    stale = tmp_path / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".results.json.x1.tmp"  # not the checkpoint's: left alone
    other.write_bytes(b"{}")
    train_once(tmp_path)
    assert not stale.exists() and other.exists()
    assert f"removed 1 temporary file(s) of an interrupted checkpoint save in {tmp_path}: {stale.name}" in \
        capsys.readouterr().out


def test_a_corrupt_header_is_refused_without_torchs_weights_only_advice(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"w": torch.ones(3)}, path)
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"format") + 6] = ord("c")  # a GLOBAL opcode in the outer pickle: weights-only loading refuses it
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert str(path) in text and "corrupt" in text and "resume=False" in text
    assert "weights_only" not in text and "Re-running" not in text and "trusted source" not in text


def test_training_time_counts_every_attempt(tmp_path, capsys):
    first = train_once(tmp_path, epochs=2)
    assert first.train_time_s >= sum(first.epochs["time_s"]) > 0
    # the history returned is the checkpoint's: a later attempt starts from exactly this count
    assert load_checkpoint(tmp_path / "checkpoint.pt")["history"]["train_time_s"] == first.train_time_s
    resumed = train_once(tmp_path, epochs=4)  # continues the finished run of 2 epochs
    assert resumed.train_time_s >= first.train_time_s + sum(resumed.epochs["time_s"][2:])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["history"]["train_time_s"] == resumed.train_time_s
    again = train_once(tmp_path, epochs=4)  # already trained: the time of the attempts that trained it, not ~0
    assert "already trained" in capsys.readouterr().out
    assert again.train_time_s == load_checkpoint(tmp_path / "checkpoint.pt")["history"]["train_time_s"]
