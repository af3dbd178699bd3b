import csv
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from multiarg import chunked
from multiarg.activations import load_inner, set_kernel
from multiarg.data import load_prepared, split
from multiarg.io import load_torch, save_torch
from multiarg.models import ModelConfig, OuterNet
from multiarg.pretrain import MapConfig, PretrainConfig, make_initial_inner
from multiarg.sessions import load_model, train_session
from multiarg.train import EarlyStopping, TrainConfig, TrainingDiverged, augment_batch, fit

SPLIT = dict(val_size=100, split_seed=0, train_limit=300, test_limit=100)


def test_early_stopping_waits_a_full_window():
    stopper = EarlyStopping(patience=3)
    values = [0.5, 0.4, 0.45, 0.40, 0.39, 0.5, 0.5, 0.5, 0.1]
    stopped_at = None
    for epoch, v in enumerate(values, 1):
        stopper.step(v, epoch)
        if stopper.should_stop:
            stopped_at = epoch
            break
    # 0.40 does not beat 0.4 (strict improvement); 0.39 at epoch 5 resets the window
    assert stopper.best == 0.39 and stopper.best_epoch == 5 and stopped_at == 8


@pytest.fixture(scope="module")
def init_record(tmp_path_factory):
    from multiarg.io import save_torch

    path = tmp_path_factory.mktemp("init") / "init.pt"
    save_torch(make_initial_inner(2, "pretrained", 0, 16, 2, MapConfig(resolution=4), PretrainConfig(steps=20)), path)
    return path


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _session2(out_dir, mnist_pt, init_record, stop_after=None, epochs=4, augment="none"):
    cfg = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (8, 8), inner_hidden=16)
    train_cfg = TrainConfig(seed=3, max_epochs=epochs, patience=10, batch_size=32, augment=augment, crop_pad=2)
    return train_session(2, cfg, train_cfg, data_path=mnist_pt, out_dir=out_dir, data_split=SPLIT,
                         init_path=init_record, stop_after=stop_after)


def test_augmentation_crops_within_the_padding_and_flips_half_the_images():
    x = torch.rand(500, 2, 6, 6)
    out = augment_batch(x, "crop_flip", 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, augment_batch(x, "crop_flip", 2, torch.Generator().manual_seed(0)))
    padded, draws = F.pad(x, (2,) * 4), Counter()
    for i in range(len(x)):
        windows = {(dy, dx): padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)}
        match = [(shift, flip) for shift, w in windows.items() for flip in (False, True)
                 if torch.equal(w.flip(-1) if flip else w, out[i])]
        assert len(match) == 1, i  # exactly one shift of the zero-padded image, mirrored or not
        draws.update(match)
    assert len({shift for shift, _ in draws}) == 25  # every shift up to 2 pixels each way is drawn
    assert 0.4 < sum(n for (_, flip), n in draws.items() if flip) / len(x) < 0.6
    assert augment_batch(x, "none", 2, torch.Generator()) is x
    with pytest.raises(ValueError, match="augment must be one of"):
        TrainConfig(seed=0, max_epochs=1, augment="mixup")


@pytest.mark.parametrize("augment", ["none", "crop_flip"])
def test_resume_after_kill_reproduces_an_uninterrupted_run(tmp_path, mnist_pt, init_record, augment):
    straight = _session2(tmp_path / "straight", mnist_pt, init_record, augment=augment)
    killed = tmp_path / "killed"
    assert _session2(killed, mnist_pt, init_record, stop_after=2, augment=augment) == {}
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    resumed = _session2(killed, mnist_pt, init_record, augment=augment)
    assert not (killed / "checkpoint.pt").exists()
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    a, b = _read(tmp_path / "straight" / "metrics.csv"), _read(killed / "metrics.csv")
    assert [{k: r[k] for k in r if k != "seconds"} for r in a] == [{k: r[k] for k in r if k != "seconds"} for r in b]
    snaps_a, snaps_b = load_torch(tmp_path / "straight" / "snapshots.pt"), load_torch(killed / "snapshots.pt")
    assert snaps_a["epochs"] == snaps_b["epochs"] == [0, 1, 2, 3, 4]
    assert torch.equal(snaps_a["snapshots"][-1]["net.0.weight"], snaps_b["snapshots"][-1]["net.0.weight"])
    if augment != "none":  # the augmentation reached the batches: the run differs from a plain one
        plain = _session2(tmp_path / "plain", mnist_pt, init_record)["state_dict"]
        assert any(not torch.equal(v, plain[k]) for k, v in straight["state_dict"].items())


