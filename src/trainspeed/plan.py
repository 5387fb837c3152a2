"""What a run will do: its settings checked, its cases listed, and what a resumed run still owes."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from pathlib import Path

from .cases import CaseKey, Workload
from .config import RunConfig
from .data import DataOptions, Dataset, load_dataset
from .data_parallel import Group, global_batch
from .errors import ConfigError
from .prices import parse_prices
from .results import CaseResult, Measurement
from .timing import Timer

# The command line's flag names, as keywords: run(batch_size=32) as `--batch-size 32` (setting -> RunConfig field).
FLAG_KEYWORDS = {"batch_size": "batch_sizes", "precision": "precisions", "engine": "engines",
                 "time_budget": "time_budget_s", "price": "prices", "dist_timeout": "dist_timeout_s"}
# Flags that say "not": run(no_download=True) as `--no-download`.
NEGATED_KEYWORDS = {"no_download": "download", "no_inference": "inference", "no_cuda_graphs": "cuda_graphs",
                    "in_process": "isolate"}
_LISTS = ("models", "devices", "batch_sizes", "precisions", "engines")


def keyword_settings(settings: dict) -> dict:
    """RunConfig's fields from keywords named as its fields or as the command line's flags, with one value
    or several where the flag takes several: models="cnn", batch_size=32, precision="fp32,bf16"."""
    fields_named = {}
    for name, value in settings.items():
        if name in NEGATED_KEYWORDS:
            name, value = NEGATED_KEYWORDS[name], not value
        name = FLAG_KEYWORDS.get(name, name)
        if name in fields_named:
            raise ConfigError(f"{name} is given twice (as a setting and as its flag's name)")
        if name == "data_parallel" and isinstance(value, str):
            value = [value]  # one group: "cuda:0,1" names two GPUs, not two groups
        if name in _LISTS and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        elif name in _LISTS and isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if name == "batch_sizes" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            try:
                value = [int(v) for v in value]
            except ValueError:
                raise ConfigError(f"batch_size takes whole numbers such as 32 or \"32,256\", got {value}") from None
        if name == "synthetic_shape" and isinstance(value, str):
            try:
                value = tuple(int(part) for part in value.lower().split("x"))
            except ValueError:
                raise ConfigError(f"synthetic_shape takes HxWxC such as \"32x32x3\", got {value!r}") from None
        if name == "prices" and isinstance(value, str):
            value = parse_prices(value)  # as --price takes them: "cpu=0.05,cuda=2.49"
        fields_named[name] = value
    return fields_named


def make_config(config: RunConfig | None = None, **overrides) -> RunConfig:
    if config is not None and overrides:
        raise ConfigError("pass either a RunConfig or keyword settings, not both")
    if config is None:
        overrides = keyword_settings(overrides)
        valid = {f.name for f in fields(RunConfig)}
        unknown = set(overrides) - valid
        if unknown:
            # Named as the flags are, which is how the README and the errors name them (both forms work).
            flag_names = {field_name: keyword for keyword, field_name in {**FLAG_KEYWORDS, **NEGATED_KEYWORDS}.items()}
            names = sorted(flag_names.get(name, name) for name in valid)
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(names)}")
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


def check_plan(config: RunConfig, data: Dataset, groups: list[Group] = ()) -> None:
    """Refuse, before any training, a case that could only measure something else than it says."""
    images = len(data.train_images)
    for size in config.batch_sizes:
        size = size * max((group.world_size for group in groups), default=1) if config.per_device_batch else size
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


def plan_cases(config: RunConfig, device_names: list[str], data: Dataset,
               groups: list[Group] = ()) -> list[CaseKey]:
    """Every case of the run, device by device, in the order they are measured: the engines of a
    workload one after the other, so that their times are taken minutes apart; then each
    data-parallel group's cases, its one-device reference first."""
    single = [CaseKey(workload(data, model, batch, mode, engine), device)
              for device in device_names
              for model, batch, mode, engine in itertools.product(config.models, config.batch_sizes,
                                                                  config.precisions, config.engines)]
    def parallel(group: Group, model: str, batch: int, mode: str) -> CaseKey:
        work = workload(data, model, global_batch(batch, group.world_size, config.per_device_batch), mode)
        return CaseKey(replace(work, world_size=group.world_size, backend=group.backend,
                               per_device_batch=config.per_device_batch), group.device)

    return single + [parallel(group, model, batch, mode) for group in groups
                     for model, batch, mode in itertools.product(config.models, config.batch_sizes, config.precisions)]


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
