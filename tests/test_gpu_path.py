"""The GPU path, checked on the CPU: each defect a reading of it against PyTorch's rules found, with the
CUDA-facing calls replaced where a CPU has none. The same paths run for real in tests/test_cuda.py."""

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from trainspeed.energy import figures
from trainspeed.engine.evaluate import evaluate
from trainspeed.engine.loop import train_epoch
from trainspeed.engine.step import EpochStats, EpochSteps
from trainspeed.errors import DeviceError
from trainspeed.keras_engine import backends
from trainspeed.machine import devices, peaks, power, precision, validity
from trainspeed.models import create_model

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_every_precisions_peak_is_measured_in_its_own_mode(monkeypatch):
    """Under torchrun, rank 0 measured its "tf32" peak in fp32 mode: an MFU about 7x too high."""
    seen = []

    def once(device, mode, repeats):
        seen.append((mode, precision.tf32_enabled()))
        return peaks.Peaks(1e12, 1e11, 8, 8, mode)

    monkeypatch.setattr(peaks, "_measure_once", once)
    monkeypatch.setattr(validity, "under_load", lambda *args: False)  # one attempt each, whatever else runs
    try:
        precision.apply("fp32")
        peaks.measure_peaks(CPU, "tf32")
        peaks.measure_peaks(CPU, "fp32")
    finally:
        precision.apply("fp32")
    assert seen == [("tf32", True), ("fp32", False)]


def test_the_peak_matmul_warms_up_for_a_fixed_time_before_the_best_of():
    ticks = iter([0.0, 0.2, 0.4, 0.6, 0.8])
    calls, waits = [], []
    runs = peaks.warm_up(lambda: calls.append(1), lambda: waits.append(1), 0.5, clock=lambda: next(ticks))
    assert runs == len(calls) == len(waits) == 3  # at 0.2 and 0.4 the clocks may still be ramping
    assert peaks.warm_up(lambda: calls.append(1), lambda: None, 0, clock=iter([0.0, 0.0]).__next__) == 1
    assert peaks.ACCELERATOR_WARMUP_S == 0.5


def _calls(tree: ast.AST, owner: str, name: str) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == name
            and ast.unparse(node.func.value) == owner]


def test_every_synchronize_and_memory_reading_goes_through_the_one_device_module():
    """A bare torch.cuda.synchronize() waits for cuda:0 alone (and opens a context there), so the plain
    PyTorch rows under-timed cuda:1 and above; devices.synchronize names its device."""
    stray = []
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        if path.name == "devices.py":
            continue
        tree = ast.parse(path.read_text())
        for owner, name in (("torch.cuda", "synchronize"), ("torch.mps", "synchronize"),
                            ("torch.cuda", "max_memory_allocated"), ("torch.cuda", "reset_peak_memory_stats")):
            stray += [f"{path.relative_to(ROOT)}:{line} {owner}.{name}" for line in _calls(tree, owner, name)]
    assert stray == []


