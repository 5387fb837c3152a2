import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainspeed.errors import DeviceError
from trainspeed.machine import describe, devices


@pytest.mark.every_device
def test_cpu_resolves_once_and_is_always_available():
    assert devices.resolve(["cpu", " CPU "]) == [torch.device("cpu")]
    assert devices.available()[0] == torch.device("cpu")
    assert devices.resolve(None) == devices.available()


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "xla"])
def test_unknown_devices_list_the_valid_names(name):
    with pytest.raises(DeviceError, match="valid names: cpu, cuda, cuda:N, mps"):
        devices.resolve([name])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1", "gpu"])
def test_missing_gpu_says_why_and_what_is_here(name):
    with pytest.raises(DeviceError) as error:
        devices.resolve([name])
    message = str(error.value)
    assert message.startswith(f"cannot use {name!r}: ") and message.endswith("(available here: cpu)")
    assert devices.no_cuda_reason() in message


def test_hidden_gpus_are_named_as_the_reason(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in devices.no_cuda_reason()


def test_cpu_build_is_named_as_the_reason(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert "built without CUDA" in devices.no_cuda_reason()


def test_cpu_threads_are_set_and_reported():
    before = torch.get_num_threads()
    try:
        assert devices.set_cpu_threads(1) == 1
        assert devices.set_cpu_threads(None) == devices.usable_cores()
        with pytest.raises(DeviceError):
            devices.set_cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def test_cpu_description_has_what_the_table_shows():
    cpu = describe.describe_cpu()
    assert cpu.model and cpu.logical_cores >= cpu.usable_cores >= 1
    assert cpu.precisions[0] == "fp32" and "tf32" not in cpu.precisions
    assert cpu.torch_capability and cpu.threads == torch.get_num_threads()


def test_host_peak_memory_is_per_case():
    # In a fresh process, as a case runs: here, memory freed by earlier tests may still be resident
    # (configure_process keeps freed blocks for reuse), and a new block would not raise the peak.
    code = ("import torch; from trainspeed.machine import devices; devices.reset_peak_memory(torch.device('cpu')); "
            "before = devices.peak_host_memory_bytes(); block = torch.ones(64 * 2**20 // 4); "
            "print(devices.peak_host_memory_bytes() - before)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert int(done.stdout) >= 60 * 2**20, done.stderr


@pytest.mark.parametrize("parent, device, child", [
    (None, "cuda:1", "1"),  # the child sees only GPU 1, as its cuda:0
    (None, "cuda", "0"),
    ("2,3", "cuda:1", "3"),  # the parent's numbering is itself narrowed: cuda:1 is GPU 3
    ("GPU-aaaa, GPU-bbbb", "cuda:0", "GPU-aaaa"),
    ("", "cuda:0", "0"),
])
def test_a_gpu_case_process_sees_only_its_gpu(parent, device, child):
    environ = {"PATH": "/bin"} if parent is None else {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": parent}
    seen, local = devices.isolate_gpu(device, environ)
    assert seen["CUDA_VISIBLE_DEVICES"] == child and local == "cuda:0" and seen["PATH"] == "/bin"


def test_cpu_and_mps_case_processes_keep_the_environment():
    environ = {"CUDA_VISIBLE_DEVICES": "1"}
    assert devices.isolate_gpu("cpu", environ) == (environ, "cpu")
    assert devices.isolate_gpu("mps", environ) == (environ, "mps")


def test_a_gpu_the_parent_cannot_see_is_refused():
    with pytest.raises(DeviceError, match="shows 2 GPU"):
        devices.isolate_gpu("cuda:2", {"CUDA_VISIBLE_DEVICES": "0,1"})
