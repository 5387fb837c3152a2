"""MNIST-like data sets in the IDX format: found in --data-dir or Keras's cache, else downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..output import link_problem
from . import formats
from .dataset import DataOptions, Dataset, register_dataset
from .download import cache_dir, download, md5sum


@dataclass(frozen=True)
class IdxRelease:
    name: str
    mirrors: tuple[str, ...]
    keras_folder: str | None
    class_names: tuple[str, ...]
    # train images, train labels, test images, test labels: (file name, md5)
    files: tuple[tuple[str, str], ...]


FASHION_MNIST = IdxRelease(
    name="fashion_mnist",
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    keras_folder="fashion-mnist",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    files=(
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
)

MNIST = IdxRelease(
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    keras_folder=None,  # Keras keeps MNIST as one .npz, not the IDX files
    class_names=tuple(str(digit) for digit in range(10)),
    files=(
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
)


def _locate_idx_file(release: IdxRelease, file_name: str, md5: str, options: DataOptions) -> tuple[Path, bool]:
    """Path of one IDX file and whether it is the user's own copy (checked, but not fatal)."""
    if options.data_dir is not None:
        path = options.data_dir / file_name
        problem = link_problem(path) or link_problem(options.data_dir)
        if problem:
            raise DataError(f"--data-dir: {problem}")
        if not path.is_file():
            raise DataError(f"{path} is missing: {release.name} needs {', '.join(f for f, _ in release.files)}")
        return path, True
    if release.keras_folder:
        path = options.keras_dir / release.keras_folder / file_name
        if path.is_file():
            return path, True
    path = cache_dir() / release.name / file_name
    if path.is_file():
        found = md5sum(path)
        if found != md5:
            raise DataError(f"{path} has md5 {found}, expected {md5}; delete it and run again to re-fetch")
        return path, False
    if not options.download:
        raise DataError(f"{release.name} is not cached in {path.parent}; pass --data-dir or allow the download")
    return download([m + file_name for m in release.mirrors], path, md5), False


def load_idx_release(release: IdxRelease, options: DataOptions) -> Dataset:
    arrays = []
    notes = []
    for (file_name, md5), ndim in zip(release.files, (3, 1, 3, 1), strict=True):
        path, users_copy = _locate_idx_file(release, file_name, md5, options)
        if users_copy:
            found = md5sum(path)
            if found != md5:
                notes.append(f"{path} is not the official release (md5 {found}, expected {md5})")
        try:
            arrays.append(formats.read_idx(path, ndim))
        except DataError as error:
            advice = ("replace it with a good copy, or pass another --data-dir" if users_copy
                      else "delete it and run again to fetch it anew")
            raise DataError(f"{error}; {advice}") from None
    train_images, train_labels, test_images, test_labels = arrays
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "test")):
        if len(images) != len(labels):
            raise DataError(f"{release.name} {split} set has {len(images)} images but {len(labels)} labels")
    return Dataset(
        release.name,
        train_images[:, None], train_labels.astype(np.int64),
        test_images[:, None], test_labels.astype(np.int64),
        release.class_names,
        source=str(options.data_dir or path.parent),
        matches_release=not notes,
        notes=tuple(notes),
    )


@register_dataset("fashion_mnist")
def fashion_mnist(options: DataOptions) -> Dataset:
    return load_idx_release(FASHION_MNIST, options)


@register_dataset("mnist")
def mnist(options: DataOptions) -> Dataset:
    return load_idx_release(MNIST, options)
