"""Writing a report folder: report.md, a self-contained report.html and the PNG charts."""

from __future__ import annotations

import re
from pathlib import Path

from ..results import CaseResult, RunResult
from . import charts
from .comparison import CaseKey, Comparison, crossovers, headlines, pivots, precision_effects
from .document import Block, Bullets, Heading, Image, Paragraph, Table, to_html, to_markdown
from .units import seconds_cell

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _bytes(value: int | None) -> str:
    if not value:
        return "-"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def _accuracy(case: CaseResult) -> str:
    if case.test_accuracy is None:
        return "-"
    return f"{case.test_accuracy:.1%}" + ("" if case.accuracy_meaningful else " *")


def _machine_lines(label: str | None, result: RunResult) -> list[str]:
    env = result.environment
    cpu = env.get("cpu", {})
    prefix = f"{label}: " if label else ""
    lines = [f"{prefix}CPU: {cpu.get('model', '?')}, {cpu.get('logical_cores', '?')} logical cores, "
             f"{cpu.get('threads', '?')} threads used; PyTorch kernels {cpu.get('torch_capability', '?')}; "
             f"ISA {' '.join(cpu.get('features', [])) or 'unknown'}"
             + (f"; governor {cpu['governor']}" if cpu.get("governor") else "")]
    for gpu in env.get("gpus", []):
        memory = _bytes(gpu.get("memory_bytes"))
        facts = ", ".join(f"{name} {gpu[key]}" for name, key in
                          (("compute capability", "compute_capability"), ("driver", "driver"),
                           ("CUDA", "cuda"), ("cuDNN", "cudnn")) if gpu.get(key))
        lines.append(f"{prefix}GPU {gpu.get('device')}: {gpu.get('name')}, {memory}" + (f", {facts}" if facts else ""))
    if not env.get("gpus"):
        lines.append(f"{prefix}no GPU: {env.get('no_gpu_reason') or 'none found'}")
    lines.append(f"{prefix}software: Python {env.get('python')}, PyTorch {env.get('torch')}, "
                 f"{env.get('os')}, trainspeed {result.trainspeed_version}")
    return lines


def _settings(result: RunResult) -> list[str]:
    config, data = result.config, result.dataset
    lines = [f"models: {', '.join(config.get('models', []))}",
             f"epochs: {config.get('epochs')}, batch sizes: {', '.join(map(str, config.get('batch_sizes', [])))}, "
             f"precision: {', '.join(config.get('precisions') or [config.get('precision', 'fp32')])}, "
             f"seed: {config.get('seed')}",
             f"measured: {result.created}"]
    if data:
        lines.insert(1, f"data: {data.name} ({data.train_images:,} training and {data.test_images:,} test images, "
                        f"from {data.source})")
    return lines


def _main_table(comparison: Comparison) -> Table:
    several_batches = len(comparison.batch_sizes()) > 1
    lead_headers = ["model"] + (["batch"] if several_batches else []) + (
        ["precision"] if comparison.shows_precision() else [])
    headers = lead_headers + [
        "device", "first epoch s", "steady s/epoch", "images/s", "MFU (floor s)",
        f"speedup vs {'CPU' if comparison.baseline == 'cpu' else comparison.baseline}",
        "test accuracy", "peak memory"]
    headers.insert(headers.index("images/s"), "spread")
    rows, flagged = [], set()
    for key, cells in comparison.rows.items():
        for column in comparison.columns:
            case = cells.get(column)
            if case is None:
                continue
            lead = [key.model] + ([str(key.batch_size)] if several_batches else []) + (
                [key.precision] if comparison.shows_precision() else [])
            device = f"{column}\n{case.device_name}" if case.device_name else column
            if not case.ok:
                flagged.add((len(rows), len(lead) + 1))
                rows.append(lead + [device, f"{case.status}: {case.error or 'no reason recorded'}"] + [""] * 7)
                continue
            ratio = comparison.speedup(key, column)
            first = seconds_cell(case.first_epoch_s) + (" (warmed up)" if case.warmup_steps else "")
            steady = seconds_cell(case.steady_epoch_s) + (
                f"\nprojected from {case.measured_steps} steps" if case.projected else "")
            if case.noisy:
                flagged.add((len(rows), len(lead) + 3))
            rows.append(lead + [device, first, steady, _spread(case),
                                f"{case.images_per_s:,.0f}" if case.images_per_s else "-", _mfu(case),
                                f"{ratio:.1f}x" if ratio else "-", _accuracy(case), _bytes(case.peak_memory_bytes)])
    caption = "steady = median of the epochs after the first"
    if any(not case.accuracy_meaningful for cells in comparison.rows.values() for case in cells.values()):
        caption += "; * random data: accuracy means nothing"
    caption += ("; MFU = achieved FLOP/s over the device's measured matmul peak in the case's precision; "
                "floor = the least time an epoch can take (FLOPs / peak or bytes / bandwidth)")
    return Table(headers, rows, caption, flagged, text_columns=len(headers) - 8)


