"""Is it worth it: each case's energy and cost, and the verdict that weighs them against its speed.

Energy comes with the cases, measured (machine/power.py) or labelled an estimate; prices are the
user's, each run's own or those given to `report` and `compare`. Two cases are weighed only on
figures both of them have; for the rest, the verdict says what is missing and how to add it.
"""

from __future__ import annotations

from pathlib import Path

from ..data_parallel import devices_in
from ..energy import RECIPE_EPOCHS
from ..prices import Costs, case_price_per_hour, costs
from ..results import CaseResult, RunResult
from . import charts
from .answering import subject
from .document import Table
from .matching import Comparison
from .units import capital, caveats, faster_or_slower, money, seconds_phrase, times

WORTH_EXPLAINED = (
    "Energy is the device's own, over the steady epochs (as the steady time is): a GPU's board as NVIDIA's NVML "
    "counts it (the host's CPU and the rest of the machine not included); a CPU's package and memory as Linux "
    "RAPL counts them (the whole socket: every process on it); or, labelled estimate, the watts given with "
    "--cpu-watts times the time. Cost is the price per hour given with --price, times the devices a case holds, "
    f"times its time; {RECIPE_EPOCHS} epochs is the seeds' recipe at the steady epoch's time.")
PRICE_ADVICE = "--price cpu=PRICE,cuda=PRICE (money per hour per device) to trainspeed run, report or compare"


def _run(comparison: Comparison, column: str) -> RunResult:
    label = comparison.column_sources[column][0]
    return next(result for source, result in comparison.sources if source == label)


def currency(comparison: Comparison, column: str) -> str:
    return _run(comparison, column).config.get("currency") or ""


def case_costs(comparison: Comparison, column: str, case: CaseResult) -> Costs | None:
    """What the case costs at its run's prices; None where no price was given or nothing was timed."""
    nodes = case.parallel.nodes if case.parallel else 1
    per_hour = case_price_per_hour(_run(comparison, column).config.get("prices") or {}, case.device,
                                   devices_in(case.device, case.world_size, nodes))
    if per_hour is None or not (case.ok and case.steady_epoch_s and case.images_per_s):
        return None
    return costs(per_hour, case.steady_epoch_s, case.images_per_s)


def _joules(case: CaseResult, per_image: bool) -> float | None:
    figures = case.energy if case.ok else None
    if figures is None:
        return None
    return figures.joules_per_image if per_image else figures.joules_per_epoch


def _joules_text(value: float) -> str:
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} J"


def _weighed(base: float, other: float, verb: str, what: str, texts: tuple[str, str]) -> str:
    """'uses 3.1x less energy per epoch (120 J vs 372 J)': `other` against `base`, lower is better."""
    if other <= 0 or base <= 0:
        return f"{verb} {texts[0]} vs {texts[1]} {what}"
    ratio = base / other
    word = f"{times(ratio)} less" if ratio >= 1 else f"{times(1 / ratio)} more"
    return f"{verb} {word} {what} ({texts[0]} vs {texts[1]})"


def _against(comparison: Comparison, key, column: str) -> str | None:
    """The verdict on one column against the baseline: speed, energy and cost as far as both have them."""
    cells = comparison.rows[key]
    base, other = cells[comparison.baseline], cells[column]
    found = comparison.pace(key, column)
    if found is None:
        return None
    unit = "image" if found.per_image else "epoch"
    clauses = [f"trains {subject(comparison, key, training=True)} {faster_or_slower(found.ratio)} "
               f"than {comparison.short(comparison.baseline)}" + (" per image" if found.per_image else "")]
    if not found.per_image:
        saved = base.steady_epoch_s - other.steady_epoch_s
        clauses[0] += (f" ({seconds_phrase(saved)} saved per epoch" if saved >= 0
                       else f" ({seconds_phrase(-saved)} lost per epoch") + ")"
    mine, theirs = _joules(base, found.per_image), _joules(other, found.per_image)
    if mine is not None and theirs is not None:
        estimated = [comparison.short(c) for c, case in ((column, other), (comparison.baseline, base))
                     if case.energy.estimate]
        clauses.append(_weighed(mine, theirs, "uses", f"energy per {unit}", (_joules_text(theirs), _joules_text(mine)))
                       + (f" (estimated for {' and '.join(estimated)})" if estimated else ""))
    paid = case_costs(comparison, comparison.baseline, base), case_costs(comparison, column, other)
    units = currency(comparison, comparison.baseline), currency(comparison, column)
    if paid[0] and paid[1] and units[0] == units[1]:
        mine, theirs = ((cost.per_million_images if found.per_image else cost.per_epoch) for cost in paid)
        clauses.append(_weighed(mine, theirs, "costs", "per million images" if found.per_image else "per epoch",
                                (money(theirs, units[1]), money(mine, units[0]))) + " at the prices given")
    listed = " and ".join(clauses) if len(clauses) < 3 else ", ".join(clauses[:-1]) + ", and " + clauses[-1]
    qualified = _qualified(comparison, [(column, other), (comparison.baseline, base)])
    return capital(f"{comparison.who(column)} {listed}{qualified}.")


