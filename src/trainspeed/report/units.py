"""How durations are written, the same in the terminal, the report and the charts."""

from __future__ import annotations


def seconds_cell(value: float | None) -> str:
    """A table cell: two decimals for short times, whole seconds for long ones."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def seconds_phrase(value: float) -> str:
    """A duration in a sentence or a chart label: "4.00 s", "37.6 s"."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
