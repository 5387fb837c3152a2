"""Matching cases across devices and machines, and the sentences and tables computed from them.

Pure functions of results: no plotting, no files, so every figure is testable by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import PRECISIONS
from ..errors import ConfigError
from ..results import CaseResult, RunResult
from ..stats import speedup
from .units import seconds_phrase


@dataclass(frozen=True, order=True)
class CaseKey:
    """What must be equal for two timings to be compared."""

    model: str
    dataset: str
    batch_size: int
    precision: str

    @classmethod
    def of(cls, case: CaseResult) -> CaseKey:
        return cls(case.model, case.dataset, case.batch_size, case.precision)

    def describe(self) -> str:
        return f"{self.model} on {self.dataset} at batch {self.batch_size} ({self.precision})"


@dataclass
class Comparison:
    """Cases as rows (by key) and columns (a device, or machine:device across results files)."""

    columns: list[str]
    device_names: dict[str, str]
    # Which machine (None for a single run) and which device each column is.
    column_sources: dict[str, tuple[str | None, str]]
    rows: dict[CaseKey, dict[str, CaseResult]]
    baseline: str | None
    sources: list[tuple[str | None, RunResult]]
    not_comparable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def single_machine(self) -> bool:
        return len(self.sources) == 1

    def speedup(self, key: CaseKey, column: str) -> float | None:
        cases = self.rows.get(key, {})
        base, other = cases.get(self.baseline or ""), cases.get(column)
        if not (base and other and base.ok and other.ok and base.steady_epoch_s and other.steady_epoch_s):
            return None
        return speedup(base.steady_epoch_s, other.steady_epoch_s)

    def models(self) -> list[str]:
        return list(dict.fromkeys(key.model for key in self.rows))

    def batch_sizes(self) -> list[int]:
        return sorted({key.batch_size for key in self.rows})

    def model_precisions(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((key.model, key.precision) for key in self.rows))

    def precisions(self) -> list[str]:
        return list(dict.fromkeys(key.precision for key in self.rows))

    def shows_precision(self) -> bool:
        """Whether precision must be named: several were measured, or one other than fp32."""
        return self.precisions() not in ([], ["fp32"])

    def is_cpu(self, column: str) -> bool:
        return self.column_sources[column][1] == "cpu"


def machine_label(path: Path) -> str:
    """A name for the machine a results file came from: its file name, or its folder's."""
    return path.parent.name if path.stem == "results" and path.parent.name else path.stem


def compare(labelled: list[tuple[str | None, RunResult]], baseline: str | None = None) -> Comparison:
    """Line up results: one unlabelled result gives device columns, several give machine:device."""
    if not labelled:
        raise ConfigError("nothing to compare: give at least one results file")
    multi = len(labelled) > 1
    labels = _unique([label or f"run{i + 1}" for i, (label, _) in enumerate(labelled)]) if multi else [None]
    columns: list[str] = []
    names: dict[str, str] = {}
    sources: dict[str, tuple[str | None, str]] = {}
    rows: dict[CaseKey, dict[str, CaseResult]] = {}
    notes: list[str] = []
    for label, (_, result) in zip(labels, labelled, strict=True):
        for case in result.cases:
            column = f"{label}:{case.device}" if multi else case.device
            if column not in columns:
                columns.append(column)
                names[column] = case.device_name
                sources[column] = (label, case.device)
            cells = rows.setdefault(CaseKey.of(case), {})
            if column in cells:
                notes.append(f"{CaseKey.of(case).describe()} appears twice for {column}; the first is shown")
                continue
            cells[column] = case
    not_comparable = []
    if multi:
        for key, cells in list(rows.items()):
            machines = {sources[column][0] for column in cells}
            if len(machines) < 2:
                not_comparable.append(f"{key.describe()}: only in {', '.join(sorted(machines))}")
                del rows[key]
        versions = {f"{result.trainspeed_version}" for _, result in labelled}
        if len(versions) > 1:
            notes.append("the files come from different trainspeed versions: "
                         + ", ".join(f"{label} {result.trainspeed_version}"
                                     for label, (_, result) in zip(labels, labelled, strict=True)))
    chosen = _baseline(columns, sources, baseline)
    return Comparison(columns, names, sources, dict(sorted(rows.items(), key=lambda item: _row_order(item[0], rows))),
                      chosen, list(zip(labels, (r for _, r in labelled), strict=True)), not_comparable, notes)


