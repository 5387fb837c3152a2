"""Writing a report folder: report.md, a self-contained report.html and the PNG charts."""

from __future__ import annotations

import re
from pathlib import Path

from ..cases import CaseKey, Workload, varying_axes
from ..output import prepare_folder, write_atomically, write_error
from ..results import CaseResult
from .answering import INFERENCE_EXPLAINED, inference_headlines, inference_table, saved_models
from .comparison import Comparison, crossovers, engine_effects, headlines, pivots, precision_effects
from .document import Block, Bullets, Heading, Image, Paragraph, Table, to_html, to_markdown
from .pictures import chart_blocks
from .scaling import scaling_sentences, scaling_table
from .settings import machine_lines, run_settings, settings_table
from .units import LOAD_ADVICE, memory_column, rate_text, seconds_cell, times
from .worth import WORTH_EXPLAINED, missing, verdicts, worth_table

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def _accuracy(case: CaseResult) -> str:
    if case.test_accuracy is None:
        return "-"
    return f"{case.test_accuracy:.1%}" + ("" if case.accuracy_meaningful else " *")


def _compares(comparison: Comparison) -> bool:
    """Whether any row has a device to set beside the baseline: the speedup column is shown only then."""
    return any(comparison.pace(key, column) for key in comparison.rows for column in comparison.columns
               if column != comparison.baseline)


def _main_table(comparison: Comparison, axes) -> Table:
    measured = _measured(comparison)
    memory_unit, memory = memory_column([case.peak_memory_bytes for _, _, case in measured if case.ok])
    speedup = _compares(comparison)
    figures = ["first epoch s", "steady s/epoch", "steady range s", "CV", "images/s", "MFU", "floor s/epoch"]
    figures += [f"speedup vs {'CPU' if comparison.baseline == 'cpu' else comparison.baseline}"] if speedup else []
    figures += ["test accuracy", f"peak memory {memory_unit}"]
    headers = _lead_headers(comparison) + ["device"] + figures
    rows, flagged, notes, sentences = [], set(), {}, {}
    for key, column, case in measured:
        lead = _lead(comparison, key)
        device = f"{column}\n{case.device_name}" if case.device_name else column
        # Each warning goes with the row it qualifies, named by the case, so that it still reads on its own.
        case_notes = [f"{CaseKey(case.workload, column).label(axes)}: {warning}" for warning in case.warnings]
        if case_notes:
            notes[len(rows)] = case_notes
        if not case.ok:
            flagged.add((len(rows), len(lead) + 1))
            sentences[len(rows)] = (len(lead) + 1, "result")
            rows.append(lead + [device, f"{case.status}: {case.error or 'no reason recorded'}"]
                        + [""] * (len(figures) - 1))
            continue
        first = seconds_cell(case.first_epoch_s) + ("\nwarmed up" if case.warmup_steps else "")
        steady = seconds_cell(case.steady_epoch_s) + (
            f"\nprojected from {case.measured_steps} steps" if case.projected else "")
        if comparison.per_image(key):
            steady += f"\nepochs of {case.train_images:,} images"
        if case.under_load:
            steady += "\nunder load"
            flagged.add((len(rows), len(lead) + 2))
        spread, cv = _spread(case)
        if case.noisy:
            flagged.add((len(rows), len(lead) + 4))
        cells = [first, steady, spread, cv, rate_text(case.images_per_s),
                 f"{case.mfu:.0%}" if case.mfu is not None else "-", seconds_cell(case.floor_epoch_s)]
        cells += [_ratio(comparison, key, column)] if speedup else []
        rows.append(lead + [device] + cells + [_accuracy(case), memory(case.peak_memory_bytes)])
    every_case = [case for _, _, case in measured]
    caption = "steady = median of the epochs after the first; range and CV = its spread"
    if any(comparison.per_image(key) for key in comparison.rows):
        caption += ("; per image = compared in images/s, because the files trained on different numbers of "
                    "images, so their epochs are not compared")
    if any(case.under_load for case in every_case):
        caption += f"; under load = measured while other programs used the CPU, so too slow: {LOAD_ADVICE}"
    if any(not case.accuracy_meaningful for case in every_case):
        caption += "; * random data: accuracy means nothing"
    caption += ("; MFU = achieved FLOP/s over the device's measured matmul peak in the case's precision; "
                "floor = the least time an epoch can take, FLOPs over peak or bytes over bandwidth")
    if any(column.startswith("cuda") for _, column, _ in measured):
        caption += f"; {MEMORY_EXPLAINED}"
    return Table(headers, rows, caption, flagged, text_columns=len(_lead_headers(comparison)) + 1, notes=notes,
                 sentences=sentences)


