"""The CIFAR-10-C steps chained on real CIFAR-10 images: generate, evaluate networks, summarise, draw."""
import csv
import json
import types

import pytest
import torch

from multiarg import cifar10c
from multiarg.io import save_torch, sha256, write_json
from multiarg.models import ModelConfig, OuterNet


@pytest.fixture(scope="module")
def prepared(cifar_images, tmp_path_factory):
    """A prepared-data file holding 48 real test images (the same format as ``multiarg.data.prepare``)."""
    out = tmp_path_factory.mktemp("data") / "cifar10.pt"
    x = torch.from_numpy(cifar_images).permute(0, 3, 1, 2).contiguous()
    y = torch.arange(len(x)) // 5
    save_torch({"train_x": x, "train_y": y, "test_x": x, "test_y": y, "mean": torch.full((3,), 0.5),
                "std": torch.full((3,), 0.25), "name": "cifar10", "source": "mirror-jpeg", "exact": False,
                "note": "JPEG copy"}, out)
    write_json({"sha256": sha256(out)}, out.with_suffix(".manifest.json"))
    return out


def _model(root, activation, seed):
    folder = root / f"runs/cifar10/cnn/{activation}/seed{seed}/session3"
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    cfg = ModelConfig("cnn", activation, (3, 32, 32), 10, (4, 4), inner_hidden=8, pool_after=(0, 1))
    model = OuterNet(cfg, torch.full((3,), 0.5), torch.full((3,), 0.25))
    save_torch({"model_config": cfg.to_dict(), "state_dict": model.state_dict(), "data_note": "JPEG copy"},
               folder / "model.pt")
    return folder


