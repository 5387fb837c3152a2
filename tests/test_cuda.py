"""GPU paths: run only where CUDA is usable, skipped cleanly everywhere else.

Each test can fail: a recorded graph is compared step by step with launched steps, and models
must learn a task that can be learned (an empty graph leaves the weights where they started).
"""

import pytest
import torch

import trainspeed
from conftest import requires_cuda
from trainspeed.engine.graph import StepGraph
from trainspeed.engine.loop import train_epoch
from trainspeed.engine.step import EpochSteps
from trainspeed.machine import describe, devices
from trainspeed.models import create_model
from trainspeed.timing import Timer

pytestmark = [pytest.mark.cuda, requires_cuda]

GPU = torch.device("cuda", 0)
SHAPE = (3, 16, 16)


def learnable(count: int = 1000, seed: int = 0):
    """Images whose class sets their brightness, plus noise: learnable to near 100% in an epoch or two."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (count,), generator=generator)
    noise = torch.randint(0, 40, (count, *SHAPE), generator=generator)
    images = (labels.view(-1, 1, 1, 1) * 20 + noise).clamp(0, 255).to(torch.uint8)
    return images.to(GPU), labels.to(GPU)


def test_cuda_devices_are_found_and_described():
    found = devices.resolve(["cuda"])
    assert found == [GPU]
    gpu = describe.describe_gpus()[0]
    assert gpu.memory_bytes > 0 and gpu.compute_capability and gpu.cuda and "fp32" in gpu.precisions


def test_timer_waits_for_the_gpu():
    a = torch.randn(4096, 4096, device=GPU)
    timer = Timer(synchronize=lambda: devices.synchronize(GPU))
    with timer.measure("matmul"):
        for _ in range(20):
            a = a @ a / 64
    # 20 fp32 4096^3 matmuls take milliseconds of GPU time; queueing them takes far less.
    assert timer.records["matmul"][0] > 1e-3


@pytest.mark.parametrize("model", ["mlp:1", "ann"])  # Keras Adam and SGD, no dropout: deterministic
def test_replayed_steps_match_launched_steps_one_by_one(model):
    """100 images at batch 32: three replayed full batches and an eager partial one, twice."""
    images, labels = learnable(100)
    trained = []
    for graphed in (False, True):
        torch.manual_seed(0)
        spec = create_model(model, SHAPE, 10)
        spec.network.to(GPU)
        optimizer = spec.make_optimizer(spec.network.parameters())
        graph = StepGraph(spec, optimizer, images, labels, 32, "fp32") if graphed else None
        if graph is not None:
            graph.prepare()
        order = torch.Generator().manual_seed(0)
        snapshots = []
        for _ in range(2):
            steps = EpochSteps(spec, optimizer, images, labels, 32, order, "fp32", graph)
            for step in range(steps.steps):
                steps.run(step, 1)
                snapshots.append([p.detach().clone() for p in spec.network.parameters()])
        trained.append((snapshots, graph))
    (launched, _), (replayed, graph) = trained
    assert graph.replaying and graph.failure is None
    for step, (a, b) in enumerate(zip(launched, replayed, strict=True)):
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=f"step {step + 1}")
    assert not torch.equal(launched[-1][0], launched[0][0])  # it trained


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_the_cnn_with_dropout_is_recorded_and_learns_in_every_precision(precision):
    images, labels = learnable(2000)
    torch.manual_seed(0)
    spec = create_model("cnn", SHAPE, 10)
    spec.network.to(GPU)
    optimizer = spec.make_optimizer(spec.network.parameters())
    graph = StepGraph(spec, optimizer, images, labels, 32, precision)
    graph.prepare()
    order = torch.Generator().manual_seed(0)
    stats = [train_epoch(spec, optimizer, images, labels, batch_size=32, generator=order, precision=precision,
                         graph=graph) for _ in range(3)]
    assert graph.replaying and graph.failure is None
    # Chance is 10% and a loss of 2.30; an empty graph would stay there.
    assert stats[-1].accuracy > 0.9 and stats[-1].loss < 0.5, stats


def test_run_on_cpu_and_gpu_gives_a_speedup_and_records_the_gpu_path():
    result = trainspeed.run(models=["cnn"], devices=["cpu", "cuda"], dataset="synthetic", limit=512,
                            epochs=2, out=None)
    cpu, gpu = result.case("cnn", "cpu"), result.case("cnn", "cuda:0")
    assert gpu.ok and gpu.peak_memory_bytes > 0 and gpu.speedup_vs_cpu == pytest.approx(
        cpu.steady_epoch_s / gpu.steady_epoch_s)
    assert gpu.cuda_graph and gpu.startup.graph_record_s > 0
    assert gpu.memory_format in ("channels_last", "contiguous") and "per step" in gpu.layout_choice
    assert {"cpu", "cuda:0"} <= set(result.environment["peaks"])


def test_one_epoch_on_the_gpu_times_no_recording():
    case = trainspeed.run(models=["mlp:1"], devices=["cuda"], dataset="synthetic", limit=3200, epochs=1,
                          out=None, isolate=False).cases[0]
    assert case.cuda_graph and case.startup.graph_record_s > 0  # the CPU tests check it is not in the epoch


def test_a_time_budget_on_the_gpu_projects_from_replayed_steps():
    case = trainspeed.run(models=["cnn"], devices=["cuda"], dataset="synthetic", limit=50_000, epochs=3,
                          time_budget_s=0.5, out=None, isolate=False).cases[0]
    assert case.ok and case.projected and case.cuda_graph and case.measured_steps >= 1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("isolate", [True, False])
def test_a_second_gpu_is_measured_on_itself(isolate):
    result = trainspeed.run(models=["cnn"], devices=["cuda:1"], dataset="synthetic", limit=1000, epochs=2,
                            out=None, isolate=isolate)
    case = result.case("cnn", "cuda:1")
    assert case.ok and case.cuda_graph and not case.warnings, case.warnings
    assert case.device_name == torch.cuda.get_device_name(1)


def test_each_precisions_peak_is_measured_in_its_own_mode():
    from trainspeed.machine import precision
    from trainspeed.machine.peaks import measure_peaks

    try:
        fp32, tf32 = (measure_peaks(GPU, mode).matmul_flops_per_s for mode in ("fp32", "tf32"))
    finally:
        precision.apply("fp32")
    if torch.cuda.get_device_capability(GPU)[0] >= 8:  # TF32 tensor cores: several times fp32's rate
        assert tf32 > 2 * fp32, (tf32, fp32)


def test_evaluation_on_the_gpu_counts_what_the_cpu_counts():
    from trainspeed.engine.evaluate import evaluate

    images, labels = learnable(300)
    torch.manual_seed(0)
    spec = create_model("mlp:1", SHAPE, 10)
    on_gpu = evaluate(spec, images, labels, 64)
    spec.network.cpu()
    on_cpu = evaluate(spec, images.cpu(), labels.cpu(), 64)
    assert on_gpu.confusion == on_cpu.confusion and sum(map(sum, on_gpu.confusion)) == 300


def test_a_fast_epochs_last_report_shows_its_loss_and_memory_counts_the_allocators_reserve():
    images, labels = learnable(320)
    torch.manual_seed(0)
    spec = create_model("mlp:1", SHAPE, 10)
    spec.network.to(GPU)
    optimizer = spec.make_optimizer(spec.network.parameters())
    devices.reset_peak_memory(GPU)
    reports = []
    stats = train_epoch(spec, optimizer, images, labels, batch_size=32, generator=torch.Generator().manual_seed(0),
                        on_progress=lambda *report: reports.append(report))
    assert reports[-1][0] == 10 and reports[-1][2] == stats.loss == stats.loss  # known, not NaN
    assert devices.peak_device_memory_bytes(GPU) >= torch.cuda.max_memory_allocated(GPU) > 0
