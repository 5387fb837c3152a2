"""Lining up cases across devices and results files: which timings may be set side by side, and how.

A row is one workload (trainspeed.cases.Workload); a column is a device, or machine:device across
files. Two cases are compared per epoch only when their workloads are equal, and per image
(images/s) when they differ in the number of images alone; anything else is not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cases import Workload
from ..config import ENGINES, PRECISIONS
from ..errors import ConfigError
from ..results import CaseResult, RunResult
from ..stats import speedup
from .units import plain_name

# How a workload's fields are named to a reader.
FIELD_NAMES = {"model": "model", "dataset": "data set", "image_shape": "image shape",
               "train_images": "training images", "test_images": "test images", "batch_size": "batch size",
               "precision": "precision", "engine": "engine"}
# How an engine is named in a sentence.
ENGINE_NAMES = {"trainspeed": "trainspeed's engine", "keras-tensorflow": "Keras/TensorFlow", "keras-jax": "Keras/JAX",
                "keras-torch": "Keras/PyTorch"}


def engine_name(engine: str) -> str:
    return ENGINE_NAMES.get(engine, engine)


@dataclass(frozen=True)
class Pace:
    """How many times faster one case trains than a base case, and in which unit that was judged."""

    ratio: float
    per_image: bool  # judged on images/s: the epochs held different numbers of images


def pace(base: CaseResult, other: CaseResult) -> Pace | None:
    """`other` against `base`: per epoch for equal workloads, per image where only image counts differ."""
    if not (base.ok and other.ok):
        return None
    if base.workload == other.workload:
        if base.steady_epoch_s and other.steady_epoch_s:
            return Pace(speedup(base.steady_epoch_s, other.steady_epoch_s), False)
        return None
    if base.workload.per_image_comparable(other.workload) and base.images_per_s and other.images_per_s:
        return Pace(other.images_per_s / base.images_per_s, True)
    return None


@dataclass
class Comparison:
    """Cases as rows (by workload) and columns (a device, or machine:device across results files)."""

    columns: list[str]
    device_names: dict[str, str]
    # Which machine (None for a single run) and which device each column is.
    column_sources: dict[str, tuple[str | None, str]]
    # A row's key is its workload, or where files trained on different numbers of images, the first
    # file's: its cells then hold workloads that differ from the key in their image counts.
    rows: dict[Workload, dict[str, CaseResult]]
    baseline: str | None
    sources: list[tuple[str | None, RunResult]]
    not_comparable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Rows of one file only, kept out of the comparison: one run's engines still compare among themselves.
    set_aside: dict[Workload, dict[str, CaseResult]] = field(default_factory=dict)

    @property
    def single_machine(self) -> bool:
        return len(self.sources) == 1

    def pace(self, key: Workload, column: str) -> Pace | None:
        cells = self.rows.get(key, {})
        base, other = cells.get(self.baseline or ""), cells.get(column)
        return pace(base, other) if base and other else None

    def speedup(self, key: Workload, column: str) -> float | None:
        found = self.pace(key, column)
        return found.ratio if found else None

    def per_image(self, key: Workload) -> bool:
        """Whether the row's cases trained on different numbers of images: its epochs are not compared."""
        return any(case.ok and case.workload != key for case in self.rows.get(key, {}).values())

    def models(self) -> list[str]:
        return list(dict.fromkeys(key.model for key in self.rows))

    def batch_sizes(self) -> list[int]:
        return sorted({key.batch_size for key in self.rows})

    def model_precisions(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((key.model, key.precision) for key in self.rows))

    def precisions(self) -> list[str]:
        return list(dict.fromkeys(key.precision for key in self.rows))

    def engines(self) -> list[str]:
        return list(dict.fromkeys(key.engine for key in self.rows))

    def shows_engine(self) -> bool:
        """Whether the engine must be named: several were measured, or a Keras one alone."""
        return self.engines() not in ([], ["trainspeed"])

    def shows_ranks(self) -> bool:
        """Whether data-parallel cases were measured: rows are then told apart by their ranks."""
        return any(key.backend for key in self.rows)

    def shows_precision(self) -> bool:
        """Whether precision must be named: several were measured, or one other than fp32."""
        return self.precisions() not in ([], ["fp32"])

    def distinctions(self, key: Workload, batch: bool = False) -> list[str]:
        """What tells a row apart from others of its model, as a label names it: the batch size
        (always with `batch`), precision, engine and ranks where they vary."""
        return ([f"batch {key.batch_size}"] if batch or len(self.batch_sizes()) > 1 else []) + (
            [key.precision] if self.shows_precision() else []) + (
            [engine_name(key.engine)] if self.shows_engine() else []) + ([key.ranks()] if key.backend else [])

    def named(self, key: Workload) -> str:
        """A row's model as a caption names it: 'cnn (Keras/JAX)' where engines are mixed, else 'cnn'."""
        told_apart = self.distinctions(key)
        return f"{key.model} ({', '.join(told_apart)})" if told_apart else key.model

    def is_cpu(self, column: str) -> bool:
        return self.column_sources[column][1] == "cpu"

    def who(self, column: str) -> str:
        """A column as a sentence names it: 'the CPU' on one machine, 'laptop:cpu (its name)' across several."""
        name = self.device_names.get(column, "")
        if self.is_cpu(column) and self.single_machine:
            return "the CPU"
        if self.single_machine:
            return f"the {name}" if name else column
        return f"{column} ({plain_name(name)})" if name else column

    def short(self, column: str) -> str:
        """A column named a second time in a sentence: 'the CPU' on one machine, 'laptop:cpu' across several."""
        return self.who(column) if self.single_machine else column


