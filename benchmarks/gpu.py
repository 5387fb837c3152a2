"""Every GPU figure in one sitting: the one script a session runs the moment a GPU is lent.

    PYTHONPATH=src python3 benchmarks/gpu.py [--out DIR] [--devices cuda:0,cuda:1] [--limit 50000]
    python benchmarks/gpu.py --dry-run       # the same paths on this CPU, small, to catch a typo first

In order, each GPU's rows going into one markdown table (`gpu.md`, in --out, or $OUT when set):
1. tests/test_cuda.py, its summary line (a failing test does not stop the figures).
2. ann and cnn at batch 32 in fp32: trainspeed replaying a recorded CUDA graph (with inference and
   NVML energy when nvidia-ml-py is importable), trainspeed launching each step from Python
   (--no-cuda-graphs), and the plain PyTorch loop a user would write, in true fp32 too.
3. ann and cnn at batch 2048 (--large-batch) in fp32, tf32 and bf16, 6 epochs, with MFU against the peak measured
   in the same run and mode.
4. A one-GPU data-parallel job (DDP over torchrun, NCCL) of the cnn, beside the same case alone.
5. The optimizer update: the Keras-faithful Adam as recorded in the graph (KerasAdam.device_step),
   KerasAdam's eager step on PyTorch's fused kernel, and PyTorch's own fused Adam, ms per update.

Every results file is kept beside the table (`<device>-<part>.json`), so the figures can go into
results/ and benchmarks/RESULTS.md untouched. Sized for under 8 minutes on one H100/H200-class board.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from engines import plain_pytorch_in_child

import trainspeed
from trainspeed.inference import describe
from trainspeed.machine import devices
from trainspeed.models import create_model
from trainspeed.optimizers import KerasAdam
from trainspeed.timing import Timer

ROOT = Path(__file__).resolve().parents[1]
# Issue 5, target 3, on an H100: the steady CIFAR-10 epoch at batch 32, and MFU at batch 2048.
EPOCH_TARGET_S = {"ann": 0.25, "cnn": 0.4}
MFU_TARGET = {"fp32": 0.50, "tf32": 0.50, "bf16": 0.30}
# The steady figure at large batch is the median of at least this many epochs after the first.
STEADY_EPOCHS = 5
COLUMNS = ("device", "model", "batch", "precision", "engine", "steady s/epoch", "images/s", "MFU", "start-up s",
           "target", "met", "inference", "energy/epoch")


def _engine(case) -> str:
    if case.backend:
        return f"trainspeed, DDP ({case.backend}, {case.world_size} rank)"
    if not case.ok:
        return "trainspeed"
    if case.cuda_graph:
        return "trainspeed, CUDA graph"
    failed = [w for w in case.warnings if "capture failed" in w]
    return "trainspeed, launched" + (f" ({failed[0]})" if failed else "")


def _energy(case) -> str:
    """Joules per epoch and average power, or why not measured (NVML: pip install nvidia-ml-py)."""
    figures = case.energy
    if figures is None or figures.joules_per_epoch is None:
        return f"not measured: {figures.not_measured}" if figures else "-"
    return f"{figures.joules_per_epoch:.3g} J, {figures.average_w:.0f} W"


def _target(case) -> tuple[str, bool | None]:
    if not case.ok or case.backend:
        return "-", None
    if case.batch_size == 32 and case.precision == "fp32":
        return f"<= {EPOCH_TARGET_S[case.model]} s", case.steady_epoch_s <= EPOCH_TARGET_S[case.model]
    if case.batch_size > 32:
        return f"MFU >= {MFU_TARGET[case.precision]:.0%}", case.mfu is not None and case.mfu >= MFU_TARGET[
            case.precision]
    return "-", None


def row(device: str, case) -> dict:
    target, met = _target(case)
    return dict(device=device, model=case.model, batch=case.batch_size, precision=case.precision,
                engine=_engine(case), steady_s=case.steady_epoch_s if case.ok else None,
                images_per_s=case.images_per_s if case.ok else None, mfu=case.mfu,
                startup_s=case.startup.total_s if case.startup else None, target=target, met=met,
                inference=describe(case.inference) if case.ok and case.inference else "-",
                energy=_energy(case) if case.ok else "-", error=None if case.ok else f"{case.status}: {case.error}")


class Sitting:
    """One device's runs: each a trainspeed.run whose results file is kept as `<device>-<part>.json`."""

    def __init__(self, device: str, args: argparse.Namespace, scratch: Path, out: Path | None) -> None:
        self.device, self.args, self.scratch, self.out = device, args, scratch, out
        self.rows: list[dict] = []
        self.common = dict(models=["ann", "cnn"], dataset="synthetic", limit=args.limit)

    def run(self, part: str, **settings):
        folder = self.scratch / f"{self.device.replace(':', '')}-{part}"
        result = trainspeed.run(out=str(folder), **{**self.common, **settings})
        if self.out is not None:
            shutil.copyfile(folder / "results.json", self.out / f"{folder.name}.json")
        self.rows += [row(self.device, case) for case in result.cases]
        return result

    def all(self) -> str:
        epochs, device = self.args.epochs, self.device
        small = self.run("batch32", devices=[device], batch_sizes=[32], epochs=epochs)
        self.run("launched", devices=[device], batch_sizes=[32], epochs=epochs, cuda_graphs=False, inference=False)
        for model in ("ann", "cnn"):
            times = plain_pytorch_in_child(model, epochs, self.args.limit, device, 32)
            steady = statistics.median(times[1:] or times)
            self.rows.append(dict(device=device, model=model, batch=32, precision="fp32", engine="plain PyTorch loop",
                                  steady_s=steady, images_per_s=self.args.limit / steady))
        self.run(f"batch{self.args.large_batch}", devices=[device], batch_sizes=[self.args.large_batch],
                 precisions=["fp32", "tf32", "bf16"],
                 epochs=max(epochs, STEADY_EPOCHS + 1), inference=False)
        # One rank: DDP's own cost over the same case alone (the reference the job plans first).
        group = device if device.startswith("cuda") else "cpu"
        self.run("ddp", models=["cnn"], data_parallel=[group], batch_sizes=[32], epochs=epochs, inference=False)
        return small.cases[0].device_name


