"""Results as dataclasses and their JSON form: flat records with units in the field names."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ResultsError
from .stats import speedup

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"


@dataclass
class EpochRecord:
    epoch: int
    seconds: float
    train_loss: float
    train_accuracy: float


@dataclass
class StartupCost:
    """What a case paid once before training at full speed: what a one-epoch notebook timing includes.

    Every part is None where it was not paid separately (in-process runs share the imports).
    """

    process_s: float | None = None  # from launching Python to torch and trainspeed imported
    data_s: float | None = None  # reading the data set and copying it to the device
    build_s: float | None = None  # building the model and its optimizer on the device
    first_step_s: float | None = None  # lazy initialization, kernel selection, first allocations
    steady_step_s: float | None = None  # one step once warm, for scale

    @property
    def first_step_extra_s(self) -> float | None:
        if self.first_step_s is None or self.steady_step_s is None:
            return None
        return max(0.0, self.first_step_s - self.steady_step_s)

    @property
    def total_s(self) -> float:
        """Everything paid before steady training: the parts, plus the first step beyond a steady one."""
        parts = (self.process_s, self.data_s, self.build_s, self.first_step_extra_s)
        return sum(part for part in parts if part is not None)


@dataclass
class RepeatRecord:
    """One repeat of a case: a fresh model trained (or, under a time budget, stepped) from the seed."""

    repeat: int
    epoch_s: list[float]
    first_epoch_s: float | None
    steady_epoch_s: float
    projected: bool = False
    measured_steps: int | None = None  # steps a projected epoch time rests on


@dataclass
class CaseResult:
    model: str
    device: str
    dataset: str
    batch_size: int
    precision: str = "fp32"
    device_name: str = ""
    status: str = "ok"  # "ok", "failed", "interrupted", or "partial" while repeats remain
    error: str | None = None
    params: int | None = None
    epochs: int = 0
    train_images: int = 0
    test_images: int = 0
    steps_per_epoch: int = 0
    cpu_threads: int | None = None
    warmup_steps: int = 0  # untimed steps before the timed epochs (only with one epoch)
    epoch_s: list[float] = field(default_factory=list)
    first_epoch_s: float | None = None
    steady_epoch_s: float | None = None
    images_per_s: float | None = None
    speedup_vs_cpu: float | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None  # 0-1
    eval_s: float | None = None
    accuracy_meaningful: bool = True
    peak_memory_bytes: int | None = None  # the device's; the host's for the CPU
    peak_host_memory_bytes: int | None = None
    history: list[EpochRecord] = field(default_factory=list)
    confusion_matrix: list[list[int]] | None = None  # [true class][predicted class] on the test set
    sample_predictions: list[int] | None = None  # predicted class of each of the data set's sample images
    # A time budget cut the case short: steady_epoch_s is projected from measured_steps timed steps.
    projected: bool = False
    measured_steps: int | None = None
    repeats: list[RepeatRecord] = field(default_factory=list)
    # Spread of the steady epoch time over repeats (or, with one repeat, over the steady epochs).
    steady_min_s: float | None = None
    steady_max_s: float | None = None
    steady_cv: float | None = None
    spread_of: str | None = None  # "repeats" or "epochs"
    noisy: bool = False
    warnings: list[str] = field(default_factory=list)
    other_cpu_load: float | None = None  # cores used by other processes during the case
    memory_total_bytes: int | None = None
    max_batch_size: int | None = None  # the largest batch that fit, after an out-of-memory failure
    # The roofline: work per step from the layer shapes, and how it compares with measured peaks.
    flops_per_step: float | None = None
    bytes_per_step: float | None = None
    achieved_flops_per_s: float | None = None
    mfu: float | None = None  # achieved / the device's measured fp32 matmul peak
    floor_epoch_s: float | None = None  # max(FLOPs / peak, bytes / bandwidth) for an epoch
    startup: StartupCost | None = None  # of the first repeat
    cuda_graph: bool = False  # full-batch steps were replayed from a recorded CUDA graph

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class DatasetInfo:
    name: str
    source: str
    train_images: int
    test_images: int
    image_shape: list[int]  # (channels, height, width)
    classes: list[str]
    matches_release: bool | None
    accuracy_meaningful: bool
    notes: list[str] = field(default_factory=list)
    # The first test images, so a report can show them with predictions: base64 of uint8 NCHW.
    sample_images_b64: str | None = None
    sample_labels: list[int] = field(default_factory=list)

    def sample_images(self):
        """The sample images as a uint8 (N, H, W, C) array, ready to draw."""
        import base64

        import numpy as np

        if not self.sample_images_b64:
            return None
        raw = np.frombuffer(base64.b64decode(self.sample_images_b64), dtype=np.uint8)
        return raw.reshape(-1, *self.image_shape).transpose(0, 2, 3, 1)


@dataclass
class RunResult:
    trainspeed_version: str
    created: str
    config: dict[str, Any]
    environment: dict[str, Any]
    dataset: DatasetInfo | None = None
    cases: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # Trained networks by (model, device), kept in memory only when asked for; never written.
    models: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "models"}

    def case(self, model: str, device: str) -> CaseResult:
        for case in self.cases:
            if case.model == model and case.device == device:
                return case
        raise KeyError(f"no case for {model} on {device}")

    def write(self, path: Path) -> Path:
        """Write atomically: a crash at any moment leaves the old file or the new one, whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(self.to_dict(), file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            # mkstemp makes the file private; a results file is meant to be shared.
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "results") -> RunResult:
        if not isinstance(data, dict) or "schema_version" not in data or "cases" not in data:
            raise ResultsError(f"{source} is not a trainspeed results file")
        if data["schema_version"] > SCHEMA_VERSION:
            raise ResultsError(
                f"{source} has schema {data['schema_version']}, newer than this trainspeed reads "
                f"({SCHEMA_VERSION}); upgrade trainspeed"
            )
        try:
            cases = [case_from_dict(case) for case in data["cases"]]
            dataset = DatasetInfo(**data["dataset"]) if data.get("dataset") else None
            known = {f.name for f in fields(cls)} - {"cases", "dataset"}
            return cls(**{k: v for k, v in data.items() if k in known}, dataset=dataset, cases=cases)
        except (TypeError, KeyError) as error:
            raise ResultsError(f"{source} is not a valid trainspeed results file ({error})") from None

    @classmethod
    def read(cls, path: Path) -> RunResult:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ResultsError(f"{path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ResultsError(f"{path} is not valid JSON (truncated?): {error}") from None
        return cls.from_dict(data, str(path))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _plain(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else [
        _plain(item) for item in value] if isinstance(value, list) else value


def fill_speedups(cases: list[CaseResult]) -> None:
    """Each case's speedup over the CPU case with the same model, data, batch and precision."""
    def key(case: CaseResult) -> tuple:
        return case.model, case.dataset, case.batch_size, case.precision

    cpu_times = {key(c): c.steady_epoch_s for c in cases if c.device == "cpu" and c.ok and c.steady_epoch_s}
    for case in cases:
        baseline = cpu_times.get(key(case))
        case.speedup_vs_cpu = speedup(baseline, case.steady_epoch_s) if baseline and case.ok else None


def case_from_dict(data: dict[str, Any]) -> CaseResult:
    """A case from its JSON form (a results file, or a worker process's message)."""
    known = {f.name for f in fields(CaseResult)} - {"history", "repeats", "startup"}
    history = [EpochRecord(**record) for record in data.get("history", [])]
    repeats = [RepeatRecord(**record) for record in data.get("repeats", [])]
    startup = StartupCost(**data["startup"]) if data.get("startup") else None
    return CaseResult(**{k: v for k, v in data.items() if k in known}, history=history, repeats=repeats,
                      startup=startup)

