"""Rich tables for the terminal: the devices of this machine and the results of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.markup import escape
from rich.table import Table

from ..cases import varying_axes
from ..results import CaseResult, RunResult
from .scaling import ranks_text, scaling_text
from .units import LOAD_ADVICE, milliseconds, plain_name, rate_text, seconds_cell, times

if TYPE_CHECKING:
    # Only the types: the report reads what was recorded and must not import torch to do so.
    from ..machine.describe import DeviceReport
    from ..prediction import Answers

NOISE_ADVICE = ("its steady epoch times vary by more than 5%, so smaller differences are not results; "
                "close other programs and rerun with --repeats 5")


def _gib(value: int | None) -> str:
    return f"{value / 2**30:.1f} GiB" if value else "-"


def _precisions(names: list[str]) -> str:
    return ", ".join(names) or "none recorded"


def engines_table(engines: dict[str, str]) -> Table:
    """Who can train here: trainspeed's engine always, each Keras backend where it is installed."""
    table = Table(title="Engines (--engines)", show_header=True, header_style="bold")
    table.add_column("engine")
    table.add_column("here")
    table.add_row("trainspeed", "built in: PyTorch, tuned per device")
    for engine, state in engines.items():
        # The install line's "trainspeed[keras-jax]" would otherwise be read as Rich markup and vanish.
        table.add_row(engine, escape(state) if state.startswith("installed") else f"[yellow]{escape(state)}[/]")
    return table


def devices_table(report: DeviceReport) -> Table:
    table = Table(title="Devices trainspeed can train on", show_header=True, header_style="bold")
    table.add_column("device")
    table.add_column("what it is")
    table.add_column("details")
    cpu = report.cpu
    cores = f"{cpu.logical_cores} logical"
    if cpu.physical_cores:
        cores += f", {cpu.physical_cores} physical"
    cores += f", {cpu.usable_cores} usable; {cpu.threads} threads used"
    details = [cores, f"PyTorch kernels: {cpu.torch_capability}",
               f"ISA: {' '.join(cpu.features) or 'unknown'}"]
    if cpu.governor:
        details.append(f"frequency governor: {cpu.governor}")
    if cpu.max_mhz:
        details.append(f"max clock: {cpu.max_mhz:.0f} MHz")
    details.append(f"precisions: {_precisions(cpu.precisions)}")
    table.add_row("cpu", cpu.model, "\n".join(details))
    for gpu in report.gpus:
        facts = [f"memory: {_gib(gpu.memory_bytes)}"]
        if gpu.compute_capability:
            facts.append(f"compute capability {gpu.compute_capability}, {gpu.multiprocessors} SMs")
        facts += [f"{label}: {value}" for label, value in
                  (("driver", gpu.driver), ("CUDA", gpu.cuda), ("cuDNN", gpu.cudnn)) if value]
        facts.append(f"precisions: {_precisions(gpu.precisions)}")
        table.add_row(gpu.device, gpu.name, "\n".join(facts))
    if not report.gpus:
        table.add_row("[yellow]no GPU[/]", "none usable", f"[yellow]{report.no_gpu_reason}[/]")
    return table


def _accuracy(case: CaseResult) -> str:
    if case.test_accuracy is None:
        return "-"
    text = f"{case.test_accuracy:.1%}"
    return text if case.accuracy_meaningful else f"[dim]{text}*[/]"


def _steady(case: CaseResult) -> str:
    """The steady time with what qualifies it: that it is projected, or was measured under load."""
    text = seconds_cell(case.steady_epoch_s)
    if case.projected:
        text += f" projected from {case.measured_steps} steps"
    return text + (" [yellow]under load[/]" if case.under_load else "")


def _cv(case: CaseResult) -> str:
    if case.steady_cv is None:
        return "-"
    return f"{case.steady_cv:.1%}" + (" [yellow]noisy[/]" if case.noisy else "")