def adam_update_ms(device: torch.device, updates: int) -> dict[str, float]:
    """ms per update of the cnn's parameters: the graph's Keras Adam (replayed on a GPU), KerasAdam's eager
    step on the fused kernel, and PyTorch's own fused Adam, each timed by the one Timer with sync."""
    torch.manual_seed(0)
    parameters = list(create_model("cnn", (3, 32, 32), 10).network.to(device).parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter) * 1e-3
    keras = KerasAdam(parameters)
    keras.initialize_state()
    ways = {"KerasAdam, as recorded in the graph (device_step)": keras.device_step,
            "KerasAdam.step (PyTorch's fused kernel)": keras.step,
            "torch.optim.Adam(fused=True)": torch.optim.Adam(parameters, fused=True).step}
    if device.type == "cuda":  # the in-graph update as it runs: replayed, not launched op by op
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                keras.device_step()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            keras.device_step()
        ways["KerasAdam, as recorded in the graph (device_step)"] = graph.replay
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    found = {}
    for name, update in ways.items():
        for _ in range(10):
            update()
        with timer.measure(name) as measured:
            for _ in range(updates):
                update()
        found[name] = measured.seconds / updates * 1e3
    return found


def cuda_tests(out: Path | None) -> str:
    """tests/test_cuda.py's closing line; its whole output kept beside the table."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))})
    if out is not None:
        (out / "test_cuda.log").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else f"pytest ended with {done.returncode} and printed nothing"


def _cell(value, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec)


def markdown(rows: list[dict], adam: dict[str, dict[str, float]], tests: str, names: list[str], limit: int,
             seconds: float) -> str:
    lines = [f"# trainspeed on {'; '.join(names)}", "",
             f"{limit:,} synthetic CIFAR-10-shaped images an epoch; steady = median of the epochs after the first. "
             f"tests/test_cuda.py: {tests}. This sitting took {seconds / 60:.1f} min.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for found in rows:
        steady = _cell(found["steady_s"], ".3f") if found.get("steady_s") is not None else found.get("error", "-")
        cells = [found["device"], found["model"], str(found["batch"]), found["precision"], found["engine"], steady,
                 _cell(found.get("images_per_s"), ",.0f"), _cell(found.get("mfu"), ".0%"),
                 _cell(found.get("startup_s"), ".2f"), found.get("target", "-"), _cell(found.get("met")),
                 found.get("inference", "-"), found.get("energy", "-")]
        lines.append("| " + " | ".join(cells).replace("\n", " ") + " |")
    lines += ["", "| device | Adam update of the cnn's 1.67 M parameters | ms per update |", "|---|---|---|"]
    for device, ways in adam.items():
        lines += [f"| {device} | {name} | {ms:.3f} |" for name, ms in ways.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(f"cuda:{i}" for i in range(torch.cuda.device_count())) or "cpu"
    parser.add_argument("--devices", default=default, help=f"comma-separated (default here: {default})")
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--large-batch", type=int, default=2048, help="the batch of the MFU rows")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    parser.add_argument("--dry-run", action="store_true",
                        help="every path on the CPU, on 640 images and 2 epochs: a rehearsal, not figures")
    args = parser.parse_args()
    if args.dry_run:
        args.devices, args.limit, args.epochs, args.large_batch = "cpu", 640, 2, 256
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tests = cuda_tests(args.out)
    print(f"tests/test_cuda.py: {tests}", flush=True)
    rows, adam, names = [], {}, []
    with tempfile.TemporaryDirectory(prefix="trainspeed-gpu-") as scratch:
        for device in args.devices.split(","):
            sitting = Sitting(device, args, Path(scratch), args.out)
            names.append(f"{device}: {sitting.all()}")
            rows += sitting.rows
            with devices.use(torch.device(device)):
                adam[device] = adam_update_ms(torch.device(device), 20 if args.dry_run else 200)
    text = markdown(rows, adam, tests, names, args.limit, time.perf_counter() - started)
    print(text)
    if args.out is not None:
        (args.out / "gpu.md").write_text(text)
        (args.out / "gpu_figures.json").write_text(json.dumps({"rows": rows, "adam_ms": adam}, indent=2))


if __name__ == "__main__":
    main()
