"""Fixtures: data files in the official formats, generated here, and a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

SAMPLE_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-sample" / "cifar-10-python.tar.gz"
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the Python 2 originals are: byte-string keys, (N, 3072) planar uint8 rows."""
    payload = {b"batch_label": b"generated", b"labels": labels,
               b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(labels)}
    return pickle.dumps(payload, protocol=2)


def cifar_meta_bytes() -> bytes:
    return pickle.dumps({b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_cases_per_batch": 10,
                         b"num_vis": 3072}, protocol=2)


def make_cifar_files(per_batch: int = 4, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        files[name] = cifar_batch_bytes(images, [int(x) for x in rng.integers(0, 10, per_batch)])
    files["batches.meta"] = cifar_meta_bytes()
    return files


def write_cifar_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def cifar_archive_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


def make_idx_files(train: int = 12, test: int = 6, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (train, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, train)),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, test)),
    }


class FileServer:
    """Serves bytes by path on 127.0.0.1, honouring Range requests unless told not to."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many bytes but promise the whole file
        self.chunked = False  # send the body in HTTP/1.1 chunks (no Content-Length); cut_after cuts a chunk short
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if server.chunked:
                    self.protocol_version = "HTTP/1.1"  # chunks exist only in HTTP/1.1
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                requested = self.headers.get("Range")
                if requested and server.honour_range:
                    start = int(requested.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    sent = body if server.cut_after is None else body[:server.cut_after]
                    self.wfile.write(f"{len(body):x}\r\n".encode() + sent)  # the chunk promises the whole body
                    if server.cut_after is None:
                        self.wfile.write(b"\r\n0\r\n\r\n")
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if server.cut_after is None else body[:server.cut_after])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def file_server():
    server = FileServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """An empty cache and an empty Keras folder, so no test sees the machine's real data."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRAINSPEED_DATA", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return cache


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: what an offline machine sees."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def _runs_name_their_devices(request, monkeypatch):
    """A run that names no devices trains on the CPU and every GPU: a test that counts its cases would pass
    here and fail on a GPU machine. So every test run names its devices, and the suite passes with 0, 1
    or 2+ GPUs; a test of the default itself is marked `every_device`."""
    if request.node.get_closest_marker("every_device"):
        return
    from trainspeed.machine import devices

    named = devices.resolve

    def resolve(names):
        if not names:
            raise AssertionError("a test's run must name its devices (devices=[...] or --devices): the default is "
                                 "the CPU and every GPU, which differs from machine to machine")
        return named(names)

    monkeypatch.setattr(devices, "resolve", resolve)