def test_resume_between_the_best_epoch_and_early_stopping_keeps_both(tmp_path, mnist_pt, init_record):
    """Killed after the best epoch but before the window runs out, a resumed run must still know which epoch was
    best and how many have not improved since: it stops at the same epoch and restores the same weights."""
    cfg = ModelConfig("mlp", "arg2", (1, 28, 28), 10, (16, 16), inner_hidden=16, dropout=0.2)
    train_cfg = TrainConfig(seed=3, max_epochs=60, patience=4, batch_size=20, lr=3e-3)
    data_split = dict(val_size=200, split_seed=0, train_limit=200, test_limit=100)

    def run(out_dir, stop_after=None):
        return train_session(2, cfg, train_cfg, data_path=mnist_pt, out_dir=out_dir, data_split=data_split,
                             init_path=init_record, stop_after=stop_after)

    straight = run(tmp_path / "straight")
    best, stopped = straight["best_epoch"], straight["stopped_epoch"]
    assert 1 < best < stopped < train_cfg.max_epochs  # early stopping fired, a few epochs after the best
    killed = tmp_path / "killed"
    assert run(killed, stop_after=best + 1) == {}
    resumed = run(killed)
    assert (resumed["best_epoch"], resumed["stopped_epoch"]) == (best, stopped)
    assert all(torch.equal(v, resumed["state_dict"][k]) for k, v in straight["state_dict"].items())
    a, b = _read(tmp_path / "straight" / "metrics.csv"), _read(killed / "metrics.csv")
    assert [{k: r[k] for k in r if k != "seconds"} for r in a] == [{k: r[k] for k in r if k != "seconds"} for r in b]


def test_a_checkpoint_is_not_resumed_after_its_inner_net_changed(tmp_path, mnist_pt, init_record):
    """Snakemake reruns a job whose session-I input changed, but leaves its checkpoint in place."""
    from multiarg.io import save_torch

    init = tmp_path / "init.pt"
    init.write_bytes(init_record.read_bytes())
    assert _session2(tmp_path / "run", mnist_pt, init, stop_after=2) == {}
    other = make_initial_inner(2, "pretrained", 1, 16, 2, MapConfig(resolution=4), PretrainConfig(steps=20))
    save_torch(other, init)
    resumed = _session2(tmp_path / "run", mnist_pt, init)
    straight = _session2(tmp_path / "straight", mnist_pt, init)
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_compiled_training_keeps_the_eager_runs_dropout_masks_and_resumes_exactly(tmp_path, mnist_pt, init_record,
                                                                                  compile_mode):
    # dropout 0.5 throughout: had the compiled net drawn its own masks, the runs would part after one step
    eager = _session2(tmp_path / "eager", mnist_pt, init_record, epochs=2)
    compile_mode("default")
    run = tmp_path / "compiled"
    assert _session2(run, mnist_pt, init_record, stop_after=1, epochs=2) == {}
    compiled = _session2(run, mnist_pt, init_record, epochs=2)  # resumed after one epoch, compiled anew
    unbroken = _session2(tmp_path / "unbroken", mnist_pt, init_record, epochs=2)
    for key, value in eager["state_dict"].items():
        torch.testing.assert_close(compiled["state_dict"][key], value, rtol=1e-4, atol=1e-5)
        assert torch.equal(compiled["state_dict"][key], unbroken["state_dict"][key]), key
    for want, got in zip(_read(tmp_path / "eager" / "metrics.csv"), _read(run / "metrics.csv")):
        for column in ("train_loss", "val_loss", "test_loss"):
            assert float(got[column]) == pytest.approx(float(want[column]), rel=1e-4)
    with pytest.raises(ValueError, match="compile mode"):
        compile_mode("max-autotune")