def test_generate_evaluate_summarise_and_draw(prepared, tmp_path):
    c_dir = tmp_path / "cifar10c"
    manifest = cifar10c.prepare(prepared, c_dir, seed=0, source="auto", test_limit=20, split_seed=0)
    assert manifest["source"] == "generated" and manifest["n"] == 20  # the JPEG copy is never the published set
    errors = []
    for activation in ("arg2", "relu"):
        for seed in (0, 1):
            folder = _model(tmp_path, activation, seed)
            out = folder / "cifar10c_errors.json"
            cifar10c.evaluate_run(folder / "model.pt", prepared, c_dir, out, batch_size=16, device="cpu",
                                  test_limit=20, split_seed=0)
            result = json.loads(out.read_text())
            assert len(result["corrupted"]) == 15 and all(len(v) == 5 for v in result["corrupted"].values())
            assert all(0 <= e <= 1 for row in result["corrupted"].values() for e in row.values())
            errors.append(str(out))
    rows = cifar10c.write_summary_table(errors, str(tmp_path / "cifar10c.csv"), "TEST")
    relu_mce = next(r for r in rows if r["activation"] == "relu" and r["corruption"] == "mCE")
    assert float(relu_mce["ce_pct"]) == pytest.approx(100, abs=0.05)  # the reference against itself
    with open(tmp_path / "cifar10c.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 16
    assert "generated" in (tmp_path / "cifar10c.md").read_text()
    cifar10c.fig9(types.SimpleNamespace(errors=errors, out=str(tmp_path / "fig9.pdf"), scale="TEST"))
    assert (tmp_path / "fig9.png").stat().st_size > 10_000


def test_each_architecture_is_scored_against_its_own_reference(tmp_path, cifar10c_errors):
    def run(arch, activation, seed, error):
        return cifar10c_errors(tmp_path, arch, activation, seed, error)

    paths = [run("mlp", "relu", 0, 0.8), run("mlp", "arg2", 0, 0.6), run("cnn", "relu", 0, 0.4),
             run("cnn", "relu", 1, 0.4), run("cnn", "arg2", 0, 0.3), run("cnn", "arg2", 1, 0.5)]
    summary = cifar10c.summarise(paths)
    assert set(summary) == {("mlp", "relu"), ("mlp", "arg2"), ("cnn", "relu"), ("cnn", "arg2")}
    assert summary["mlp", "arg2"]["mce"]["mean"] == pytest.approx(0.6 / 0.8)
    assert summary["cnn", "arg2"]["mce"]["values"] == pytest.approx([0.3 / 0.4, 0.5 / 0.4])
    assert summary["mlp", "relu"]["n_seeds"] == 1 and summary["cnn", "relu"]["n_seeds"] == 2
    with pytest.raises(ValueError, match="no evaluated mlp runs"):
        cifar10c.summarise(paths[1:])
    rows = cifar10c.write_summary_table(paths, str(tmp_path / "cifar10c.csv"), "TEST")
    mce = {(r["arch"], r["activation"]): r for r in rows if r["corruption"] == "mCE"}
    # mCE per seed: arg2 75% and 125%, ReLU 100% twice: Welch's t on a difference of 0
    arg2 = mce["cnn", "arg2"]
    assert arg2["mce_vs_relu_p"] == "1" and arg2["mce_verdict"].startswith("not significant")
    assert mce["mlp", "arg2"]["mce_verdict"].startswith("n/a") and mce["cnn", "relu"]["mce_verdict"] == ""
    cifar10c.fig9(types.SimpleNamespace(errors=paths, out=str(tmp_path / "fig9.pdf"), scale="TEST"))
    assert (tmp_path / "fig9.png").stat().st_size > 10_000


def test_a_significantly_lower_mce_than_relus_reads_lower(tmp_path, cifar10c_errors):
    from scipy import stats

    arg2, relu = (0.30, 0.31, 0.32), (0.40, 0.41)
    paths = ([cifar10c_errors(tmp_path, "cnn", "arg2", s, e) for s, e in enumerate(arg2)]
             + [cifar10c_errors(tmp_path, "cnn", "relu", s, e) for s, e in enumerate(relu)])
    rows = cifar10c.write_summary_table(paths, str(tmp_path / "cifar10c.csv"), "TEST")
    mce = next(r for r in rows if r["activation"] == "arg2" and r["corruption"] == "mCE")
    reference = sum(relu) / len(relu)
    welch = stats.ttest_ind([e / reference for e in arg2], [e / reference for e in relu], equal_var=False)
    assert mce["mce_verdict"] == "lower mCE than ReLU, Welch p < 0.05"
    assert mce["mce_vs_relu_p"] == f"{welch.pvalue:.3g}" and mce["mce_vs_relu_ci95"].startswith("[-")
    worse = ([cifar10c_errors(tmp_path / "worse", "cnn", "arg2", s, e) for s, e in enumerate((0.50, 0.51, 0.52))]
             + [cifar10c_errors(tmp_path / "worse", "cnn", "relu", s, e) for s, e in enumerate(relu)])
    worse = cifar10c.write_summary_table(worse, str(tmp_path / "w.csv"), "T")
    assert next(r for r in worse if r["activation"] == "arg2" and r["corruption"] == "mCE")["mce_verdict"] == (
        "higher mCE than ReLU, Welch p < 0.05")


def test_the_relative_mce_is_tested_apart_from_the_mce(tmp_path, cifar10c_errors):
    """Equal corrupted errors but a worse clean error: the mCE ties ReLU's, the relative mCE is far below it."""
    paths = []
    for act, clean in (("arg2", (0.35, 0.36, 0.37)), ("relu", (0.20, 0.21, 0.22))):
        for seed, (corrupted, c) in enumerate(zip((0.40, 0.41, 0.42), clean)):
            path = cifar10c_errors(tmp_path, "cnn", act, seed, corrupted)
            run = json.loads(open(path).read())
            with open(path, "w") as fh:
                json.dump({**run, "clean": c}, fh)
            paths.append(path)
    rows = cifar10c.write_summary_table(paths, str(tmp_path / "cifar10c.csv"), "TEST")
    mce = next(r for r in rows if r["activation"] == "arg2" and r["corruption"] == "mCE")
    assert mce["mce_verdict"].startswith("not significant") and float(mce["mce_vs_relu_p"]) == 1
    # relative CE per seed: (0.40 + i/100 - (0.35 + i/100)) / (0.41 - 0.21) = 25%, against ReLU's 100% +- 5%
    assert float(mce["relative_ce_pct"]) == pytest.approx(25.0, abs=0.05)
    assert mce["relative_mce_verdict"] == "lower relative mCE than ReLU, Welch p < 0.05"
    assert float(mce["relative_mce_vs_relu_p"]) < 1e-3 and mce["relative_mce_vs_relu_ci95"].startswith("[-")
    relu = next(r for r in rows if r["activation"] == "relu" and r["corruption"] == "mCE")
    assert relu["relative_mce_verdict"] == relu["mce_verdict"] == ""


def test_evaluation_refuses_published_labels_of_another_test_order(prepared, tmp_path):
    import numpy as np

    from multiarg import corruptions, data
    from multiarg.data import DataError

    c_dir = tmp_path / "cifar10c"
    manifest = cifar10c.prepare(prepared, c_dir, seed=0, source="generate", test_limit=20, split_seed=0)
    x, y = data.test_subset(data.load_prepared(prepared), 20, 0)

    def publish(labels):
        np.save(c_dir / "labels.npy", np.tile(labels, len(manifest["severities"])))
        write_json({**manifest, "labels": {"file": "labels.npy", "sha256": sha256(c_dir / "labels.npy")}},
                   c_dir / corruptions.MANIFEST)

    publish(y.numpy())
    corruptions.check_scored_images(c_dir, x, y)
    publish(y.numpy()[::-1].copy())
    folder = _model(tmp_path, "relu", 0)
    with pytest.raises(DataError, match="not those of the test set being scored"):
        cifar10c.evaluate_run(folder / "model.pt", prepared, c_dir, folder / "e.json", batch_size=16, device="cpu",
                              test_limit=20, split_seed=0)


def test_evaluation_refuses_a_benchmark_of_other_images(prepared, tmp_path):
    c_dir = tmp_path / "cifar10c"
    cifar10c.prepare(prepared, c_dir, seed=0, source="generate", test_limit=10, split_seed=0)
    folder = _model(tmp_path, "relu", 0)
    from multiarg.data import DataError

    with pytest.raises(DataError, match="holds 10 images per set but the runs are scored on 20"):
        cifar10c.evaluate_run(folder / "model.pt", prepared, c_dir, folder / "e.json", batch_size=16, device="cpu",
                              test_limit=20, split_seed=0)
    with pytest.raises(DataError, match="generated from other test images than those being scored"):
        cifar10c.evaluate_run(folder / "model.pt", prepared, c_dir, folder / "e.json", batch_size=16, device="cpu",
                              test_limit=10, split_seed=1)
    with pytest.raises(DataError, match="download needs the exact CIFAR-10 test set"):
        cifar10c.prepare(prepared, c_dir, seed=0, source="download", test_limit=None, split_seed=0)


def test_fig9_reads_n_a_for_an_undefined_relative_mce_and_keeps_its_legend_off_the_bars(tmp_path, cifar10c_errors):
    from multiarg.figures import COLORS, plt

    paths = [cifar10c_errors(tmp_path, "cnn", act, 0, error) for act, error in (("relu", 0.4), ("arg2", 0.3))]
    summary = {act: s for (_, act), s in cifar10c.summarise(paths).items()}
    summary["arg2"]["relative_mce"]["mean"] = float("nan")  # as where ReLU's corrupted error never exceeds its clean
    fig, ax = plt.subplots()
    cifar10c._ce_panel(ax, summary, COLORS, "cnn")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["arg2: mCE 75.0%, rel. mCE n/a (n=1)", "relu: mCE 100.0%, rel. mCE 100.0% (n=1)"]
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1
    plt.close(fig)
