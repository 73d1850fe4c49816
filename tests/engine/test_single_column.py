"""The phone rendering of a figure (mu_core.single_column): every panel, one under another, each
carrying the labels its neighbours carried for it."""
import io

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import image

from mu_core import single_column

matplotlib.use("Agg")  # a test process, not a notebook


def _grid_figure():
    fig, axes = plt.subplots(2, 2, figsize=(8, 6))
    for r in range(2):
        for c in range(2):
            ax = axes[r][c]
            ax.bar(["a", "b", "c"], [1 + r, 2 + c, 3])
            ax.set_title(["retain", "forget"][c] if r == 0 else "")
            ax.set_ylabel(f"setting {r}" if c == 0 else "")
            if r == 0:
                ax.tick_params(axis="x", labelbottom=False)
    fig.legend([plt.Line2D([], [])], ["a long legend entry that would not fit beside a phone-wide panel at all"],
               loc="lower center", ncol=2)
    return fig, axes


def test_a_grid_becomes_one_column_of_fully_labelled_panels():
    fig, axes = _grid_figure()
    wide_w = fig.get_size_inches()[0] * single_column.DPI
    png = single_column.stack(fig)
    assert png is not None
    h, w = image.imread(io.BytesIO(png)).shape[:2]
    assert w < 0.62 * wide_w  # one panel wide (a panel is half the figure), not the whole figure
    assert h > 3.5 * (fig.get_size_inches()[1] / 2 * single_column.DPI)  # four panels and the legend, stacked
    # each panel reads alone: its column's title, its row's label, the method names under it
    assert axes[1][1].get_title() == "forget" and axes[1][0].get_title() == "retain"
    assert axes[0][1].get_ylabel() == "setting 0" and axes[1][1].get_ylabel() == "setting 1"
    assert [t.get_text() for t in axes[0][0].get_xticklabels()] == ["a", "b", "c"]
    assert axes[0][0].xaxis.get_tick_params()["labelbottom"]
    # the legend in one column, its label wrapped to a panel's width
    assert all("\n" in t.get_text() for t in fig.legends[0].get_texts())
    plt.close(fig)


def test_a_figure_one_panel_wide_needs_no_second_rendering():
    fig, axes = plt.subplots(3, 1, figsize=(4, 6))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
    assert single_column.stack(fig) is None
    plt.close(fig)
