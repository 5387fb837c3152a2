"""How durations, sizes, ratios and caveats are written, the same in the terminal, the report and the charts."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import CaseResult

LOAD_ADVICE = "close other programs, set --cpu-threads, or use --repeats"


def seconds_cell(value: float | None) -> str:
    """A table cell: two decimals for short times, whole seconds for long ones."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def seconds_phrase(value: float) -> str:
    """A duration in a sentence or a chart label: "4.00 s", "37.6 s"."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def milliseconds(seconds: float | None) -> str:
    """A short duration in milliseconds with about three figures: "0.213 ms", "1.31 ms", "41.2 ms"."""
    if seconds is None:
        return "-"
    value = seconds * 1e3
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def rate_text(images_per_s: float | None) -> str:
    return f"{images_per_s:,.0f}" if images_per_s else "-"


def bytes_text(value: int | None) -> str:
    if not value:
        return "-"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def memory_column(values: list[int | None]) -> tuple[str, object]:
    """One unit for a whole column of byte counts: GiB where the largest is at least 1 GiB, else MiB."""
    largest = max((value for value in values if value), default=0)
    unit, scale, digits = ("GiB", 2**30, 2) if largest >= 2**30 else ("MiB", 2**20, 0)
    return unit, lambda value: f"{value / scale:,.{digits}f}" if value else "-"


def times(ratio: float) -> str:
    """A speed ratio: "1.14x" near parity, where one decimal would round a real difference away; "9.4x" beyond."""
    return f"{ratio:.2f}x" if ratio < 2 else f"{ratio:.1f}x"


def faster_or_slower(ratio: float) -> str:
    """A speed ratio as a sentence says it: '9.4x faster', or for a ratio under 1 '2.0x slower'."""
    return f"{times(ratio)} faster" if ratio >= 1 else f"{times(1 / ratio)} slower"


def plain_name(name: str) -> str:
    """A device's name as a sentence can hold it in parentheses: 'Intel(R) Xeon(R) Gold' as 'Intel Xeon Gold'.
    The trademark marks go, and any other bracketed part follows a comma, so no parentheses nest."""
    name = re.sub(r"\((R|TM|C)\)", "", name, flags=re.IGNORECASE)
    name = re.sub(r"\s*\(([^()]*)\)", r", \1", name)
    return re.sub(r"\s{2,}", " ", name).strip()


def capital(sentence: str) -> str:
    """Capitalize a sentence that starts with an ordinary word, never a machine or device label."""
    return "T" + sentence[1:] if sentence.startswith("the ") else sentence


def load_note(names: list[str]) -> str:
    """What to say of cases measured under load ('the CPU was measured while …'), or '' for none."""
    if not names:
        return ""
    verb, their = ("was", "its") if len(names) == 1 else ("were", "their")
    return (f"{' and '.join(names)} {verb} measured while other programs used the CPU: {their} time is too high; "
            f"{LOAD_ADVICE}")


def caveats(cases: list[tuple[str, CaseResult]]) -> str:
    """What qualifies a sentence's figures, by the name each case goes by: times projected by a time
    budget ('projected by --time-budget from the CPU's 10 steps'), then load; '' for neither."""
    steps: dict[str, list[str]] = {}
    for name, case in cases:
        if case.projected:
            steps.setdefault(name, []).append(f"{case.measured_steps:,}")
    projected = " and ".join(f"{name}'s {' and '.join(counts)} steps" for name, counts in steps.items())
    loaded = list(dict.fromkeys(name for name, case in cases if case.under_load))
    notes = ([f"projected by --time-budget from {projected}"] if projected else []) + (
        [load_note(loaded)] if loaded else [])
    return "; ".join(notes)


def money(amount: float, currency: str = "") -> str:
    """An amount with three significant digits below 1, so that small costs tell apart: 0.000123,
    0.0452, 12.30; the currency the user named after it."""
    if amount != 0 and not 1e-6 <= abs(amount) < 1e12:  # past what digits show plainly
        text = f"{amount:.3g}"
    else:
        digits = 2 if amount >= 1 or amount <= 0 else 2 - math.floor(math.log10(amount))
        text = f"{amount:,.{digits}f}"
    return f"{text} {currency}" if currency else text
