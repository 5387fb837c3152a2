"""CIFAR-10: found where the user or Keras keeps it, else downloaded, verified and extracted into our cache."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..output import link_problem
from . import formats
from .dataset import DataOptions, Dataset, register_dataset
from .download import cache_dir, download, md5sum

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
# Keras names its cached copy after the folder it extracts.
KERAS_CIFAR10_ARCHIVE = "cifar-10-batches-py.tar.gz"
# Written into a folder we extracted from a verified archive: each file's md5, checked on every read.
VERIFIED = ".trainspeed-verified.json"
_MEMBERS = (*formats.CIFAR_TRAIN_BATCHES, formats.CIFAR_TEST_BATCH, formats.CIFAR_META)


def _advice(path: Path, ours: bool) -> str:
    """What to do about a bad copy: ours is fetched again; the user's own is theirs to replace."""
    if ours:
        return f"delete {path} and run again to fetch it anew"
    return f"replace it with a good copy of {CIFAR10_ARCHIVE} (md5 {CIFAR10_MD5}), or pass another --data-dir"


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


def read_cifar10_folder(folder: Path, *, ours: bool = False) -> Dataset:
    def open_member(name: str):
        path = folder / name
        return open(path, "rb") if path.is_file() else None

    try:
        arrays = _read_cifar_members(open_member, str(folder))
    except DataError as error:
        raise DataError(f"{error}; {_advice(folder, ours)}") from None
    matches, notes = _verified(folder)
    return Dataset("cifar10", *arrays, source=str(folder), matches_release=matches, notes=notes)


def _verified(folder: Path) -> tuple[bool | None, tuple[str, ...]]:
    """Whether a folder we extracted still holds the release's files (None: not extracted by us)."""
    try:
        expected = json.loads((folder / VERIFIED).read_text())
    except (OSError, ValueError):
        return None, ()
    changed = [name for name in _MEMBERS if md5sum(folder / name) != expected.get(name)]
    if not changed:
        return True, ()
    return False, (f"{folder} has changed since it was extracted from the verified release ({', '.join(changed)}); "
                   "results are marked as not the official release",)


def read_cifar10_archive(archive: Path, *, trusted: bool = False, ours: bool = False) -> Dataset:
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
    except (tarfile.TarError, EOFError, zlib.error, OSError, DataError) as error:
        raise DataError(f"{archive} is corrupt or truncated (md5 {found}, expected {CIFAR10_MD5}: {error}); "
                        f"{_advice(archive, ours)}") from None
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


def find_cifar10(options: DataOptions) -> tuple[Path, bool] | None:
    """A copy already here: --data-dir, Keras's cache, then ours; and whether it is ours."""
    if options.data_dir is not None:
        problem = link_problem(options.data_dir)
        if problem:
            raise DataError(f"--data-dir: {problem}")
        if not options.data_dir.exists():
            raise DataError(f"--data-dir {options.data_dir} does not exist")
        found = _cifar10_in(options.data_dir)
        if found is None:
            raise DataError(
                f"no CIFAR-10 in {options.data_dir}: expected {CIFAR10_ARCHIVE} or a {CIFAR10_FOLDER}/ folder")
        return found, False
    for directory, ours in ((options.keras_dir, False), (cache_dir() / "cifar10", True)):
        found = _cifar10_in(directory) if directory.is_dir() else None
        if found is not None:
            return found, ours
    return None


def fetch_cifar10() -> Path:
    """Download and verify the archive, extract it into the cache; returns the extracted folder.

    Extracted into a temporary folder and renamed into place whole, so a full disk or a kill
    mid-way never leaves a half folder that later runs would take for the data set.
    """
    target = cache_dir() / "cifar10"
    archive = download(CIFAR10_URL, target / CIFAR10_ARCHIVE, CIFAR10_MD5)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extracting-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"{CIFAR10_FOLDER}/")]
            tar.extractall(staging, members=members, filter="data")
        extracted = staging / CIFAR10_FOLDER
        sums = {name: md5sum(extracted / name) for name in _MEMBERS}
        (extracted / VERIFIED).write_text(json.dumps(sums, indent=1))
        extracted.rename(target / CIFAR10_FOLDER)
    except OSError as error:
        raise DataError(f"cannot extract {archive} into {target} ({error.strerror or error}): free space there "
                        "and run again (the verified download is kept)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()  # the extracted folder is what later runs read
    return target / CIFAR10_FOLDER


@register_dataset("cifar10")
def cifar10(options: DataOptions) -> Dataset:
    found = find_cifar10(options)
    if found is not None:
        path, ours = found
        return read_cifar10_folder(path, ours=ours) if path.is_dir() else read_cifar10_archive(path, ours=ours)
    if not options.download:
        raise DataError(f"CIFAR-10 is not cached in {cache_dir()}; pass --data-dir or allow the download")
    return read_cifar10_folder(fetch_cifar10(), ours=True)