# The two peaks count different things; said wherever they stand side by side.
MEMORY_EXPLAINED = ("peak memory = on a GPU, the most PyTorch's caching allocator held (tensors, its cache and the "
                    "libraries' workspaces; not the CUDA context, a few hundred MB more); on the CPU, the whole "
                    "process's resident peak")


def _ratio(comparison: Comparison, key: Workload, column: str) -> str:
    found = comparison.pace(key, column)
    if found is None:
        return "-"
    return times(found.ratio) + (" per image" if found.per_image else "")


def _spread(case: CaseResult) -> tuple[str, str]:
    """The steady time's range in seconds, and its coefficient of variation over repeats or epochs."""
    if case.steady_cv is None:
        return "-", "-"
    over = f"over {len(case.repeats)} repeats" if case.spread_of == "repeats" else "over epochs"
    return (f"{seconds_cell(case.steady_min_s)}-{seconds_cell(case.steady_max_s)}",
            f"{case.steady_cv:.1%}\n{over}" + ("\nnoisy" if case.noisy else ""))


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


def _measured(comparison: Comparison) -> list[tuple[Workload, str, CaseResult]]:
    """Every case shown, with its row and column, in the order of the main table."""
    return [(key, column, cells[column]) for key, cells in comparison.rows.items()
            for column in comparison.columns if column in cells]


def _lead(comparison: Comparison, key: Workload) -> list[str]:
    """The cells that tell a row's cases apart: the model, and each axis that varies."""
    return [key.model] + ([str(key.batch_size)] if len(comparison.batch_sizes()) > 1 else []) + (
        [key.precision] if comparison.shows_precision() else []) + _engine_and_ranks(comparison, key)


def _lead_headers(comparison: Comparison) -> list[str]:
    return ["model"] + (["batch"] if len(comparison.batch_sizes()) > 1 else []) + (
        ["precision"] if comparison.shows_precision() else []) + _engine_and_ranks_headers(comparison)


def _engine_and_ranks(comparison: Comparison, key: Workload) -> list[str]:
    ranks = f"{key.world_size} {key.backend}" if key.backend else "-"
    return ([key.engine] if comparison.shows_engine() else []) + ([ranks] if comparison.shows_ranks() else [])


def _engine_and_ranks_headers(comparison: Comparison) -> list[str]:
    return (["engine"] if comparison.shows_engine() else []) + (["ranks"] if comparison.shows_ranks() else [])


def _startup_table(comparison: Comparison) -> Table | None:
    cases = [(key, column, case) for key, column, case in _measured(comparison) if case.ok and case.startup]
    if not cases:
        return None

    def cell(value: float | None) -> str:
        return seconds_cell(value) if value is not None else "-"

    # Importing Keras, tuning CPU kernels, the layout trial, recording a CUDA graph: columns where any case paid.
    optional = [(name, part) for name, part in (("Keras import", "import_s"), ("kernel tuning", "tuning_s"),
                                                ("layout trial", "layout_s"), ("CUDA graph record", "graph_record_s"))
                if any(getattr(case.startup, part) is not None for _, _, case in cases)]
    rows = [_lead(comparison, key) + [column, cell(s.process_s), cell(s.data_s), cell(s.build_s)]
            + [cell(getattr(s, part)) for _, part in optional]
            + [cell(s.first_step_s), f"{s.steady_step_s * 1e3:.2f}" if s.steady_step_s else "-", cell(s.total_s)]
            for key, column, case in cases for s in [case.startup]]
    headers = _lead_headers(comparison) + ["device", "Python + imports s", "data to device s", "model build s"] + [
        f"{name} s" for name, _ in optional] + ["first step s", "steady step ms", "start-up total s"]
    return Table(headers, rows, "paid once per process, from its first repeat; total = the parts plus the first "
                 "step's excess over a steady one", text_columns=len(headers) - 6 - len(optional))