def _row_order(key: CaseKey, rows) -> tuple:
    models = list(dict.fromkeys(k.model for k in rows))
    # fp32 first: the faithful reference the other precisions are judged against.
    rank = PRECISIONS.index(key.precision) if key.precision in PRECISIONS else len(PRECISIONS)
    return models.index(key.model), key.dataset, key.batch_size, rank, key.precision


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return unique


def _baseline(columns: list[str], sources: dict[str, tuple[str | None, str]], asked: str | None) -> str | None:
    if asked is not None:
        if asked not in columns:
            raise ConfigError(f"baseline {asked!r} is not among the results; choose one of: {', '.join(columns)}")
        return asked
    cpus = [c for c in columns if sources[c][1] == "cpu"]
    return cpus[0] if cpus else (columns[0] if columns else None)


def _reason(comparison: Comparison) -> str:
    reason = comparison.sources[0][1].environment.get("no_gpu_reason")
    return f" ({reason})" if reason else ""


def _capital(sentence: str) -> str:
    """Capitalize a sentence that starts with an ordinary word, never a machine or device label."""
    return "T" + sentence[1:] if sentence.startswith("the ") else sentence


def _who(comparison: Comparison, column: str) -> str:
    name = comparison.device_names.get(column, "")
    if comparison.is_cpu(column) and comparison.single_machine:
        return "the CPU"
    if comparison.single_machine:
        return f"the {name}" if name else column
    return f"{column} ({name})" if name else column


def headlines(comparison: Comparison) -> list[str]:
    """The sentence the seeds wrote by hand, computed: one per model (and batch size if several)."""
    sentences = []
    several_batches = len(comparison.batch_sizes()) > 1
    for key, cells in comparison.rows.items():
        base = cells.get(comparison.baseline or "")
        at_batch = f" at batch {key.batch_size}" if several_batches else ""
        at_batch += f" in {key.precision}" if comparison.shows_precision() else ""
        where = "On this machine " if comparison.single_machine else ""
        others = [c for c in comparison.columns if c != comparison.baseline and c in cells and cells[c].ok]
        for column in comparison.columns:
            failed = cells.get(column)
            if failed is not None and not failed.ok:
                sentences.append(_capital(f"{where}the {key.model}{at_batch} {failed.status} on "
                                          f"{_who(comparison, column)}: {failed.error or 'no reason recorded'}."))
        if base is None or not base.ok:
            continue
        if not others:
            if comparison.single_machine:
                no_gpu = f"No GPU was measured on this machine{_reason(comparison)}."
                if len(comparison.columns) == 1 and no_gpu not in sentences:
                    sentences.insert(0, no_gpu)
                sentences.append(f"The CPU trains the {key.model}{at_batch} in {seconds_phrase(base.steady_epoch_s)} "
                                 f"per epoch ({base.images_per_s:,.0f} images/s).")
            continue
        for column in others:
            ratio = comparison.speedup(key, column)
            other = cells[column]
            versus = f"({seconds_phrase(other.steady_epoch_s)} vs {seconds_phrase(base.steady_epoch_s)} per epoch)"
            base_name = _who(comparison, comparison.baseline)
            if ratio >= 1:
                verdict = f"{ratio:.1f}x faster than {base_name}"
            else:
                verdict = f"{1 / ratio:.1f}x slower than {base_name}"
            sentences.append(_capital(f"{where}{_who(comparison, column)} trains the {key.model}{at_batch} "
                                      f"{verdict} {versus}."))
    return sentences


# How far a lower precision may move test accuracy from fp32's before the report says it cost accuracy.
ACCURACY_TOLERANCE_POINTS = 1.0


