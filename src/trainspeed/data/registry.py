"""Data sets by name: each is one builder function that finds, fetches or makes its arrays."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, DownloadError
from . import formats
from .download import cache_dir, download, md5sum


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
    builder = _DATASETS.get(name)
    if builder is None:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(_DATASETS)}")
    return builder(options or DataOptions())


# --- CIFAR-10 -----------------------------------------------------------------------------

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
# Keras names its cached copy after the folder it extracts.
KERAS_CIFAR10_ARCHIVE = "cifar-10-batches-py.tar.gz"


def _read_cifar_members(open_member: Callable[[str], object], source: str):
    def parse(name: str, reader):
        stream = open_member(name)
        if stream is None:
            raise DataError(f"{source} has no {CIFAR10_FOLDER}/{name}")
        with stream:
            return reader(stream, f"{source}: {name}")

    parts = [parse(name, formats.read_cifar_batch) for name in formats.CIFAR_TRAIN_BATCHES]
    test_images, test_labels = parse(formats.CIFAR_TEST_BATCH, formats.read_cifar_batch)
    names = parse(formats.CIFAR_META, formats.read_cifar_meta)
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    return train_images, train_labels, test_images, test_labels, names


def read_cifar10_folder(folder: Path) -> Dataset:
    def open_member(name: str):
        path = folder / name
        return open(path, "rb") if path.is_file() else None

    arrays = _read_cifar_members(open_member, str(folder))
    return Dataset("cifar10", *arrays, source=str(folder))


def read_cifar10_archive(archive: Path, *, trusted: bool = False) -> Dataset:
    """Read the batches straight from the tar.gz; `trusted` skips the checksum (just verified)."""
    found = CIFAR10_MD5 if trusted else md5sum(archive)
    matches = found == CIFAR10_MD5
    try:
        with tarfile.open(archive, "r:gz") as tar:
            def open_member(name: str):
                try:
                    return tar.extractfile(f"{CIFAR10_FOLDER}/{name}")
                except KeyError:
                    return None

            arrays = _read_cifar_members(open_member, str(archive))
    except (tarfile.TarError, EOFError, OSError, DataError) as error:
        raise DataError(
            f"{archive} is corrupt or truncated (md5 {found}, expected {CIFAR10_MD5}: {error}); "
            f"delete it and run again to re-fetch from {CIFAR10_URL}"
        ) from None
    notes = ()
    if not matches:
        notes = (f"{archive} is not the official CIFAR-10 release (md5 {found}, expected "
                 f"{CIFAR10_MD5}); results are marked as such",)
    return Dataset("cifar10", *arrays, source=str(archive), matches_release=matches, notes=notes)


def _cifar10_in(directory: Path) -> Path | None:
    """The copy of CIFAR-10 a folder holds, if any: the archive itself, the extracted folder."""
    if directory.is_file():
        return directory
    for candidate in (directory / CIFAR10_FOLDER, directory / CIFAR10_ARCHIVE, directory / KERAS_CIFAR10_ARCHIVE):
        if candidate.exists():
            return candidate
    if (directory / formats.CIFAR_TEST_BATCH).is_file():
        return directory
    return None


def _read_cifar10_copy(path: Path) -> Dataset:
    return read_cifar10_folder(path) if path.is_dir() else read_cifar10_archive(path)


def find_cifar10(options: DataOptions) -> Path | None:
    """A copy the user already has: --data-dir, Keras's cache, then ours."""
    if options.data_dir is not None:
        if not options.data_dir.exists():
            raise DataError(f"--data-dir {options.data_dir} does not exist")
        found = _cifar10_in(options.data_dir)
        if found is None:
            raise DataError(
                f"no CIFAR-10 in {options.data_dir}: expected {CIFAR10_ARCHIVE} or a {CIFAR10_FOLDER}/ folder"
            )
        return found
    for directory in (options.keras_dir, cache_dir() / "cifar10"):
        found = _cifar10_in(directory) if directory.is_dir() else None
        if found is not None:
            return found
    return None


def fetch_cifar10() -> Path:
    """Download, verify and extract into the cache; returns the extracted folder."""
    target = cache_dir() / "cifar10"
    archive = download(CIFAR10_URL, target / CIFAR10_ARCHIVE, CIFAR10_MD5)
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"{CIFAR10_FOLDER}/")]
        tar.extractall(target, members=members, filter="data")
    archive.unlink()  # the extracted folder is what later runs read
    return target / CIFAR10_FOLDER


@register_dataset("cifar10")
def cifar10(options: DataOptions) -> Dataset:
    found = find_cifar10(options)
    if found is not None:
        return _read_cifar10_copy(found)
    if not options.download:
        raise DataError(f"CIFAR-10 is not cached in {cache_dir()}; pass --data-dir or allow the download")
    return read_cifar10_folder(fetch_cifar10())


# --- MNIST-like IDX sets ------------------------------------------------------------------

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
        arrays.append(formats.read_idx(path, ndim))
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


# --- Generated and automatic --------------------------------------------------------------

@register_dataset("synthetic")
def synthetic(options: DataOptions) -> Dataset:
    """Random images and labels of a chosen shape: for timing only, accuracy means nothing."""
    height, width, channels = options.synthetic_shape
    if min(options.synthetic_shape) < 1 or options.synthetic_classes < 2:
        raise ConfigError("synthetic data needs a positive shape and at least 2 classes")
    rng = np.random.default_rng(options.seed)
    shape = (channels, height, width)
    classes = options.synthetic_classes
    return Dataset(
        "synthetic",
        rng.integers(0, 256, (options.synthetic_train, *shape), dtype=np.uint8),
        rng.integers(0, classes, options.synthetic_train, dtype=np.int64),
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