def test_compiled_training_with_inductors_own_random_numbers_parts_from_the_eager_run(tmp_path, mnist_pt, init_record,
                                                                                     compile_mode, monkeypatch):
    """The test above can fail: without ``fallback_random`` the compiled net draws other dropout masks."""
    import torch._inductor.config

    eager = _session2(tmp_path / "eager", mnist_pt, init_record, epochs=2)
    compile_mode("default")
    monkeypatch.setattr(torch._inductor.config, "fallback_random", False)
    compiled = _session2(tmp_path / "compiled", mnist_pt, init_record, epochs=2)
    assert max((compiled["state_dict"][k] - v).abs().max().item() for k, v in eager["state_dict"].items()) > 1e-3


def test_training_on_the_chunked_kernel_follows_the_eager_run(tmp_path, mnist_pt, init_record, monkeypatch):
    monkeypatch.setitem(chunked.CHUNKS, "cpu", 100)  # several chunks a layer, with tails (batch 32 x 8 units)
    eager = _session2(tmp_path / "eager", mnist_pt, init_record, epochs=2)
    previous = set_kernel("chunked")
    try:
        run = _session2(tmp_path / "chunked", mnist_pt, init_record, epochs=2)
    finally:
        set_kernel(previous)
    for key, value in eager["state_dict"].items():
        torch.testing.assert_close(run["state_dict"][key], value, rtol=1e-4, atol=1e-5)
    for want, got in zip(_read(tmp_path / "eager" / "metrics.csv"), _read(tmp_path / "chunked" / "metrics.csv")):
        for column in ("train_loss", "val_loss", "test_loss"):
            assert float(got[column]) == pytest.approx(float(want[column]), rel=1e-4)


