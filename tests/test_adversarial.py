import pytest
import torch
from torch import nn

from multiarg import train
from multiarg.adversarial import (
    AdversarialConfig,
    PGDTraining,
    autoattack_eval,
    defaults,
    make_adversary,
    pgd_attack,
)
from multiarg.data import load_prepared, split
from multiarg.models import ModelConfig, OuterNet
from multiarg.train import TrainConfig, _to_input

@pytest.fixture(scope="module")
def mnist(mnist_pt):
    return split(load_prepared(mnist_pt), val_size=64, split_seed=0, train_limit=600, test_limit=64)


@pytest.fixture(scope="module")
def model(mnist):
    """A small MLP trained for a few epochs on 600 real MNIST images (about 90% test accuracy)."""
    torch.set_num_threads(1)  # as conftest does for each test: module fixtures run before that
    torch.manual_seed(0)
    net = OuterNet(ModelConfig("mlp", "relu", (1, 28, 28), 10, (32,), dropout=0.2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(4):
        train.run_epoch(net, *mnist["train"], 32, opt, torch.Generator().manual_seed(epoch))
    return net.eval()


def _loss(net, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(net(x), y).item()


def test_pgd_raises_the_loss_and_stays_in_the_ball(model, mnist):
    x, y = _to_input(mnist["test"][0]), mnist["test"][1]
    model.train()
    gen = torch.Generator().manual_seed(0)
    adv = pgd_attack(model, x, y, eps=0.1, step_size=0.02, steps=10, generator=gen)
    assert model.training and all(p.requires_grad for p in model.parameters())  # mode and weights restored
    model.eval()
    assert _loss(model, adv, y) > 2 * _loss(model, x, y) + 0.5
    assert (model(adv).argmax(1) == y).float().mean() < (model(x).argmax(1) == y).float().mean() - 0.2
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(pgd_attack(model, x, y, eps=0.0, step_size=0.01, steps=3), x)


def test_pgd_is_determined_by_its_generator(model, mnist):
    x, y = _to_input(mnist["test"][0][:16]), mnist["test"][1][:16]
    state = torch.get_rng_state()
    runs = [pgd_attack(model, x, y, 0.2, 0.05, 3, True, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), state)  # random starts come from the generator only
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_defaults_and_eps_ramp():
    mnist, cifar = defaults("mnist"), defaults("cifar10")
    assert (mnist.eps, mnist.step_size, mnist.steps) == (0.3, 0.01, 40)
    assert (cifar.eps, cifar.step_size, cifar.steps) == (8 / 255, 2 / 255, 7)
    assert [mnist.scale(e) for e in (1, 5, 10, 50)] == [0.1, 0.5, 1.0, 1.0] and cifar.scale(1) == 1.0
    assert defaults("mnist", steps=5).steps == 5
    with pytest.raises(ValueError):
        defaults("svhn")
    with pytest.raises(ValueError):
        AdversarialConfig(eps=0.1, step_size=0.01, steps=3, clean_fraction=1.5)


def test_pgd_training_hook_per_split():
    cfg = AdversarialConfig(eps=0.2, step_size=0.05, steps=2, warmup_epochs=2, clean_fraction=0.5)
    net = OuterNet(ModelConfig("mlp", "relu", (1, 4, 4), 3, (8,)))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    hook = PGDTraining(cfg, seed=0)
    first = hook(1, "train")(net, x, y)
    assert torch.equal(first[:4], x[:4])  # the clean half
    assert (first[4:] - x[4:]).abs().max() <= 0.1 + 1e-6  # half the eps in epoch 1 of the ramp
    assert torch.equal(first, hook(1, "train")(net, x, y))
    val = hook(1, "val")(net, x, y)  # full eps, nothing left clean
    assert 0.1 < (val - x).abs().max() <= 0.2 + 1e-6
    assert PGDTraining(AdversarialConfig(0.2, 0.05, 2, robust_eval=False), 0)(1, "val") is None
    # the test set stays clean unless asked for: it is a curve, and validation does the selecting
    assert hook(1, "test") is None
    test = PGDTraining(AdversarialConfig(0.2, 0.05, 2, robust_eval=False, robust_test=True), 0)(1, "test")(net, x, y)
    assert 0.1 < (test - x).abs().max() <= 0.2 + 1e-6


def test_adversarial_epoch_changes_the_weights(mnist):
    torch.manual_seed(1)
    net = OuterNet(ModelConfig("mlp", "arg2", (1, 28, 28), 10, (8,), inner_hidden=8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = mnist["train"][0][:128], mnist["train"][1][:128]
    perturb = PGDTraining(defaults("mnist", steps=3), seed=0)(1, "train")
    loss, acc = train.run_epoch(net, x, y, 32, opt, torch.Generator().manual_seed(0), perturb)
    assert loss > 0 and 0 <= acc <= 1
    assert all(not torch.equal(before[k], v) for k, v in net.state_dict().items() if "weight" in k)


def test_adversarial_fit_resumes_exactly(mnist, tmp_path):
    splits = {**mnist, "train": (mnist["train"][0][:96], mnist["train"][1][:96])}
    cfg = TrainConfig(seed=0, max_epochs=3, batch_size=32)
    adv = AdversarialConfig(eps=0.3, step_size=0.1, steps=2, warmup_epochs=2)

    def run(ckpt, stop_after=None):
        torch.manual_seed(0)
        net = OuterNet(ModelConfig("mlp", "relu", (1, 28, 28), 10, (16,)))
        return train.fit(net, splits, cfg, ckpt, fingerprint="adv", device=torch.device("cpu"),
                          stop_after=stop_after, perturb=PGDTraining(adv, cfg.seed))

    straight = run(tmp_path / "a.pt")
    assert not run(tmp_path / "b.pt", stop_after=1)["finished"]
    resumed = run(tmp_path / "b.pt")
    for key, value in straight["state"].items():
        assert torch.equal(value, resumed["state"][key]), key
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in straight["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed["history"]]


def test_standard_autoattack_is_configured_as_in_the_paper(model):
    aa = make_adversary(model, eps=0.3, version="standard")
    assert aa.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa.norm == "Linf" and aa.epsilon == 0.3 and aa.apgd.n_restarts == 1 and aa.apgd.n_iter == 100
    assert aa.apgd_targeted.n_target_classes == 9 and aa.fab.n_target_classes == 9
    assert aa.square.n_queries == 5000
    with pytest.raises(ValueError):
        make_adversary(model, eps=0.3, version="rand")


def test_standard_autoattack_runs_until_no_point_is_left(model, mnist):
    x, y = mnist["test"][0][:8], mnist["test"][1][:8]
    result = autoattack_eval(model, x, y, eps=0.3, batch_size=8)  # APGD-CE breaks this small net at eps 0.3
    assert result["complete"] and result["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert result["robust_correct"] == 0 and result["flipped"]["apgd-ce"] == result["clean_correct"] > 0
    with pytest.raises(ValueError):
        autoattack_eval(model, x, y, eps=0.3, attacks=["apgd-ce", "pgd"])


def test_autoattack_subset_counts_each_attack_and_matches_one_call(model, mnist, tmp_path):
    from pyautoattack import AutoAttack

    x, y = mnist["test"][0][:24], mnist["test"][1][:24]
    result = autoattack_eval(model, x, y, eps=0.04, attacks=["apgd-t", "apgd-ce"], batch_size=32, seed=3,
                             log_path=tmp_path / "aa.log")
    assert result["attacks"] == ["apgd-ce", "apgd-t"] and not result["complete"]
    assert result["robust_correct"] <= result["clean_correct"] == round(result["clean_accuracy"] * 24)
    assert sum(result["flipped"].values()) == result["clean_correct"] - result["robust_correct"]
    assert 0 < result["flipped"]["apgd-ce"] < result["clean_correct"]  # eps leaves work for APGD-T
    assert "apgd-t" in (tmp_path / "aa.log").read_text()
    # one AutoAttack call running both attacks leaves the same points robust
    aa = AutoAttack(model, eps=0.04, version="standard", seed=3)
    aa.attacks_to_run = ["apgd-ce", "apgd-t"]
    _, y_adv = aa.run_standard_evaluation(_to_input(x), y, batch_size=32)
    assert (y_adv == y).nonzero().flatten().tolist() == result["robust_points"]