def machine_label(path: Path) -> str:
    """A name for the machine a results file came from: its file name, or its folder's."""
    return path.parent.name if path.stem == "results" and path.parent.name else path.stem


def compare(labelled: list[tuple[str | None, RunResult]], baseline: str | None = None) -> Comparison:
    """Line up results: one unlabelled result gives device columns, several give machine:device."""
    if not labelled:
        raise ConfigError("nothing to compare: give at least one results file")
    labelled, notes = _distinct(labelled)
    multi = len(labelled) > 1
    labels = _unique([label or f"run{i + 1}" for i, (label, _) in enumerate(labelled)]) if multi else [None]
    columns: list[str] = []
    names: dict[str, str] = {}
    sources: dict[str, tuple[str | None, str]] = {}
    by_workload: dict[Workload, dict[str, CaseResult]] = {}
    for label, (_, result) in zip(labels, labelled, strict=True):
        for case in result.cases:
            column = f"{label}:{case.device}" if multi else case.device
            if column not in columns:
                columns.append(column)
                names[column] = case.device_name
                sources[column] = (label, case.device)
            cells = by_workload.setdefault(case.workload, {})
            if column in cells:
                notes.append(f"{case.workload.describe()} appears twice for {column}; the first is shown")
                continue
            cells[column] = case
    chosen = _baseline(columns, sources, baseline)
    rows = _merge_image_counts(by_workload, sources, labels)
    not_comparable = []
    set_aside = {}
    if multi:
        for key, cells in list(rows.items()):
            if len({sources[column][0] for column in cells}) < 2:
                not_comparable.append(_why_alone(key, cells, sources, by_workload))
                set_aside[key] = rows.pop(key)
        if not rows:
            raise ConfigError(
                f"nothing to compare: no case in {', '.join(labels)} has the same model, data set, image shape, "
                f"batch size, precision and engine in another file "
                f"({not_comparable[0] if not_comparable else 'no cases'}); "
                "run each machine with the same --models, --dataset, --batch-size, --precision and --engines")
        versions = {f"{result.trainspeed_version}" for _, result in labelled}
        if len(versions) > 1:
            notes.append("the files come from different trainspeed versions: "
                         + ", ".join(f"{label} {result.trainspeed_version}"
                                     for label, (_, result) in zip(labels, labelled, strict=True)))
    ordered = dict(sorted(rows.items(), key=lambda item: _row_order(item[0], rows)))
    kept = list(zip(labels, (result for _, result in labelled), strict=True))
    return Comparison(columns, names, sources, ordered, chosen, kept, not_comparable, notes, set_aside)