def _mfu(case: CaseResult) -> str:
    if case.mfu is None:
        return "-"
    return f"{case.mfu:.0%}" + (f"\n({seconds_cell(case.floor_epoch_s)})" if case.floor_epoch_s else "")


def _spread(case: CaseResult) -> str:
    if case.steady_cv is None:
        return "-"
    text = (f"{seconds_cell(case.steady_min_s)}-{seconds_cell(case.steady_max_s)}\nCV {case.steady_cv:.1%} "
            f"over {len(case.repeats)} repeats" if case.spread_of == "repeats" else
            f"{seconds_cell(case.steady_min_s)}-{seconds_cell(case.steady_max_s)}\nCV {case.steady_cv:.1%} over epochs")
    return text + ("\nnoisy" if case.noisy else "")


NOISE_EXPLAINED = (
    "A case is flagged noisy when its steady epoch times vary by more than 5% (coefficient of variation). "
    "A speedup or a difference between machines smaller than that spread is not a result: it can come from "
    "another program, a changing clock or the operating system. Close other programs, set the CPU frequency "
    "governor to performance, and rerun with --repeats 5.")

PROJECTION_EXPLAINED = (
    "A projected time comes from a time budget (--time-budget): the case timed its steady training steps "
    "for the budget and scaled the median step to a full epoch, instead of training the whole epoch. It is "
    "a timing, not a training run, so it has no accuracy.")


STARTUP_EXPLAINED = (
    "Start-up is paid once, before training runs at full speed: launching Python and importing torch, reading "
    "the data and copying it to the device, building the model, and the first step (lazy initialization, kernel "
    "selection, first allocations; compilation where a step is compiled). A notebook's one-epoch %%timeit of "
    "model.fit includes the first step's share, and a fresh kernel pays all of it; the steady epoch time above "
    "leaves it out.")


def _startup_table(comparison: Comparison) -> Table | None:
    cases = [case for cells in comparison.rows.values() for case in cells.values() if case.ok and case.startup]
    if not cases:
        return None
    show_precision = comparison.shows_precision()

    def cell(value: float | None) -> str:
        return f"{seconds_cell(value)} s" if value is not None else "-"

    rows = [[case.model] + ([case.precision] if show_precision else []) + [
        case.device, cell(s.process_s), cell(s.data_s), cell(s.build_s), cell(s.first_step_s),
        f"{s.steady_step_s * 1e3:.2f} ms" if s.steady_step_s else "-", cell(s.total_s)]
        for case in cases for s in [case.startup]]
    headers = ["model"] + (["precision"] if show_precision else []) + [
        "device", "Python + imports", "data to device", "model build", "first step", "steady step", "start-up total"]
    return Table(headers, rows, "paid once per process, from its first repeat; total = the parts plus the first "
                 "step's excess over a steady one", text_columns=len(headers) - 6)


def _repeats_table(comparison: Comparison) -> Table | None:
    cases = [case for cells in comparison.rows.values() for case in cells.values() if len(case.repeats) > 1]
    if not cases:
        return None
    rows = [[case.model, case.device, str(case.batch_size),
             ", ".join(seconds_cell(r.steady_epoch_s) for r in case.repeats), seconds_cell(case.steady_epoch_s),
             f"{case.steady_cv:.1%}" if case.steady_cv is not None else "-", "noisy" if case.noisy else "ok"]
            for case in cases]
    return Table(["model", "device", "batch", "steady s/epoch of each repeat", "median", "CV", "spread"], rows,
                 "every repeat, trained from the same seed in a fresh process", text_columns=3)


def _comparison_table(comparison: Comparison) -> Table:
    headers = ["model", "data", "batch", "precision"] + comparison.columns
    rows = []
    for key, cells in comparison.rows.items():
        row = [key.model, key.dataset, str(key.batch_size), key.precision]
        for column in comparison.columns:
            case = cells.get(column)
            if case is None:
                row.append("-")
            elif not case.ok:
                row.append(case.status)
            else:
                ratio = comparison.speedup(key, column)
                row.append(f"{seconds_cell(case.steady_epoch_s)} s" + (f"\n{ratio:.1f}x" if ratio else ""))
        rows.append(row)
    return Table(headers, rows, f"steady seconds per epoch, and speedup over {comparison.baseline}", text_columns=4)


def _pick_case(cells: dict[str, CaseResult], fields: tuple[str, ...]) -> tuple[str, CaseResult] | None:
    for column, case in cells.items():
        if case.ok and all(getattr(case, name) for name in fields):
            return column, case
    return None


