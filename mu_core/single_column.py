"""A multi-panel figure as one column of panels, for phones (the book serves it below 600 px).

A figure drawn two or more panels wide (the paper's Figures 1 and 2, say) scaled to a phone's
width shrinks its text to a third; scrolled sideways, it hides its decisive panel. ``stack``
renders each panel of such a figure on its own, at the figure's full size, and puts them one
under the other, followed by the figure's legend in one column. A panel that relied on its
neighbours for its labels (a column title shown only on the top row, a row label shown only on
the left, method names shown only under the bottom row, a row title in the right margin) gets
them, so each panel reads alone.
"""
from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib import image

DPI = 150  # a 4-inch panel is 600 px wide: a phone shows it about 1:1.5, its 11-pt text at 10 px or more


def _grid(fig):
    """The visible panels of ``fig`` as {(row, column): axes}, rows from the top."""
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    if not axes:
        return {}
    xs = sorted({round(a.get_position().x0, 2) for a in axes})
    ys = sorted({round(a.get_position().y1, 2) for a in axes}, reverse=True)
    return {(ys.index(round(a.get_position().y1, 2)), xs.index(round(a.get_position().x0, 2))): a for a in axes}


def _complete_labels(grid: dict) -> None:
    """Give each panel the labels its neighbours carried for it (see the module's docstring)."""
    rows = {r for r, _ in grid}
    for (r, c), ax in grid.items():
        top = grid.get((min(rr for rr, cc in grid if cc == c), c))
        left = grid.get((r, min(cc for rr, cc in grid if rr == r)))
        right = grid.get((r, max(cc for rr, cc in grid if rr == r)))
        bottom = grid.get((max(rr for rr, cc in grid if cc == c), c))
        title = ax.get_title() or (top.get_title() if top is not None else "")
        margin = [t.get_text() for t in right.texts if t.get_text()] if right is not None and right is not ax else []
        if margin and len(rows) > 1:
            title = ", ".join([title] + margin) if title else ", ".join(margin)
        ax.set_title(title)
        if not ax.get_ylabel() and left is not None:
            ax.set_ylabel(left.get_ylabel())
        shown = [t.get_text() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        if (not shown or not ax.xaxis.get_tick_params().get("labelbottom", True)) and bottom is not None and bottom is not ax:
            names = [t.get_text() for t in bottom.get_xticklabels()]
            ax.tick_params(axis="x", labelbottom=True)
            ax.set_xticks(bottom.get_xticks(), names, rotation=40, ha="right", rotation_mode="anchor")


def _png(fig, bbox) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches=bbox, facecolor="white")
    buf.seek(0)
    return image.imread(buf, format="png")


def stack(fig, wrap: int = 48) -> bytes | None:
    """PNG bytes of ``fig``'s panels in one column, its legends (in one column, labels wrapped at
    ``wrap`` characters) below them; None when the figure is already one panel wide. ``fig`` is
    changed (labels completed, legends redrawn): save the wide figure first."""
    from matplotlib.transforms import Bbox
    grid = _grid(fig)
    if len({c for _, c in grid}) < 2:
        return None
    _complete_labels(grid)
    legends = list(fig.legends)
    for leg in legends:  # one column of wrapped labels, as narrow as a panel
        handles, names = leg.legend_handles, [textwrap.fill(t.get_text(), wrap) for t in leg.get_texts()]
        leg.remove()
        fig.legend(handles, names, loc="center", ncol=1, frameon=False)
    renderer = fig.canvas.get_renderer()
    parts = []
    order = sorted(grid)
    everything = list(grid.values()) + list(fig.legends)
    for item in [grid[k] for k in order] + list(fig.legends):
        for other in everything:
            other.set_visible(other is item)
        fig.canvas.draw()
        box = item.get_tightbbox(renderer).transformed(fig.dpi_scale_trans.inverted())
        parts.append(_png(fig, Bbox.from_extents(box.x0 - 0.08, box.y0 - 0.08, box.x1 + 0.08, box.y1 + 0.08)))
    width = max(p.shape[1] for p in parts)
    column = np.ones((sum(p.shape[0] for p in parts), width, 4), dtype=parts[0].dtype)
    y = 0
    for p in parts:  # each part centred on a white column
        x = (width - p.shape[1]) // 2
        column[y:y + p.shape[0], x:x + p.shape[1], :p.shape[2]] = p
        y += p.shape[0]
    out = io.BytesIO()
    image.imsave(out, column, format="png")
    return out.getvalue()