def _repeats_table(comparison: Comparison) -> Table | None:
    cases = [(key, column, case) for key, column, case in _measured(comparison) if len(case.repeats) > 1]
    if not cases:
        return None
    rows = [_lead(comparison, key) + [column, ", ".join(seconds_cell(r.steady_epoch_s) for r in case.repeats),
                                      seconds_cell(case.steady_epoch_s),
                                      f"{case.steady_cv:.1%}" if case.steady_cv is not None else "-",
                                      "noisy" if case.noisy else "ok"]
            for key, column, case in cases]
    headers = _lead_headers(comparison) + ["device", "steady s/epoch of each repeat", "median", "CV", "spread"]
    return Table(headers, rows, "every repeat, trained from the same seed in a fresh process",
                 text_columns=len(headers) - 4)


def _comparison_tables(comparison: Comparison) -> list[Table]:
    """Each machine's figure and its speedup over the baseline, one unit per column: seconds per epoch where
    the files trained alike, images/s in a table of their own where they trained on different numbers of images."""
    others = [column for column in comparison.columns if column != comparison.baseline]
    tables = []
    for per_image in (False, True):
        keys = [key for key in comparison.rows if comparison.per_image(key) == per_image]
        if not keys:
            continue
        unit = "images/s" if per_image else "s/epoch"
        told_apart = _engine_and_ranks_headers(comparison)
        headers = ["model", "data", "batch", "precision", *told_apart]
        headers += [f"{column} {unit}" for column in comparison.columns]
        headers += [f"{column} speedup" for column in others]
        rows = []
        for key in keys:
            cells = comparison.rows[key]
            row = [key.model, key.dataset, str(key.batch_size), key.precision, *_engine_and_ranks(comparison, key)]
            for column in comparison.columns:
                case = cells.get(column)
                if case is None:
                    row.append("-")
                elif not case.ok:
                    row.append(case.status)
                else:
                    row.append(f"{rate_text(case.images_per_s)}\nof {case.train_images:,}" if per_image
                               else seconds_cell(case.steady_epoch_s))
            row += [times(found.ratio) if (found := comparison.pace(key, column)) else "-" for column in others]
            rows.append(row)
        caption = (f"steady seconds per epoch, and speedup over {comparison.baseline}" if not per_image else
                   f"the files trained on different numbers of images, so their epochs are not compared: images/s, "
                   f"of how many images, and the speedup per image over {comparison.baseline}")
        tables.append(Table(headers, rows, caption, text_columns=4 + len(told_apart)))
    return tables


