"""A data set as arrays, the registry of builders by name, and the checks every loaded set passes."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, C, H, W) arrays, labels as int64; scaled by 1/255 on the device."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    # True: the files match the published release; False: they do not (a user's own copy);
    # None: not checked (an extracted folder, or generated data).
    matches_release: bool | None = None
    accuracy_meaningful: bool = True
    notes: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def limited(self, limit: int | None) -> Dataset:
        """The first `limit` training images (the test set is kept whole)."""
        if limit is None or limit >= len(self.train_images):
            return self
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {limit}")
        return replace(self, train_images=self.train_images[:limit], train_labels=self.train_labels[:limit])


@dataclass(frozen=True)
class DataOptions:
    data_dir: Path | None = None
    download: bool = True
    seed: int = 0
    # (height, width, channels) as Keras writes shapes; only the synthetic set uses these.
    synthetic_shape: tuple[int, int, int] = (32, 32, 3)
    synthetic_classes: int = 10
    synthetic_train: int = 50_000
    synthetic_test: int = 10_000
    # The training images the run will use: a generated set makes no more than these.
    limit: int | None = None
    keras_dir: Path = field(default_factory=lambda: Path.home() / ".keras" / "datasets")


Builder = Callable[[DataOptions], Dataset]
_DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        _DATASETS[name] = builder
        return builder
    return decorate


def list_datasets() -> list[str]:
    return list(_DATASETS)


def load_dataset(name: str, options: DataOptions | None = None) -> Dataset:
    """The named data set, checked (check_dataset); a file the system will not read is a DataError."""
    builder = _DATASETS.get(name)
    if builder is None:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(_DATASETS)}")
    try:
        return check_dataset(builder(options or DataOptions()))
    except OSError as error:
        raise DataError(f"cannot read {error.filename or 'the data set'} ({error.strerror or error}): "
                        f"{_os_advice(error)}") from None


def _os_advice(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return "make it readable (chmod u+r) or pass --data-dir with a copy you can read"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that disk and run again"
    if error.errno == errno.ELOOP:
        return "a symbolic link loops back on itself there: fix or remove it"
    if error.errno in (errno.ENOTDIR, errno.EISDIR):
        return "a file is where a folder should be, or the other way round: fix the path"
    return "check the disk and the path"


def check_dataset(data: Dataset) -> Dataset:
    """Refuse a set training would trip over (or silently mis-measure): the promises of Dataset, checked."""
    where = f"the {data.name} data set in {data.source}"
    if data.num_classes < 2:
        raise DataError(f"{where} has {data.num_classes} classes; training needs at least 2")
    shapes = []
    for split, images, labels in (("train", data.train_images, data.train_labels),
                                  ("test", data.test_images, data.test_labels)):
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"{where}: its {split} images are not uint8 arrays of shape (N, C, H, W)")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (len(images),):
            raise DataError(f"{where}: its {split} set has {np.size(labels)} labels for {len(images)} images")
        if len(images) == 0:
            raise DataError(f"{where}: its {split} set is empty")
        if min(images.shape[1:]) < 1:
            raise DataError(f"{where}: its {split} images have shape {images.shape[1:]}")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= data.num_classes:
            raise DataError(f"{where}: its {split} labels run from {low} to {high}, outside its "
                            f"{data.num_classes} classes (0-{data.num_classes - 1})")
        shapes.append(images.shape[1:])
    if shapes[0] != shapes[1]:
        raise DataError(f"{where}: its train images are {shapes[0]} and its test images {shapes[1]}; "
                        "they must have one shape")
    return data
