"""How long the rest of a run will take, from the cases it has finished: a pure estimate, labelled so.

Cases differ tenfold (a cnn on a CPU against the same on a GPU), so a case still to come is priced by
the finished case most like it: the same model on the same device first, then the same device, then the
same model, then the mean of all. Before any case has finished there is nothing to go by, and no figure.
"""

from __future__ import annotations

from statistics import fmean

from .cases import CaseKey

# What a finished case must share with one still to come to price it, most alike first.
_LIKENESS = (
    lambda a, b: (a.workload.model, a.device, a.workload.engine) == (b.workload.model, b.device, b.workload.engine),
    lambda a, b: a.device == b.device,
    lambda a, b: a.workload.model == b.workload.model,
)


def case_estimate(key: CaseKey, finished: dict[CaseKey, float]) -> float | None:
    """Seconds the case `key` may take: the mean wall time of the finished cases most like it."""
    for alike in _LIKENESS:
        times = [seconds for done, seconds in finished.items() if alike(done, key)]
        if times:
            return fmean(times)
    return fmean(finished.values()) if finished else None


def time_left(to_come: list[CaseKey], finished: dict[CaseKey, float], current_elapsed_s: float = 0.0) -> float | None:
    """Seconds until the run ends: each case `to_come` (the current one first) priced by `case_estimate`,
    less what the current one has already run. None before any case has finished."""
    if not finished or not to_come:
        return None
    total = sum(case_estimate(key, finished) for key in to_come)
    return max(total - current_elapsed_s, 0.0)


def duration_phrase(seconds: float) -> str:
    """'about 40 s', 'about 12 min', 'about 2 h 05 min': as precise as an estimate deserves."""
    if seconds < 60:
        return f"about {max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"about {seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes:02d} min"
