"""The one identity of a case: what is trained (the workload) and where (the device).

Two timings measure the same thing only when their workloads are equal, so results, resume,
speedups, comparisons and the Python API all find cases by these keys and by nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


def device_name(raw: str) -> str:
    """A device as a user may type it ('CPU', ' gpu ', 'GPU:1') as trainspeed names it ('cpu', 'cuda',
    'cuda:1'): the one rule for --devices, --price and the Python API. "gpu" is what people type; on
    trainspeed's platforms it means CUDA."""
    kind, colon, index = raw.strip().lower().partition(":")
    return ("cuda" if kind == "gpu" else kind) + colon + index


# Fields that change only how many images an epoch holds: two workloads that differ in these
# alone can still be compared per image (images/s), though not per epoch.
IMAGE_COUNTS = ("train_images", "test_images")


@dataclass(frozen=True, order=True)
class Workload:
    """Everything that decides how long a training epoch takes, apart from the device."""

    model: str
    dataset: str
    image_shape: tuple[int, int, int]  # (channels, height, width)
    train_images: int
    test_images: int
    batch_size: int
    precision: str
    engine: str = "trainspeed"  # who trains it: trainspeed's engine or a Keras backend (config.ENGINES)
    # A data-parallel job (data_parallel.py): its ranks and their backend; "" for one device alone.
    world_size: int = 1
    backend: str = ""
    per_device_batch: bool = False  # batch_size is still the global batch; this says how it was chosen

    def differences(self, other: Workload) -> list[str]:
        """The names of the fields in which the two workloads differ."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def per_image_comparable(self, other: Workload) -> bool:
        """Equal except for the number of images: comparable in images/s, not in s/epoch."""
        differing = self.differences(other)
        return bool(differing) and set(differing) <= set(IMAGE_COUNTS)

    def rate_key(self) -> tuple:
        """The workload without its image counts: what images/s comparisons match on."""
        values = asdict(self)
        return tuple(value for name, value in values.items() if name not in IMAGE_COUNTS)

    def describe(self) -> str:
        shape = "x".join(map(str, self.image_shape))
        engine = "" if self.engine == "trainspeed" else f" with {self.engine}"
        parallel = f", {self.ranks()}" if self.backend else ""
        return (f"{self.model} on {self.dataset} ({self.train_images:,} training images of {shape}) "
                f"at batch {self.batch_size} in {self.precision}{engine}{parallel}")

    def ranks(self) -> str:
        """'2 ranks (gloo), 32 per device': the data-parallel part of a label."""
        per = f", {self.batch_size // self.world_size} per device" if self.per_device_batch else ""
        return f"{self.world_size} rank{'s' if self.world_size > 1 else ''} ({self.backend}){per}"


@dataclass(frozen=True, order=True)
class CaseKey:
    """A case: a workload on a device, as the user names it ('cpu', 'cuda:1', 'mps')."""

    workload: Workload
    device: str

    def label(self, axes: tuple[str, ...] = ()) -> str:
        """'cnn on cuda:0', naming the varying `axes` (e.g. batch_size, precision) as well; a Keras
        engine is always named, so no label of one reads as trainspeed's own."""
        parts = [f"{self.workload.model} on {self.device}"]
        if "engine" in axes or self.workload.engine != "trainspeed":
            parts.append(self.workload.engine)
        if self.workload.backend:
            parts.append(self.workload.ranks())
        if "batch_size" in axes:
            parts.append(f"batch {self.workload.batch_size}")
        if "precision" in axes:
            parts.append(self.workload.precision)
        return ", ".join(parts)


def file_stem(key: CaseKey, repeat: int, repeats: int) -> str:
    """A file name for what a repeat of `key` leaves behind: 'cnn-cpu-cifar10-b32-fp32', '-r2' for a
    second repeat; every part of the identity that varies within a run is in it."""
    work = key.workload
    device = key.device.replace(":", "").replace(",", "_")
    parts = [work.model.replace(":", ""), device, work.dataset, f"b{work.batch_size}", work.precision]
    if work.engine != "trainspeed":
        parts.append(work.engine)
    if work.backend:
        parts.append(f"ddp{work.world_size}" + ("-per-device" if work.per_device_batch else ""))
    if repeats > 1:
        parts.append(f"r{repeat}")
    return "-".join(parts)


def repeat_label(key: CaseKey, repeat: int, repeats: int) -> str:
    """What a repeat's progress bar says: 'cnn on cpu, batch 32, repeat 2/3'."""
    label = key.label(("batch_size",) + (("precision",) if key.workload.precision != "fp32" else ()))
    return label + (f", repeat {repeat}/{repeats}" if repeats > 1 else "")


def varying_axes(keys: list[CaseKey]) -> tuple[str, ...]:
    """Which of batch size, precision and engine take more than one value among `keys`."""
    axes = []
    if len({key.workload.batch_size for key in keys}) > 1:
        axes.append("batch_size")
    if len({key.workload.precision for key in keys}) > 1:
        axes.append("precision")
    if len({key.workload.engine for key in keys}) > 1:
        axes.append("engine")
    if len({(key.workload.world_size, key.workload.backend) for key in keys}) > 1:
        axes.append("data_parallel")
    return tuple(axes)


def matching(keys: list[CaseKey], *, model: str | None = None, device: str | None = None,
             batch_size: int | None = None, precision: str | None = None,
             engine: str | None = None) -> list[CaseKey]:
    """The keys that agree with every criterion given."""
    wanted = {"model": model, "batch_size": batch_size, "precision": precision, "engine": engine}
    return [key for key in keys
            if (device is None or key.device == device)
            and all(value is None or getattr(key.workload, name) == value for name, value in wanted.items())]
