import pickle

import numpy as np
import pytest

from conftest import (
    CIFAR_NAMES,
    SAMPLE_ARCHIVE,
    cifar_archive_bytes,
    cifar_batch_bytes,
    idx_bytes,
    make_cifar_files,
    write_cifar_folder,
)
from trainspeed.data import formats
from trainspeed.data.cifar10 import CIFAR10_MD5, read_cifar10_archive, read_cifar10_folder
from trainspeed.data.download import md5sum
from trainspeed.errors import DataError


def test_cifar_rows_are_planar_rgb(tmp_path):
    image = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    image[0, 0, 0, 1] = 200  # red, row 0, column 1
    image[0, 2, 31, 31] = 77  # blue, last pixel
    files = make_cifar_files(per_batch=1)
    files["data_batch_1"] = cifar_batch_bytes(image, [3])
    data = read_cifar10_folder(write_cifar_folder(tmp_path, files))
    assert data.train_images.shape == (5, 3, 32, 32)
    assert data.train_images.dtype == np.uint8
    assert data.train_images[0, 0, 0, 1] == 200
    assert data.train_images[0, 2, 31, 31] == 77
    assert data.train_labels[0] == 3
    assert data.class_names == tuple(CIFAR_NAMES)
    assert data.matches_release is None  # an extracted folder has no checksum to compare


def test_user_archive_with_other_checksum_is_used_but_marked(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_archive_bytes(make_cifar_files()))
    data = read_cifar10_archive(archive)
    assert len(data.train_images) == 20 and len(data.test_images) == 4
    assert data.matches_release is False
    assert CIFAR10_MD5 in data.notes[0] and str(archive) in data.notes[0]


def test_truncated_archive_names_file_and_both_checksums(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    whole = cifar_archive_bytes(make_cifar_files())
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as error:
        read_cifar10_archive(archive)
    message = str(error.value)
    assert str(archive) in message and CIFAR10_MD5 in message
    # The user's own copy is theirs to replace; only our cached copy is worth deleting and fetching again.
    assert md5sum(archive) in message and "replace it with a good copy" in message and "delete" not in message
    with pytest.raises(DataError, match=f"delete {archive} and run again to fetch it anew"):
        read_cifar10_archive(archive, ours=True)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("owned",))

    files = make_cifar_files()
    files["test_batch"] = pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2)
    with pytest.raises(DataError, match=r"unexpected object __builtin__\.print"):
        read_cifar10_folder(write_cifar_folder(tmp_path, files))


def test_batch_with_wrong_row_size_is_rejected(tmp_path):
    files = make_cifar_files()
    files["data_batch_2"] = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(DataError, match="data_batch_2.*expected uint8 \\(N, 3072\\)"):
        read_cifar10_folder(write_cifar_folder(tmp_path, files))


def test_missing_batch_is_named(tmp_path):
    files = make_cifar_files()
    del files["data_batch_4"]
    with pytest.raises(DataError, match="data_batch_4"):
        read_cifar10_folder(write_cifar_folder(tmp_path, files))


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28) % 256
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(images))
    read = formats.read_idx(path, 3)
    assert read.shape == (2, 28, 28) and read.dtype == np.uint8
    np.testing.assert_array_equal(read, images.astype(np.uint8))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: b"\x01" + raw[1:], "bad magic number"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "type 0x0d"),
        (lambda raw: raw[:-5], "header promises"),
        (lambda raw: raw[:6], "truncated in its header"),
    ],
)
def test_idx_header_must_match(tmp_path, corrupt, message):
    import gzip

    raw = gzip.decompress(idx_bytes(np.zeros((3, 28, 28))))
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(corrupt(raw)))
    with pytest.raises(DataError, match=message):
        formats.read_idx(path, 3)


def test_idx_with_wrong_dimensions_for_labels(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28))))
    with pytest.raises(DataError, match="3 dimensions, expected unsigned bytes with 1"):
        formats.read_idx(path, 1)


@pytest.mark.skipif(not SAMPLE_ARCHIVE.exists(), reason="the shared CIFAR-10 sample is not here")
def test_real_cifar10_sample():
    data = read_cifar10_archive(SAMPLE_ARCHIVE)
    assert data.train_images.shape == (5000, 3, 32, 32)
    assert data.test_images.shape == (1000, 3, 32, 32)
    assert np.bincount(data.train_labels).tolist() == [500] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert data.class_names == tuple(CIFAR_NAMES)
    assert data.matches_release is False  # a sample, not the release
    # Real photographs: channel means near CIFAR-10's published ones (~125, 123, 114).
    means = data.train_images.mean(axis=(0, 2, 3))
    assert np.all(np.abs(means - [125.3, 123.0, 113.9]) < 6)
