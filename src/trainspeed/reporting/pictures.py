"""The report's charts, each with its caption: times, speedups, throughput, learning, accuracy."""

from __future__ import annotations

import re
from pathlib import Path

from ..results import CaseResult
from . import charts
from .comparison import Comparison
from .document import Image
from .scaling import scaling_chart
from .worth import system_chart


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _pick_case(cells: dict[str, CaseResult], fields: tuple[str, ...]) -> tuple[str, CaseResult] | None:
    for column, case in cells.items():
        if case.ok and all(getattr(case, name) for name in fields):
            return column, case
    return None


def chart_blocks(comparison: Comparison, found, data, out_dir: Path) -> list[Image]:
    """Every chart the results allow, in reading order; `found` are the crossovers (batch sizes)."""
    images = []
    path = charts.epoch_time_chart(comparison, out_dir / "epoch_time.png")
    if path:
        left_out = " Cases whose files trained on different numbers of images are left out: see the speedup per image."
        images.append(Image(path, "seconds per epoch by model and device",
                            "Steady seconds per epoch: the shorter the bar, the faster the device."
                            + (left_out if any(comparison.per_image(key) for key in comparison.rows) else "")))
    path = charts.speedup_chart(comparison, out_dir / "speedup.png")
    if path:
        per_image = (" Bars marked per image compare images/s: those files trained on different numbers of images."
                     if any(comparison.per_image(key) for key in comparison.rows) else "")
        images.append(Image(path, f"speedup over {comparison.baseline}",
                            f"How many times faster than {comparison.baseline} each device trains.{per_image}"))
    path = scaling_chart([case for _, result in comparison.sources for case in result.cases], out_dir / "scaling.png")
    if path:
        images.append(Image(path, "images per second against devices in the group",
                            "Data-parallel throughput against the number of devices; the dotted line is N times "
                            "one device, what perfect scaling would give."))
    path = system_chart(comparison, out_dir / "system.png")
    if path:
        images.append(Image(path, "power and GPU utilization while training",
                            "What each device drew over its timed epochs, sampled every 0.1 s (NVML for a GPU, RAPL "
                            "for a CPU; estimates are not drawn), and how busy each GPU was."))
    path = charts.throughput_chart(comparison, found, out_dir / "throughput_by_batch.png")
    if path:
        images.append(Image(path, "images per second by batch size",
                            "Throughput as the batch grows: GPUs need large batches to pay off."))
    several_batches = len(comparison.batch_sizes()) > 1
    taken: set[str] = set()
    for key in comparison.rows:
        name = _slug(key.model + (f"-batch-{key.batch_size}" if several_batches else "")
                     + (f"-{key.precision}" if comparison.shows_precision() else "")
                     + (f"-{key.engine}" if comparison.shows_engine() else ""))
        # Rows that differ in data set or image counts alone would otherwise overwrite each other's chart.
        name = next(n for n in (name if i == 1 else f"{name}-{i}" for i in range(1, len(taken) + 2)) if n not in taken)
        taken.add(name)
        path = charts.learning_curves_chart(comparison, key, out_dir / f"learning_{name}.png")
        if path:
            subject = comparison.named(key)
            several = sum(1 for case in comparison.rows[key].values() if case.ok and case.history) > 1
            images.append(Image(path, f"learning curves of the {subject}", "Training loss and accuracy per epoch"
                                + ("; the devices' curves should follow each other." if several else ".")))
    images += _accuracy_pictures(comparison, data, out_dir)
    return images


def _accuracy_pictures(comparison: Comparison, data, out_dir: Path) -> list[Image]:
    if data is None or not data.accuracy_meaningful:
        return []
    images = []
    sample = data.sample_images()
    for model in comparison.models():
        # One picture per model: the first batch size's first successful case.
        key = next(k for k in comparison.rows if k.model == model)
        chosen = _pick_case(comparison.rows[key], ("sample_predictions",))
        trained = comparison.named(key)
        if sample is not None and chosen:
            column, case = chosen
            path = charts.prediction_grid_chart(
                sample, data.sample_labels, case.sample_predictions, data.classes,
                f"The {trained} trained on {column}: test images, true and guessed class",
                out_dir / f"predictions_{_slug(model)}.png")
            images.append(Image(path, f"test images with the {trained}'s predictions",
                                "Wrong guesses are framed and titled in red."))
        chosen = _pick_case(comparison.rows[key], ("confusion_matrix",))
        if chosen:
            column, case = chosen
            path = charts.confusion_chart(case.confusion_matrix, data.classes,
                                          f"{trained} on {column}: test accuracy {case.test_accuracy:.1%}",
                                          out_dir / f"confusion_{_slug(model)}.png")
            images.append(Image(path, f"confusion matrix of the {trained}",
                                "Rows: the true class; columns: the guess. The diagonal is right."))
    return images


