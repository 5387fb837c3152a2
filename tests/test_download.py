import pytest
from rich.console import Console
from rich.progress import Progress

from conftest import md5_of
from trainspeed.data.download import download
from trainspeed.errors import ChecksumError, DownloadError

PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk


def quiet_progress():
    return Progress(console=Console(file=open("/dev/null", "w")))


def test_download_verifies_and_reports_progress(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    progress = quiet_progress()
    dest = download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(PAYLOAD), progress=progress)
    assert dest.read_bytes() == PAYLOAD
    task = progress.tasks[0]
    assert task.total == len(PAYLOAD) and task.completed == len(PAYLOAD)
    assert not (tmp_path / "data.bin.part").exists()


def test_checksum_failure_deletes_the_file_and_says_both_sums(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    expected = "0" * 32
    with pytest.raises(ChecksumError) as error:
        download(file_server.url("/data.bin"), tmp_path / "data.bin", expected, progress=quiet_progress())
    message = str(error.value)
    assert expected in message and md5_of(PAYLOAD) in message and "re-fetch" in message
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_partial_file_is_resumed_with_a_range_request(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:300_000])
    dest = download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(PAYLOAD), progress=quiet_progress())
    assert dest.read_bytes() == PAYLOAD
    assert file_server.requests == [("/data.bin", "bytes=300000-")]


def test_server_without_range_support_restarts_cleanly(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    file_server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes from another file")
    dest = download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(PAYLOAD), progress=quiet_progress())
    assert dest.read_bytes() == PAYLOAD


def test_cut_transfer_keeps_the_part_for_the_next_try(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    file_server.cut_after = 100_000
    with pytest.raises(DownloadError):
        download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(PAYLOAD), progress=quiet_progress())
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    file_server.cut_after = None
    dest = download(file_server.url("/data.bin"), tmp_path / "data.bin", md5_of(PAYLOAD), progress=quiet_progress())
    assert dest.read_bytes() == PAYLOAD
    assert file_server.requests[-1] == ("/data.bin", "bytes=100000-")


def test_next_mirror_is_tried_when_one_fails(file_server, tmp_path):
    file_server.files["/good/data.bin"] = PAYLOAD
    urls = [file_server.url("/missing/data.bin"), file_server.url("/good/data.bin")]
    dest = download(urls, tmp_path / "data.bin", md5_of(PAYLOAD), progress=quiet_progress())
    assert dest.read_bytes() == PAYLOAD


def test_no_network_gives_the_offline_options(closed_port_url, tmp_path):
    with pytest.raises(DownloadError) as error:
        download(closed_port_url, tmp_path / "x.tar.gz", "0" * 32, progress=quiet_progress(), timeout_s=5)
    message = str(error.value)
    assert "--data-dir" in message and "--dataset synthetic" in message and closed_port_url in message
