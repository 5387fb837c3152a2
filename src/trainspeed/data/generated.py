"""Generated data for timing anything, and `auto`: CIFAR-10 when it can be had, else generated data, said out loud."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ..errors import ConfigError, DownloadError
from .cifar10 import cifar10
from .dataset import DataOptions, Dataset, register_dataset


@register_dataset("synthetic")
def synthetic(options: DataOptions) -> Dataset:
    """Random images and labels of a chosen shape: for timing only, accuracy means nothing."""
    height, width, channels = options.synthetic_shape
    if min(options.synthetic_shape) < 1 or options.synthetic_classes < 2:
        raise ConfigError("synthetic data needs a positive shape and at least 2 classes")
    rng = np.random.default_rng(options.seed)
    shape = (channels, height, width)
    classes = options.synthetic_classes
    # Only the images the run will train on: --limit 500 makes 500, not 50,000 to throw away.
    train = min(options.synthetic_train, options.limit or options.synthetic_train)
    needed = (train + options.synthetic_test) * height * width * channels
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory // 2:
        raise ConfigError(f"synthetic images of {height}x{width}x{channels} need {needed / 2**30:,.1f} GiB for "
                          f"{train:,} training and {options.synthetic_test:,} test images, more than half of this "
                          f"machine's {memory / 2**30:.0f} GiB: use a smaller --synthetic-shape or --limit")
    return Dataset(
        "synthetic",
        rng.integers(0, 256, (train, *shape), dtype=np.uint8),
        rng.integers(0, classes, train, dtype=np.int64),
        rng.integers(0, 256, (options.synthetic_test, *shape), dtype=np.uint8),
        rng.integers(0, classes, options.synthetic_test, dtype=np.int64),
        tuple(f"class {i}" for i in range(classes)),
        source=f"generated (seed {options.seed})",
        accuracy_meaningful=False,
        notes=("synthetic random data: timings are real, accuracy is meaningless",),
    )


@register_dataset("auto")
def auto(options: DataOptions) -> Dataset:
    """CIFAR-10 when it is here or can be fetched; otherwise synthetic data, said out loud."""
    try:
        return cifar10(options)
    except DownloadError as error:
        note = (f"CIFAR-10 is not on this machine and could not be downloaded ({'; '.join(error.reasons)}): "
                "timing synthetic data of its shape instead; pass --data-dir to use a copy you have")
        data = synthetic(options)
        return replace(data, notes=data.notes + (note,))
