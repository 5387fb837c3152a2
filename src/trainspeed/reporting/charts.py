"""The report's pictures, drawn with matplotlib's object API on the Agg canvas (no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..cases import Workload
from ..output import replacing
from .comparison import Comparison, Crossover
from .units import plain_name, seconds_phrase, times

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
WRONG = "#C00000"
RIGHT = "#006400"


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    with replacing(path) as temporary:
        figure.savefig(temporary, facecolor="white", format=path.suffix.lstrip(".") or "png")
    return path


def row_label(key: Workload, comparison: Comparison) -> str:
    """A group of bars: the model, each axis that varies, and 'per image' where epochs are not compared."""
    per_image = ["per image"] if comparison.per_image(key) else []
    return "\n".join([key.model, *comparison.distinctions(key), *per_image])


def _legend_name(comparison: Comparison, column: str) -> str:
    name = comparison.device_names.get(column)
    return f"{column} ({plain_name(name)})" if name else column


def _bars_width(groups: int, series: int) -> float:
    """Inches: room under each group for its two-line label however few bars it has, plus the legend's."""
    return max(6.0, groups * max(1.1, 0.65 * series) + 3.5)


def _grouped_bars(axes, groups: list[str], series: dict[str, list[float | None]], value_format) -> None:
    count = max(len(series), 1)
    width = 0.8 / count
    positions = np.arange(len(groups))
    for index, (name, values) in enumerate(series.items()):
        offsets = positions - 0.4 + width * (index + 0.5)
        heights = [v if v is not None else 0.0 for v in values]
        bars = axes.bar(offsets, heights, width * 0.92, label=name, color=PALETTE[index % len(PALETTE)])
        labels = [value_format(v) if v is not None else "n/a" for v in values]
        axes.bar_label(bars, labels=labels, padding=2, fontsize=8)
    axes.set_xticks(positions, groups)
    axes.margins(y=0.15)
    axes.spines[["top", "right"]].set_visible(False)


