import pytest
import torch
from torch import nn

from multiarg.activations import MultiArgActivation
from multiarg.data import load_prepared, split
from multiarg.recurrent import RecurrentNet, matched_hidden
from multiarg.train import TrainConfig, fit


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
    hidden = matched_hidden(ref, activation)
    count = sum(p.numel() for p in RecurrentNet(activation, hidden, inner_hidden=16).parameters())
    target = sum(p.numel() for p in ref.parameters())
    assert hidden > 32 and abs(count - target) / target < 0.02


def test_the_two_arg_rnn_learns_sequential_mnist_rows(mnist_pt, tmp_path):
    prepared = load_prepared(mnist_pt)
    splits = split(prepared, val_size=200, split_seed=0, train_limit=1000, test_limit=100)
    torch.manual_seed(0)
    net = RecurrentNet("arg2", hidden=32, inner_hidden=16, mean=prepared["mean"], std=prepared["std"])
    result = fit(net, splits, TrainConfig(seed=0, max_epochs=5, batch_size=32, lr=3e-3), tmp_path / "ckpt.pt",
                 fingerprint="rnn", device=torch.device("cpu"))
    history = result["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["val_acc"] > 0.3  # chance: 0.1