def _alone(comparison: Comparison, key, column: str) -> str | None:
    """A case with nothing to weigh it against: its own cost and energy."""
    case = comparison.rows[key][column]
    paid, joules = case_costs(comparison, column, case), _joules(case, False)
    if not case.ok or (paid is None and joules is None):
        return None
    parts = []
    if paid is not None:
        unit = currency(comparison, column)
        per_hour = f"{paid.per_hour:g} {unit}".strip()
        parts.append(f"at {per_hour} per hour it costs {money(paid.per_epoch, unit)} per epoch, "
                     f"{money(paid.per_recipe, unit)} for {RECIPE_EPOCHS} epochs and "
                     f"{money(paid.per_million_images, unit)} per million images")
    if joules is not None:
        label = "an estimated " if case.energy.estimate else ""
        parts.append(f"it uses {label}{_joules_text(joules)} per epoch ({case.energy.average_w:.3g} W on average)")
    return capital(f"{comparison.who(column)} trains {subject(comparison, key, training=True)} in "
                   f"{seconds_phrase(case.steady_epoch_s)} per epoch{_qualified(comparison, [(column, case)])}: "
                   f"{'; '.join(parts)}.")


def _qualified(comparison: Comparison, cases: list[tuple[str, CaseResult]]) -> str:
    """' (projected by --time-budget …; the CPU was measured while …)': the same caveats the headline of the
    same comparison carries (units.caveats, the one place that decides them)."""
    note = caveats([(comparison.short(column), case) for column, case in cases])
    return f" ({note})" if note else ""


def verdicts(comparison: Comparison) -> list[str]:
    """One sentence per device against the baseline, e.g. 'The NVIDIA H100 trains the cnn 9.4x faster
    than the CPU (33.6 s saved per epoch), uses 3.1x less energy per epoch (1.2 kJ vs 3.76 kJ), and
    costs 1.89x less per epoch (0.00277 USD vs 0.00522 USD) at the prices given.'"""
    sentences = []
    for key, cells in comparison.rows.items():
        base = cells.get(comparison.baseline or "")
        others = [c for c in comparison.columns if c != comparison.baseline and c in cells and cells[c].ok]
        if base is not None and base.ok and others:
            sentences += [s for c in others if (s := _against(comparison, key, c))]
        else:
            sentences += [s for c in comparison.columns if c in cells and (s := _alone(comparison, key, c))]
    return sentences


def missing(comparison: Comparison) -> list[str]:
    """What the verdict lacks, once per device, and how to add it."""
    lines, unpriced = [], []
    for column in comparison.columns:
        shown = [case for cells in comparison.rows.values() if (case := cells.get(column)) is not None and case.ok]
        if not shown:
            continue
        reasons = list(dict.fromkeys(case.energy.not_measured if case.energy else "measured by an older trainspeed"
                                     for case in shown if _joules(case, False) is None))
        if reasons:
            lines.append(f"Energy not measured on {comparison.who(column)}: {'; '.join(reasons)}.")
        if any(case_costs(comparison, column, case) is None for case in shown):
            unpriced.append(comparison.short(column))
    if unpriced:
        lines.append(f"No price for {' or '.join(unpriced)}, so no cost: give {PRICE_ADVICE}.")
    units = {currency(comparison, column) for column in comparison.columns
             if _run(comparison, column).config.get("prices")}
    if len(units) > 1:
        lines.append(f"The prices are in different currencies ({', '.join(sorted(u or 'none named' for u in units))}): "
                     "their costs are not weighed against each other; give --price and --currency to compare.")
    return lines


