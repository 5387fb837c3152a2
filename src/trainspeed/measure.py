"""One repeat of one case, measured: a fresh model trained from the seed, every epoch timed, then evaluated.

`measure_repeat` returns a frozen Measurement (or a Failure with its reason), built once at the
end from what was timed; the case's figures are folded from its repeats elsewhere (fold.py).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Protocol

import torch

from . import budget, faults, flops
from .after_training import after_training
from .cases import CaseKey, repeat_label
from .config import RunConfig
from .data import Dataset
from .energy import EnergyFigures
from .engine import kernels as cpu_kernels
from .engine import layout
from .engine.evaluate import evaluate, predict
from .engine.graph import StepGraph
from .engine.loop import train_epoch
from .engine.step import DeviceData, EpochSteps
from .engine.updates import fuse_updates
from .machine import devices, power, precision, stalls, validity
from .machine.describe import device_label
from .models import ModelSpec, create_model
from .results import SAMPLE_IMAGES, EpochRecord, Failure, Measurement, StartupCost
from .stats import first_and_steady, largest_fitting, steps_per_epoch
from .timing import Timer


class Progress(Protocol):
    """Where a repeat says how it is going: Rich bars in the parent, events from a child."""

    def start_epoch(self, label: str, steps: int, images: int | None = None) -> None: ...

    def update(self, step: int, steps: int, loss: float, accuracy: float, elapsed_s: float | None = None) -> None: ...

    def message(self, text: str) -> None: ...


def copy_to_device(data: Dataset, device: torch.device) -> tuple[DeviceData, float]:
    """The data set's arrays on `device`, and the seconds the copy took (part of start-up)."""
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    with timer.measure("to device") as measured:
        on_device = DeviceData.from_arrays(data.train_images, data.train_labels, data.test_images,
                                           data.test_labels, device)
    return on_device, measured.seconds


def measure_repeat(config: RunConfig, key: CaseKey, repeat: int, data: Dataset, device: torch.device,
                   progress: Progress, *, on_device: DeviceData | None = None,
                   startup: StartupCost | None = None,
                   layout_chosen: tuple[str, str] | None = None, kernels: dict[str, str] | None = None,
                   watch: stalls.StallWatch | None = None) -> tuple[Measurement | Failure, ModelSpec | None]:
    """Train and measure one repeat of `key` on `device` (where it runs: a case's process may know
    its GPU by another number than the case does). An out-of-memory error becomes a Failure.

    `startup` carries what was paid before this call (the process start, reading the data);
    `layout_chosen` the layout and its reason from the case's first repeat, so that every repeat
    of a case times the same layout. `watch`, already running, counts this process's stalls from
    earlier than this call (a case's own process watches itself from its first line); else one is
    started here.
    """
    startup = startup or StartupCost()
    precision.apply(key.workload.precision)
    devices.configure_device(device)
    with devices.use(device):
        if on_device is None:
            on_device, copy_s = copy_to_device(data, device)
            startup = replace(startup, data_s=(startup.data_s or 0.0) + copy_s)
        label = repeat_label(key, repeat, config.repeats)
        try:
            with nullcontext(watch) if watch else stalls.StallWatch() as watching:
                measurement, spec = _train(config, key, repeat, data, on_device, device, progress, label, startup,
                                           layout_chosen, kernels)
            return replace(measurement, stalled_s=round(watching.stalled_s, 3)), spec
        except Exception as error:
            if not devices.is_out_of_memory(error):
                raise
            failure = _out_of_memory(key, device, error)
        # Searched outside the handler: inside it, the error's traceback keeps the failed step's frames,
        # and so its model, graph pool and activations, in memory, and every smaller batch would seem not to fit.
        devices.empty_cache(device)
        return _with_max_batch(config, key, data, device, failure, progress, label), None


def meter_for(device: torch.device, cpu_watts: float | None) -> power.Meter | str:
    """The energy meter of the device a repeat trains on, or why there is none."""
    gpu = devices.gpu_identity(device) if device.type == "cuda" else None
    return power.meter_for(str(device), cpu_watts, gpu)


def step_cost(spec: ModelSpec, optimizer: torch.optim.Optimizer, image_shape, batch_size: int) -> flops.StepCost:
    """FLOPs and bytes of one training step of `spec` with its optimizer."""
    return flops.training_step_cost(spec.network, image_shape, batch_size,
                                    "sgd" if isinstance(optimizer, torch.optim.SGD) else "adam")


