"""Stored results, built by hand, for testing reports without training anything."""

from __future__ import annotations

import base64

import numpy as np

from trainspeed.cases import Workload
from trainspeed.dataset_info import DatasetInfo
from trainspeed.results import CaseResult, EpochRecord, RunResult

GPU_NAME = "NVIDIA H100 80GB HBM3"
CPU_NAME = "Intel(R) Xeon(R) Processor"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHAPES = {"cifar10": (3, 32, 32), "fashion_mnist": (1, 28, 28), "synthetic": (3, 32, 32)}


def dataset(name: str = "cifar10", shape=(3, 32, 32), meaningful: bool = True) -> DatasetInfo:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, *shape), dtype=np.uint8)
    return DatasetInfo(name=name, source="/data/cifar-10-batches-py", train_images=50_000, test_images=10_000,
                       image_shape=list(shape), classes=CLASSES, matches_release=True,
                       accuracy_meaningful=meaningful, sample_images_b64=base64.b64encode(images.tobytes()).decode(),
                       sample_labels=[i % 10 for i in range(16)])


def workload(model: str, *, batch: int = 32, precision: str = "fp32", dataset_name: str = "cifar10",
             train: int = 50_000, test: int = 10_000) -> Workload:
    """The workload of a `case` made with the same arguments."""
    return Workload(model, dataset_name, SHAPES[dataset_name], train, test, batch, precision)


def case(model: str, device: str, steady: float, *, batch: int = 32, dataset_name: str = "cifar10",
         accuracy: float = 0.7, train: int = 50_000, test: int = 10_000, **extra) -> CaseResult:
    first = steady * 1.3
    epochs = [first, steady * 1.01, steady, steady * 0.99]
    losses = [1.6, 1.2, 1.0, 0.9]
    confusion = (np.eye(10, dtype=int) * 70 + 3).tolist()
    defaults = dict(
        device_name=GPU_NAME if device.startswith("cuda") else CPU_NAME, params=1_667_594, epochs=4,
        image_shape=SHAPES[dataset_name], train_images=train, test_images=test,
        steps_per_epoch=-(-train // batch), cpu_threads=16,
        epoch_s=epochs, first_epoch_s=first, steady_epoch_s=steady, images_per_s=train / steady,
        train_loss=losses[-1], train_accuracy=accuracy + 0.05, test_loss=0.8, test_accuracy=accuracy, eval_s=1.0,
        peak_memory_bytes=900 * 2**20, peak_host_memory_bytes=2 * 2**30,
        history=[EpochRecord(i + 1, t, loss, 0.4 + 0.1 * i)
                 for i, (t, loss) in enumerate(zip(epochs, losses, strict=True))],
        confusion_matrix=confusion, sample_predictions=[i % 10 if i % 4 else (i + 1) % 10 for i in range(16)],
    )
    defaults.update(extra)
    return CaseResult(model, device, dataset_name, batch, **defaults)


def environment(gpus: bool = True, hostname: str = "workstation") -> dict:
    return {
        "hostname": hostname, "os": "Linux-6.8-x86_64", "python": "3.11.7", "torch": "2.13.0",
        "cuda": "12.8" if gpus else None, "cudnn": "91000" if gpus else None,
        "cpu": {"model": CPU_NAME, "logical_cores": 32, "usable_cores": 32, "physical_cores": 16, "threads": 16,
                "features": ["avx2", "avx512f"], "torch_capability": "AVX512", "governor": "performance",
                "max_mhz": 3800.0},
        "gpus": [{"device": "cuda:0", "name": GPU_NAME, "memory_bytes": 80 * 2**30, "compute_capability": "9.0",
                  "multiprocessors": 132, "driver": "570.86", "cuda": "12.8", "cudnn": "91000"}] if gpus else [],
        "no_gpu_reason": None if gpus else "this PyTorch (2.13.0+cpu) is built without CUDA",
        "packages": {"torch": "2.13.0", "numpy": "2.4.6"},
    }


def run_result(cases, *, version: str = "0.1.0", gpus: bool = True, data: DatasetInfo | None = None,
               batch_sizes=(32,), models=None) -> RunResult:
    return RunResult(
        trainspeed_version=version, created="2026-11-22T12:00:00+00:00",
        config={"models": models or sorted({c.model for c in cases}), "epochs": 4, "batch_sizes": list(batch_sizes),
                "precision": "fp32", "seed": 0},
        environment=environment(gpus), dataset=data or dataset(), cases=list(cases))


def seeds_run() -> RunResult:
    """ann and cnn on the CPU and a GPU, the cnn 9.4x faster (37.6 s vs 4.0 s)."""
    return run_result([case("ann", "cpu", 44.0), case("ann", "cuda:0", 3.6),
                       case("cnn", "cpu", 37.6), case("cnn", "cuda:0", 4.0)])


def exercise_run() -> RunResult:
    """The Fashion-MNIST exercise: 1 and 5 hidden layers on the CPU and a GPU."""
    data = dataset("fashion_mnist", (1, 28, 28))
    return run_result([case("mlp:1", "cpu", 6.0, dataset_name="fashion_mnist"),
                       case("mlp:1", "cuda:0", 2.0, dataset_name="fashion_mnist"),
                       case("mlp:5", "cpu", 9.0, dataset_name="fashion_mnist"),
                       case("mlp:5", "cuda:0", 2.5, dataset_name="fashion_mnist")], data=data)


def batch_sweep_run() -> RunResult:
    """The ann at batch 8-256: the CPU wins below batch 32, the GPU from 32 up."""
    cpu = {8: 40.0, 16: 30.0, 32: 25.0, 256: 20.0}
    gpu = {8: 60.0, 16: 35.0, 32: 12.0, 256: 2.0}
    cases = [case("ann", "cpu", cpu[b], batch=b) for b in cpu] + [case("ann", "cuda:0", gpu[b], batch=b) for b in gpu]
    return run_result(cases, batch_sizes=sorted(cpu))


def failed_run() -> RunResult:
    failed = CaseResult("cnn", "cuda:0", "cifar10", 32, device_name=GPU_NAME, status="failed",
                        image_shape=SHAPES["cifar10"], train_images=50_000, test_images=10_000,
                        error="out of memory on cuda:0 at batch size 32; try a smaller --batch-size")
    return run_result([case("cnn", "cpu", 37.6), failed])


def laptop_and_server() -> tuple[RunResult, RunResult]:
    laptop = run_result([case("ann", "cpu", 44.0), case("cnn", "cpu", 36.0), case("cnn", "cpu", 30.0, batch=256)],
                        gpus=False)
    server = run_result([case("ann", "cpu", 20.0), case("cnn", "cpu", 15.0), case("ann", "cuda:0", 3.6),
                         case("cnn", "cuda:0", 4.0)], version="0.2.0")
    return laptop, server
