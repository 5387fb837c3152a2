"""The sentences and tables computed from a comparison: headlines, pivots and crossovers.

Pure functions of results: no plotting, no files, so every figure is testable by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..results import CaseResult
from .matching import Comparison, Pace, compare, engine_name, machine_label, pace
from .units import capital, caveats, faster_or_slower, seconds_phrase
from .verdicts import EngineEffect, PrecisionEffect, difference_half_width, engine_effects, precision_effects

# Callers have always found these here; they live with the matching and the verdicts.
__all__ = ["Comparison", "Crossover", "EngineEffect", "Pace", "Pivot", "PrecisionEffect", "compare", "crossovers",
           "difference_half_width", "engine_effects", "headlines", "machine_label", "pace", "pivots",
           "precision_effects"]


def _reason(comparison: Comparison) -> str:
    reason = comparison.sources[0][1].environment.get("no_gpu_reason")
    # After a colon: the reason holds parentheses of its own, and they must not nest.
    return f": {reason}" if reason else ""


def headlines(comparison: Comparison) -> list[str]:
    """The sentence the seeds wrote by hand, computed: one per model (and batch size if several)."""
    sentences = []
    several_batches = len(comparison.batch_sizes()) > 1
    for key, cells in comparison.rows.items():
        base = cells.get(comparison.baseline or "")
        at_batch = f" at batch {key.batch_size}" if several_batches else ""
        at_batch += f" in {key.precision}" if comparison.shows_precision() else ""
        at_batch += f" with {engine_name(key.engine)}" if comparison.shows_engine() else ""
        at_batch += f" as {key.ranks()}" if key.backend else ""
        where = "On this machine " if comparison.single_machine else ""
        others = [c for c in comparison.columns if c != comparison.baseline and c in cells and cells[c].ok]
        for column in comparison.columns:
            failed = cells.get(column)
            if failed is not None and not failed.ok:
                sentences.append(capital(f"{where}the {key.model}{at_batch} {failed.status} on "
                                         f"{comparison.who(column)}: {failed.error or 'no reason recorded'}."))
        if base is None or not base.ok:
            continue
        if not others:
            if comparison.single_machine:
                no_gpu = f"No GPU was measured on this machine{_reason(comparison)}."
                if len(comparison.columns) == 1 and no_gpu not in sentences:
                    sentences.insert(0, no_gpu)
                load = _caveats(comparison, [(comparison.baseline, base)])
                sentences.append(capital(f"{comparison.who(comparison.baseline)} trains the {key.model}{at_batch} in "
                                         f"{seconds_phrase(base.steady_epoch_s)} per epoch "
                                         f"({base.images_per_s:,.0f} images/s{load})."))
            continue
        for column in others:
            found = comparison.pace(key, column)
            if found is None:
                continue
            other = cells[column]
            pace_word = faster_or_slower(found.ratio)
            verdict = f"{pace_word} than {comparison.who(comparison.baseline)}"
            load = _caveats(comparison, [(column, other), (comparison.baseline, base)])
            if found.per_image:
                verdict += (f" per image ({other.images_per_s:,.0f} vs {base.images_per_s:,.0f} images/s; "
                            f"{image_counts(other, base)}, so epochs are not compared{load})")
            else:
                verdict += (f" ({seconds_phrase(other.steady_epoch_s)} vs {seconds_phrase(base.steady_epoch_s)} "
                            f"per epoch{load}{_within_noise(other, base)})")
            sentences.append(capital(f"{where}{comparison.who(column)} trains the {key.model}{at_batch} {verdict}."))
    return sentences


def _within_noise(case: CaseResult, other: CaseResult) -> str:
    """'; their noisy ranges overlap (…), so the difference is not a result', where it is so."""
    ranges = (case.steady_min_s, case.steady_max_s, other.steady_min_s, other.steady_max_s)
    if not (case.noisy or other.noisy) or None in ranges:
        return ""
    low, high, other_low, other_high = ranges
    if low > other_high or other_low > high:
        return ""
    return (f"; their steady epochs ranged {seconds_phrase(low)} to {seconds_phrase(high)} and "
            f"{seconds_phrase(other_low)} to {seconds_phrase(other_high)}, overlapping, so the difference is not "
            f"a result")


def image_counts(case: CaseResult, other: CaseResult) -> str:
    """'the runs trained on 500 and 2,000 images': why two cases are compared per image."""
    parts = []
    if case.train_images != other.train_images:
        parts.append(f"trained on {case.train_images:,} and {other.train_images:,} images")
    if case.test_images != other.test_images:
        parts.append(f"tested on {case.test_images:,} and {other.test_images:,}")
    return "the runs " + " and ".join(parts)


def _caveats(comparison: Comparison, cases: list[tuple[str, CaseResult]]) -> str:
    """'; the CPU was measured while other programs used the CPU: …' for the cases measured under load,
    after the cases whose time a budget projected."""
    note = caveats([(comparison.short(column), case) for column, case in cases])
    return f"; {note}" if note else ""


@dataclass
class Pivot:
    """The exercise's table: the varied thing as rows, the devices as columns, seconds per epoch."""

    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, dict[str, float | None]]]


