"""Damaged, unreadable or impossible data: one DataError that says what to do, never a traceback."""

import errno
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    SAMPLE_ARCHIVE,
    cifar_archive_bytes,
    cifar_batch_bytes,
    idx_bytes,
    make_cifar_files,
    make_idx_files,
    md5_of,
    write_cifar_folder,
)
from trainspeed.data import DataOptions, cifar10, load_dataset
from trainspeed.data.download import download
from trainspeed.errors import ConfigError, DataError, DownloadError

NOBODY = 65534


def options(tmp_path: Path, **overrides) -> DataOptions:
    return DataOptions(keras_dir=tmp_path / "keras", **overrides)


def as_unprivileged(work):
    """work() as a user without root's power to read anything (a forked child as nobody), or here if
    this is no root; returns what it returned or raised."""
    if os.geteuid() != 0:
        return _outcome(work)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome = _outcome(work)
        except BaseException as error:  # noqa: BLE001 - reported to the parent, whatever it is
            outcome = ("raised", RuntimeError(repr(error)))
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        outcome = pickle.load(pipe)
    os.waitpid(child, 0)
    return outcome


def _outcome(work):
    try:
        return ("returned", work())
    except Exception as error:
        return ("raised", error)


@pytest.fixture
def open_folder():
    """A folder any user can enter (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="trainspeed-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("source", ["generated", "the real sample"])
def test_a_flipped_byte_anywhere_in_the_gzip_stream_is_a_data_error_or_marked_data(tmp_path, isolated_data, source):
    if source == "the real sample":
        if not SAMPLE_ARCHIVE.exists():
            pytest.skip("the shared CIFAR-10 sample is not here")
        whole = SAMPLE_ARCHIVE.read_bytes()
    else:
        whole = cifar_archive_bytes(make_cifar_files(per_batch=200))
    archive = tmp_path / "mine" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    errors = 0
    for share in range(1, 12):
        damaged = bytearray(whole)
        damaged[len(damaged) * share // 12] ^= 0xFF
        archive.write_bytes(bytes(damaged))
        try:
            data = load_dataset("cifar10", options(tmp_path, data_dir=archive.parent))
        except DataError as error:
            errors += 1
            assert "is corrupt or truncated" in str(error) and "replace it with a good copy" in str(error)
        else:  # deflate decoded the flip into other pixels: not the release, and said so
            assert data.matches_release is False and "not the official CIFAR-10 release" in data.notes[0]
    assert errors  # zlib's own errors (bad distance, bad code) among them


def test_trainspeed_data_pointing_at_a_file_says_to_point_it_at_a_folder(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("TRAINSPEED_DATA", str(tmp_path / "afile"))
    with pytest.raises(DataError, match="TRAINSPEED_DATA: .*afile is a file, not a folder"):
        load_dataset("cifar10", options(tmp_path))


def test_a_read_only_cache_offline_falls_back_to_synthetic_data(open_folder, monkeypatch, closed_port_url):
    cache = open_folder / "cache"
    cache.mkdir(mode=0o555)
    cache.chmod(0o555)
    monkeypatch.setenv("TRAINSPEED_DATA", str(cache))
    monkeypatch.setattr(cifar10, "CIFAR10_URL", closed_port_url)
    kind, data = as_unprivileged(lambda: load_dataset("auto", options(
        open_folder, synthetic_train=20, synthetic_test=10)))
    assert kind == "returned", data
    assert data.name == "synthetic" and any(f"cannot create {cache}/cifar10" in note for note in data.notes)


def test_a_read_only_home_offline_falls_back_to_synthetic_data(open_folder, monkeypatch, closed_port_url):
    home = open_folder / "home"
    home.mkdir()
    home.chmod(0o555)
    monkeypatch.delenv("TRAINSPEED_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(cifar10, "CIFAR10_URL", closed_port_url)
    kind, data = as_unprivileged(lambda: load_dataset("auto", DataOptions(
        keras_dir=home / ".keras", synthetic_train=20, synthetic_test=10)))
    assert kind == "returned" and data.name == "synthetic", data


def test_an_unreadable_data_file_is_one_line_with_what_to_do(open_folder):
    folder = write_cifar_folder(open_folder, make_cifar_files())
    (folder / "data_batch_3").chmod(0o000)
    kind, error = as_unprivileged(lambda: load_dataset("cifar10", options(open_folder, data_dir=folder)))
    assert kind == "raised" and isinstance(error, DataError), error
    assert "data_batch_3 (Permission denied): make it readable" in str(error)


def test_a_full_disk_while_extracting_leaves_no_half_folder_and_keeps_the_download(
        tmp_path, isolated_data, file_server, monkeypatch):
    archive = cifar_archive_bytes(make_cifar_files())
    file_server.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(cifar10, "CIFAR10_URL", file_server.url("/cifar-10-python.tar.gz"))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    real = tarfile.TarFile.extractall

    def disk_fills_up(self, path, members=None, **kwargs):
        real(self, path, members=members[:3], **kwargs)  # some files made it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", disk_fills_up)
    with pytest.raises(DataError, match=r"cannot extract .* \(No space left on device\): free space there"):
        load_dataset("cifar10", options(tmp_path))
    assert sorted(p.name for p in (isolated_data / "cifar10").iterdir()) == ["cifar-10-python.tar.gz"]
    monkeypatch.undo()
    monkeypatch.setenv("TRAINSPEED_DATA", str(isolated_data))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    # The next run reads the kept, verified archive: nothing half-extracted is ever taken for the data set.
    data = load_dataset("cifar10", options(tmp_path))
    assert data.matches_release is True and len(file_server.requests) == 1


def test_a_verified_download_is_recorded_as_the_release_now_and_later(tmp_path, isolated_data, file_server,
                                                                       monkeypatch):
    archive = cifar_archive_bytes(make_cifar_files())
    file_server.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(cifar10, "CIFAR10_URL", file_server.url("/cifar-10-python.tar.gz"))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    assert load_dataset("cifar10", options(tmp_path)).matches_release is True
    assert load_dataset("cifar10", options(tmp_path)).matches_release is True  # read from the extracted folder
    extracted = isolated_data / "cifar10" / "cifar-10-batches-py"
    (extracted / "data_batch_2").write_bytes(make_cifar_files(seed=5)["data_batch_2"])
    changed = load_dataset("cifar10", options(tmp_path))
    assert changed.matches_release is False and "has changed since it was extracted" in changed.notes[0]


def test_a_chunked_download_cut_short_keeps_its_part_and_says_so(file_server, tmp_path):
    payload = os.urandom(300_000)
    file_server.files["/data.bin"] = payload
    file_server.chunked = True
    file_server.cut_after = 100_000
    with pytest.raises(DownloadError, match="IncompleteRead"):
        download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(payload))
    assert (tmp_path / "data.bin.part").stat().st_size > 0
    file_server.cut_after = None
    assert download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(payload)).read_bytes() == payload


def idx_folder(tmp_path: Path, **replacements: bytes) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, content in {**make_idx_files(), **replacements}.items():
        (folder / name).write_bytes(content)
    return folder


BAD_SETS = {
    "mnist labels out of range": (
        "mnist", lambda tmp: idx_folder(tmp, **{"train-labels-idx1-ubyte.gz": idx_bytes(np.full(12, 42))}),
        "its train labels run from 42 to 42, outside its 10 classes (0-9)"),
    "train and test shapes differ": (
        "mnist", lambda tmp: idx_folder(tmp, **{"t10k-images-idx3-ubyte.gz": idx_bytes(np.zeros((6, 32, 32)))}),
        "its train images are (1, 28, 28) and its test images (1, 32, 32)"),
    "an empty training set": (
        "mnist", lambda tmp: idx_folder(tmp, **{"train-images-idx3-ubyte.gz": idx_bytes(np.zeros((0, 28, 28))),
                                                "train-labels-idx1-ubyte.gz": idx_bytes(np.zeros(0))}),
        "its train set is empty"),
    "cifar labels as strings": (
        "cifar10", lambda tmp: write_cifar_folder(tmp, {**make_cifar_files(), "test_batch": pickle.dumps(
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": ["cat", "dog", "cat", "dog"]})}),
        "test_batch has labels that are not whole numbers"),
    "cifar labels above 9": (
        "cifar10", lambda tmp: write_cifar_folder(tmp, {**make_cifar_files(), "test_batch": cifar_batch_bytes(
            np.zeros((4, 3, 32, 32), np.uint8), [1, 2, 3, 12])}),
        "has labels outside 0-9"),
}


@pytest.mark.parametrize("case", BAD_SETS)
def test_a_data_set_that_breaks_its_promises_is_refused_on_load(tmp_path, isolated_data, case):
    name, make, message = BAD_SETS[case]
    folder = make(tmp_path)
    with pytest.raises(DataError) as error:
        load_dataset(name, options(tmp_path, data_dir=folder))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_users_own_corrupt_idx_file_is_theirs_to_replace(tmp_path, isolated_data):
    folder = idx_folder(tmp_path, **{"t10k-labels-idx1-ubyte.gz": b"not gzip"})
    with pytest.raises(DataError, match="replace it with a good copy, or pass another --data-dir") as error:
        load_dataset("mnist", options(tmp_path, data_dir=folder))
    assert "delete" not in str(error.value)


def test_synthetic_data_makes_only_the_images_a_run_uses_and_refuses_what_cannot_fit(tmp_path):
    data = load_dataset("synthetic", options(tmp_path, synthetic_shape=(256, 256, 3), synthetic_test=10, limit=5))
    assert data.train_images.shape == (5, 3, 256, 256)
    with pytest.raises(ConfigError, match=r"synthetic images of 4096x4096x3 need .* GiB"):
        load_dataset("synthetic", options(tmp_path, synthetic_shape=(4096, 4096, 3)))