def _lead_value(case: CaseResult, column: str) -> str:
    return {"model": case.model, "batch": str(case.batch_size), "precision": case.precision,
            "engine": case.engine, "device": case.device, "ranks": ranks_text(case)}[column]


def _stacked_case(case: CaseResult, leads: list[tuple[str, str]]) -> str:
    """The model and device, then each varying axis, named where a bare value would puzzle ("batch 32")."""
    axes = [f"batch {case.batch_size}" if name == "batch" else _lead_value(case, name) for name, _ in leads[1:-1]
            if name != "ranks" or case.backend]
    return "\n".join([case.model, case.device, *axes])


def results_table(result: RunResult, width: int | None = None) -> Table:
    """The run's table; where its columns would not fit `width` (an 80-column terminal), the case's
    model, batch, precision, engine and device stack in one column instead of a column each."""
    data = result.dataset
    title = f"trainspeed: {data.name if data else '?'}"
    if data:
        title += f", {data.train_images:,} training images"
    batch_sizes = sorted({case.batch_size for case in result.cases})
    title += f", batch {', '.join(map(str, batch_sizes))}"
    table = Table(title=title, header_style="bold", pad_edge=False)
    precisions = list(dict.fromkeys(case.precision for case in result.cases))
    # A sweep's rows are told apart only by the axes it varies, so each gets a column.
    leads = [("model", "left"), *((("batch", "right"),) if "batch_size" in varying_axes(
        [case.key for case in result.cases]) else ()),
        *((("precision", "left"),) if precisions not in ([], ["fp32"]) else ()),
        *((("engine", "left"),) if {case.engine for case in result.cases} not in (set(), {"trainspeed"}) else ()),
        *((("ranks", "left"),) if any(case.backend for case in result.cases) else ()),
        ("device", "left")]
    # A column only where it has something to say: a spread where there is one, a speedup where a device
    # was set beside the CPU.
    show_cv = any(case.steady_cv is not None for case in result.cases)
    show_speedup = any(case.speedup_vs_cpu and case.device != "cpu" for case in result.cases)
    show_scaling = any(case.parallel and case.parallel.scaling_efficiency for case in result.cases)
    figures = [("first epoch s", "right"), ("steady s/epoch", "right"), *((("CV", "right"),) if show_cv else ()),
               ("images/s", "right"), ("MFU", "right"), *((("speedup vs CPU", "right"),) if show_speedup else ()),
               *((("vs 1 device", "right"),) if show_scaling else ()),
               ("test accuracy", "right")]

    def least(name: str) -> int:
        return max(map(len, name.split()))

    columns = leads + figures
    stacked = width is not None and sum(least(n) + 3 for n, _ in columns) - 1 > width
    if stacked:
        columns = [("case", "left")] + figures
    for name, justify in columns:
        # A header wraps between its words rather than losing its end to an ellipsis.
        table.add_column(name, justify=justify, min_width=least(name), overflow="fold")
    if stacked:  # no lines between the columns: the room goes to the figures
        table.box = box.SIMPLE_HEAD
        table.width = width - 1  # Rich's own fitting can round one column past the edge
        # Its lines are whole: "batch 256" cut in two reads as two axes.
        table.columns[0].min_width = max(len(line) for case in result.cases
                                         for line in _stacked_case(case, leads).splitlines())
    names = {case.device: case.device_name for case in result.cases if case.device_name}
    caption = [f"{device}: {plain_name(name)}" for device, name in names.items()]
    if any(not case.accuracy_meaningful for case in result.cases):
        caption.append("* random data: accuracy means nothing")
    if any(case.under_load for case in result.cases):
        caption.append(f"under load: measured while other programs used the CPU, so too slow; {LOAD_ADVICE}")
    table.caption = "\n".join(caption)
    for case in result.cases:
        lead = [_stacked_case(case, leads)] if stacked else [_lead_value(case, name) for name, _ in leads]
        if not case.ok:
            table.add_row(*lead, f"[red]{case.status}[/]", f"[red]{escape(case.error or '')}[/]",
                          *[""] * (len(table.columns) - len(lead) - 2))
            continue
        first = seconds_cell(case.first_epoch_s)
        if case.warmup_steps:
            first += " [dim]warmed up[/]"
        table.add_row(
            *lead, first, _steady(case), *([_cv(case)] if show_cv else []),
            f"{case.images_per_s:,.0f}" if case.images_per_s else "-",
            f"{case.mfu:.0%}" if case.mfu is not None else "-",
            *([times(case.speedup_vs_cpu) if case.speedup_vs_cpu else "-"] if show_speedup else []),
            *([scaling_text(case)] if show_scaling else []),
            _accuracy(case),
        )
    return table


