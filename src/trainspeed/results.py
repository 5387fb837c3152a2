"""Results as dataclasses and their JSON form: flat records with units in the field names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import schema
from .cases import CaseKey, Workload, matching
from .data_parallel import ParallelFigures
from .dataset_info import DatasetInfo
from .energy import EnergyFigures
from .errors import ResultsError
from .output import write_atomically
from .rows import case_rows, summary_html, summary_text

# 2: the image shape on every case; repeats hold whole measurements.
SCHEMA_VERSION = 2
# Test images whose predictions each case records, for the report's picture of them.
SAMPLE_IMAGES = 16
RESULTS_FILE = schema.RESULTS_FILE


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    seconds: float
    train_loss: float
    train_accuracy: float


@dataclass(frozen=True)
class StartupCost:
    """What a case paid once before training at full speed: what a one-epoch notebook timing includes.
    Every part is None where it was not paid separately (in-process runs share the imports)."""

    process_s: float | None = None  # from launching Python to torch and trainspeed imported
    import_s: float | None = None  # a Keras engine: importing Keras and its backend
    data_s: float | None = None  # reading the data set and copying it to the device
    build_s: float | None = None  # building the model and its optimizer on the device (Keras: and compiling it)
    tuning_s: float | None = None  # choosing the CPU's kernels by measurement (engine/kernels.py)
    layout_s: float | None = None  # choosing the activation layout by timing steps of each (engine/layout.py)
    graph_record_s: float | None = None  # recording the CUDA graph (with its untrained warm-up steps)
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
        parts = (self.process_s, self.import_s, self.data_s, self.build_s, self.tuning_s, self.layout_s,
                 self.graph_record_s, self.first_step_extra_s)
        return sum(part for part in parts if part is not None)


@dataclass(frozen=True)
class InferenceFigures:
    """The trained network answering, after training: one image at a time, and a large batch.

    In the case's precision, dropout off, uint8 pixels on the device to class probabilities; every call
    timed with the device synchronized. The first call of each size (start-up) is kept apart.
    """

    latency_median_s: float  # one image
    latency_p95_s: float
    latency_calls: int  # timed one-image calls the median and p95 rest on
    first_latency_s: float | None = None  # the first one-image call
    batch_size: int | None = None  # the large batch (smaller than asked where memory did not allow it)
    images_per_s: float | None = None  # at that batch
    batch_calls: int = 0
    first_batch_s: float | None = None  # the first large-batch call
    note: str | None = None  # why the batch is smaller than asked, or why there is no batch figure


@dataclass(frozen=True)
class Measurement:
    """One repeat of a case, as measured: built once by the measuring code and never changed.

    A fresh model trained from the seed (or, under a time budget, stepped). The case's figures
    are folded from its repeats by fold.py.
    """

    repeat: int
    steady_epoch_s: float
    epoch_s: tuple[float, ...] = ()
    first_epoch_s: float | None = None
    projected: bool = False  # a time budget cut the repeat short: steady_epoch_s is projected
    measured_steps: int | None = None  # steps a projected epoch time rests on
    history: tuple[EpochRecord, ...] = ()
    train_loss: float | None = None
    train_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None  # 0-1
    eval_s: float | None = None
    confusion_matrix: list[list[int]] | None = None  # [true class][predicted class] on the test set
    sample_predictions: list[int] | None = None  # predicted class of each of the data set's sample images
    warmup_steps: int = 0  # untimed steps before a single timed epoch
    steps_per_epoch: int = 0
    params: int | None = None
    flops_per_step: float | None = None
    bytes_per_step: float | None = None
    peak_memory_bytes: int | None = None  # the device's; the host's for the CPU
    peak_host_memory_bytes: int | None = None
    other_cpu_load: float | None = None  # cores used by other processes during the repeat
    under_load: bool = False  # other processes used the CPU enough to make a CPU time too high
    warnings: tuple[str, ...] = ()
    startup: StartupCost | None = None
    cuda_graph: bool = False  # full-batch steps were replayed from a recorded CUDA graph
    memory_format: str | None = None  # the activations' layout: "channels_last" or "contiguous"
    layout_choice: str | None = None  # how the layout was chosen, with the measured step times
    device_name: str = ""
    cpu_threads: int | None = None
    stalled_s: float | None = None  # seconds the process did not run while it was measured (machine/stalls.py)
    # The CPU kernels chosen by measurement for each product of each layer (engine/kernels.py).
    kernels: dict[str, str] | None = None
    kernel_choice: tuple[str, ...] = ()  # the times each choice rests on, one line per product
    # A Keras engine: the packages' versions, and the backend's own list of the devices it sees.
    engine_versions: dict[str, str] | None = None
    engine_devices: tuple[str, ...] = ()
    inference: InferenceFigures | None = None  # after training (engine/inference.py); None: not asked for
    model_file: str | None = None  # the trained network saved (saved.py), relative to the run's folder
    parallel: ParallelFigures | None = None  # a data-parallel repeat's ranks, all-reduce and scaling
    energy: EnergyFigures | None = None  # what the device drew while training (machine/power.py)


@dataclass(frozen=True)
class Failure:
    """A repeat that produced no measurement, and why."""

    reason: str
    peak_memory_bytes: int | None = None
    memory_total_bytes: int | None = None
    max_batch_size: int | None = None  # the largest batch that fit, after an out-of-memory failure
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    """A case's figures, folded from its repeats (fold.py); the flat record reports read."""

    model: str
    device: str
    dataset: str
    batch_size: int
    precision: str = "fp32"
    engine: str = "trainspeed"
    world_size: int = 1  # a data-parallel case: its ranks and their backend (data_parallel.py)
    backend: str = ""
    per_device_batch: bool = False
    device_name: str = ""
    status: str = "ok"  # "ok", "failed", "stalled", "interrupted", or "partial" while repeats remain
    error: str | None = None
    image_shape: tuple[int, ...] = ()  # (channels, height, width)
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
    repeats: list[Measurement] = field(default_factory=list)
    # Spread of the steady epoch time over repeats (or, with one repeat, over the steady epochs).
    steady_min_s: float | None = None
    steady_max_s: float | None = None
    steady_cv: float | None = None
    spread_of: str | None = None  # "repeats" or "epochs"
    noisy: bool = False
    warnings: list[str] = field(default_factory=list)
    other_cpu_load: float | None = None  # cores used by other processes during the case
    under_load: bool = False  # measured while other processes used the CPU: its time is too high
    memory_total_bytes: int | None = None
    max_batch_size: int | None = None  # the largest batch that fit, after an out-of-memory failure
    # The roofline: work per step from the layer shapes, and how it compares with measured peaks.
    flops_per_step: float | None = None
    bytes_per_step: float | None = None
    achieved_flops_per_s: float | None = None
    mfu: float | None = None  # achieved / the device's measured matmul peak in the case's precision
    floor_epoch_s: float | None = None  # max(FLOPs / peak, bytes / bandwidth) for an epoch
    startup: StartupCost | None = None  # of the first repeat
    cuda_graph: bool = False  # full-batch steps were replayed from a recorded CUDA graph
    memory_format: str | None = None  # the activations' layout, and how it was chosen
    layout_choice: str | None = None
    kernels: dict[str, str] | None = None  # the CPU kernels chosen, and the times behind each choice
    kernel_choice: list[str] = field(default_factory=list)
    engine_versions: dict[str, str] | None = None  # a Keras engine's packages, and its backend's devices
    engine_devices: list[str] = field(default_factory=list)
    inference: InferenceFigures | None = None  # the trained network answering: medians over the repeats
    model_files: list[str] = field(default_factory=list)  # each repeat's saved network (--save-models)
    parallel: ParallelFigures | None = None  # a data-parallel case's ranks, all-reduce and scaling
    energy: EnergyFigures | None = None  # the device's energy while training, or why not measured
    # Seconds the measuring process was stopped or starved during timed work (machine/stalls.py).
    stalled_s: float | None = None
    # Which of the run's sessions measured it (RunResult.sessions): the machine and software it ran on.
    session: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def workload(self) -> Workload:
        return Workload(self.model, self.dataset, tuple(self.image_shape), self.train_images, self.test_images,
                        self.batch_size, self.precision, self.engine, self.world_size, self.backend,
                        self.per_device_batch)

    @property
    def key(self) -> CaseKey:
        return CaseKey(self.workload, self.device)