def _distinct(labelled: list[tuple[str | None, RunResult]]) -> tuple[list[tuple[str | None, RunResult]], list[str]]:
    """Drop files that repeat an earlier one: a run compared with itself would claim a comparison."""
    kept: list[tuple[int, tuple[str | None, RunResult], dict]] = []
    notes = []
    for index, (label, result) in enumerate(labelled):
        content = result.to_dict()
        twin = next((k for k in kept if k[2] == content), None)
        if twin is None:
            kept.append((index, (label, result), content))
            continue
        first_index, (first_label, _), _ = twin
        notes.append(f"file {index + 1} ({label or 'unnamed'}) holds the same results as file {first_index + 1} "
                     f"({first_label or 'unnamed'}): the same file given twice, or a copy; it is shown once, "
                     "not compared with itself")
    return [entry for _, entry, _ in kept], notes


def _merge_image_counts(by_workload: dict[Workload, dict[str, CaseResult]], sources: dict[str, tuple[str | None, str]],
                        labels: list[str | None]) -> dict[Workload, dict[str, CaseResult]]:
    """One row for workloads that differ only in image counts (a --limit), where their columns do not clash.

    The row is keyed by the workload of the earliest file in it, so that the fp32 and bf16 rows of
    the same files get keys that differ in precision alone; a failed case (which older files saved
    without image counts) does not key a row that has a measured one.
    """
    def rank(workload: Workload) -> tuple[int, bool, Workload]:
        cases = by_workload[workload]
        machine = sources[next(iter(cases))][0]
        return labels.index(machine), not any(case.ok for case in cases.values()), workload

    groups: dict[tuple, list[Workload]] = {}
    for workload in by_workload:
        groups.setdefault(workload.rate_key(), []).append(workload)
    rows: dict[Workload, dict[str, CaseResult]] = {}
    for group in groups.values():
        columns = [column for workload in group for column in by_workload[workload]]
        if len(group) > 1 and len(columns) == len(set(columns)):
            members = sorted(group, key=rank)
            rows[members[0]] = {column: case for workload in members for column, case in by_workload[workload].items()}
        else:
            rows.update((workload, by_workload[workload]) for workload in group)
    return rows


def _why_alone(key: Workload, cells: dict[str, CaseResult], sources: dict[str, tuple[str | None, str]],
               by_workload: dict[Workload, dict[str, CaseResult]]) -> str:
    """'cnn on … at batch 256 in fp32: only in b; the nearest in a differs in batch size (32)'."""
    machine = sources[next(iter(cells))][0]
    reason = f"{key.describe()}: only in {machine}"
    others: dict[str, list[Workload]] = {}
    for workload, found in by_workload.items():
        for column in found:
            other = sources[column][0]
            if other != machine and workload.model == key.model and workload not in others.get(other, []):
                others.setdefault(other, []).append(workload)
    for other, workloads in others.items():
        nearest = min(sorted(workloads), key=lambda w: len(key.differences(w)))
        differing = ", ".join(f"{FIELD_NAMES[name]} ({_value(getattr(nearest, name))})"
                              for name in key.differences(nearest))
        reason += f"; the nearest in {other} differs in {differing}"
    return reason


def _value(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row_order(key: Workload, rows) -> tuple:
    models = list(dict.fromkeys(k.model for k in rows))
    # fp32 first: the faithful reference the other precisions are judged against.
    rank = PRECISIONS.index(key.precision) if key.precision in PRECISIONS else len(PRECISIONS)
    engine = ENGINES.index(key.engine) if key.engine in ENGINES else len(ENGINES)
    return models.index(key.model), key.dataset, key.batch_size, rank, engine, key


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