def _hidden_layers(model: str) -> str | None:
    match = re.fullmatch(r"mlp:(\d+)", model)
    return match.group(1) if match else None


def pivots(comparison: Comparison) -> list[Pivot]:
    """A pivot per varied axis: batch sizes (one table per model), else models.

    Rows whose files trained on different numbers of images are left out: their epochs differ in size.
    """
    def steady(case: CaseResult | None) -> float | None:
        return case.steady_epoch_s if case is not None and case.ok else None

    tables = _engine_pivots(comparison, steady)
    if len(comparison.batch_sizes()) > 1:
        for model, precision in comparison.model_precisions():
            keys = [k for k in comparison.rows
                    if (k.model, k.precision) == (model, precision) and not comparison.per_image(k)]
            if not keys:
                continue
            rows = [(str(k.batch_size), {c: steady(comparison.rows[k].get(c)) for c in comparison.columns})
                    for k in keys]
            subject = f"{model} in {precision}" if comparison.shows_precision() else model
            tables.append(Pivot(f"{subject}: seconds per epoch by batch size", "batch size", comparison.columns, rows))
    elif comparison.single_machine and not tables:  # models or precisions; engines and comparisons have their own
        keys = [k for k in comparison.rows if not comparison.per_image(k)]
        if len(keys) < 2:
            return tables
        layers = [_hidden_layers(k.model) for k in keys]
        header = "hidden layers" if all(layers) else "model"
        suffix = (lambda k: f" {k.precision}") if comparison.shows_precision() else (lambda k: "")
        rows = [((layer if all(layers) else k.model) + suffix(k),
                 {c: steady(comparison.rows[k].get(c)) for c in comparison.columns})
                for k, layer in zip(keys, layers, strict=True)]
        tables.append(Pivot(f"seconds per epoch by {header}", header, comparison.columns, rows))
    return tables


def _engine_pivots(comparison: Comparison, steady) -> list[Pivot]:
    """With several engines: per model (and batch size, precision), the engines as rows, the devices as columns."""
    if len(comparison.engines()) < 2:
        return []
    tables = []
    groups: dict = {}
    for key in comparison.rows:
        if not comparison.per_image(key):
            groups.setdefault(replace(key, engine=""), []).append(key)
    for group, keys in groups.items():
        if len(keys) < 2:
            continue
        subject = group.model + (f" at batch {group.batch_size}" if len(comparison.batch_sizes()) > 1 else "")
        subject += f" in {group.precision}" if comparison.shows_precision() else ""
        rows = [(k.engine, {c: steady(comparison.rows[k].get(c)) for c in comparison.columns}) for k in keys]
        tables.append(Pivot(f"{subject}: seconds per epoch by engine", "engine", comparison.columns, rows))
    return tables


@dataclass
class Crossover:
    model: str
    column: str
    batch_sizes: list[int]
    faster_from: int | None  # smallest batch from which the column beats the baseline at every larger one
    sentence: str


def crossovers(comparison: Comparison) -> list[Crossover]:
    """Where a device overtakes the baseline as the batch grows: small models mislead most here."""
    found = []
    if len(comparison.batch_sizes()) < 2 or comparison.baseline is None:
        return found
    for name, precision in comparison.model_precisions():
        keys = sorted(k for k in comparison.rows if (k.model, k.precision) == (name, precision))
        model = f"{name} in {precision}" if comparison.shows_precision() else name
        for column in comparison.columns:
            if column == comparison.baseline:
                continue
            measured = [(k.batch_size, comparison.speedup(k, column)) for k in keys]
            measured = [(b, s) for b, s in measured if s is not None]
            if len(measured) < 2:
                continue
            sizes = [b for b, _ in measured]
            faster_from = None
            for index, (batch, _) in enumerate(measured):
                if all(s > 1 for _, s in measured[index:]):
                    faster_from = batch
                    break
            base, other = comparison.who(comparison.baseline), comparison.who(column)
            span = f"({sizes[0]}-{sizes[-1]})"
            here = " on this machine" if comparison.single_machine else ""
            if faster_from == sizes[0]:
                sentence = f"{other} is faster than {base} for the {model} at every batch size measured {span}."
            elif faster_from is None:
                sentence = f"{base} is faster than {other} for the {model} at every batch size measured {span}."
            else:
                sentence = (f"Below batch {faster_from} {base} is faster for the {model}{here}; "
                            f"from batch {faster_from} up {other} is.")
            found.append(Crossover(model, column, sizes, faster_from, capital(sentence)))
    return found
