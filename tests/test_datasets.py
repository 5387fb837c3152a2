from pathlib import Path

import numpy as np
import pytest

from conftest import cifar_archive_bytes, make_cifar_files, make_idx_files, md5_of, write_cifar_folder
from trainspeed.data import DataOptions, cifar10, idx, list_datasets, load_dataset
from trainspeed.errors import ChecksumError, ConfigError, DataError


def options(tmp_path: Path, **kwargs) -> DataOptions:
    return DataOptions(keras_dir=tmp_path / "keras", **kwargs)


def test_registry_lists_every_data_set():
    assert set(list_datasets()) == {"auto", "cifar10", "fashion_mnist", "mnist", "synthetic"}


def test_unknown_data_set_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown data set 'imagenet'.*cifar10.*synthetic"):
        load_dataset("imagenet")


def test_synthetic_is_deterministic_and_shaped_as_asked():
    small = dict(synthetic_train=64, synthetic_test=16)
    first = load_dataset("synthetic", DataOptions(seed=3, synthetic_shape=(28, 28, 1), **small))
    again = load_dataset("synthetic", DataOptions(seed=3, synthetic_shape=(28, 28, 1), **small))
    other = load_dataset("synthetic", DataOptions(seed=4, synthetic_shape=(28, 28, 1), **small))
    assert first.train_images.shape == (64, 1, 28, 28) and first.test_images.shape == (16, 1, 28, 28)
    np.testing.assert_array_equal(first.train_images, again.train_images)
    assert not np.array_equal(first.train_images, other.train_images)
    assert first.accuracy_meaningful is False and first.num_classes == 10


def test_synthetic_default_is_cifar10_shaped():
    data = load_dataset("synthetic")
    assert data.train_images.shape == (50_000, 3, 32, 32) and len(data.test_labels) == 10_000


def test_limit_keeps_the_first_training_images_and_the_whole_test_set():
    data = load_dataset("synthetic", DataOptions(synthetic_train=100, synthetic_test=10))
    limited = data.limited(30)
    np.testing.assert_array_equal(limited.train_images, data.train_images[:30])
    assert len(limited.test_images) == 10
    with pytest.raises(ConfigError):
        data.limited(0)


def test_cifar10_found_in_keras_cache(tmp_path, isolated_data):
    write_cifar_folder(tmp_path / "keras", make_cifar_files())
    data = load_dataset("cifar10", options(tmp_path, download=False))
    assert data.source == str(tmp_path / "keras" / "cifar-10-batches-py")
    assert len(data.train_images) == 20


def test_data_dir_may_be_the_archive_or_its_folder(tmp_path, isolated_data):
    archive = tmp_path / "mine" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(cifar_archive_bytes(make_cifar_files()))
    for given in (archive, archive.parent):
        data = load_dataset("cifar10", options(tmp_path, data_dir=given))
        assert data.source == str(archive) and data.matches_release is False


def test_data_dir_without_cifar10_says_what_it_expected(tmp_path, isolated_data):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no CIFAR-10 in .*empty: expected cifar-10-python.tar.gz"):
        load_dataset("cifar10", options(tmp_path, data_dir=tmp_path / "empty"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", options(tmp_path, data_dir=tmp_path / "nowhere"))


def test_cifar10_download_is_verified_extracted_and_cached(tmp_path, isolated_data, file_server, monkeypatch):
    archive = cifar_archive_bytes(make_cifar_files())
    file_server.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(cifar10, "CIFAR10_URL", file_server.url("/cifar-10-python.tar.gz"))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    data = load_dataset("cifar10", options(tmp_path))
    extracted = isolated_data / "cifar10" / "cifar-10-batches-py"
    assert data.source == str(extracted) and (extracted / "test_batch").is_file()
    assert not (isolated_data / "cifar10" / "cifar-10-python.tar.gz").exists()
    # A second run reads the cache and does not download again.
    load_dataset("cifar10", options(tmp_path))
    assert len(file_server.requests) == 1


def test_cifar10_download_with_wrong_checksum_is_never_used(tmp_path, isolated_data, file_server, monkeypatch):
    file_server.files["/cifar-10-python.tar.gz"] = cifar_archive_bytes(make_cifar_files())
    monkeypatch.setattr(cifar10, "CIFAR10_URL", file_server.url("/cifar-10-python.tar.gz"))
    with pytest.raises(ChecksumError, match=cifar10.CIFAR10_MD5):
        load_dataset("cifar10", options(tmp_path))
    assert not any((isolated_data / "cifar10").iterdir())


def test_auto_falls_back_to_synthetic_when_offline(tmp_path, isolated_data, monkeypatch, closed_port_url):
    monkeypatch.setattr(cifar10, "CIFAR10_URL", closed_port_url)
    data = load_dataset("auto", options(tmp_path, synthetic_train=50, synthetic_test=10))
    assert data.name == "synthetic" and data.accuracy_meaningful is False
    assert any("could not be downloaded" in note and closed_port_url in note for note in data.notes)


def test_auto_prefers_cifar10_when_present(tmp_path, isolated_data):
    write_cifar_folder(tmp_path / "keras", make_cifar_files())
    assert load_dataset("auto", options(tmp_path)).name == "cifar10"


def test_fashion_mnist_from_a_folder_of_idx_files(tmp_path, isolated_data):
    folder = tmp_path / "fashion"
    folder.mkdir()
    for name, data in make_idx_files().items():
        (folder / name).write_bytes(data)
    data = load_dataset("fashion_mnist", options(tmp_path, data_dir=folder))
    assert data.train_images.shape == (12, 1, 28, 28) and data.test_images.shape == (6, 1, 28, 28)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert data.matches_release is False and len(data.notes) == 4  # generated files, not the release


def test_fashion_mnist_missing_file_is_named(tmp_path, isolated_data):
    folder = tmp_path / "fashion"
    folder.mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is missing"):
        load_dataset("fashion_mnist", options(tmp_path, data_dir=folder))


def test_mnist_style_release_downloads_every_file(tmp_path, isolated_data, file_server):
    files = make_idx_files()
    for name, data in files.items():
        file_server.files[f"/mnist/{name}"] = data
    release = idx.IdxRelease(
        name="mnist", mirrors=(file_server.url("/mnist/"),), keras_folder=None,
        class_names=tuple("0123456789"), files=tuple((name, md5_of(data)) for name, data in files.items()),
    )
    data = idx.load_idx_release(release, options(tmp_path))
    assert data.train_images.shape == (12, 1, 28, 28) and data.matches_release is True
    assert sorted(p.name for p in (isolated_data / "mnist").iterdir()) == sorted(files)