@dataclass
class RunResult:
    trainspeed_version: str
    created: str
    config: dict[str, Any]
    environment: dict[str, Any]
    dataset: DatasetInfo | None = None
    cases: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The run and each resume of it: when, and on which machine and software (resume.py).
    sessions: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # Trained networks by case, kept in memory only when asked for; never written.
    models: dict[CaseKey, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "models"}

    def __repr__(self) -> str:
        return f"RunResult(trainspeed {self.trainspeed_version}, {len(self.cases)} cases)\n{summary_text(self.cases)}"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's display: the same short form
        printer.text("RunResult(...)" if cycle else repr(self))

    def _repr_html_(self) -> str:  # Jupyter's display: the cases' figures, compact
        return f"<p>trainspeed {self.trainspeed_version}: {len(self.cases)} cases</p>{summary_html(self.cases)}"

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat row per case and repeat, units in the column names (rows.py): results.csv's rows."""
        return case_rows(self.cases)

    def to_dataframe(self):
        """The rows as a pandas DataFrame (pandas is optional: pip install pandas)."""
        try:
            import pandas
        except ImportError:
            raise ResultsError("to_dataframe needs pandas: pip install pandas (to_rows needs nothing)") from None
        return pandas.DataFrame(self.to_rows())

    def find(self, model: str, device: str, batch_size: int | None = None, precision: str | None = None,
             engine: str | None = None) -> CaseKey:
        """The one case matching the criteria; naming batch size, precision or engine settles a sweep."""
        keys = [case.key for case in self.cases]
        found = matching(keys, model=model, device=device, batch_size=batch_size, precision=precision,
                         engine=engine)
        if len(found) == 1:
            return found[0]
        if not found:
            raise KeyError(f"no case for {model} on {device}"
                           + (f" at batch {batch_size}" if batch_size is not None else "")
                           + (f" in {precision}" if precision is not None else "")
                           + (f" with {engine}" if engine is not None else ""))
        axes = ("batch_size", "precision") + (("engine",) if len({k.workload.engine for k in found}) > 1 else ())
        choices = "; ".join(key.label(axes) for key in found)
        raise KeyError(f"{len(found)} cases match {model} on {device} ({choices}): "
                       "name batch_size, precision or engine")

    def case(self, model: str, device: str, batch_size: int | None = None, precision: str | None = None,
             engine: str | None = None) -> CaseResult:
        key = self.find(model, device, batch_size, precision, engine)
        return next(case for case in self.cases if case.key == key)

    def trained(self, model: str, device: str, batch_size: int | None = None, precision: str | None = None,
                engine: str | None = None):
        """The trained network of a case (runs with keep_models=True), for trainspeed.predict."""
        key = self.find(model, device, batch_size, precision, engine)
        if key not in self.models:
            if key.workload.engine != "trainspeed":
                raise KeyError(f"the {key.label()} model is trained by Keras in a process of its own; only "
                               "trainspeed's engine keeps its networks")
            raise KeyError(f"the {key.label()} network was not kept: run with keep_models=True")
        return self.models[key]

    def put(self, case: CaseResult) -> None:
        """Store a case in place of any earlier one with the same key."""
        for index, existing in enumerate(self.cases):
            if existing.key == case.key:
                self.cases[index] = case
                return
        self.cases.append(case)

    def write(self, path: Path) -> Path:
        """Write atomically: a crash at any moment leaves the old file or the new one, whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(path, schema.dumps(self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "results") -> RunResult:
        """A results file's parsed JSON, checked against the schema (schema.py), as a RunResult."""
        if not isinstance(data, dict) or "schema_version" not in data or "cases" not in data:
            raise ResultsError(f"{source} is not a trainspeed results file")
        version = data["schema_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ResultsError(f"{source} has schema_version {version!r}, not a whole number")
        if version > SCHEMA_VERSION:
            raise ResultsError(f"{source} has schema {version}, newer than this trainspeed reads "
                               f"({SCHEMA_VERSION}); upgrade trainspeed")
        result = schema.validated(cls, schema.upgraded(data), source)
        schema.check_record(result, source)
        return result

    @classmethod
    def read(cls, path: Path) -> RunResult:
        """A results file, or the results.json in a folder; one-line errors for anything else."""
        data, found = schema.load(path)
        return cls.from_dict(data, str(found))


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
