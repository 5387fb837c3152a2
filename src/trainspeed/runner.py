"""A whole run: every requested model on every requested device, measured the same way."""

from __future__ import annotations

import base64
import itertools
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from . import __version__, devices, environment
from .config import RunConfig
from .data import DataOptions, Dataset, load_dataset
from .errors import ConfigError
from .models import ModelSpec, check_model_name, create_model
from .progress import EpochProgress
from .results import RESULTS_FILE, CaseResult, DatasetInfo, EpochRecord, RunResult, fill_speedups
from .stats import first_and_steady, images_per_second, steps_per_epoch
from .timing import Timer
from .train import DeviceData, evaluate, predict, train_epoch


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


# Test images whose predictions each case records, for the report's picture of them.
SAMPLE_IMAGES = 16


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


def _results_path(config: RunConfig) -> Path | None:
    if not config.out:
        return None
    path = Path(config.out) / RESULTS_FILE
    if path.exists():
        # Never overwrite an earlier run's measurements: keep them beside the new file.
        stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        path.replace(path.with_name(f"results-{stamp}.json"))
    return path


def run(
    config: RunConfig | None = None,
    *,
    console: Console | None = None,
    keep_models: bool = False,
    **overrides,
) -> RunResult:
    """Train every model on every device; returns (and writes to config.out) the results.

    Progress goes to `console` (standard error by default).
    """
    config = make_config(config, **overrides)
    for name in config.models:
        check_model_name(name)
    targets = devices.resolve(config.devices)
    threads = devices.set_cpu_threads(config.cpu_threads)
    devices.configure_precision(config.precision)
    options = DataOptions(
        data_dir=Path(config.data_dir).expanduser() if config.data_dir else None,
        download=config.download, seed=config.seed, synthetic_shape=tuple(config.synthetic_shape),
    )
    data = load_dataset(config.dataset, options).limited(config.limit)
    path = _results_path(config)
    result = RunResult(
        trainspeed_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=asdict(config),
        environment=environment.collect(),
        dataset=dataset_info(data),
        notes=list(data.notes),
    )
    # Opened only now: a download above shows its own bar, and Rich before 14 allows one live display.
    progress = EpochProgress(console).__enter__()
    for note in result.notes:  # said once, here, and kept in the results
        progress.message(f"[yellow]note:[/] {note}")
    try:
        for device in targets:
            on_device = DeviceData.from_arrays(
                data.train_images, data.train_labels, data.test_images, data.test_labels, device)
            for name, batch_size in itertools.product(config.models, config.batch_sizes):
                case = CaseResult(model=name, device=devices.display_name(device), dataset=data.name,
                                  batch_size=batch_size, precision=config.precision,
                                  device_name=devices.device_label(device), cpu_threads=threads,
                                  accuracy_meaningful=data.accuracy_meaningful)
                result.cases.append(case)
                try:
                    spec = run_case(case, data, on_device, device, config, progress)
                except KeyboardInterrupt:
                    case.status, case.error = "interrupted", "stopped by the user (Ctrl-C)"
                    raise
                except torch.OutOfMemoryError as error:
                    _record_out_of_memory(case, device, error)
                    spec = None
                if keep_models and spec is not None:
                    result.models[(case.model, case.device)] = spec
                fill_speedups(result.cases)
                if path:
                    result.write(path)
            del on_device
    finally:
        progress.__exit__(None, None, None)
        if path:
            result.write(path)  # whatever happened, the finished cases are kept
    return result


def _record_out_of_memory(case: CaseResult, device: torch.device, error: Exception) -> None:
    case.status = "failed"
    case.error = (f"out of memory on {case.device} at batch size {case.batch_size} "
                  f"({str(error).splitlines()[0][:200]}); try a smaller --batch-size")
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_case(
    case: CaseResult,
    data: Dataset,
    on_device: DeviceData,
    device: torch.device,
    config: RunConfig,
    progress: EpochProgress,
) -> ModelSpec:
    """Train one model on one device, timing every epoch, then evaluate; fills in `case`."""
    label = f"{case.model} on {case.device}, batch {case.batch_size}"
    batch = case.batch_size
    train_images, train_labels = on_device.train_images, on_device.train_labels
    steps = steps_per_epoch(len(train_images), batch)
    if config.epochs == 1 and config.warmup_steps:
        # A lone epoch would otherwise carry start-up costs (allocations, kernel selection).
        case.warmup_steps = min(steps, config.warmup_steps)
        torch.manual_seed(config.seed + 1)
        throwaway = _build(case.model, data, device)
        train_epoch(throwaway, throwaway.make_optimizer(throwaway.network.parameters()), train_images,
                    train_labels, batch_size=batch, generator=torch.Generator().manual_seed(config.seed + 1),
                    max_steps=case.warmup_steps)
        del throwaway
        progress.message(f"{label}: {case.warmup_steps} untimed warm-up steps done, timing one epoch")

    torch.manual_seed(config.seed)
    spec = _build(case.model, data, device)
    optimizer = spec.make_optimizer(spec.network.parameters())
    order = torch.Generator().manual_seed(config.seed)
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    case.params, case.epochs, case.steps_per_epoch = spec.params, config.epochs, steps
    case.train_images, case.test_images = len(train_images), len(on_device.test_images)
    devices.synchronize(device)
    devices.reset_peak_memory(device)
    for epoch in range(1, config.epochs + 1):
        progress.start_epoch(f"{label} epoch {epoch}/{config.epochs}", steps)
        with timer.measure("epoch") as measured:
            stats = train_epoch(spec, optimizer, train_images, train_labels, batch_size=batch,
                                generator=order, on_progress=progress.update)
        case.history.append(EpochRecord(epoch, measured.seconds, stats.loss, stats.accuracy))
    with timer.measure("eval") as measured:
        test = evaluate(spec, on_device.test_images, on_device.test_labels, batch)
    case.epoch_s = list(timer.records["epoch"])
    case.first_epoch_s, case.steady_epoch_s = first_and_steady(case.epoch_s)
    case.images_per_s = images_per_second(case.train_images, case.steady_epoch_s)
    case.train_loss, case.train_accuracy = stats.loss, stats.accuracy
    case.test_loss, case.test_accuracy, case.eval_s = test.loss, test.accuracy, measured.seconds
    case.confusion_matrix = test.confusion
    spec.class_names = data.class_names
    case.sample_predictions = predict(spec, on_device.test_images[:SAMPLE_IMAGES]).indices.tolist()
    case.peak_memory_bytes = devices.peak_device_memory_bytes(device)
    case.peak_host_memory_bytes = devices.peak_host_memory_bytes()
    return spec


def _build(name: str, data: Dataset, device: torch.device) -> ModelSpec:
    spec = create_model(name, data.image_shape, data.num_classes)
    spec.network.to(device)
    return spec