def build_blocks(comparison: Comparison, out_dir: Path) -> list[Block]:
    first_result = comparison.sources[0][1]
    data = first_result.dataset
    title = "trainspeed report" if comparison.single_machine else "trainspeed comparison"
    blocks: list[Block] = [Heading(title, 1)]
    every_result_case = [case for _, result in comparison.sources for case in result.cases]
    blocks += [Paragraph(sentence, "headline") for sentence in headlines(comparison) + inference_headlines(comparison)
               + scaling_sentences(every_result_case)]
    # What a lower precision buys and costs belongs with the headline, not below the tables.
    blocks += [Paragraph(effect.sentence, "warning" if effect.costs_accuracy else "headline")
               for effect in [*engine_effects(comparison), *precision_effects(comparison)]]
    notes = [] if not comparison.single_machine else list(first_result.notes)
    notes += comparison.notes
    blocks += [Paragraph(note, "warning") for note in notes]

    blocks.append(Heading("Machine" if comparison.single_machine else "Machines"))
    blocks.append(Bullets([line for label, result in comparison.sources for line in machine_lines(label, result)]))
    if comparison.single_machine:
        blocks += [Heading("Settings"), Bullets(run_settings(first_result))]
    else:
        blocks += [Heading("Settings"), settings_table(comparison)]

    measured = _measured(comparison)
    # Named by column and by every axis that varies, so that a sweep's cases can be told apart.
    axes = varying_axes([CaseKey(case.workload, column) for _, column, case in measured])
    blocks.append(Heading("Results"))
    blocks.append(_main_table(comparison, axes))
    if not comparison.single_machine:
        blocks += _comparison_tables(comparison)
    if comparison.not_comparable:
        blocks += [Paragraph("Not comparable (no counterpart with the same model, data set, image shape, image counts, "
                             "batch size and precision; image counts alone are compared per image):"),
                   Bullets(comparison.not_comparable)]
    worth = ([Paragraph(sentence, "headline") for sentence in verdicts(comparison)]
             + [Paragraph(line) for line in missing(comparison)])
    if table := worth_table(comparison, _lead, _lead_headers(comparison)):
        worth += [table, Paragraph(WORTH_EXPLAINED)]
    blocks += [Heading("Is it worth it?", 3), *worth] if worth else []
    for pivot in pivots(comparison):
        rows = [[label] + [f"{v:.2f} s" if v is not None else "-" for v in (values.get(c) for c in pivot.columns)]
                for label, values in pivot.rows]
        blocks.append(Table([pivot.row_header] + pivot.columns, rows, pivot.title))
    if scaling := scaling_table(every_result_case):
        blocks += [Heading("Data-parallel scaling", 3), scaling]
    repeats = _repeats_table(comparison)
    if repeats:
        blocks.append(repeats)
    startup = _startup_table(comparison)
    if startup:
        blocks += [Heading("Start-up cost", 3), startup, Paragraph(STARTUP_EXPLAINED)]
    answering = inference_table(comparison, _lead, _lead_headers(comparison))
    if answering:
        blocks += [Heading("After training: inference", 3), answering, Paragraph(INFERENCE_EXPLAINED)]
    if saved := saved_models(comparison):
        blocks += [Heading("Saved models", 3), Paragraph("For trainspeed predict, in the run's folder:"),
                   Bullets(saved)]
    every_case = [case for _, _, case in measured]
    if any(case.noisy for case in every_case):
        blocks.append(Paragraph(NOISE_EXPLAINED, "warning"))
    if any(case.projected for case in every_case):
        blocks.append(Paragraph(PROJECTION_EXPLAINED))
    found = crossovers(comparison)
    blocks += [Paragraph(crossing.sentence, "headline") for crossing in found]

    blocks.append(Heading("Charts"))
    blocks += chart_blocks(comparison, found, data, out_dir)
    return blocks


def write_report(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write the charts, report.md and report.html into out_dir; returns the files written. The pictures of
    an earlier report there that this one does not draw are removed: beside a report, they would pass
    for this run's."""
    out_dir = prepare_folder(out_dir)
    earlier = _pictures_of(out_dir / REPORT_MD)
    try:
        blocks = build_blocks(comparison, out_dir)
        title = blocks[0].text if isinstance(blocks[0], Heading) else "trainspeed"
        # Each file whole or not at all: a full disk leaves the last good report, never half of one.
        markdown = write_atomically(out_dir / REPORT_MD, to_markdown(blocks))
        page = write_atomically(out_dir / REPORT_HTML, to_html(blocks, title))
    except OSError as error:
        raise write_error(Path(error.filename or out_dir / REPORT_HTML), error) from None
    pictures = [block.path for block in blocks if isinstance(block, Image)]
    for stale in earlier - {picture.name for picture in pictures}:
        (out_dir / stale).unlink(missing_ok=True)
    return [markdown, page] + pictures


def _pictures_of(report: Path) -> set[str]:
    """The picture files a report.md in this folder links to: trainspeed's own, and only those."""
    try:
        text = report.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return set(re.findall(r"^!\[[^\]\n]*\]\(([\w.-]+\.png)\)$", text, re.MULTILINE))


def report_beside(results_file: Path) -> list[Path]:
    """The report of a results file, written in its folder: what a run stopped part-way leaves for its
    finished cases."""
    from ..results import RunResult
    from .comparison import compare

    return write_report(compare([(None, RunResult.read(results_file))]), results_file.parent)


def report_folder(source: Path, repriced: bool) -> Path:
    """Where `trainspeed report FILE` writes when no --out is given. A report beside a results file
    describes that file: an archived one (results-<time>.json) gets a folder of its own, and a report
    at other prices than the file holds needs one named."""
    from ..errors import ConfigError
    from ..results import RESULTS_FILE

    if repriced:
        raise ConfigError(f"{source.parent / REPORT_MD} describes {source} at the prices it holds; give --out FOLDER "
                          "for the report at the new prices")
    return source.parent if source.name == RESULTS_FILE else source.parent / f"{source.stem}-report"
