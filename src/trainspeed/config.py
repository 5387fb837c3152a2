"""What a run is asked to do, as one plain dataclass that round-trips through JSON."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

from .errors import ConfigError
from .prices import is_device

DEFAULT_MODELS = ("ann", "cnn")
# Their meaning, and where each runs, is in precision.py; this module stays free of torch.
PRECISIONS = ("fp32", "tf32", "bf16")
# Who trains: trainspeed's own PyTorch engine, or the seeds' Keras code on one of Keras 3's backends
# (keras/backends.py); this module stays free of Keras.
ENGINES = ("trainspeed", "keras-tensorflow", "keras-jax", "keras-torch")
DEFAULT_ENGINE = "trainspeed"
# NumPy's and PyTorch's generators both take it; the range every seeded library accepts.
MAX_SEED = 2**32 - 1


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def worth_settings_problem(prices, cpu_watts, currency) -> str | None:
    """What is wrong with the energy and money settings, in a run's config or a results file's."""
    if cpu_watts is not None and not (_number(cpu_watts) and cpu_watts > 0):
        return f"--cpu-watts must be the CPU's power in watts, more than 0, got {cpu_watts!r}"
    if not isinstance(prices, dict) or not all(is_device(k) and _number(v) and v >= 0 for k, v in prices.items()):
        return f"prices must map devices to prices per hour, e.g. {{'cpu': 0.05, 'cuda': 2.49}}; got {prices!r}"
    if not isinstance(currency, str) or len(currency) > 16 or not currency.isprintable():
        return f"--currency must be a short name such as USD or EUR, got {currency!r}"
    return None


@dataclass
class RunConfig:
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    devices: list[str] | None = None  # None: the CPU and every usable accelerator
    dataset: str = "auto"
    data_dir: str | None = None
    download: bool = True
    epochs: int = 3
    batch_sizes: list[int] = field(default_factory=lambda: [32])
    limit: int | None = None
    seed: int = 0
    cpu_threads: int | None = None  # None: all usable cores
    # fp32 (faithful), tf32 or bf16; several make precision an axis of the run like batch size.
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    # Several make the engine an axis: the same cases trained by each, side by side.
    engines: list[str] = field(default_factory=lambda: [DEFAULT_ENGINE])
    out: str | None = "trainspeed-results"
    # (height, width, channels), as Keras writes image shapes; only for the synthetic set.
    synthetic_shape: tuple[int, int, int] = (32, 32, 3)
    # Untimed steps on a throwaway model before a single timed epoch.
    warmup_steps: int = 50
    repeats: int = 1
    # Per case: past it, time steady steps only and project the epoch time from them.
    time_budget_s: float | None = None
    # After an out-of-memory failure, search for the largest batch size that fits.
    find_max_batch: bool = False
    # Each case in its own child process, so a crash or out-of-memory error costs only that case.
    isolate: bool = True
    # On CUDA, replay each training step from a recorded CUDA graph (see engine/graph.py).
    cuda_graphs: bool = True
    # After training, time the network answering one image and a large batch (inference.py): about a
    # second per case.
    inference: bool = True
    # Write each trained network to <out>/models/ (saved.py), for trainspeed predict and load_model.
    save_models: bool = False
    # Data-parallel groups, each one DDP job (data_parallel.py): "cpu:2", "cuda", "cuda:0,1".
    data_parallel: list[str] = field(default_factory=list)
    # Each device of a group trains `batch_sizes` images a step (a different recipe), not its share of them.
    per_device_batch: bool = False
    # How long a rank waits for the others (joining, or in a collective) before the case fails.
    dist_timeout_s: float = 300.0
    # Where the CPU's energy cannot be read (no RAPL): its power, for an estimate labelled as one.
    cpu_watts: float | None = None
    # Money per hour per device or device kind ({"cpu": 0.05, "cuda": 2.49}), given by the user
    # (prices.py), and the currency they are in, for cost per epoch; none are ever assumed.
    prices: dict[str, float] = field(default_factory=dict)
    currency: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """A config read back from a results file (for --resume)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "precision" in data and "precisions" not in data:  # results written before precision was an axis
            values["precisions"] = [data["precision"]]
        if "synthetic_shape" in values:
            values["synthetic_shape"] = tuple(values["synthetic_shape"])
        return cls(**values)

    def validate(self) -> None:
        # Numbers of the right kind first, so that run(epochs=1.5) is refused here, not in a case's process.
        if not isinstance(self.batch_sizes, (list, tuple)):
            raise ConfigError(f"--batch-size takes whole numbers such as 32 or 32,256, got {self.batch_sizes!r}")
        numeric = self._numeric_settings()
        for name, value, _, kind in numeric:
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                wanted = "a whole number" if kind is numbers.Integral else "a number of seconds"
                raise ConfigError(f"{name} takes {wanted}, got {value!r}")
        if not self.models:
            raise ConfigError("no models given; choose from e.g. ann, cnn, mlp:1")
        if not self.batch_sizes:
            raise ConfigError("no batch size given, e.g. --batch-size 32 or --batch-size 32,256,2048")
        problem = worth_settings_problem(self.prices, self.cpu_watts, self.currency)
        if problem:
            raise ConfigError(problem)
        for name, value, _, kind in numeric:
            if kind is numbers.Real and value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} must be a number of seconds, got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"--seed must be from 0 to {MAX_SEED} (2**32 - 1), got {self.seed}")
        if self.out is not None and not str(self.out).strip():
            raise ConfigError("--out needs a folder name, e.g. --out trainspeed-results")
        for name, value, least, _ in numeric:
            if least is not None and value is not None and value < least:
                raise ConfigError(f"{name} must be at least {least}, got {value}")
        if not self.precisions:
            raise ConfigError("no precision given, e.g. --precision fp32 or --precision fp32,bf16")
        for name in self.precisions:
            if name not in PRECISIONS:
                raise ConfigError(f"unknown precision {name!r}; choose from: {', '.join(PRECISIONS)}")
        if not self.engines:
            raise ConfigError("no engine given, e.g. --engines trainspeed or --engines trainspeed,keras-torch")
        for name in self.engines:
            if name not in ENGINES:
                raise ConfigError(f"unknown engine {name!r}; choose from: {', '.join(ENGINES)}")
        for name, values in (("an engine", self.engines), ("a batch size", self.batch_sizes),
                             ("a precision", self.precisions)):
            if len(set(values)) < len(values):
                raise ConfigError(f"{name} is named twice in {','.join(map(str, values))}: name each once")
        if self.per_device_batch and not self.data_parallel:
            raise ConfigError("--per-device-batch sets the batch of each device of a group: give --data-parallel too")
        if self.data_parallel and [engine for engine in self.engines if engine != DEFAULT_ENGINE]:
            raise ConfigError("--data-parallel trains with trainspeed's engine only: drop the Keras engines, "
                              "or run them in a run of their own")
        if self.data_parallel and self.time_budget_s:
            raise ConfigError("--time-budget projects one device's steps; drop it with --data-parallel")
        if self.save_models and not self.out:
            raise ConfigError("--save-models writes into the run's folder: give --out FOLDER")
        if len(self.synthetic_shape) != 3 or min(self.synthetic_shape) < 1:
            raise ConfigError(f"synthetic shape must be three positive sizes HxWxC, got {self.synthetic_shape}")

    def _numeric_settings(self) -> list[tuple[str, object, float | None, type]]:
        """Each number a run takes: its flag, its value, the least it may be (None: the seed, whose range is
        checked on its own) and its kind (whole numbers, or seconds, which may have a fraction)."""
        whole, seconds = numbers.Integral, numbers.Real
        settings = [("--dist-timeout", self.dist_timeout_s, 1, seconds), ("--epochs", self.epochs, 1, whole),
                    ("--limit", self.limit, 1, whole), ("--cpu-threads", self.cpu_threads, 1, whole),
                    ("--repeats", self.repeats, 1, whole), ("--time-budget", self.time_budget_s, 0.1, seconds),
                    ("--seed", self.seed, None, whole)]
        return settings + [("--batch-size", size, 1, whole) for size in self.batch_sizes]