@dataclass
class PrecisionEffect:
    """A lower precision against fp32 for the same model, data, batch size and device."""

    key: CaseKey
    column: str
    speedup: float
    accuracy_points: float | None  # test accuracy minus fp32's, in percentage points; None if not comparable
    sentence: str

    @property
    def costs_accuracy(self) -> bool:
        return self.accuracy_points is not None and abs(self.accuracy_points) > ACCURACY_TOLERANCE_POINTS


def precision_effects(comparison: Comparison) -> list[PrecisionEffect]:
    """What each precision other than fp32 did to speed and to test accuracy, device by device."""
    found = []
    for key, cells in comparison.rows.items():
        reference = comparison.rows.get(replace(key, precision="fp32"))
        if key.precision == "fp32" or reference is None:
            continue
        for column, case in cells.items():
            base = reference.get(column)
            if not (base and base.ok and case.ok and base.steady_epoch_s and case.steady_epoch_s):
                continue
            ratio = speedup(base.steady_epoch_s, case.steady_epoch_s)
            pace = (f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower")
            sentence = (f"{_who(comparison, column)} trains the {key.model} {pace} in {key.precision} than in fp32 "
                        f"({seconds_phrase(case.steady_epoch_s)} vs {seconds_phrase(base.steady_epoch_s)} per epoch)")
            points = None
            if (case.accuracy_meaningful and base.accuracy_meaningful and case.test_accuracy is not None
                    and base.test_accuracy is not None):
                points = 100 * (case.test_accuracy - base.test_accuracy)
                accuracies = f"{case.test_accuracy:.1%} vs {base.test_accuracy:.1%}"
                if abs(points) <= ACCURACY_TOLERANCE_POINTS:
                    sentence += (f"; its test accuracy stays within {ACCURACY_TOLERANCE_POINTS:g} point of fp32's "
                                 f"({accuracies}).")
                else:
                    sentence += (f", but its test accuracy moves {points:+.1f} points from fp32's ({accuracies}), "
                                 f"more than the {ACCURACY_TOLERANCE_POINTS:g} point a faithful result allows.")
            else:
                sentence += "; accuracy is not compared (random data or no test run)."
            found.append(PrecisionEffect(key, column, ratio, points, _capital(sentence)))
    return found


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
    """A pivot per varied axis: batch sizes (one table per model), else models."""
    def steady(case: CaseResult | None) -> float | None:
        return case.steady_epoch_s if case is not None and case.ok else None

    tables = []
    if len(comparison.batch_sizes()) > 1:
        for model, precision in comparison.model_precisions():
            keys = [k for k in comparison.rows if (k.model, k.precision) == (model, precision)]
            rows = [(str(k.batch_size), {c: steady(comparison.rows[k].get(c)) for c in comparison.columns})
                    for k in keys]
            subject = f"{model} in {precision}" if comparison.shows_precision() else model
            tables.append(Pivot(f"{subject}: seconds per epoch by batch size", "batch size", comparison.columns, rows))
    elif len(comparison.rows) > 1 and comparison.single_machine:  # models or precisions; a comparison has its own table
        keys = list(comparison.rows)
        layers = [_hidden_layers(k.model) for k in keys]
        header = "hidden layers" if all(layers) else "model"
        suffix = (lambda k: f" {k.precision}") if comparison.shows_precision() else (lambda k: "")
        rows = [((layer if all(layers) else k.model) + suffix(k),
                 {c: steady(comparison.rows[k].get(c)) for c in comparison.columns})
                for k, layer in zip(keys, layers, strict=True)]
        tables.append(Pivot(f"seconds per epoch by {header}", header, comparison.columns, rows))
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
            base, other = _who(comparison, comparison.baseline), _who(comparison, column)
            span = f"({sizes[0]}-{sizes[-1]})"
            here = " on this machine" if comparison.single_machine else ""
            if faster_from == sizes[0]:
                sentence = f"{other} is faster than {base} for the {model} at every batch size measured {span}."
            elif faster_from is None:
                sentence = f"{base} is faster than {other} for the {model} at every batch size measured {span}."
            else:
                sentence = (f"Below batch {faster_from} {base} is faster for the {model}{here}; "
                            f"from batch {faster_from} up {other} is.")
            found.append(Crossover(model, column, sizes, faster_from, _capital(sentence)))
    return found
