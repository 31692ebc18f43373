"""Heatmaps of the decoder's cross-attention, drawn with matplotlib's Agg backend.

matplotlib comes with the `plot` extra; it is imported when a plot is drawn.

Shape letters: L decoder layers, H heads, T target tokens, S source tokens.
"""

import math
import os

import numpy as np

from keras_transformer.optional import import_optional


def select_layer(weights: np.ndarray, layer: int) -> np.ndarray:
    """The (H, T, S) weights of one decoder layer of (L, H, T, S), Python indexing."""
    num_layers = weights.shape[0]
    if not -num_layers <= layer < num_layers:
        raise ValueError(
            f"--layer must be in [{-num_layers}, {num_layers - 1}] for a decoder of "
            f"{num_layers} layers. Received: {layer}"
        )
    return weights[layer]


def plot_cross_attention(
    source_tokens: list[str],
    target_tokens: list[str],
    weights: np.ndarray,
    output: str | os.PathLike,
    average_heads: bool = False,
    title: str = "",
) -> None:
    """Draws one heatmap per head, or one of the heads' mean, into an image file.

    Args:
        source_tokens: the S column labels.
        target_tokens: the T row labels.
        weights: (H, T, S) attention weights of one layer.
        output: the image path; its suffix (".png", ".pdf", ".svg") picks the format.
        average_heads: one panel of the mean over heads instead of H panels.
        title: the figure title.

    Raises:
        MissingExtraError: matplotlib is not installed (the `plot` extra).
    """
    backend_agg = import_optional("matplotlib.backends.backend_agg", "plot", "the attention plot")
    figure_module = import_optional("matplotlib.figure", "plot", "the attention plot")
    panels = weights.mean(axis=0, keepdims=True) if average_heads else weights  # (H, T, S)
    names = ["mean over heads"] if average_heads else [f"head {h}" for h in range(len(panels))]
    columns = min(len(panels), 4)
    rows = math.ceil(len(panels) / columns)
    cell = 0.35
    panel_width = max(3.0, cell * len(source_tokens) + 1.5)
    panel_height = max(2.5, cell * len(target_tokens) + 1.5)
    figure = figure_module.Figure(figsize=(panel_width * columns, panel_height * rows), layout="constrained")
    backend_agg.FigureCanvasAgg(figure)
    for index, (panel, name) in enumerate(zip(panels, names)):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = axes.imshow(panel, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=8)
        axes.set_yticks(range(len(target_tokens)), target_tokens, fontsize=8)
        axes.set_title(name, fontsize=9)
    figure.colorbar(image, ax=figure.axes, shrink=0.8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(output, dpi=120)