def build_blocks(comparison: Comparison, out_dir: Path) -> list[Block]:
    first_result = comparison.sources[0][1]
    data = first_result.dataset
    title = "trainspeed report" if comparison.single_machine else "trainspeed comparison"
    blocks: list[Block] = [Heading(title, 1)]
    blocks += [Paragraph(sentence, "headline") for sentence in headlines(comparison)]
    # What a lower precision buys and costs belongs with the headline, not below the tables.
    blocks += [Paragraph(effect.sentence, "warning" if effect.costs_accuracy else "headline")
               for effect in precision_effects(comparison)]
    notes = [] if not comparison.single_machine else list(first_result.notes)
    notes += comparison.notes
    blocks += [Paragraph(note, "warning") for note in notes]

    blocks.append(Heading("Machine" if comparison.single_machine else "Machines"))
    blocks.append(Bullets([line for label, result in comparison.sources for line in _machine_lines(label, result)]))
    if comparison.single_machine:
        blocks += [Heading("Settings"), Bullets(_settings(first_result))]

    blocks.append(Heading("Results"))
    blocks.append(_main_table(comparison))
    if not comparison.single_machine:
        blocks.append(_comparison_table(comparison))
    if comparison.not_comparable:
        blocks += [Paragraph("Not comparable (no counterpart with the same model, data, batch size and precision):"),
                   Bullets(comparison.not_comparable)]
    for pivot in pivots(comparison):
        rows = [[label] + [f"{v:.2f} s" if v is not None else "-" for v in (values.get(c) for c in pivot.columns)]
                for label, values in pivot.rows]
        blocks.append(Table([pivot.row_header] + pivot.columns, rows, pivot.title))
    repeats = _repeats_table(comparison)
    if repeats:
        blocks.append(repeats)
    startup = _startup_table(comparison)
    if startup:
        blocks += [Heading("Start-up cost", 3), startup, Paragraph(STARTUP_EXPLAINED)]
    every_case = [case for cells in comparison.rows.values() for case in cells.values()]
    if any(case.noisy for case in every_case):
        blocks.append(Paragraph(NOISE_EXPLAINED, "warning"))
    if any(case.projected for case in every_case):
        blocks.append(Paragraph(PROJECTION_EXPLAINED))
    warnings = [f"{case.model} on {case.device}, batch {case.batch_size}: {warning}"
                for case in every_case for warning in case.warnings]
    if warnings:
        blocks += [Heading("Validity warnings", 3), Bullets(warnings)]
    found = crossovers(comparison)
    blocks += [Paragraph(crossing.sentence, "headline") for crossing in found]

    blocks.append(Heading("Charts"))
    images = []
    path = charts.epoch_time_chart(comparison, out_dir / "epoch_time.png")
    images.append(Image(path, "seconds per epoch by model and device",
                        "Steady seconds per epoch: the shorter the bar, the faster the device."))
    path = charts.speedup_chart(comparison, out_dir / "speedup.png")
    if path:
        images.append(Image(path, f"speedup over {comparison.baseline}",
                            f"How many times faster than {comparison.baseline} each device trains."))
    path = charts.throughput_chart(comparison, found, out_dir / "throughput_by_batch.png")
    if path:
        images.append(Image(path, "images per second by batch size",
                            "Throughput as the batch grows: GPUs need large batches to pay off."))
    several_batches = len(comparison.batch_sizes()) > 1
    for key in comparison.rows:
        name = _slug(key.model + (f"-batch-{key.batch_size}" if several_batches else "")
                     + (f"-{key.precision}" if comparison.shows_precision() else ""))
        path = charts.learning_curves_chart(comparison, key, out_dir / f"learning_{name}.png")
        if path:
            subject = key.model + (f" in {key.precision}" if comparison.shows_precision() else "")
            images.append(Image(path, f"learning curves of the {subject}",
                                "Training loss and accuracy per epoch; the devices should follow each other."))
    images += _accuracy_pictures(comparison, data, out_dir)
    blocks += images
    return blocks


def _accuracy_pictures(comparison: Comparison, data, out_dir: Path) -> list[Image]:
    if data is None or not data.accuracy_meaningful:
        return []
    images = []
    sample = data.sample_images()
    for model in comparison.models():
        # One picture per model: the first batch size's first successful case.
        key: CaseKey = next(k for k in comparison.rows if k.model == model)
        chosen = _pick_case(comparison.rows[key], ("sample_predictions",))
        if sample is not None and chosen:
            column, case = chosen
            path = charts.prediction_grid_chart(
                sample, data.sample_labels, case.sample_predictions, data.classes,
                f"The {model} trained on {column}: test images, true and guessed class",
                out_dir / f"predictions_{_slug(model)}.png")
            images.append(Image(path, f"test images with the {model}'s predictions",
                                "Wrong guesses are framed and titled in red."))
        chosen = _pick_case(comparison.rows[key], ("confusion_matrix",))
        if chosen:
            column, case = chosen
            path = charts.confusion_chart(case.confusion_matrix, data.classes,
                                          f"{model} on {column}: test accuracy {case.test_accuracy:.1%}",
                                          out_dir / f"confusion_{_slug(model)}.png")
            images.append(Image(path, f"confusion matrix of the {model}",
                                "Rows: the true class; columns: the guess. The diagonal is right."))
    return images


def write_report(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write the charts, report.md and report.html into out_dir; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(comparison, out_dir)
    title = blocks[0].text if isinstance(blocks[0], Heading) else "trainspeed"
    markdown = out_dir / REPORT_MD
    markdown.write_text(to_markdown(blocks))
    page = out_dir / REPORT_HTML
    page.write_text(to_html(blocks, title))
    return [markdown, page] + [block.path for block in blocks if isinstance(block, Image)]
