"""Parsers for the data sets' published file formats, returning uint8 arrays in NCHW order."""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError

CIFAR_ROW_BYTES = 3 * 32 * 32
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_META = "batches.meta"

# The official batches are Python 2 pickles of numpy arrays: these globals are all they need.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Loads only numpy arrays and plain containers, so a tampered file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _unpickle(stream: BinaryIO, source: str) -> dict:
    try:
        loaded = _CifarUnpickler(stream, encoding="bytes").load()
    except Exception as error:  # any failure here means the file is not a CIFAR batch
        raise DataError(f"{source} is not a readable CIFAR-10 batch ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{source} is not a CIFAR-10 batch (a {type(loaded).__name__}, not a dict)")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in loaded.items()}


def read_cifar_batch(stream: BinaryIO, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images as (N, 3, 32, 32) uint8 (the rows are planar R, G, B) and int64 labels."""
    batch = _unpickle(stream, source)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{source} is not a CIFAR-10 batch (no 'data' and 'labels')")
    data = np.asarray(batch["data"])
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{source} has labels that are not whole numbers") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW_BYTES:
        raise DataError(f"{source} holds {data.dtype} data of shape {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{source} has {labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{source} has labels outside 0-9")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_meta(stream: BinaryIO, source: str) -> tuple[str, ...]:
    meta = _unpickle(stream, source)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{source} has no list of 10 label_names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


# IDX type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes occur in these sets.
_IDX_UBYTE = 0x08


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse a gzipped (or plain) IDX file, checking the magic number and dimensions."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not readable ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code != _IDX_UBYTE or ndim != expected_ndim:
        raise DataError(
            f"{path} has IDX type 0x{type_code:02x} with {ndim} dimensions, "
            f"expected unsigned bytes with {expected_ndim}; wrong file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated in its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path} holds {len(raw) - header} bytes of data, its header promises {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
