"""What a run will do: its settings checked, its cases listed, and what a resumed run still owes."""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

from .cases import CaseKey, Workload
from .config import RunConfig
from .data import DataOptions, Dataset, load_dataset
from .errors import ConfigError
from .results import CaseResult, Measurement
from .timing import Timer


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


def load_data(config: RunConfig) -> tuple[Dataset, float]:
    """The data set the config names, and the seconds reading it took (part of a case's start-up)."""
    options = DataOptions(
        data_dir=Path(config.data_dir).expanduser() if config.data_dir else None,
        download=config.download, seed=config.seed, synthetic_shape=tuple(config.synthetic_shape),
        limit=config.limit,
    )
    with Timer().measure("data") as measured:
        data = load_dataset(config.dataset, options).limited(config.limit)
    return data, measured.seconds


def check_plan(config: RunConfig, data: Dataset) -> None:
    """Refuse, before any training, a case that could only measure something else than it says."""
    images = len(data.train_images)
    for size in config.batch_sizes:
        if size > images:
            # Its one step would train on `images`, and its figures would be filed under `size`.
            limited = " (with --limit)" if config.limit else ""
            raise ConfigError(f"--batch-size {size} is larger than the training set, {images:,} images{limited}: "
                              f"use a batch size of at most {images:,}")
    # Imported here: a Keras case's process loads its data through this module and has no torch.
    from .models import check_model

    for name in config.models:
        check_model(name, data.image_shape, data.num_classes)
    keras_engines = [engine for engine in config.engines if engine != "trainspeed"]
    if keras_engines and config.time_budget_s:
        # A budget times single steps and projects the epoch; Keras's fit trains whole epochs.
        raise ConfigError(f"--time-budget works with the trainspeed engine only; drop it, or drop "
                          f"{', '.join(keras_engines)} from --engines")


def workload(data: Dataset, model: str, batch_size: int, precision: str, engine: str = "trainspeed") -> Workload:
    return Workload(model, data.name, tuple(data.image_shape), len(data.train_images), len(data.test_images),
                    batch_size, precision, engine)


def plan_cases(config: RunConfig, device_names: list[str], data: Dataset) -> list[CaseKey]:
    """Every case of the run, device by device, in the order they are measured: the engines of a
    workload one after the other, so that their times are taken minutes apart."""
    return [CaseKey(workload(data, model, batch, mode, engine), device)
            for device in device_names
            for model, batch, mode, engine in itertools.product(config.models, config.batch_sizes, config.precisions,
                                                                config.engines)]


def repeats_to_keep(existing: CaseResult | None) -> list[Measurement] | None:
    """What a case already has: None if it is finished, else the repeats a resumed run keeps.

    A failed case is measured again from scratch; one interrupted after some repeats keeps them.
    """
    if existing is None:
        return []
    if existing.ok:
        return None
    if existing.status in ("partial", "interrupted"):
        return list(existing.repeats)
    return []


def peaks_key(device: str, precision: str) -> str:
    """Where a device's measured peaks sit in environment["peaks"]: fp32 under the device's name."""
    return device if precision == "fp32" else f"{device} {precision}"
