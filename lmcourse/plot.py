"""One plotting style for the whole course, and the helpers every chapter uses.

``setup`` applies the style. A plotting cell makes its figure with ``figure``,
draws on the axes, and ends with ``finish(fig)``, which shows the figure once and
returns nothing, so no ``<Figure ...>`` text lands in the stored outputs.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

#: The course's colours, in the order lines are drawn.
PALETTE = ["#2a6f97", "#e07a5f", "#3d9970", "#8e5ea2", "#f2a541", "#5c677d", "#c44536", "#1b998b"]

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the house style to every later figure."""
    plt.rcParams.update(STYLE)


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None,
           **kwargs):
    """A figure and its axes, sized for the book's column: ``fig, ax = figure()``."""
    w = width if width is not None else 6.4 if ncols == 1 else min(4.0 * ncols, 12.0)
    h = height if height is not None else 3.6 * nrows
    return plt.subplots(nrows, ncols, figsize=(w, h), layout="constrained", **kwargs)


def finish(fig) -> None:
    """Show a finished figure once and close it (no figure repr in the outputs)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(fig)
    plt.close(fig)
