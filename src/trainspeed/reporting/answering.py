"""After training, in the report: how fast each device answers with the trained network.

The seeds stop at "inference is where a trained model spends its life"; these are its figures:
one image at a time (what a person waiting sees) and a large batch (what a server sees).
"""

from __future__ import annotations

from ..results import CaseResult
from .document import Table
from .matching import Comparison, engine_name
from .units import capital, milliseconds, rate_text, times

INFERENCE_EXPLAINED = (
    "Inference is timed after training, with the trained network, dropout off and in the case's precision: from "
    "uint8 pixels on the device to class probabilities, as model.predict does, every call on its own with the "
    "device's work finished at both ends. One image: the median and 95th percentile over up to 200 calls, each a "
    "different test image. Large batch: images per second over a few calls. The first call of each size pays for "
    "kernel selection and allocations once and is shown apart (first call).")


def _answered(case: CaseResult | None) -> bool:
    return case is not None and case.ok and case.inference is not None


def subject(comparison: Comparison, key, training: bool = False) -> str:
    """The model and each axis that tells its row apart: 'the cnn trained at batch 32 in bf16' (or,
    where the verb is already train, 'the cnn at batch 32 in bf16 as 2 ranks (gloo)')."""
    subject = f"the {key.model}"
    if len(comparison.batch_sizes()) > 1:
        subject += f" {'' if training else 'trained '}at batch {key.batch_size}"
    if comparison.shows_precision():
        subject += f" in {key.precision}"
    if comparison.shows_engine():
        subject += f" with {engine_name(key.engine)}"
    if key.backend:
        subject += f" as {key.ranks()}"
    return subject


def inference_headlines(comparison: Comparison) -> list[str]:
    """'The NVIDIA H100 answers one image of the cnn in 0.210 ms vs 1.31 ms on the CPU; at batch 1024 it
    classifies 410,000 images/s vs 5,200.' One per row, against the baseline where both answered."""
    sentences = []
    for key, cells in comparison.rows.items():
        base = cells.get(comparison.baseline or "")
        named = subject(comparison, key)
        others = [column for column in comparison.columns
                  if column != comparison.baseline and _answered(cells.get(column))]
        if not _answered(base):
            continue
        mine = base.inference
        if not others:
            batch = (f" and classifies {rate_text(mine.images_per_s)} images/s at batch {mine.batch_size}"
                     if mine.images_per_s else "")
            sentences.append(capital(f"{comparison.who(comparison.baseline)} answers one image of {named} in "
                                     f"{milliseconds(mine.latency_median_s)} (95th percentile "
                                     f"{milliseconds(mine.latency_p95_s)}){batch}."))
            continue
        for column in others:
            theirs = cells[column].inference
            sentence = (f"{comparison.who(column)} answers one image of {named} in "
                        f"{milliseconds(theirs.latency_median_s)} vs {milliseconds(mine.latency_median_s)} on "
                        f"{comparison.short(comparison.baseline)}")
            if theirs.images_per_s and mine.images_per_s:
                same = theirs.batch_size == mine.batch_size
                sentence += (f"; at batch {theirs.batch_size} it classifies {rate_text(theirs.images_per_s)} "
                             f"images/s vs {rate_text(mine.images_per_s)}"
                             + ("" if same else f" (at batch {mine.batch_size})"))
            sentences.append(capital(sentence + "."))
    return sentences


def inference_table(comparison: Comparison, lead, lead_headers: list[str]) -> Table | None:
    """Every case that timed inference: latency (median, p95, first call) and throughput, and the
    ratios against the baseline device's."""
    rows = []
    # The ratios only where a device answered beside the baseline's.
    compared = any(_answered(cells.get(comparison.baseline or "")) and _answered(cells.get(column))
                   for cells in comparison.rows.values() for column in comparison.columns
                   if column != comparison.baseline)
    for key, cells in comparison.rows.items():
        base = cells.get(comparison.baseline or "")
        for column in comparison.columns:
            case = cells.get(column)
            if not _answered(case):
                continue
            figures = case.inference
            one, batch = "-", "-"
            if _answered(base) and column != comparison.baseline:
                one = times(base.inference.latency_median_s / figures.latency_median_s)
                if figures.images_per_s and base.inference.images_per_s:
                    batch = times(figures.images_per_s / base.inference.images_per_s)
            rows.append(lead(comparison, key) + [
                column, milliseconds(figures.latency_median_s), milliseconds(figures.latency_p95_s),
                milliseconds(figures.first_latency_s), rate_text(figures.images_per_s),
                str(figures.batch_size) if figures.images_per_s else "-", milliseconds(figures.first_batch_s)]
                + ([one, batch] if compared else [])
                + ([figures.note or ""] if any(c.inference and c.inference.note for c in _every(comparison)) else []))
    if not rows:
        return None
    headers = lead_headers + ["device", "1 image median", "1 image p95", "1 image first call", "images/s",
                              "at batch", "batch first call"]
    headers += [f"1 image faster than {comparison.baseline}", f"batch faster than {comparison.baseline}"] if (
        compared) else []
    if any(c.inference and c.inference.note for c in _every(comparison)):
        headers.append("note")
    return Table(headers, rows, "the trained network answering: one image per call, and a large batch",
                 text_columns=len(lead_headers) + 1)


def _every(comparison: Comparison) -> list[CaseResult]:
    return [case for cells in comparison.rows.values() for case in cells.values() if _answered(case)]


def saved_models(comparison: Comparison) -> list[str]:
    """'cnn on cpu: models/cnn-cpu-cifar10-b32-fp32.safetensors', for every network a run saved."""
    return [f"{case.key.label()}{' on ' + machine if machine else ''}: {name}"
            for (machine, result) in comparison.sources for case in result.cases for name in case.model_files]