def epoch_time_chart(comparison: Comparison, path: Path) -> Path | None:
    """Seconds per epoch of the rows whose epochs are alike; None if there are none."""
    keys = [key for key in comparison.rows if not comparison.per_image(key)]
    if not keys:
        return None
    series = {
        _legend_name(comparison, column): [
            case.steady_epoch_s if (case := comparison.rows[key].get(column)) and case.ok else None
            for key in keys
        ]
        for column in comparison.columns
    }
    figure = new_figure(_bars_width(len(keys), len(series)), 4.2)
    axes = figure.add_subplot()
    _grouped_bars(axes, [row_label(k, comparison) for k in keys], series, seconds_phrase)
    axes.set_ylabel("seconds per epoch (steady; lower is better)")
    axes.set_title("Training time per epoch")
    axes.legend(title="device", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(figure, path)


def speedup_chart(comparison: Comparison, path: Path) -> Path | None:
    others = [c for c in comparison.columns if c != comparison.baseline]
    keys = list(comparison.rows)
    series = {_legend_name(comparison, column): [comparison.speedup(key, column) for key in keys] for column in others}
    if not any(v for values in series.values() for v in values):
        return None
    figure = new_figure(_bars_width(len(keys), len(series)), 4.2)
    axes = figure.add_subplot()
    _grouped_bars(axes, [row_label(k, comparison) for k in keys], series, times)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.axhline(1.0, color="#555555", linewidth=1, linestyle="--")
    axes.text(axes.get_xlim()[1], 1.0, f"  {comparison.baseline} = 1x", va="center", fontsize=8, color="#555555")
    per_image = any(comparison.per_image(key) for key in keys)
    axes.set_ylabel(f"times faster than {comparison.baseline}"
                    + ("\n(per epoch; in images/s where marked per image)" if per_image else " (higher is better)"))
    axes.set_title(f"Speedup over {comparison.baseline}")
    axes.legend(title="device", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(figure, path)


def learning_curves_chart(comparison: Comparison, key: Workload, path: Path) -> Path | None:
    cases = {c: case for c, case in comparison.rows[key].items() if case.ok and case.history}
    if not cases:
        return None
    figure = new_figure(9.0, 3.6)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, (column, case) in enumerate(cases.items()):
        epochs = [record.epoch for record in case.history]
        style = {"color": PALETTE[index % len(PALETTE)], "marker": "o", "label": _legend_name(comparison, column),
                 "linestyle": ["-", "--", ":", "-."][index % 4]}
        loss_axes.plot(epochs, [r.train_loss for r in case.history], **style)
        accuracy_axes.plot(epochs, [100 * r.train_accuracy for r in case.history], **style)
    for axes, label in ((loss_axes, "training loss"), (accuracy_axes, "training accuracy (%)")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(alpha=0.3)
    accuracy_axes.legend(title="device", frameon=False)
    subject = ", ".join([key.model, *comparison.distinctions(key, batch=True)])
    figure.suptitle(f"{subject}: the devices should learn the same thing" if len(cases) > 1
                    else f"{subject}: training loss and accuracy")
    return save(figure, path)


def prediction_grid_chart(images: np.ndarray, labels: list[int], predictions: list[int], class_names: list[str],
                          title: str, path: Path) -> Path:
    """The seeds' plot_sample: each image with its true class and the model's guess."""
    count = min(len(images), len(predictions), 16)
    columns = 4
    rows = -(-count // columns)
    figure = new_figure(8.0, 2.2 * rows + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.axis("off")
        if index >= count:
            continue
        image = images[index]
        axes.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                    interpolation="nearest")
        truth, guess = class_names[labels[index]], class_names[predictions[index]]
        right = labels[index] == predictions[index]
        verdict = "right" if right else "WRONG"
        axes.set_title(f"true: {truth}\nguess: {guess} ({verdict})", fontsize=8, color=RIGHT if right else WRONG)
        if not right:
            axes.axis("on")
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_edgecolor(WRONG)
                spine.set_linewidth(3)
    figure.suptitle(title)
    return save(figure, path)


def confusion_chart(matrix: list[list[int]], class_names: list[str], title: str, path: Path) -> Path:
    counts = np.asarray(matrix)
    size = len(class_names)
    figure = new_figure(max(5.5, 0.55 * size + 2.5), max(5.0, 0.5 * size + 2.0))
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    threshold = counts.max() / 2 if counts.size else 0
    for (true, guess), value in np.ndenumerate(counts):
        axes.text(guess, true, str(value), ha="center", va="center", fontsize=7,
                  color="white" if value > threshold else "black")
    axes.set_xticks(range(size), class_names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(size), class_names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8, label="test images")
    return save(figure, path)


def throughput_chart(comparison: Comparison, found: list[Crossover], path: Path) -> Path | None:
    """Images per second against batch size, a line per device, with the crossover marked."""
    if len(comparison.batch_sizes()) < 2:
        return None
    figure = new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    line = 0
    for model, precision in comparison.model_precisions():
        keys = sorted(k for k in comparison.rows if (k.model, k.precision) == (model, precision))
        name = f"{model} {precision}" if comparison.shows_precision() else model
        for column in comparison.columns:
            points = [(k.batch_size, case.images_per_s) for k in keys
                      if (case := comparison.rows[k].get(column)) and case.ok and case.images_per_s]
            if not points:
                continue
            sizes, rates = zip(*points, strict=True)
            axes.plot(sizes, rates, marker="o", color=PALETTE[line % len(PALETTE)],
                      linestyle=["-", "--", ":", "-."][line % 4], label=f"{name} on {column}")
            line += 1
    for crossing in found:
        if crossing.faster_from is not None and crossing.faster_from != crossing.batch_sizes[0]:
            axes.axvline(crossing.faster_from, color="#555555", linestyle=":", linewidth=1)
            axes.annotate(f"{crossing.column} overtakes\nfor the {crossing.model}", (crossing.faster_from, 0),
                          xycoords=("data", "axes fraction"), xytext=(4, 8), textcoords="offset points", fontsize=8)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(comparison.batch_sizes(), [str(b) for b in comparison.batch_sizes()])
    axes.xaxis.set_minor_formatter(NullFormatter())
    # A log axis labels itself 10^3 by default: a reader wants 1,000 images/s, and 2,000 and 5,000 between.
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("batch size")
    axes.set_ylabel("training images per second (higher is better)")
    axes.set_title("Throughput by batch size")
    axes.grid(alpha=0.3, which="both")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(figure, path)
