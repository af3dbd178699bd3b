import csv
import json

import pytest
import torch
from torch import nn

from multiarg.activations import MultiArgActivation
from multiarg.io import load_torch, save_torch
from multiarg.pretrain import MapConfig, PretrainConfig, make_initial_inner
from multiarg.recurrent import RecurrentNet, matched_hidden, recurrent_param_count
from multiarg.rnn_study import RNNConfig, rnn_rows, train_rnn, write_rnn_table
from multiarg.train import TrainConfig


def test_two_arg_units_receive_the_feedforward_and_the_recurrent_drive():
    torch.manual_seed(0)
    net = RecurrentNet("arg2", hidden=5, inner_hidden=8)
    net.norm = nn.Identity()  # expose the raw drives
    seen = []
    net.act.register_forward_pre_hook(lambda mod, inp: seen.append(mod.arguments(inp[0]).clone()))
    x = torch.rand(3, 1, 28, 28)
    net(x)
    seq = net.standardize(x).reshape(3, 28, 28)
    h = torch.zeros(3, 5)
    for t, args in enumerate(seen):
        ff, rec = net.feedforward(seq[:, t]), net.recurrent(h)
        # unit c of sample b gets (ff[b, c], rec[b, c])
        torch.testing.assert_close(args, torch.stack([ff, rec], -1).reshape(-1, 2))
        h = net.inner(torch.stack([ff, rec], -1))
    assert len(seen) == 28 and isinstance(net.act, MultiArgActivation)


@pytest.mark.parametrize("sequence,steps", [("rows", 28), ("pixels", 784)])
def test_sequences_have_the_configured_length(sequence, steps):
    net = RecurrentNet("relu", hidden=4, sequence=sequence)
    calls = []
    net.act.register_forward_hook(lambda *a: calls.append(1))
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10) and len(calls) == steps


@pytest.mark.parametrize("activation", ["relu", "tanh", "arg1", "gamma"])
def test_baselines_are_parameter_matched_to_the_two_arg_rnn(activation):
    ref = RecurrentNet("arg2", hidden=32, inner_hidden=16)
    hidden = matched_hidden(ref, activation, inner_hidden=16)
    count = sum(p.numel() for p in RecurrentNet(activation, hidden, inner_hidden=16).parameters())
    target = sum(p.numel() for p in ref.parameters())
    assert hidden > 32 and abs(count - target) / target < 0.02
    # the other way round: a learned net matched to a ReLU one, counted with the inner net it is built with
    relu = RecurrentNet("relu", hidden=64)
    learned = RecurrentNet("arg2", matched_hidden(relu, "arg2", inner_hidden=32), inner_hidden=32)
    total = sum(p.numel() for p in relu.parameters())
    assert abs(sum(p.numel() for p in learned.parameters()) - total) / total < 0.02


@pytest.mark.parametrize("activation", ["arg2", "arg1", "relu", "tanh", "gamma"])
@pytest.mark.parametrize("sequence", ["rows", "pixels"])
def test_closed_form_parameter_count_matches_torch(activation, sequence):
    net = RecurrentNet(activation, hidden=7, sequence=sequence, inner_hidden=9, inner_depth=3)
    expected = sum(p.numel() for p in net.parameters())
    assert recurrent_param_count(activation, 7, net.feedforward.in_features, 10, 9, 3) == expected


def test_the_two_arg_rnn_learns_rows_resumes_and_reports_its_curvature(mnist_pt, tmp_path):
    init = make_initial_inner(2, "pretrained", 0, 16, 2, MapConfig(), PretrainConfig(steps=100))
    save_torch(init, tmp_path / "init.pt")
    cfg = RNNConfig("arg2", hidden=32, inner_hidden=16)
    kwargs = dict(data_path=mnist_pt, out_dir=tmp_path / "run", init_path=tmp_path / "init.pt", bins=32,
                  data_split=dict(val_size=200, split_seed=0, train_limit=1000, test_limit=100))
    train_cfg = TrainConfig(seed=0, max_epochs=5, batch_size=32, lr=3e-3)
    assert train_rnn(cfg, train_cfg, stop_after=2, **kwargs) == {}  # a kill after two epochs
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    summary = train_rnn(cfg, train_cfg, **kwargs)
    history = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(history) == 5 and float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    assert summary["val_acc"] > 0.3  # chance: 0.1
    assert summary["units"] == 32 and summary["params"] == recurrent_param_count("arg2", 32, 28, 10, 16)
    assert 0.5 < summary["r2"] <= 1 and -0.5 <= summary["curvature_normalised"] <= 0.5
    assert summary["initial_curvature"] != summary["curvature"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    record = load_torch(tmp_path / "run" / "model.pt")
    assert record["analysis"]["learned"]["mask"].sum() > 0 and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_rnn_table_counts_negative_curvatures_and_spreads_over_seeds(tmp_path):
    base = {"units": 10, "params": 100, "seconds_per_epoch": 1.0, "sequence": "rows", "reference": "arg2",
            "hidden": 10, "data_note": ""}
    # the last net is flat: its curvature is rounding noise, a tie left out of n; the first began as a ridge
    runs = [{**base, "activation": "arg2", "seed": s, "test_acc": acc, "curvature": c, "curvature_sign": sign,
             "curvature_tie": "" if sign else "flat", "curvature_normalised": c, "initial_curvature": 0.1,
             "initial_curvature_sign": int(s > 0), "initial_curvature_tie": "" if s else "ridge", "r2": 0.9}
            for s, (acc, c, sign) in enumerate([(0.5, -0.2, -1), (0.7, -0.1, -1), (0.6, 0.3, 1), (0.6, -1e-30, 0)])]
    runs.append({**base, "activation": "relu", "seed": 0, "test_acc": 0.4})
    rows = {r["activation"]: r for r in rnn_rows(runs)}
    assert rows["arg2"]["k_negative"] == "2/3 (+1 flat)" and rows["arg2"]["initial_k_negative"] == "0/3 (+1 ridge)"
    assert rows["arg2"]["test_acc"] == "60.00" and rows["arg2"]["test_acc_sd"] == "8.16"
    assert rows["arg2"]["p_two_sided"] == "1" and rows["relu"]["k_negative"] == "" and rows["relu"]["seeds"] == 1
    summaries = []
    for i, run in enumerate(runs):
        summaries.append(tmp_path / f"{i}.json")
        summaries[-1].write_text(json.dumps(run))
    write_rnn_table([str(p) for p in summaries], str(tmp_path / "rnn.csv"), "test", mass=0.95)
    assert "over the 95% input region" in (tmp_path / "rnn.md").read_text()  # the configured mass, not 99%
