from types import SimpleNamespace

import numpy as np

from multiarg.analysis_figures import _ecdf, fig8
from multiarg.figures import COLORS, LABELS, layout_under_row_titles, mean_band, plt, row_title, save, stamp
from multiarg.nonlinearities import AnalysisConfig, analyse_function, save_records
from test_nonlinearities import gaussian_hist

LONG_SCALE = "a scale line long enough to wrap " * 8


def test_the_stamp_sits_under_every_label_and_wraps_to_the_drawn_width():
    fig, axes = plt.subplots(2, 1, figsize=(3, 5))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("a long x label, as under an accuracy panel")
    fig.tight_layout()
    stamp(fig, LONG_SCALE, {"a data note"})
    renderer = fig.canvas.get_renderer()
    text = fig.texts[-1]
    box = text.get_window_extent(renderer)
    lowest = min(ax.get_tightbbox(renderer).y0 for ax in axes)
    assert box.y1 < lowest  # display coordinates: y grows upward
    assert text.get_text().count("\n") >= 2 and box.width <= fig.get_tightbbox(renderer).width * fig.dpi * 1.1
    plt.close(fig)


def test_row_titles_do_not_spread_the_columns():
    fig, axes = plt.subplots(2, 4, figsize=(8, 4))
    for ax in axes.flat:
        ax.imshow(np.eye(4))
    titles = [row_title(axes[i, 0], "a row title much wider than the one panel it starts above") for i in range(2)]
    layout_under_row_titles(fig, titles)
    renderer = fig.canvas.get_renderer()
    gap = axes[0, 1].get_window_extent(renderer).x0 - axes[0, 0].get_window_extent(renderer).x1
    assert gap < 0.3 * axes[0, 0].get_window_extent(renderer).width
    assert all(title.get_in_layout() for title in titles)  # back in for the saved figure's bounds
    plt.close(fig)


def test_a_row_title_starts_at_the_figure_edge_so_one_narrow_column_still_holds_it():
    fig, axes = plt.subplots(2, 1, figsize=(4.5, 5))  # fig4's narrowest
    for ax in axes:
        ax.imshow(np.eye(4))
    title = row_title(axes[1], "b  pretrained random initial nonlinearity (black: 99% region of c)")  # fig4's widest
    layout_under_row_titles(fig, [title])
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert 0 < box.x0 < 0.1 * fig.dpi and box.x1 < fig.bbox.width  # on one line, inside the figure
    assert box.y0 > axes[1].get_window_extent().y1  # above its row
    plt.close(fig)


def _records(n_args: int, count: int) -> list[dict]:
    hist = gaussian_hist(n_args, 24 if n_args == 3 else 40, points=50_000)
    record = analyse_function(lambda x: x[..., 0] * x[..., 1], hist, AnalysisConfig(l_max=3))
    return [{**record, "kind": kind, "dataset": "mnist", "arch": "mlp", "seed": seed, "data_note": ""}
            for kind in ("learned", "xavier-init") for seed in range(count)]


def _draw_fig8(tmp_path, monkeypatch, records) -> list[str]:
    """fig8 of ``records``, written to ``tmp_path``; returns its panels' labels, read as it is saved."""
    save_records(records, "test", tmp_path / "nonlinearities.pt")
    labels, real_save = [], plt.Figure.savefig

    def keep_labels(fig, *args, **kwargs):  # called for the PDF, then the PNG
        labels[:] = (t.get_text() for ax in fig.axes for t in ax.texts)
        real_save(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep_labels)
    fig8(SimpleNamespace(analysis=str(tmp_path / "nonlinearities.pt"), out=str(tmp_path / "fig8.pdf")))
    assert (tmp_path / "fig8.png").stat().st_size > 0
    return [label for label in labels if label[1:3] == "  "]  # "a  ...": the panel labels


def test_fig8_draws_no_3_arg_panels_for_a_run_without_3_arg_nets(tmp_path, monkeypatch):
    labels = _draw_fig8(tmp_path, monkeypatch, _records(2, 2))
    assert labels == ["a  2-arg learned", "b  2-arg spectra (Hermite-Bessel)"]


def test_fig8_draws_both_arities_when_there_are_3_arg_nets(tmp_path, monkeypatch):
    labels = _draw_fig8(tmp_path, monkeypatch, _records(2, 2) + _records(3, 2))
    assert labels == ["a  2-arg learned", "b  3-arg learned, slice", "c  2-arg spectra (Hermite-Bessel)",
                      "d  3-arg spectra (solid harmonics)"]


def test_a_baselines_variants_are_told_apart_by_label_and_shade():
    """relu, relu-flops and relu-width share ReLU's hue: lighter FLOP-matched, darker at the reference's widths."""
    assert [LABELS[a] for a in ("relu", "relu-flops", "relu-width")] == [
        "ReLU", "ReLU, FLOP-matched", "ReLU, same widths"]
    assert sum(COLORS["relu-width"]) < sum(COLORS["relu"]) < sum(COLORS["relu-flops"])


def test_the_curvature_cdf_rises_from_zero_at_the_smallest_value():
    fig, ax = plt.subplots()
    _ecdf(ax, [{"curvature_normalised": k} for k in (0.3, -0.2, 0.1)], "three")
    (line,) = ax.lines
    x, y = line.get_data()
    assert list(x) == [-0.2, -0.2, 0.1, 0.3] and list(y) == [0, 1 / 3, 2 / 3, 1]
    assert line.get_drawstyle() == "steps-post" and line.get_label() == "three (n=3)"
    plt.close(fig)


def test_the_accuracy_band_is_the_sd_of_the_runs_going_and_absent_where_one_is_left():
    fig, ax = plt.subplots()
    mean_band(ax, [np.array([10.0, 20.0, 30.0]), np.array([14.0, 26.0])], "k", "two runs")
    mean_band(ax, [np.array([50.0, 60.0])], "r", "one run")
    (band,) = ax.collections  # the lone run draws its mean, and no band
    x, y = band.get_paths()[0].vertices.T
    assert set(x) == {1.0, 2.0}  # epoch 3 has one run left
    sd = np.std([[10, 20], [14, 26]], 0, ddof=1)
    assert np.allclose(sorted(set(y)), sorted({12 - sd[0], 12 + sd[0], 23 - sd[1], 23 + sd[1]}))
    assert [list(line.get_ydata()) for line in ax.lines] == [[12.0, 23.0, 30.0], [50.0, 60.0]]
    plt.close(fig)


def test_a_figure_drawn_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    """No creation date in the PDF: a figure redrawn from unchanged records does not change in git."""
    drawn = []
    for day, name in enumerate(("a", "b")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(86400 * day))  # the clock matplotlib would date the PDF by
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save(fig, tmp_path / f"{name}.pdf")
        drawn.append([(tmp_path / f"{name}.{ext}").read_bytes() for ext in ("pdf", "png")])
    assert drawn[0] == drawn[1]
