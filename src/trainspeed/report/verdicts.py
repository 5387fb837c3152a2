"""What a lower precision did against fp32: its speed, and whether its accuracy moved beyond sampling noise."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..cases import Workload
from ..stats import difference_half_width, speedup
from .matching import Comparison
from .units import capital, load_note, seconds_phrase, times


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
        return (self.accuracy_points is not None and self.noise_points is not None
                and abs(self.accuracy_points) > self.noise_points)


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
            load = load_note([comparison.short(column)] if case.under_load or base.under_load else [])
            sentence = (f"{comparison.who(column)} trains the {key.model} {_faster(ratio)} in {key.precision} than "
                        f"in fp32 ({seconds_phrase(case.steady_epoch_s)} vs {seconds_phrase(base.steady_epoch_s)} "
                        f"per epoch{'; ' + load if load else ''})")
            points = noise = None
            if (case.accuracy_meaningful and base.accuracy_meaningful and case.test_accuracy is not None
                    and base.test_accuracy is not None):
                points = 100 * (case.test_accuracy - base.test_accuracy)
                accuracies = f"{case.test_accuracy:.1%} vs {base.test_accuracy:.1%}"
                if case.test_images and base.test_images:
                    noise = 100 * difference_half_width(case.test_accuracy, case.test_images,
                                                        base.test_accuracy, base.test_images)
                    sample = f"{case.test_images:,} test images"
                    if abs(points) > noise:
                        sentence += (f", but its test accuracy moves {points:+.1f} ± {noise:.1f} points from fp32's "
                                     f"({accuracies}), beyond the sampling noise of {sample}.")
                    else:
                        sentence += (f"; its test accuracy stays within the sampling noise of {sample} "
                                     f"({accuracies}: {points:+.1f} ± {noise:.1f} points).")
                else:
                    sentence += (f"; its test accuracy moves {points:+.1f} points from fp32's ({accuracies}), "
                                 "but the test-set size is not recorded, so noise cannot be ruled out.")
            else:
                sentence += "; accuracy is not compared (random data or no test run)."
            found.append(PrecisionEffect(key, column, ratio, points, noise, capital(sentence)))
    return found


def _faster(ratio: float) -> str:
    return f"{times(ratio)} faster" if ratio >= 1 else f"{times(1 / ratio)} slower"