def _cells(case: CaseResult, paid: Costs | None, unit: str) -> list[str]:
    figures = case.energy if case.energy and case.energy.joules_per_epoch is not None else None

    def energy(name: str, text) -> str:
        value = getattr(figures, name) if figures else None
        return text(value) if value is not None else "-"

    def cost(name: str) -> str:
        return money(getattr(paid, name), unit) if paid else "-"

    return [energy("joules_per_epoch", _joules_text), energy("joules_per_image", lambda v: f"{v:.3g} J"),
            energy("recipe_wh", lambda v: f"{v:.3g} Wh"), energy("average_w", lambda v: f"{v:.3g} W"),
            energy("peak_w", lambda v: f"{v:.3g} W"), energy("utilization", lambda v: f"{v:.0%}"),
            cost("per_epoch"), cost("per_recipe"), cost("per_million_images")]


def worth_table(comparison: Comparison, lead, lead_headers: list[str]) -> Table | None:
    """Energy and cost per case, where any was measured or priced; each row says what its energy is."""
    rows = []
    for key, cells in comparison.rows.items():
        for column in comparison.columns:
            case = cells.get(column)
            if case is None or not case.ok:
                continue
            paid = case_costs(comparison, column, case)
            source = (case.energy.source if case.energy and case.energy.joules_per_epoch is not None
                      else "not measured")
            rows.append(lead(comparison, key) + [column, source] + _cells(case, paid, currency(comparison, column)))
    if not any(cell != "-" for row in rows for cell in row[len(lead_headers) + 2:]):
        return None
    headers = lead_headers + ["device", "energy from", "J/epoch", "J/image", f"Wh, {RECIPE_EPOCHS} epochs",
                              "average power", "peak power", "GPU busy", "cost/epoch", f"cost, {RECIPE_EPOCHS} epochs",
                              "cost/1M images"]
    return Table(headers, rows, "energy over the steady epochs, and cost at the prices given",
                 text_columns=len(lead_headers) + 2)


def system_chart(comparison: Comparison, path: Path) -> Path | None:
    """Power and utilization over each case's epochs, as sampled (the system panel of a training run)."""
    traced = [(key, column, case) for key, cells in comparison.rows.items() for column, case in cells.items()
              if case.ok and case.energy and not case.energy.estimate
              and sum(w is not None for _, w, _ in case.energy.trace) > 1]
    if not traced:
        return None
    busy = any(u is not None for _, _, case in traced for _, _, u in case.energy.trace)
    figure = charts.new_figure(7.5, 5.6 if busy else 3.4)
    panels = figure.subplots(2 if busy else 1, 1, sharex=True, squeeze=False)[:, 0]
    for index, (key, column, case) in enumerate(traced):
        colour = charts.PALETTE[index % len(charts.PALETTE)]
        label = f"{subject(comparison, key, training=True).removeprefix('the ')} on {column}"
        points = [(t, w) for t, w, _ in case.energy.trace if w is not None]
        panels[0].plot(*zip(*points, strict=True), color=colour, label=label, linewidth=1.2)
        if busy and (used := [(t, u * 100) for t, _, u in case.energy.trace if u is not None]):
            panels[1].plot(*zip(*used, strict=True), color=colour, linewidth=1.2)
    panels[0].set_ylabel("power (W)")
    panels[0].set_ylim(bottom=0)
    panels[0].set_title("Power while training")
    panels[0].legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if busy:
        panels[1].set_ylabel("GPU utilization (%)")
        panels[1].set_ylim(0, 105)
    panels[-1].set_xlabel("seconds since the first timed epoch began")
    return charts.save(figure, path)
