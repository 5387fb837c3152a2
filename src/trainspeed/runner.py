"""A whole run: every requested case, each in its own child process, measured the same way."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from . import __version__, devices, environment, faults, flops, precision, validity
from .config import RunConfig
from .data import DataOptions, Dataset, load_dataset
from .errors import ConfigError, ResultsError
from .graphs import StepGraph
from .models import ModelSpec, check_model_name, create_model
from .progress import EpochProgress
from .results import (
    RESULTS_FILE,
    CaseResult,
    DatasetInfo,
    EpochRecord,
    RepeatRecord,
    RunResult,
    StartupCost,
    case_from_dict,
    fill_speedups,
)
from .stats import first_and_steady, images_per_second, largest_fitting, projected_epoch_s, spread, steps_per_epoch
from .timing import Timer
from .train import DeviceData, StepRunner, evaluate, predict, train_epoch

# Test images whose predictions each case records, for the report's picture of them.
SAMPLE_IMAGES = 16


@dataclass(frozen=True)
class CaseSpec:
    """What identifies a case: results with equal specs measure the same thing."""

    model: str
    device: str
    batch_size: int
    precision: str

    def matches(self, case: CaseResult) -> bool:
        return (case.model, case.device, case.batch_size, case.precision) == \
            (self.model, self.device, self.batch_size, self.precision)


def make_config(config: RunConfig | None = None, **overrides) -> RunConfig:
    if config is not None and overrides:
        raise ConfigError("pass either a RunConfig or keyword settings, not both")
    if config is None:
        valid = {f.name for f in fields(RunConfig)}
        unknown = set(overrides) - valid
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(valid))}")
        config = RunConfig(**overrides)
    config.validate()
    return config


def plan_cases(config: RunConfig, targets: list[torch.device]) -> list[CaseSpec]:
    return [CaseSpec(model, devices.display_name(device), batch, mode)
            for device in targets
            for model, batch, mode in itertools.product(config.models, config.batch_sizes, config.precisions)]


def peaks_key(device: str, mode: str) -> str:
    """Where a device's measured peaks sit in environment["peaks"]: fp32 under the device's name."""
    return device if mode == "fp32" else f"{device} {mode}"


def load_data(config: RunConfig) -> Dataset:
    options = DataOptions(
        data_dir=Path(config.data_dir).expanduser() if config.data_dir else None,
        download=config.download, seed=config.seed, synthetic_shape=tuple(config.synthetic_shape),
    )
    return load_dataset(config.dataset, options).limited(config.limit)


def load_data_timed(config: RunConfig) -> tuple[Dataset, float]:
    """The data set, and the seconds reading it took (part of a case's start-up)."""
    timer = Timer()
    with timer.measure("data") as measured:
        data = load_data(config)
    return data, measured.seconds


def copy_to_device(data: Dataset, device: torch.device) -> tuple[DeviceData, float]:
    """The data set's arrays on `device`, and the seconds the copy took (part of start-up)."""
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    with timer.measure("to device") as measured:
        on_device = DeviceData.from_arrays(data.train_images, data.train_labels, data.test_images,
                                           data.test_labels, device)
    return on_device, measured.seconds


def dataset_info(data: Dataset) -> DatasetInfo:
    sample = np.ascontiguousarray(data.test_images[:SAMPLE_IMAGES])
    return DatasetInfo(
        name=data.name, source=data.source,
        train_images=len(data.train_images), test_images=len(data.test_images),
        image_shape=list(data.image_shape), classes=list(data.class_names),
        matches_release=data.matches_release, accuracy_meaningful=data.accuracy_meaningful,
        notes=list(data.notes),
        sample_images_b64=base64.b64encode(sample.tobytes()).decode("ascii"),
        sample_labels=data.test_labels[:SAMPLE_IMAGES].tolist(),
    )


def _fresh_results_path(config: RunConfig) -> Path | None:
    if not config.out:
        return None
    path = Path(config.out) / RESULTS_FILE
    if path.exists():
        # Never overwrite an earlier run's measurements: keep them beside the new file.
        stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        path.replace(path.with_name(f"results-{stamp}.json"))
    return path


def resume_run(directory: Path, *, console: Console | None = None) -> RunResult:
    """Finish an interrupted run: keep its finished cases, run the rest with the same settings."""
    path = Path(directory) / RESULTS_FILE
    if not path.exists():
        raise ResultsError(f"nothing to resume: {path} does not exist")
    previous = RunResult.read(path)
    config = RunConfig.from_dict(previous.config)
    config.out = str(directory)
    return run(config, console=console, resume=previous)


def run(
    config: RunConfig | None = None,
    *,
    console: Console | None = None,
    keep_models: bool = False,
    resume: RunResult | None = None,
    **overrides,
) -> RunResult:
    """Train every model on every device; returns (and writes to config.out) the results.

    Each case runs in a child process unless `keep_models` asks for the trained networks (they
    only exist in this process) or `isolate=False`. Progress goes to `console` (stderr).
    """
    config = make_config(config, **overrides)
    isolate = config.isolate and not keep_models
    for name in config.models:
        check_model_name(name)
    devices.configure_process()
    targets = devices.resolve(config.devices)
    threads = devices.set_cpu_threads(config.cpu_threads)
    data, load_s = load_data_timed(config)
    if resume is not None:
        result = resume
        path = Path(config.out) / RESULTS_FILE if config.out else None
    else:
        path = _fresh_results_path(config)
        result = RunResult(
            trainspeed_version=__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            config=asdict(config), environment=environment.collect(), dataset=dataset_info(data),
            notes=list(data.notes),
        )
    peaks = result.environment.setdefault("peaks", {})
    for device, mode in itertools.product(targets, config.precisions):
        # Measured once per device and precision; a resumed run keeps its own.
        key = peaks_key(devices.display_name(device), mode)
        if key not in peaks and precision.unsupported_reason(mode, device) is None:
            precision.apply(mode)
            peaks[key] = asdict(devices.measure_peaks(device, mode))
    # Opened only now: a download above shows its own bar, and Rich before 14 allows one live display.
    progress = EpochProgress(console).__enter__()
    for note in data.notes:  # said once, here, and kept in the results
        progress.message(f"[yellow]note:[/] {note}")
    on_device: dict[str, tuple[DeviceData, float]] = {}  # with the seconds the copy took
    try:
        for spec in plan_cases(config, targets):
            entry = _entry_for(result, spec, data, threads)
            if entry.status == "ok":
                progress.message(f"{case_label(spec)}: already measured")
                continue
            unsupported = precision.unsupported_reason(spec.precision, torch.device(spec.device))
            if unsupported:
                entry.status, entry.error = "failed", unsupported
                progress.message(f"[yellow]{case_label(spec)}: not measured:[/] {unsupported}")
                _write(result, path)
                continue
            while entry.status not in ("ok", "failed"):
                repeat = len(entry.repeats) + 1
                try:
                    if isolate:
                        outcome = run_in_child(config, spec, repeat, data, progress)
                    else:
                        if spec.device not in on_device:
                            on_device[spec.device] = copy_to_device(data, torch.device(spec.device))
                        arrays, copy_s = on_device[spec.device]
                        # This process imported everything long ago; loading was paid once for all cases.
                        outcome, trained = execute_case(config, spec, repeat, data, progress, arrays,
                                                        StartupCost(data_s=load_s + copy_s))
                        if keep_models and trained is not None:
                            result.models[(spec.model, spec.device)] = trained
                except KeyboardInterrupt:
                    entry.status, entry.error = "interrupted", "stopped by the user (Ctrl-C)"
                    raise
                merge_repeat(entry, outcome, config.repeats)
                fill_roofline(entry, result.environment.get("peaks", {}).get(peaks_key(spec.device, spec.precision)))
                fill_speedups(result.cases)
                _write(result, path)
    finally:
        progress.__exit__(None, None, None)
        _write(result, path)  # whatever happened, the finished cases are kept
    return result


def _write(result: RunResult, path: Path | None) -> None:
    if path is None:
        return
    try:
        result.write(path)
    except OSError as error:
        raise ResultsError(
            f"cannot write {path} ({error.strerror or error}); the last complete copy is intact: free space "
            f"and run `trainspeed run --resume {path.parent}`") from None


def _entry_for(result: RunResult, spec: CaseSpec, data: Dataset, threads: int) -> CaseResult:
    """The case's place in the results: kept if finished or partly repeated, else started anew."""
    fresh = CaseResult(model=spec.model, device=spec.device, dataset=data.name, batch_size=spec.batch_size,
                       precision=spec.precision, status="partial", cpu_threads=threads,
                       device_name=devices.device_label(torch.device(spec.device)),
                       accuracy_meaningful=data.accuracy_meaningful)
    for index, case in enumerate(result.cases):
        if spec.matches(case):
            if case.status in ("ok", "partial"):
                return case
            if case.status == "interrupted" and case.repeats:  # keep the repeats it finished
                case.status, case.error = "partial", None
                return case
            result.cases[index] = fresh  # failed, or interrupted before any repeat: measure it again
            return fresh
    result.cases.append(fresh)
    return fresh


# The measurements a repeat brings; the first successful repeat supplies them to the case.
_MEASURED = ("device_name", "params", "epochs", "train_images", "test_images", "steps_per_epoch", "cpu_threads",
             "warmup_steps", "epoch_s", "history", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
             "eval_s", "peak_memory_bytes", "peak_host_memory_bytes", "confusion_matrix", "sample_predictions",
             "projected", "measured_steps", "other_cpu_load", "memory_total_bytes", "max_batch_size",
             "flops_per_step", "bytes_per_step", "startup", "cuda_graph")


def merge_repeat(entry: CaseResult, outcome: CaseResult, repeats_wanted: int) -> None:
    """Fold one repeat into its case, and summarize the repeats so far."""
    if not outcome.ok:
        for name in ("status", "error", "peak_memory_bytes", "memory_total_bytes", "max_batch_size"):
            setattr(entry, name, getattr(outcome, name))
        entry.warnings = sorted(set(entry.warnings) | set(outcome.warnings))
        return
    if not entry.repeats:
        for name in _MEASURED:
            setattr(entry, name, getattr(outcome, name))
    entry.repeats.append(RepeatRecord(len(entry.repeats) + 1, outcome.epoch_s, outcome.first_epoch_s,
                                      outcome.steady_epoch_s, outcome.projected, outcome.measured_steps))
    entry.warnings = sorted(set(entry.warnings) | set(outcome.warnings))
    summarize(entry)
    entry.status = "ok" if len(entry.repeats) >= repeats_wanted else "partial"


def fill_roofline(case: CaseResult, peaks: dict | None) -> None:
    """Achieved FLOP/s, MFU and the floor epoch time, from the case's work and the device's peaks."""
    if not (peaks and case.ok and case.flops_per_step and case.steady_epoch_s):
        return
    steps = case.train_images / case.batch_size  # the last partial batch counts for its share
    cost = flops.StepCost(case.flops_per_step, case.bytes_per_step)
    case.achieved_flops_per_s = case.flops_per_step * steps / case.steady_epoch_s
    case.mfu = flops.model_flops_utilization(case.achieved_flops_per_s, peaks["matmul_flops_per_s"])
    case.floor_epoch_s = flops.epoch_floor_s(cost, steps, peaks["matmul_flops_per_s"],
                                             peaks["bandwidth_bytes_per_s"])


def summarize(case: CaseResult) -> None:
    """Steady time as the median over repeats; its spread over repeats, else over steady epochs."""
    steady = [r.steady_epoch_s for r in case.repeats]
    case.steady_epoch_s = spread(steady).median
    firsts = [r.first_epoch_s for r in case.repeats if r.first_epoch_s is not None]
    case.first_epoch_s = spread(firsts).median if firsts else None
    case.images_per_s = images_per_second(case.train_images, case.steady_epoch_s)
    samples, case.spread_of = (steady, "repeats") if len(steady) > 1 else (case.epoch_s[1:], "epochs")
    if len(samples) > 1:
        summary = spread(samples)
        case.steady_min_s, case.steady_max_s, case.steady_cv = summary.minimum, summary.maximum, summary.cv
        case.noisy = summary.noisy
    else:
        case.steady_min_s = case.steady_max_s = case.steady_cv = case.spread_of = None
        case.noisy = False


# --- one case in a child process ----------------------------------------------------------

def _child_environment() -> dict[str, str]:
    # The child must import this same trainspeed, installed or run from a source tree.
    package_root = str(Path(__file__).resolve().parents[1])
    paths = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _child_config(config: RunConfig, data: Dataset) -> dict:
    """The child loads exactly the data the parent found, without searching or downloading."""
    child = replace(config, out=None, download=False)
    if data.name != "synthetic":
        child = replace(child, dataset=data.name, data_dir=data.source)
    else:
        child = replace(child, dataset="synthetic")
    return asdict(child)


def run_in_child(config: RunConfig, spec: CaseSpec, repeat: int, data: Dataset, progress: EpochProgress) -> CaseResult:
    job = json.dumps({"config": _child_config(config, data), "case": asdict(spec), "repeat": repeat,
                      "spawned_at": time.time()})
    outcome: CaseResult | None = None
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen([sys.executable, "-m", "trainspeed.worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=errors, text=True, env=_child_environment())
        try:
            child.stdin.write(job)
            child.stdin.close()
            for line in child.stdout:
                outcome = _handle_event(line, spec, progress) or outcome
            code = child.wait()
        except BaseException:
            _stop(child)
            raise
        if outcome is None:
            errors.seek(0)
            lines = [line.rstrip() for line in errors.read().splitlines() if line.strip()]
            if lines and lines[0].startswith("Traceback"):
                progress.message("[dim]" + "\n".join(lines[-12:]) + "[/]")
            outcome = CaseResult(spec.model, spec.device, data.name, spec.batch_size, spec.precision,
                                 status="failed", error=describe_exit(code, lines[-1] if lines else ""))
    return outcome


def _handle_event(line: str, spec: CaseSpec, progress: EpochProgress) -> CaseResult | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    kind = event.get("event")
    if kind == "epoch":
        progress.start_epoch(event["label"], event["steps"])
    elif kind == "progress":
        progress.update(event["step"], event["steps"], event["loss"], event["accuracy"])
    elif kind == "message":
        progress.message(event["text"])
    elif kind == "result":
        return case_from_dict(event["case"])
    elif kind == "failed":
        return CaseResult(spec.model, spec.device, event.get("dataset", ""), spec.batch_size, spec.precision,
                          status="failed", error=event["reason"])
    return None


def describe_exit(code: int, last_line: str) -> str:
    """Why a child ended without a result, in words."""
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGKILL": " (often the kernel's out-of-memory killer: try a smaller --batch-size)",
               "SIGSEGV": " (a crash in native code)"}.get(name, "")
        return f"the case's process was killed by {name}{why}"
    return f"the case's process failed with exit status {code}" + (f": {last_line}" if last_line else "")


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- one case, in whichever process runs it ----------------------------------------------

def case_label(spec: CaseSpec) -> str:
    label = f"{spec.model} on {spec.device}, batch {spec.batch_size}"
    return label if spec.precision == "fp32" else f"{label}, {spec.precision}"


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def execute_case(config: RunConfig, spec: CaseSpec, repeat: int, data: Dataset, progress: EpochProgress,
                 on_device: DeviceData | None = None,
                 startup: StartupCost | None = None) -> tuple[CaseResult, ModelSpec | None]:
    """Train and measure one repeat of a case; an out-of-memory error becomes a failed case.

    `startup` carries what was paid before this call (the process start, reading the data).
    """
    device = torch.device(spec.device)
    case = CaseResult(model=spec.model, device=spec.device, dataset=data.name, batch_size=spec.batch_size,
                      precision=spec.precision, device_name=devices.device_label(device),
                      cpu_threads=torch.get_num_threads(), accuracy_meaningful=data.accuracy_meaningful,
                      startup=startup or StartupCost())
    precision.apply(spec.precision)
    if on_device is None:
        on_device, copy_s = copy_to_device(data, device)
        case.startup.data_s = (case.startup.data_s or 0.0) + copy_s
    label = case_label(spec)
    if config.repeats > 1:
        label += f", repeat {repeat}/{config.repeats}"
    try:
        trained = _measure(case, data, on_device, device, config, progress, label)
    except Exception as error:
        if not _is_out_of_memory(error):
            raise
        _record_out_of_memory(case, device, error)
        if config.find_max_batch and spec.batch_size > 1:
            progress.message(f"{label}: out of memory; searching for the largest batch that fits")
            case.max_batch_size = find_max_batch(spec.model, data, device, spec.batch_size - 1, spec.precision)
            fit = (f"the largest batch that fits is {case.max_batch_size}" if case.max_batch_size
                   else "not even batch 1 fits")
            case.error += f"; {fit}"
        return case, None
    return case, trained


def _record_out_of_memory(case: CaseResult, device: torch.device, error: BaseException) -> None:
    case.status = "failed"
    case.peak_memory_bytes = devices.peak_device_memory_bytes(device)
    case.memory_total_bytes = devices.total_memory_bytes(device)
    used = f"peak {case.peak_memory_bytes / 2**30:.2f} GiB" if case.peak_memory_bytes else ""
    total = f" of {case.memory_total_bytes / 2**30:.1f} GiB" if case.memory_total_bytes else ""
    case.error = (f"out of memory on {case.device} at batch size {case.batch_size} ({used}{total}; "
                  f"{str(error).splitlines()[0][:160]}); try a smaller --batch-size")
    devices.empty_cache(device)


def find_max_batch(model: str, data: Dataset, device: torch.device, below: int, mode: str = "fp32") -> int | None:
    """The largest batch up to `below` for which two training steps fit in the device's memory."""
    def fits(batch: int) -> bool:
        try:
            faults.at_allocation(batch)
            spec = create_model(model, data.image_shape, data.num_classes)
            spec.network.to(device)
            images = torch.randint(0, 256, (batch, *data.image_shape), dtype=torch.uint8, device=device)
            labels = torch.randint(0, data.num_classes, (batch,), device=device)
            StepRunner(spec, spec.make_optimizer(spec.network.parameters()), images, labels, batch,
                       torch.Generator().manual_seed(0), mode).run(0, 2)
            devices.synchronize(device)
            return True
        except Exception as error:
            if not _is_out_of_memory(error):
                raise
            return False
        finally:
            devices.empty_cache(device)

    return largest_fitting(fits, 1, below)


def _build(name: str, data: Dataset, device: torch.device) -> ModelSpec:
    spec = create_model(name, data.image_shape, data.num_classes)
    spec.network.to(device)
    return spec


def _measure(case: CaseResult, data: Dataset, on_device: DeviceData, device: torch.device, config: RunConfig,
             progress: EpochProgress, label: str) -> ModelSpec:
    """Train one model on one device, timing every epoch, then evaluate; fills in `case`."""
    batch = case.batch_size
    train_images, train_labels = on_device.train_images, on_device.train_labels
    steps = steps_per_epoch(len(train_images), batch)
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    case.epochs, case.steps_per_epoch = config.epochs, steps
    case.train_images, case.test_images = len(train_images), len(on_device.test_images)
    utilization: list[float] = []

    def report(step: int, total: int, loss: float, accuracy: float) -> None:
        faults.at_training_step(case.model)
        reading = validity.gpu_utilization(device)
        if reading is not None:
            utilization.append(reading)
        progress.update(step, total, loss, accuracy)

    if config.epochs == 1 and config.warmup_steps and not config.time_budget_s:
        # A lone epoch would otherwise carry start-up costs (allocations, kernel selection).
        case.warmup_steps = min(steps, config.warmup_steps)
        torch.manual_seed(config.seed + 1)
        throwaway = _build(case.model, data, device)
        train_epoch(throwaway, throwaway.make_optimizer(throwaway.network.parameters()), train_images,
                    train_labels, batch_size=batch, generator=torch.Generator().manual_seed(config.seed + 1),
                    max_steps=case.warmup_steps, precision=case.precision, first_step_timer=timer)
        del throwaway
        progress.message(f"{label}: {case.warmup_steps} untimed warm-up steps done, timing one epoch")

    devices.synchronize(device)
    devices.reset_peak_memory(device)
    faults.at_allocation(batch)
    before = validity.Snapshot.take()
    torch.manual_seed(config.seed)
    with timer.measure("build") as measured:
        spec = _build(case.model, data, device)
        optimizer = spec.make_optimizer(spec.network.parameters())
    case.startup.build_s = measured.seconds
    case.params = spec.params
    cost = flops.training_step_cost(spec.network, data.image_shape, batch,
                                    "sgd" if isinstance(optimizer, torch.optim.SGD) else "adam")
    case.flops_per_step, case.bytes_per_step = cost.flops, cost.bytes
    if config.time_budget_s and _project_within_budget(case, spec, optimizer, on_device, config, timer,
                                                       progress, label, report):
        _finish(case, spec, device, before, utilization)
        return spec
    if config.time_budget_s:  # the whole case fits the budget: start again from the seed, untouched
        torch.manual_seed(config.seed)
        spec = _build(case.model, data, device)
        optimizer = spec.make_optimizer(spec.network.parameters())
    graph = _step_graph(config, case, spec, optimizer, on_device)
    order = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        progress.start_epoch(f"{label}: epoch {epoch}/{config.epochs}", steps)
        with timer.measure("epoch") as measured:
            stats = train_epoch(spec, optimizer, train_images, train_labels, batch_size=batch,
                                generator=order, on_progress=report, precision=case.precision,
                                first_step_timer=timer if not timer.records["first step"] else None, graph=graph)
        case.history.append(EpochRecord(epoch, measured.seconds, stats.loss, stats.accuracy))
    with timer.measure("eval") as measured:
        test = evaluate(spec, on_device.test_images, on_device.test_labels, batch, case.precision)
    case.epoch_s = list(timer.records["epoch"])
    case.first_epoch_s, case.steady_epoch_s = first_and_steady(case.epoch_s)
    _record_first_step(case, timer)
    if graph is not None:
        case.cuda_graph = graph.replaying
        if graph.failure:
            case.warnings.append(graph.failure)
    case.images_per_s = images_per_second(case.train_images, case.steady_epoch_s)
    case.train_loss, case.train_accuracy = stats.loss, stats.accuracy
    case.test_loss, case.test_accuracy, case.eval_s = test.loss, test.accuracy, measured.seconds
    case.confusion_matrix = test.confusion
    spec.class_names = data.class_names
    case.sample_predictions = predict(spec, on_device.test_images[:SAMPLE_IMAGES]).indices.tolist()
    _finish(case, spec, device, before, utilization)
    return spec


def _step_graph(config: RunConfig, case: CaseResult, spec: ModelSpec, optimizer,
                on_device: DeviceData) -> StepGraph | None:
    """A recorded step for the case, where it pays: CUDA, asked for, and at least one full batch."""
    if not (config.cuda_graphs and on_device.train_images.device.type == "cuda"
            and len(on_device.train_images) >= case.batch_size):
        return None
    return StepGraph(spec, optimizer, on_device.train_images, on_device.train_labels, case.batch_size,
                     case.precision)


def _record_first_step(case: CaseResult, timer: Timer) -> None:
    case.startup.first_step_s = timer.records["first step"][0] if timer.records["first step"] else None
    case.startup.steady_step_s = case.steady_epoch_s / case.steps_per_epoch if case.steady_epoch_s else None


def _finish(case: CaseResult, spec: ModelSpec, device: torch.device, before: validity.Snapshot,
            utilization: list[float]) -> None:
    after = validity.Snapshot.take()
    case.peak_memory_bytes = devices.peak_device_memory_bytes(device)
    case.peak_host_memory_bytes = devices.peak_host_memory_bytes()
    case.other_cpu_load = validity.other_cpu_load(before, after)
    ran_on = next(spec.network.parameters()).device
    busy = sum(utilization) / len(utilization) if utilization else None
    case.warnings = validity.warnings_for(device, ran_on, before, after, busy)


def _project_within_budget(case: CaseResult, spec: ModelSpec, optimizer, on_device: DeviceData,
                           config: RunConfig, timer: Timer, progress: EpochProgress, label: str, report) -> bool:
    """Under --time-budget: if the case would overrun, time steady steps and project the epoch.

    Returns False when the whole case fits the budget (then it is run in full).
    """
    budget = config.time_budget_s
    images, batch = len(on_device.train_images), case.batch_size
    steps = StepRunner(spec, optimizer, on_device.train_images, on_device.train_labels, batch,
                       torch.Generator().manual_seed(config.seed), case.precision)
    warm = max(1, min(10, steps.steps // 4))
    with timer.measure("first step"):
        steps.run(0, 1)
    with timer.measure("warm-up block"):  # the rest of the start-up costs land here and are not used
        steps.run(1, warm - 1)
    with timer.measure("block") as measured:
        steps.run(warm, warm)
    per_step = [measured.seconds / warm]
    if per_step[0] * images / batch * config.epochs <= budget:
        return False
    progress.start_epoch(f"{label}: over the {budget:g} s budget, projecting from steady steps", steps.steps)
    # Blocks of about a twentieth of the budget: long enough to time well, many enough for a median.
    block = max(warm, int(budget / 20 / max(per_step[0], 1e-9)))
    done = 2 * warm
    while done < steps.steps and sum(timer.total(k) for k in ("first step", "warm-up block", "block")) < budget:
        count = min(block, steps.steps - done)
        with timer.measure("block") as measured:
            steps.run(done, count)
        if count == block:
            per_step.append(measured.seconds / count)
        done += count
        loss, accuracy = steps.stats()
        report(done, steps.steps, loss, accuracy)
    case.projected = True
    case.measured_steps = done - warm
    case.epoch_s, case.first_epoch_s = [], None
    case.steady_epoch_s = projected_epoch_s(per_step, images, batch)
    case.images_per_s = images_per_second(images, case.steady_epoch_s)
    _record_first_step(case, timer)
    case.train_loss, case.train_accuracy = steps.stats()
    progress.message(f"{label}: projected {case.steady_epoch_s:.2f} s per epoch from {case.measured_steps} "
                     "timed steps (not trained to the end: no accuracy)")
    return True