def test_evaluation_counts_its_confusion_matrix_without_waiting_for_the_device(monkeypatch):
    torch.manual_seed(0)
    spec = create_model("mlp:1", (3, 8, 8), 10)
    images = torch.randint(0, 256, (100, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (100,))
    logits = spec.network(images.float() / 255).argmax(-1)
    expected = torch.bincount(labels * 10 + logits, minlength=100).view(10, 10).tolist()

    def host_sync(*args, **kwargs):
        raise AssertionError("CUDA's bincount reads its input's maximum back to the host: two waits per batch")

    monkeypatch.setattr(torch, "bincount", host_sync)
    result = evaluate(spec, images, labels, 32)
    assert result.confusion == expected and sum(map(sum, result.confusion)) == 100
    assert result.accuracy == pytest.approx(sum(result.confusion[i][i] for i in range(10)) / 100)


def test_a_mig_slice_is_named_as_one_and_its_reason_shown(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(uuid="1234-abcd"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1234-abcd")
    assert devices.gpu_identity(torch.device("cuda", 0)) == ("nvidia", "MIG-1234-abcd")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert devices.gpu_identity(torch.device("cuda", 0)) == ("nvidia", "GPU-1234-abcd")
    assert "MIG slice has no energy" in power.meter_for("cuda:0", None, ("nvidia", "MIG-1234-abcd"))

    # Where no mask names the slice, NVML knows it under MIG-, not under GPU-.
    class NotFound(Exception):
        pass

    def by_uuid(name: bytes):
        if name != b"MIG-1234-abcd":
            raise NotFound("Not Found")
        return "slice"

    fake = SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByUUID=by_uuid, NVMLError=NotFound)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reason = power.meter_for("cuda:0", None, ("nvidia", "GPU-1234-abcd"))
    assert reason.startswith("a MIG slice has no energy or power reading of its own")


def test_a_fast_gpu_epochs_last_report_waits_for_the_device_and_shows_its_loss(monkeypatch):
    """Peeked sums start unknown on a GPU: an epoch that ends before the first copy lands said 'loss -'."""
    monkeypatch.setattr(EpochSteps, "peek", lambda self: EpochStats(float("nan"), float("nan")))
    torch.manual_seed(0)
    spec = create_model("mlp:1", (3, 8, 8), 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    images = torch.randint(0, 256, (96, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (96,))
    reports = []
    stats = train_epoch(spec, optimizer, images, labels, batch_size=32, generator=torch.Generator().manual_seed(0),
                        on_progress=lambda *report: reports.append(report), report_s=0.0)
    assert [step for step, *_ in reports] == [1, 2, 3]
    assert reports[0][2] != reports[0][2]  # peeked: not known yet
    assert reports[-1][2:] == (stats.loss, stats.accuracy) and stats.loss == stats.loss


def test_a_keras_gpu_case_never_trains_on_the_cpu_in_the_gpus_name(monkeypatch):
    environ = backends.process_environment("keras-jax", "cuda:0", {"CUDA_VISIBLE_DEVICES": "3"})
    assert environ["JAX_PLATFORMS"] == "cuda" and environ["CUDA_VISIBLE_DEVICES"] == "3"
    placement = []
    tf = SimpleNamespace(config=SimpleNamespace(
        set_soft_device_placement=placement.append,
        list_physical_devices=lambda: [SimpleNamespace(name="/physical_device:CPU:0")]))
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    backend = backends.Backend("keras-tensorflow", keras=None)
    with pytest.raises(DeviceError, match=r'keras-tensorflow finds no GPU here .*install pip install '
                                          r'"tensorflow\[and-cuda\]"'):
        backend.require_device("cuda:0")
    assert placement == [False]  # soft placement off: an op without a GPU kernel fails instead of moving
    backend.require_device("cpu")  # a CPU case needs nothing
    tf.config.list_physical_devices = lambda: [SimpleNamespace(name="/physical_device:GPU:0")]
    backend.require_device("cuda:0")

    def no_cuda_plugin():
        raise RuntimeError("Unable to initialize backend 'cuda': no CUDA-enabled jaxlib")

    jax = backends.Backend("keras-jax", keras=None)
    monkeypatch.setattr(jax, "devices", no_cuda_plugin)
    with pytest.raises(DeviceError, match=r"Unable to initialize backend 'cuda'.*jax\[cuda12\]"):
        jax.require_device("cuda:0")


def test_gpu_utilization_is_judged_only_over_windows_long_enough_to_mean_something():
    # Sub-second epochs: NVML's reading covers up to a second before it, idle time included.
    short = figures([10.0, 10.0], [0.4, 0.4], 100, [(0.1, 300.0, 0.05), (0.5, 300.0, 0.1)], "NVML",
                    epoch_spans=[(0.0, 0.4), (0.45, 0.85)])
    assert short.utilization is None
    long = figures([90.0, 90.0], [3.0, 3.0], 100,
                   [(3.5, 300.0, 0.1), (4.5, 300.0, 0.9), (5.5, 300.0, 0.95)], "NVML",
                   epoch_spans=[(0.0, 3.0), (3.2, 6.2)])
    assert long.utilization == pytest.approx(0.925)
    gpu = torch.device("cuda", 0)
    before = validity.Snapshot.take()
    assert not validity.warnings_for(gpu, gpu, before, before, short.utilization)


def test_peak_gpu_memory_is_what_the_allocator_reserved(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 1 << 30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 3 << 30)
    assert devices.peak_device_memory_bytes(torch.device("cuda", 1)) == 3 << 30


def test_the_largest_batch_is_searched_after_the_failed_step_is_let_go(monkeypatch):
    """Inside the except block the error's traceback keeps the failed model, graph pool and activations
    alive, so every batch the search tried seemed not to fit."""
    from trainspeed import measure
    from trainspeed.cases import CaseKey, Workload
    from trainspeed.config import RunConfig

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handling = []

    def search(*args):
        handling.append(sys.exc_info()[0])
        return 700

    monkeypatch.setattr(measure, "_train", out_of_memory)
    monkeypatch.setattr(measure, "find_max_batch", search)
    key = CaseKey(Workload("mlp:1", "synthetic", (3, 8, 8), 64, 16, 1024, "fp32"), "cpu")
    messages = []
    failure, spec = measure.measure_repeat(RunConfig(find_max_batch=True), key, 1, data=None, device=CPU,
                                           progress=SimpleNamespace(message=messages.append), on_device=object())
    assert handling == [None] and spec is None
    assert failure.max_batch_size == 700 and failure.reason.endswith("the largest batch that fits is 700")
    assert failure.reason.startswith("out of memory on cpu at batch size 1024 (") and len(messages) == 1


class _Event:
    def __init__(self, ms: float) -> None:
        self.ms = ms

    def elapsed_time(self, later: "_Event") -> float:
        return later.ms - self.ms


def test_nccl_all_reduce_time_merges_the_buckets_that_wait_behind_each_other(monkeypatch):
    from trainspeed.distributed import AllReduceClock

    clock = AllReduceClock(CPU)
    monkeypatch.setattr(clock, "cuda", True)
    monkeypatch.setattr(clock, "_mark", lambda: _Event(100.0))
    clock.reference = _Event(0.0)
    # The second bucket was queued at 2 ms behind the first (in flight 0-10 ms) and ran 10-12 ms.
    clock.events = [(_Event(0.0), _Event(10.0)), (_Event(2.0), _Event(12.0)), (_Event(20.0), _Event(25.0))]
    assert clock.seconds() == pytest.approx(0.017)  # summed, the spans made 0.025
    assert clock.events == [] and clock.reference.ms == 100.0


def test_the_report_says_what_each_peak_memory_figure_counts(tmp_path):
    import report_fixtures as fx
    import trainspeed
    from trainspeed.reporting.build import MEMORY_EXPLAINED

    both = fx.run_result([fx.case("cnn", "cpu", 36.0), fx.case("cnn", "cuda:0", 4.0)])
    trainspeed.report(both, tmp_path / "both")
    text = " ".join((tmp_path / "both" / "report.md").read_text().split())
    assert "caching allocator held" in MEMORY_EXPLAINED and MEMORY_EXPLAINED in text
    trainspeed.report(fx.run_result([fx.case("cnn", "cpu", 36.0)], gpus=False), tmp_path / "cpu")
    assert "caching allocator" not in (tmp_path / "cpu" / "report.md").read_text()


def test_the_gpu_sittings_own_arithmetic_and_table_run_here():
    """The whole sitting is rehearsed by `python benchmarks/gpu.py --dry-run` (two minutes); its own parts here."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    adam = gpu.adam_update_ms(CPU, 2)
    assert len(adam) == 3 and all(ms > 0 for ms in adam.values())
    rows = [dict(device="cpu", model="cnn", batch=32, precision="fp32", engine="plain PyTorch loop", steady_s=0.5,
                 images_per_s=1280.0), dict(device="cpu", model="ann", batch=32, precision="tf32", engine="trainspeed",
                                            steady_s=None, error="failed: tf32 is a GPU tensor-core format")]
    text = gpu.markdown(rows, {"cpu": adam}, "15 skipped in 0.1s", ["cpu: a CPU"], 640, 90.0)
    assert "| cpu | cnn | 32 | fp32 | plain PyTorch loop | 0.500 | 1,280 | - |" in text
    assert "| failed: tf32 is a GPU tensor-core format |" in text and "took 1.5 min" in text
    assert text.count("| cpu | KerasAdam") == 2