def test_session3_freezes_the_inner_net_and_reinitialises_the_outer(tmp_path, mnist_pt, init_record):
    _session2(tmp_path / "s2", mnist_pt, init_record, epochs=2)
    s2_model, _ = load_model(tmp_path / "s2" / "model.pt")
    cfg = s2_model.cfg
    record = train_session(3, cfg, TrainConfig(seed=3, max_epochs=2, batch_size=32), data_path=mnist_pt,
                           out_dir=tmp_path / "s3", data_split=SPLIT, source_model=tmp_path / "s2" / "model.pt")
    s3_model, _ = load_model(tmp_path / "s3" / "model.pt")
    for key, value in s2_model.inner.state_dict().items():
        assert torch.equal(value, s3_model.inner.state_dict()[key])
    assert record["session"] == 3 and len(_read(tmp_path / "s3" / "metrics.csv")) == 2
    # re-initialised, not trained on: a session-II model with the same inner net and another outer one ends alike
    source = load_torch(tmp_path / "s2" / "model.pt")
    other = {k: v if "inner." in k else v + 1.0 for k, v in source["state_dict"].items()}  # the inner net: shared
    (tmp_path / "other").mkdir()
    save_torch({**source, "state_dict": other}, tmp_path / "other" / "model.pt")
    again = train_session(3, cfg, TrainConfig(seed=3, max_epochs=2, batch_size=32), data_path=mnist_pt,
                          out_dir=tmp_path / "s3-other", data_split=SPLIT, source_model=tmp_path / "other" / "model.pt")
    assert again["state_dict"].keys() == record["state_dict"].keys()
    for key, value in record["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value), key


def test_metrics_have_every_column(tmp_path, mnist_pt, init_record):
    _session2(tmp_path, mnist_pt, init_record, epochs=1)
    rows = _read(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                             "seconds"]
    assert 0 <= float(rows[0]["test_acc"]) <= 1


def test_divergence_fails_loudly(tmp_path, mnist_pt):
    splits = split(load_prepared(mnist_pt), **SPLIT)
    model = OuterNet(ModelConfig("mlp", "relu", (1, 28, 28), 10, (8,)))
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(model, splits, TrainConfig(seed=0, max_epochs=1), tmp_path / "ckpt.pt", fingerprint="x",
            device=torch.device("cpu"))
    assert not (tmp_path / "ckpt.pt").exists()


@pytest.mark.parametrize("change", [{"max_epochs": 0}, {"patience": 0}, {"batch_size": 0}, {"lr": 0.0}])
def test_settings_that_would_train_nothing_are_refused(change):
    with pytest.raises(ValueError, match="must be >= 1, lr > 0"):
        TrainConfig(**{"seed": 0, "max_epochs": 1, **change})


def test_training_without_a_validation_set_is_refused(tmp_path, mnist_pt):
    splits = split(load_prepared(mnist_pt), **{**SPLIT, "val_size": 0})
    with pytest.raises(ValueError, match="the val split is empty"):
        fit(OuterNet(ModelConfig("mlp", "relu", (1, 28, 28), 10, (8,))), splits, TrainConfig(seed=0, max_epochs=1),
            tmp_path / "ckpt.pt", fingerprint="x", device=torch.device("cpu"))


def test_an_inner_net_of_another_shape_than_the_config_is_refused(init_record):
    """Its model.pt would record the config's shape and fail to load."""
    inner = load_inner(load_torch(init_record))  # 16 hidden units
    with pytest.raises(ValueError, match=r"are \(2, 16, 2\); arg2 with inner_hidden 64 and inner_depth 2 needs"):
        OuterNet(ModelConfig("mlp", "arg2", (1, 28, 28), 10, (8,)), inner=inner)


def _cli_train(out_dir, mnist_pt, init_record):
    import sys

    return [sys.executable, "-m", "multiarg", "--threads", "1", "train", "--session", "2", "--data", str(mnist_pt),
            "--dataset", "mnist", "--activation", "arg2", "--seed", "5", "--out-dir", str(out_dir),
            "--init", str(init_record), "--max-epochs", "12", "--patience", "100", "--batch-size", "32",
            "--val-size", "100", "--train-limit", "600", "--test-limit", "100", "--device", "cpu",
            "--arch", "mlp", "--widths", "8,8", "--inner-hidden", "16"]


@pytest.fixture(scope="module")
def uninterrupted_cli_run(tmp_path_factory, mnist_pt, init_record):
    import subprocess

    out = tmp_path_factory.mktemp("straight")
    subprocess.run(_cli_train(out, mnist_pt, init_record), check=True, capture_output=True)
    return out


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])  # SLURM preemption / time limit send SIGTERM
def test_killed_cli_job_resumes_to_the_uninterrupted_result(tmp_path, mnist_pt, init_record, signal_name,
                                                            uninterrupted_cli_run):
    import signal
    import subprocess
    import time

    killed = tmp_path / "killed"
    job = subprocess.Popen(_cli_train(killed, mnist_pt, init_record), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(getattr(signal, signal_name))
    assert job.wait() != 0
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    subprocess.run(_cli_train(killed, mnist_pt, init_record), check=True, capture_output=True)
    a, b = _read(uninterrupted_cli_run / "metrics.csv"), _read(killed / "metrics.csv")
    assert len(a) == 12
    assert [{k: r[k] for k in r if k != "seconds"} for r in a] == [{k: r[k] for k in r if k != "seconds"} for r in b]
    sa, sb = load_torch(uninterrupted_cli_run / "model.pt"), load_torch(killed / "model.pt")
    assert all(torch.equal(v, sb["state_dict"][k]) for k, v in sa["state_dict"].items())


def _bias_model():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.bias.zero_()
    return model


def _tiny_splits():
    # val and test differ in size so a fake run_epoch can tell the two evaluation passes apart
    return {"train": (torch.zeros(4, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)),
            "val": (torch.zeros(3, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long)),
            "test": (torch.zeros(5, 2, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))}


@pytest.mark.parametrize("restore_best", [True, False])
def test_fit_ends_at_the_best_validation_epoch(tmp_path, monkeypatch, restore_best):
    """Validation accuracy 0.5, 0.9, 0.6, 0.7: epoch 2 is best; each training epoch adds 1 to the bias."""
    import multiarg.train as train

    val_acc = [0.5, 0.9, 0.6, 0.7]

    def fake_epoch(model, x, y, batch_size, optimizer=None, *args, **kwargs):
        if optimizer is not None:
            with torch.no_grad():
                model.bias.add_(1.0)
            return 1.0, 0.5
        epoch = int(model.bias[0].item())
        return 1.0, val_acc[epoch - 1] if len(x) == 3 else 0.1

    monkeypatch.setattr(train, "run_epoch", fake_epoch)
    cfg = TrainConfig(seed=0, max_epochs=4, restore_best=restore_best)
    result = fit(_bias_model(), _tiny_splits(), cfg, tmp_path / "ckpt.pt", fingerprint="x",
                 device=torch.device("cpu"))
    assert result["best_epoch"] == 2 and result["stopped_epoch"] == 4
    assert [r["val_acc"] for r in result["history"]] == val_acc
    assert torch.equal(result["state"]["bias"], torch.full((2,), 2.0 if restore_best else 4.0))


@pytest.mark.parametrize("arithmetic", ["kernel", "compile", "tf32"])
def test_a_checkpoint_is_not_resumed_under_another_kernel_or_compile_mode(tmp_path, monkeypatch, caplog, request,
                                                                          arithmetic):
    """The kernel, the compile mode and TF32 change the rounding, so they are part of the checkpoint's fingerprint."""
    import logging

    import multiarg.train as train
    from multiarg.activations import get_kernel
    from multiarg.runtime import set_tf32
    from multiarg.train import fit_run

    def run(stop_after):
        torch.manual_seed(0)
        splits = {k: (torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8), torch.randint(0, 2, (n,)))
                  for k, n in (("train", 16), ("val", 8), ("test", 8))}
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        return fit_run(model, splits, TrainConfig(seed=0, max_epochs=3, batch_size=8), tmp_path, {"run": "x"},
                       device=torch.device("cpu"), stop_after=stop_after)

    assert run(stop_after=1)["stopped_epoch"] == 1
    if arithmetic == "kernel":
        monkeypatch.setattr("multiarg.activations._kernel", get_kernel())  # restored after the test
        set_kernel("chunked")
    elif arithmetic == "compile":
        monkeypatch.setattr(train, "_compile", "default")
        monkeypatch.setattr(train, "compiled", lambda model: model)  # the fingerprint matters here, not Inductor
    else:
        request.addfinalizer(lambda: set_tf32(("conv",)))
        set_tf32(("conv", "matmul"))
    with caplog.at_level(logging.INFO, logger="multiarg.train"):
        again = run(stop_after=1)
    assert "belongs to a different configuration" in caplog.text and "resumed" not in caplog.text
    assert again["stopped_epoch"] == 1 and len(again["history"]) == 1  # started over, not at epoch 2


def test_tf32_is_set_from_the_command_line_and_recorded():
    import argparse

    from multiarg.cli import _tf32
    from multiarg.runtime import set_tf32, tf32_ops

    assert _tf32("none") == () and _tf32("conv,matmul") == ("conv", "matmul")
    with pytest.raises(argparse.ArgumentTypeError):
        _tf32("conv,fp16")
    try:
        set_tf32(("matmul",))
        assert tf32_ops() == ["matmul"] and torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
        set_tf32(())
        assert tf32_ops() == []
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # PyTorch's newer API, as a library may set it
        assert tf32_ops() == ["conv"]
    finally:
        set_tf32(("conv",))
    assert tf32_ops() == ["conv"]  # PyTorch's default