def _build(model: str, data: Dataset, device: torch.device, memory_format: torch.memory_format | None,
           seed: int, kernels: dict[str, str] | None = None) -> tuple[ModelSpec, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    spec = create_model(model, data.image_shape, data.num_classes, memory_format)
    spec.network.to(device)
    optimizer = spec.make_optimizer(spec.network.parameters())
    if kernels is not None and device.type == "cpu":
        cpu_kernels.apply(spec.network, kernels)  # keeps the parameters the optimizer holds
        fuse_updates(spec.network, optimizer, kernels)
    return spec, optimizer


def _kernels(key: CaseKey, data: Dataset, device: torch.device,
             chosen: dict[str, str] | None) -> tuple[dict[str, str] | None, tuple[str, ...], float | None]:
    """The CPU's kernels for the case's layers: its first repeat's choice, else chosen here by a short
    trial on the layers' own shapes (engine/kernels.py); with the times behind it and the trial's cost."""
    if device.type != "cpu":
        return None, (), None
    if chosen is not None:
        return chosen, ("chosen by the case's first repeat",), None
    if precision.matmul_dtype(key.workload.precision) != torch.float32:
        return None, (f"none tried: in {key.workload.precision} the linear layers run autocast's own kernels",), None
    probe = create_model(key.workload.model, data.image_shape, data.num_classes)
    tuning = cpu_kernels.tune(probe.network, key.workload.batch_size,
                              optimizer=probe.make_optimizer(probe.network.parameters()))
    return tuning.choices, tuple(tuning.notes), tuning.seconds


def uses_graphs(config: RunConfig, device: torch.device, images: int, batch_size: int) -> bool:
    """A recorded step where it pays: CUDA, asked for, and at least one full batch."""
    return config.cuda_graphs and device.type == "cuda" and images >= batch_size


def _layout(config: RunConfig, key: CaseKey, data: Dataset, on_device: DeviceData, device: torch.device,
            timer: Timer, graphs: bool, chosen: tuple[str, str] | None,
            kernels: dict[str, str] | None) -> tuple[torch.memory_format | None, str | None]:
    """The activation layout for a convolutional model: the case's earlier choice, else measured here,
    on the CPU as on a GPU (which layout oneDNN or cuDNN runs faster depends on the chip).
    create_model ignores a layout for a model without convolutions."""
    model = key.workload.model
    if chosen is not None:
        return layout.LAYOUTS[chosen[0]], chosen[1]
    if not create_model(model, data.image_shape, data.num_classes).convolutional:
        return None, None
    seconds = {name: layout.step_seconds(lambda fmt: _build(model, data, device, fmt, config.seed, kernels), fmt,
                                         on_device.train_images_as(fmt), on_device.train_labels,
                                         key.workload.batch_size, key.workload.precision, timer, graphs)
               for name, fmt in layout.LAYOUTS.items()}
    chosen, why = layout.choose(seconds)
    return layout.LAYOUTS[chosen], why


def _train(config: RunConfig, key: CaseKey, repeat: int, data: Dataset, on_device: DeviceData,
           device: torch.device, progress: Progress, label: str, startup: StartupCost,
           layout_chosen: tuple[str, str] | None,
           kernels_chosen: dict[str, str] | None) -> tuple[Measurement, ModelSpec]:
    work = key.workload
    batch, mode = work.batch_size, work.precision
    labels = on_device.train_labels
    steps = steps_per_epoch(len(labels), batch)
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    graphs = uses_graphs(config, device, len(labels), batch)
    kernels, kernel_choice, tuning_s = _kernels(key, data, device, kernels_chosen)
    with timer.measure("layout trial") as layout_trial:
        memory_format, layout_choice = _layout(config, key, data, on_device, device, timer, graphs, layout_chosen,
                                               kernels)
    images = on_device.train_images_as(memory_format)
    on_device.keep_only_layout(memory_format)
    def report(step: int, total: int, loss: float, accuracy: float) -> None:
        faults.at_training_step(work.model)
        progress.update(step, total, loss, accuracy)

    warmup_steps = 0
    if config.epochs == 1 and config.warmup_steps and not config.time_budget_s:
        # A lone epoch would otherwise carry start-up costs (allocations, kernel selection).
        warmup_steps = min(steps, config.warmup_steps)
        throwaway, optimizer = _build(work.model, data, device, memory_format, config.seed + 1, kernels)
        order = torch.Generator().manual_seed(config.seed + 1)
        train_epoch(throwaway, optimizer, images, labels, batch_size=batch, generator=order,
                    max_steps=warmup_steps, precision=mode, first_step_timer=timer)
        if len(images) % batch:
            # The last, partial batch is a new shape: its kernel selection (cuDNN's autotuning on a
            # GPU) would otherwise land in the one timed epoch.
            EpochSteps(throwaway, optimizer, images, labels, batch, order, mode).run(steps - 1, 1)
        del throwaway, optimizer
        progress.message(f"{label}: {warmup_steps} untimed warm-up steps done, timing one epoch")

    devices.synchronize(device)
    devices.reset_peak_memory(device)
    faults.at_allocation(batch)
    before = validity.Snapshot.take()
    with timer.measure("build") as built:
        spec, optimizer = _build(work.model, data, device, memory_format, config.seed, kernels)
    cost = step_cost(spec, optimizer, data.image_shape, batch)
    graph, record_s = _recorded(spec, optimizer, on_device, batch, mode, timer) if graphs else (None, None)
    convolutional = spec.convolutional
    common = dict(repeat=repeat, params=spec.params, flops_per_step=cost.flops, bytes_per_step=cost.bytes,
                  steps_per_epoch=steps, memory_format=layout.layout_name(spec.memory_format) if convolutional
                  else None, layout_choice=layout_choice if convolutional else None, device_name=device_label(device),
                  cpu_threads=torch.get_num_threads(), kernels=kernels, kernel_choice=kernel_choice)
    # Its steps pay the kernels' first calls (oneDNN's and cuDNN's choices) before the case's first step does.
    probed = layout_chosen is None and memory_format is not None
    startup = replace(startup, tuning_s=tuning_s, layout_s=layout_trial.seconds if probed else None)
    if config.time_budget_s:
        steps_seen = EpochSteps(spec, optimizer, images, labels, batch, torch.Generator().manual_seed(config.seed),
                                mode, graph)
        projection = budget.project(steps_seen, len(images), batch, config.epochs, config.time_budget_s, timer,
                                    progress, label, report)
        if projection is not None:
            first_step = timer.records["first step"][0]
            left_behind = _after(device, spec, before, None, graph)
            # Its speed of answering does not depend on how far it trained; a half-trained network is not saved.
            answering, _ = after_training(config, key, repeat, spec, on_device.test_images, device,
                                          common["device_name"], None, progress, save=False)
            if config.save_models:
                left_behind["warnings"] += ("not saved (--save-models): the time budget cut its training short",)
            return Measurement(
                **common, steady_epoch_s=projection.steady_epoch_s, projected=True,
                measured_steps=projection.measured_steps, train_loss=projection.train_loss,
                train_accuracy=projection.train_accuracy, inference=answering,
                energy=EnergyFigures(not_measured="the time budget cut training short; energy is read per whole epoch"),
                startup=replace(startup, build_s=built.seconds, graph_record_s=record_s, first_step_s=first_step,
                                steady_step_s=projection.steady_epoch_s / steps), **left_behind), spec
        # The whole case fits the budget: start again from the seed, untouched, and let the first
        # model go, or it would sit in memory (and in the peak) beside the one being timed.
        del steps_seen, spec, optimizer, graph
        spec, optimizer = _build(work.model, data, device, memory_format, config.seed, kernels)
        graph, _ = _recorded(spec, optimizer, on_device, batch, mode, timer) if graphs else (None, None)
    order = torch.Generator().manual_seed(config.seed)
    history = []
    with power.PowerLog(meter_for(device, config.cpu_watts)) as meter:
        for epoch in range(1, config.epochs + 1):
            progress.start_epoch(f"{label}: epoch {epoch}/{config.epochs}", steps, len(images))
            with meter.epoch(), timer.measure("epoch") as measured:  # read after the timer's synchronize
                stats = train_epoch(spec, optimizer, images, labels, batch_size=batch, generator=order,
                                    on_progress=report, precision=mode, graph=graph,
                                    first_step_timer=timer if not timer.records["first step"] else None)
            history.append(EpochRecord(epoch, measured.seconds, stats.loss, stats.accuracy))
    with timer.measure("eval") as evaluated:
        test = evaluate(spec, on_device.test_images, on_device.test_labels, batch, mode)
    spec.class_names = data.class_names
    epoch_s = tuple(timer.records["epoch"])
    energy = meter.figures(list(epoch_s), len(images))
    # Read before the network answers: its large batches must not count in training's memory peak.
    left_behind = _after(device, spec, before, energy.utilization, graph)
    answering, model_file = after_training(config, key, repeat, spec, on_device.test_images, device,
                                           common["device_name"], test.accuracy, progress)
    first_epoch_s, steady_epoch_s = first_and_steady(epoch_s)
    return Measurement(
        **common, steady_epoch_s=steady_epoch_s, epoch_s=epoch_s, first_epoch_s=first_epoch_s,
        history=tuple(history), train_loss=stats.loss, train_accuracy=stats.accuracy, test_loss=test.loss,
        test_accuracy=test.accuracy, eval_s=evaluated.seconds, confusion_matrix=test.confusion,
        sample_predictions=predict(spec, on_device.test_images[:SAMPLE_IMAGES]).indices.tolist(),
        warmup_steps=warmup_steps, inference=answering, model_file=model_file,
        energy=energy,
        startup=replace(startup, build_s=built.seconds, graph_record_s=record_s,
                        first_step_s=timer.records["first step"][0], steady_step_s=steady_epoch_s / steps),
        **left_behind), spec


def _recorded(spec: ModelSpec, optimizer: torch.optim.Optimizer, on_device: DeviceData, batch: int, mode: str,
              timer: Timer) -> tuple[StepGraph, float]:
    """The step recorded as a CUDA graph before any timed epoch, and the seconds recording took."""
    graph = StepGraph(spec, optimizer, on_device.train_images, on_device.train_labels, batch, mode)
    with timer.measure("graph record") as recorded:
        graph.prepare()
    return graph, recorded.seconds


def _after(device: torch.device, spec: ModelSpec, before: validity.Snapshot, utilization: float | None,
           graph: StepGraph | None) -> dict:
    """What the repeat left behind: memory peaks, other load, whether the graph ran, the warnings.
    `utilization`: the GPU's, as its energy meter read it inside the epochs (NVML, by the board's UUID)."""
    after = validity.Snapshot.take()
    ran_on = next(spec.network.parameters()).device
    warnings = validity.warnings_for(device, ran_on, before, after, utilization, torch.get_num_threads())
    if graph is not None and graph.failure:
        warnings.append(graph.failure)
    return dict(cuda_graph=bool(graph and graph.replaying), warnings=tuple(warnings),
                peak_memory_bytes=devices.peak_device_memory_bytes(device),
                peak_host_memory_bytes=devices.peak_host_memory_bytes(),
                other_cpu_load=validity.other_cpu_load(before, after),
                under_load=validity.under_load(device, before, after))


def _out_of_memory(key: CaseKey, device: torch.device, error: BaseException) -> Failure:
    peak, total = devices.peak_device_memory_bytes(device), devices.total_memory_bytes(device)
    used = f"peak {peak / 2**30:.2f} GiB" if peak else ""
    of = f" of {total / 2**30:.1f} GiB" if total else ""
    reason = (f"out of memory on {key.device} at batch size {key.workload.batch_size} ({used}{of}; "
              f"{str(error).splitlines()[0][:160]}); try a smaller --batch-size")
    return Failure(reason, peak_memory_bytes=peak, memory_total_bytes=total)


def _with_max_batch(config: RunConfig, key: CaseKey, data: Dataset, device: torch.device, failure: Failure,
                    progress: Progress, label: str) -> Failure:
    """The failure, with the largest batch that fits where --find-max-batch asks for it."""
    batch = key.workload.batch_size
    if not config.find_max_batch or batch <= 1:
        return failure
    progress.message(f"{label}: out of memory; searching for the largest batch that fits")
    largest = find_max_batch(key.workload.model, data, device, batch - 1, key.workload.precision)
    found = f"the largest batch that fits is {largest}" if largest else "not even batch 1 fits"
    return replace(failure, reason=f"{failure.reason}; {found}", max_batch_size=largest)


def find_max_batch(model: str, data: Dataset, device: torch.device, below: int, mode: str = "fp32") -> int | None:
    """The largest batch up to `below` for which two training steps fit in the device's memory."""
    def fits(batch: int) -> bool:
        try:
            faults.at_allocation(batch)
            spec, optimizer = _build(model, data, device, None, 0)
            images = torch.randint(0, 256, (batch, *data.image_shape), dtype=torch.uint8, device=device)
            labels = torch.randint(0, data.num_classes, (batch,), device=device)
            EpochSteps(spec, optimizer, images, labels, batch, torch.Generator().manual_seed(0), mode).run(0, 2)
            devices.synchronize(device)
            return True
        except Exception as error:
            if not devices.is_out_of_memory(error):
                raise
            return False
        finally:
            devices.empty_cache(device)

    return largest_fitting(fits, 1, below)

