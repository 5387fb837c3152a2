"""Results as flat rows, one per case and repeat, as timm's benchmark writes them: the CSV beside
results.json, and what RunResult.to_rows() and to_dataframe() give.

A case's figures (folded over its repeats) fill every row of the case; the `repeat_` columns are
that repeat's own. A case that never measured has one row with its status and error.
"""

from __future__ import annotations

import csv
import io
from typing import Any

CSV_FILE = "results.csv"
# Every field of a case's identity (cases.Workload, and the device) comes first: two rows that differ in
# nothing else are the same case.
CASE_COLUMNS = (
    "model", "device", "device_name", "dataset", "engine", "batch_size", "precision", "train_images", "test_images",
    "image_shape", "world_size", "backend", "per_device_batch", "status", "error", "epochs", "steady_epoch_s",
    "first_epoch_s", "images_per_s", "speedup_vs_cpu", "steady_min_s", "steady_max_s", "steady_cv", "noisy",
    "projected", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "accuracy_meaningful", "params",
    "flops_per_step", "achieved_flops_per_s", "mfu", "floor_epoch_s", "peak_memory_bytes", "peak_host_memory_bytes",
    "cpu_threads", "memory_format", "cuda_graph", "under_load", "stalled_s", "session", "warnings", "model_files")
INFERENCE_COLUMNS = ("latency_median_s", "latency_p95_s", "images_per_s", "batch_size")
ENERGY_COLUMNS = ("joules_per_epoch", "joules_per_image", "average_w", "peak_w", "utilization", "estimate", "source",
                  "not_measured")
PARALLEL_COLUMNS = ("nodes", "shards", "threads_per_rank", "one_device", "speedup_vs_one", "scaling_efficiency",
                    "allreduce_share", "allreduce_s", "slowest_rank", "step_mode")
STARTUP_COLUMNS = ("total_s", "process_s", "import_s", "data_s", "build_s", "tuning_s", "first_step_s")
REPEAT_COLUMNS = ("repeat", "steady_epoch_s", "first_epoch_s", "epoch_s", "test_accuracy", "stalled_s")


def _cell(value: Any) -> Any:
    """A value a spreadsheet reads: lists joined, shapes as 3x32x32, nothing nested."""
    if isinstance(value, (list, tuple)):
        return ("x" if value and all(isinstance(v, int) for v in value) else "; ").join(map(str, value))
    return value


def case_rows(cases) -> list[dict[str, Any]]:
    """One row per repeat of each case (CaseResult), in the order of the cases."""
    rows = []
    for case in cases:
        row = {name: _cell(getattr(case, name)) for name in CASE_COLUMNS}
        row.update({f"inference_{name}": getattr(case.inference, name) if case.inference else None
                    for name in INFERENCE_COLUMNS})
        row.update({f"energy_{name}": getattr(case.energy, name) if case.energy else None for name in ENERGY_COLUMNS})
        row.update({f"parallel_{name}": getattr(case.parallel, name) if case.parallel else None
                    for name in PARALLEL_COLUMNS})
        startup = case.startup
        row.update({f"startup_{name}": getattr(startup, name) if startup else None for name in STARTUP_COLUMNS})
        repeats = case.repeats or [None]
        for repeat in repeats:
            rows.append({**row, **{f"repeat_{name}": _cell(getattr(repeat, name)) if repeat else None
                                   for name in REPEAT_COLUMNS}})
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0]) if rows else list(CASE_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: "" if value is None else value for name, value in row.items()} for row in rows)
    return buffer.getvalue()


# What a notebook shows of a run: the figures a person reads first, one row per case.
SUMMARY_COLUMNS = (("model", "model"), ("device", "device"), ("batch_size", "batch"), ("precision", "precision"),
                   ("engine", "engine"), ("world_size", "ranks"), ("status", "status"),
                   ("steady_epoch_s", "steady s/epoch"), ("images_per_s", "images/s"),
                   ("speedup_vs_cpu", "speedup vs CPU"), ("test_accuracy", "test accuracy"),
                   ("inference_latency_median_s", "1 image s"))


def _shown(name: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if name == "test_accuracy":
        return f"{value:.1%}"
    if name == "images_per_s":
        return f"{value:,.0f}"
    if name == "speedup_vs_cpu":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 1 else f"{value:.2f}"
    return str(value)


def summary_html(cases) -> str:
    """A compact HTML table of the cases (a notebook's rendering of a RunResult): no pictures, no data."""
    import html

    rows = [row for row in case_rows(cases) if row["repeat_repeat"] in (None, 1)]
    head = "".join(f"<th>{label}</th>" for _, label in SUMMARY_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_shown(name, row.get(name)))}</td>"
                                    for name, _ in SUMMARY_COLUMNS) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_text(cases) -> str:
    """One line per case: 'cnn on cpu: 27.5 s/epoch, 1,818 images/s, test accuracy 42.5%'."""
    lines = []
    for row in (row for row in case_rows(cases) if row["repeat_repeat"] in (None, 1)):
        figures = (f"{_shown('steady_epoch_s', row['steady_epoch_s'])} s/epoch, "
                   f"{_shown('images_per_s', row['images_per_s'])} images/s, "
                   f"test accuracy {_shown('test_accuracy', row['test_accuracy'])}") if row["status"] == "ok" \
            else f"{row['status']}: {row['error']}"
        ranks = f", {row['world_size']} ranks ({row['backend']})" if row["backend"] else ""
        lines.append(f"  {row['model']} on {row['device']} (batch {row['batch_size']}, {row['precision']}, "
                     f"{row['engine']}{ranks}): {figures}")
    return "\n".join(lines)