def inference_table(result: RunResult) -> Table | None:
    """After training: each case's trained network answering one image, and a large batch."""
    cases = [case for case in result.cases if case.ok and case.inference]
    if not cases:
        return None
    axes = varying_axes([case.key for case in result.cases])
    table = Table(title="after training: the network answering", header_style="bold")
    for name, justify in (("case", "left"), ("1 image median", "right"), ("p95", "right"),
                          ("first call", "right"), ("images/s", "right"), ("at batch", "right")):
        table.add_column(name, justify=justify)
    for case in cases:
        figures = case.inference
        table.add_row(escape(case.key.label(axes)), milliseconds(figures.latency_median_s),
                      milliseconds(figures.latency_p95_s), milliseconds(figures.first_latency_s),
                      rate_text(figures.images_per_s), str(figures.batch_size or "-"))
    notes = [f"{case.key.label(axes)}: {case.inference.note}" for case in cases if case.inference.note]
    table.caption = "\n".join(escape(note) for note in notes) or None
    return table


def prediction_table(answers: Answers) -> Table:
    """`trainspeed predict`: each picture, what was done to it, and the model's top classes."""
    info = answers.model.info
    case = info.case
    shape = "x".join(str(size) for size in (info.input_shape[1], info.input_shape[2], info.input_shape[0]))
    trained = (f", trained on {case.get('dataset')} on {case.get('device_name') or case.get('device')}"
               if case else "")
    accuracy = f", test accuracy {case['test_accuracy']:.1%}" if isinstance(case.get("test_accuracy"), float) else ""
    article = "an" if info.architecture[:1] in "aeiou" or info.architecture.startswith("mlp") else "a"
    table = Table(title=f"{escape(str(answers.model.path))}: {article} {info.architecture} for {shape} images"
                        f"{escape(trained)}{accuracy}", header_style="bold")
    table.add_column("image")
    table.add_column("prediction (probability)")
    table.add_column("as the model saw it")
    for answer in answers.answers:
        picture = answer.picture
        guesses = "\n".join(f"{escape(g.label)} {g.probability:.1%}" for g in answer.guesses)
        size = f"{picture.original_size[0]}x{picture.original_size[1]} {picture.original_mode}"
        table.add_row(escape(str(picture.path)), guesses,
                      escape("; ".join((size, *picture.changes)) if picture.changes else f"{size}, as it is"))
    notes = []
    if case.get("dataset") == "synthetic":
        notes.append("this network learned random images with random labels: its answers mean nothing")
    if info.output_activation == "sigmoid":
        notes.append("the ann ends in a sigmoid, as its seed does: each class's probability stands alone, "
                     "so they need not add up to 100%")
    table.caption = "\n".join(notes) or None
    return table


def warning_lines(result: RunResult) -> list[str]:
    """What the CLI prints below the results table, as Rich markup: each case's warnings and noise.

    Each line names its case by the axes the run varies, so a batch sweep's warnings can be told apart.
    """
    axes = varying_axes([case.key for case in result.cases])
    lines = []
    for case in result.cases:
        who = escape(case.key.label(axes))
        lines += [f"[yellow]warning:[/] {who}: {escape(warning)}" for warning in case.warnings]
        if case.noisy:
            lines.append(f"[yellow]warning:[/] {who} is noisy: {NOISE_ADVICE}")
    return lines
