"""Data-parallel scaling in words, a table and a chart: how much N devices beat one, and what
the gradient all-reduce costs. Read from the cases' folded figures (fold.with_scaling) alone."""

from __future__ import annotations

from pathlib import Path

from ..results import CaseResult
from .charts import PALETTE, new_figure, save
from .document import Table
from .units import rate_text, seconds_cell, times


def ranks_text(case: CaseResult) -> str:
    """'2 gloo' for a data-parallel case; '-' for one device on its own."""
    return f"{case.world_size} {case.backend}" if case.backend else "-"


def scaling_text(case: CaseResult) -> str:
    """'1.71x, 85%': speedup over the group's one device and scaling efficiency."""
    figures = case.parallel
    if not (figures and figures.speedup_vs_one and figures.scaling_efficiency is not None):
        return "-"
    if figures.oversubscribed:
        return f"{times(figures.speedup_vs_one)}\noversubscribed"
    return f"{times(figures.speedup_vs_one)}, {figures.scaling_efficiency:.0%}"


def _groups(cases: list[CaseResult]) -> list[CaseResult]:
    return [case for case in cases if case.ok and case.backend and case.parallel]


def _devices(case: CaseResult) -> str:
    count = case.world_size
    if case.device.startswith("cuda"):
        return f"{count} GPU{'s' if count > 1 else ''}"
    return f"{count} CPU process{'es' if count > 1 else ''}"


def scaling_sentences(cases: list[CaseResult]) -> list[str]:
    """'2 CPU processes train the cnn 1.71x faster than one (85% scaling efficiency) ...'."""
    sentences = []
    for case in _groups(cases):
        figures = case.parallel
        if figures.world_size < 2 or figures.speedup_vs_one is None:
            continue
        pace = (f"{times(figures.speedup_vs_one)} faster than one" if figures.speedup_vs_one >= 1
                else f"{times(1 / figures.speedup_vs_one)} slower than one")
        recipe = f", {case.batch_size // case.world_size} images per device a step" if case.per_device_batch \
            else f", global batch {case.batch_size}"
        share = (f"; the gradient all-reduce was in flight {figures.allreduce_share:.0%} of the epoch"
                 if figures.allreduce_share is not None else "")
        if figures.oversubscribed:
            sentences.append(f"{_devices(case)} of {figures.threads_per_rank} threads each, on {figures.cores} "
                             f"cores, train the {case.model} {pace}: the cores are oversubscribed, so this is no "
                             "scaling result; give fewer processes or --cpu-threads.")
            continue
        sentences.append(f"{_devices(case)} train the {case.model} {pace} ({figures.scaling_efficiency:.0%} "
                         f"scaling efficiency{recipe}){share}.")
    return sentences


def scaling_table(cases: list[CaseResult]) -> Table | None:
    found = _groups(cases)
    if not found:
        return None
    headers = ["model", "batch", "ranks", "device", "images/s", "s/epoch", "vs 1 device", "all-reduce share",
               "slowest rank", "batch per rank", "test accuracy"]
    rows = []
    for case in found:
        figures = case.parallel
        batch = f"{case.batch_size}" + (" (per device)" if case.per_device_batch else "")
        rows.append([case.model, batch, ranks_text(case), case.device, rate_text(case.images_per_s),
                     seconds_cell(case.steady_epoch_s), scaling_text(case),
                     f"{figures.allreduce_share:.0%}" if figures.allreduce_share is not None else "-",
                     f"{figures.slowest_rank}", figures.shards,
                     f"{case.test_accuracy:.1%}" if case.test_accuracy is not None else "-"])
    return Table(headers, rows, "vs 1 device = images/s over the same model with world size 1 on one device of the "
                 "group, and scaling efficiency, images/s with N / (N x images/s with 1); all-reduce share = the "
                 "epoch's wall time with a gradient all-reduce in flight, on the rank where it is largest; "
                 "epochs timed from a barrier to a synchronize, the slowest rank's", text_columns=4)


def scaling_chart(cases: list[CaseResult], path: Path) -> Path | None:
    """Images/s against the number of devices, a line per model and group kind, with the ideal line."""
    lines: dict[tuple[str, str, int, bool], list[tuple[int, float, bool]]] = {}
    for case in _groups(cases):
        kind = "GPU" if case.device.startswith("cuda") else "CPU"
        per_rank = case.batch_size // case.world_size if case.per_device_batch else case.batch_size
        lines.setdefault((case.model, kind, per_rank, case.per_device_batch), []).append(
            (case.world_size, case.images_per_s, case.parallel.oversubscribed))
    # A line needs its one-device point: the ideal line starts there.
    lines = {key: sorted(points) for key, points in lines.items() if len(points) > 1 and min(points)[0] == 1}
    if not lines:
        return None
    figure = new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    for index, ((model, kind, batch, per_device), points) in enumerate(lines.items()):
        counts, rates, crowded = zip(*points, strict=True)
        color = PALETTE[index % len(PALETTE)]
        batch_name = f"{batch} per device" if per_device else f"global batch {batch}"
        axes.plot(counts, rates, marker="o", color=color, label=f"{model} on {kind}s, {batch_name}")
        # Ideal only as far as the machine has cores for the ranks: past that, N times one is out of reach.
        reachable = [count for count, over in zip(counts, crowded, strict=True) if not over]
        if len(reachable) > 1:
            axes.plot(reachable, [rates[0] * count for count in reachable], color=color, linestyle=":", linewidth=1,
                      label=f"ideal: {rates[0]:,.0f} x N")
    counts = sorted({count for points in lines.values() for count, _, _ in points})
    axes.set_xticks(counts, [str(count) for count in counts])
    axes.set_xlabel("devices in the group (ranks)")
    axes.set_ylabel("training images per second (higher is better)")
    axes.set_title("Data-parallel scaling: measured, and N times one device")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(figure, path)
