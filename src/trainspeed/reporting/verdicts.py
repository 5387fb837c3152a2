"""What a lower precision did against fp32, and trainspeed's engine against the seeds' Keras code:
the speed, and whether the test accuracy moved beyond sampling noise."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..cases import Workload
from ..results import CaseResult
from ..stats import difference_half_width, speedup
from .matching import Comparison, engine_name
from .units import capital, caveats, faster_or_slower, seconds_phrase


def beyond_noise(points: float | None, noise: float | None) -> bool:
    return points is not None and noise is not None and abs(points) > noise


@dataclass
class PrecisionEffect:
    """A lower precision against fp32 for the same model, data, batch size and device."""

    key: Workload
    column: str
    speedup: float
    accuracy_points: float | None  # test accuracy minus fp32's, in percentage points; None if not comparable
    noise_points: float | None  # 95% half-width of that difference from the test-set sizes; None if unknown
    sentence: str

    @property
    def costs_accuracy(self) -> bool:
        """The accuracy moved by more than sampling noise explains."""
        return beyond_noise(self.accuracy_points, self.noise_points)


def precision_effects(comparison: Comparison) -> list[PrecisionEffect]:
    """What each precision other than fp32 did to speed and to test accuracy, device by device."""
    found = []
    for key, cells in comparison.rows.items():
        reference = comparison.rows.get(replace(key, precision="fp32"))
        if key.precision == "fp32" or reference is None:
            continue
        for column, case in cells.items():
            base = reference.get(column)
            # The same case in fp32, so that precision is the only thing that differs.
            if base is None or replace(case.workload, precision=base.precision) != base.workload:
                continue
            if not (base.ok and case.ok and base.steady_epoch_s and case.steady_epoch_s):
                continue
            ratio = speedup(base.steady_epoch_s, case.steady_epoch_s)
            load = caveats([(comparison.short(column), case), (comparison.short(column), base)])
            sentence = (f"{comparison.who(column)} trains the {key.model} {faster_or_slower(ratio)} in {key.precision} "
                        f"than in fp32 ({seconds_phrase(case.steady_epoch_s)} vs {seconds_phrase(base.steady_epoch_s)} "
                        f"per epoch{'; ' + load if load else ''})")
            points, noise, clause = accuracy_clause(case, base, "fp32's")
            sentence += clause
            found.append(PrecisionEffect(key, column, ratio, points, noise, capital(sentence)))
    return found


def accuracy_clause(case: CaseResult, base: CaseResult, whose: str) -> tuple[float | None, float | None, str]:
    """(points, noise, the clause that ends a sentence): `case`'s test accuracy against `base`'s,
    judged against the sampling noise of their test sets."""
    if not (case.accuracy_meaningful and base.accuracy_meaningful and case.test_accuracy is not None
            and base.test_accuracy is not None):
        return None, None, "; accuracy is not compared (random data or no test run)."
    points = 100 * (case.test_accuracy - base.test_accuracy)
    accuracies = f"{case.test_accuracy:.1%} vs {base.test_accuracy:.1%}"
    if not (case.test_images and base.test_images):
        return points, None, (f"; its test accuracy moves {points:+.1f} points from {whose} ({accuracies}), "
                              "but the test-set size is not recorded, so noise cannot be ruled out.")
    noise = 100 * difference_half_width(case.test_accuracy, case.test_images, base.test_accuracy, base.test_images)
    sample = f"{case.test_images:,} test images"
    if abs(points) > noise:
        return points, noise, (f", but its test accuracy moves {points:+.1f} ± {noise:.1f} points from {whose} "
                               f"({accuracies}), beyond the sampling noise of {sample}.")
    return points, noise, (f"; its test accuracy stays within the sampling noise of {sample} "
                           f"({accuracies}: {points:+.1f} ± {noise:.1f} points).")


@dataclass
class EngineEffect:
    """trainspeed's engine against one Keras backend, for the same workload on the same device."""

    key: Workload  # trainspeed's case
    engine: str  # the Keras engine it is set against
    column: str
    speedup: float  # > 1: trainspeed's engine is faster
    accuracy_points: float | None
    noise_points: float | None
    fastest_keras: bool  # the fastest Keras backend measured for this workload on this device
    sentence: str

    @property
    def costs_accuracy(self) -> bool:
        """The accuracy moved by more than sampling noise explains."""
        return beyond_noise(self.accuracy_points, self.noise_points)


def engine_effects(comparison: Comparison) -> list[EngineEffect]:
    """trainspeed's engine against each Keras backend, device by device: speed and test accuracy."""
    found = []
    every_row = {**comparison.rows, **comparison.set_aside}
    for key, cells in every_row.items():
        if key.engine != "trainspeed":
            continue
        for column, ours in cells.items():
            if not (ours.ok and ours.steady_epoch_s):
                continue
            # The same case on another engine: the engine is the only thing that differs. Looked for
            # by the cases' own workloads: a compare may file the two under rows of other image counts.
            theirs = {case.workload.engine: case for other, other_cells in every_row.items()
                      if other.engine != "trainspeed" and (case := other_cells.get(column)) is not None
                      and case.ok and case.steady_epoch_s
                      and replace(case.workload, engine="trainspeed") == ours.workload}
            if not theirs:
                continue
            fastest = min(theirs, key=lambda engine: theirs[engine].steady_epoch_s)
            for engine, case in theirs.items():
                ratio = speedup(case.steady_epoch_s, ours.steady_epoch_s)
                load = caveats([(comparison.short(column), case), (comparison.short(column), ours)])
                best = "; the fastest Keras backend here" if engine == fastest and len(theirs) > 1 else ""
                sentence = (f"trainspeed's engine trains the {key.model} {faster_or_slower(ratio)} than "
                            f"{engine_name(engine)} on {comparison.who(column)} "
                            f"({seconds_phrase(ours.steady_epoch_s)} vs {seconds_phrase(case.steady_epoch_s)} "
                            f"per epoch{best}{'; ' + load if load else ''})")
                points, noise, clause = accuracy_clause(ours, case, f"{engine_name(engine)}'s")
                found.append(EngineEffect(key, engine, column, ratio, points, noise, engine == fastest,
                                          capital(sentence + clause)))
    return found
