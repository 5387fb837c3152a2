"""GPU paths: run only where CUDA is usable, skipped cleanly everywhere else."""

import pytest
import torch

import trainspeed
from conftest import requires_cuda
from trainspeed import devices
from trainspeed.timing import Timer

pytestmark = [pytest.mark.cuda, requires_cuda]


def test_cuda_devices_are_found_and_described():
    found = devices.resolve(["cuda"])
    assert found == [torch.device("cuda", 0)]
    gpu = devices.describe_gpus()[0]
    assert gpu.memory_bytes > 0 and gpu.compute_capability and gpu.cuda


def test_timer_waits_for_the_gpu():
    device = torch.device("cuda", 0)
    a = torch.randn(4096, 4096, device=device)
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    with timer.measure("matmul"):
        for _ in range(20):
            a = a @ a / 64
    # 20 fp32 4096^3 matmuls take milliseconds of GPU time; queueing them takes far less.
    assert timer.records["matmul"][0] > 1e-3


def test_run_on_cpu_and_gpu_gives_a_speedup():
    result = trainspeed.run(models=["cnn"], devices=["cpu", "cuda"], dataset="synthetic", limit=512,
                            epochs=2, out=None)
    cpu, gpu = result.case("cnn", "cpu"), result.case("cnn", "cuda:0")
    assert gpu.ok and gpu.peak_memory_bytes > 0 and gpu.speedup_vs_cpu == pytest.approx(
        cpu.steady_epoch_s / gpu.steady_epoch_s)


GPU_QUICK = dict(devices=["cuda"], dataset="synthetic", limit=1000, epochs=2, batch_sizes=[32],
                 synthetic_shape=(32, 32, 3), out=None, isolate=False)


def test_recorded_steps_on_the_gpu_train_like_launched_ones():
    graphed = trainspeed.run(models=["mlp:1"], **GPU_QUICK).cases[0]
    launched = trainspeed.run(models=["mlp:1"], cuda_graphs=False, **GPU_QUICK).cases[0]
    assert graphed.cuda_graph and not launched.cuda_graph
    assert not any("capture failed" in warning for warning in graphed.warnings)
    assert graphed.train_loss == pytest.approx(launched.train_loss, rel=1e-3)
    assert graphed.test_loss == pytest.approx(launched.test_loss, rel=1e-3)


def test_the_cnn_with_dropout_is_recorded_in_every_precision():
    result = trainspeed.run(models=["cnn"], precisions=["fp32", "tf32", "bf16"], **GPU_QUICK)
    for case in result.cases:
        assert case.ok and case.cuda_graph, (case.precision, case.error, case.warnings)
        assert case.train_loss == case.train_loss and case.train_loss < 2.4  # finite, and it learns a little
    assert {"cuda:0", "cuda:0 tf32", "cuda:0 bf16"} <= set(result.environment["peaks"])
