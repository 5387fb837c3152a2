"""The GPU figures in one sitting: every GPU of the machine, one table.

    PYTHONPATH=src python benchmarks/gpu.py [--devices cuda:0,cuda:1] [--limit 50000] [--epochs 3] [--out DIR]

Rows per GPU: at batch 32 (fp32) the ann and the cnn three ways: trainspeed replaying a recorded
CUDA graph, trainspeed launching each step from Python (--no-cuda-graphs), and the plain PyTorch
loop a user would write (in true fp32 too: TF32 off for matmuls and cuDNN); at batch 2048,
trainspeed in fp32 and bf16 over at least 6 epochs (the steady figure is the median of 5 or
more), with its MFU against the peak measured in the same run. A step that could not be recorded
as a graph is shown as such, with the reason. The target column holds issue 5's numbers for an
H100. With --out, the results files and this table's figures are kept there. `--devices cpu
--limit 640` runs the same script on a machine without a GPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from engines import plain_pytorch_in_child
from rich.console import Console
from rich.table import Table

import trainspeed

# Issue 5, target 3, on an H100: the steady CIFAR-10 epoch at batch 32, and MFU at batch 2048.
EPOCH_TARGET_S = {"ann": 0.25, "cnn": 0.4}
MFU_TARGET = {"fp32": 0.50, "bf16": 0.30}
# The steady figure at large batch is the median of at least this many epochs after the first.
STEADY_EPOCHS = 5


def _engine(case) -> str:
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


def sitting(device: str, args: argparse.Namespace, out, add) -> str:
    common = dict(models=["ann", "cnn"], devices=[device], dataset="synthetic", limit=args.limit)
    small = trainspeed.run(batch_sizes=[32], epochs=args.epochs, out=out(f"{device}-graphed"), **common)
    launched = trainspeed.run(batch_sizes=[32], epochs=args.epochs, cuda_graphs=False, out=out(f"{device}-launched"),
                              **common)
    large = trainspeed.run(batch_sizes=[2048], precisions=["fp32", "bf16"], epochs=max(args.epochs, STEADY_EPOCHS + 1),
                           out=out(f"{device}-large"), **common)
    for case in small.cases + launched.cases + large.cases:
        target = met = None
        if case.batch_size == 32 and case.precision == "fp32":
            target = f"<= {EPOCH_TARGET_S[case.model]} s"
            met = case.ok and case.steady_epoch_s <= EPOCH_TARGET_S[case.model]
        elif case.batch_size == 2048:
            target = f"MFU >= {MFU_TARGET[case.precision]:.0%}"
            met = case.ok and case.mfu is not None and case.mfu >= MFU_TARGET[case.precision]
        add(device, case.model, case.batch_size, case.precision, _engine(case),
            case.steady_epoch_s if case.ok else None, case.mfu, case.startup.total_s if case.startup else None,
            case.memory_format, target, met, case.error, _energy(case))
    for model in ("ann", "cnn"):
        times = plain_pytorch_in_child(model, args.epochs, args.limit, device, 32)
        add(device, model, 32, "fp32", "plain PyTorch loop", statistics.median(times[1:] or times))
    return small.cases[0].device_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(f"cuda:{i}" for i in range(torch.cuda.device_count())) or "cpu"
    parser.add_argument("--devices", default=default, help=f"comma-separated (default here: {default})")
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = (lambda name: str(args.out / name)) if args.out else (lambda name: None)
    table = Table(title=f"{args.limit:,} images, steady s/epoch")
    for column in ("device", "model", "batch", "precision", "engine", "steady s/epoch", "MFU", "start-up s",
                   "layout", "target", "met", "energy/epoch"):
        table.add_column(column, justify="right")
    figures = []

    def add(device, model, batch, precision, engine, steady, mfu=None, startup=None, layout=None, target=None,
            met=None, error=None, energy="-"):
        figures.append(dict(device=device, model=model, batch=batch, precision=precision, engine=engine,
                            steady_s=steady, mfu=mfu, startup_s=startup, layout=layout, target=target, met=met,
                            error=error, energy=energy))
        table.add_row(device, model, str(batch), precision, engine, f"{steady:.3f}" if steady else f"failed: {error}",
                      f"{mfu:.0%}" if mfu is not None else "-", f"{startup:.2f}" if startup is not None else "-",
                      layout or "-", target or "-", {True: "yes", False: "NO", None: "-"}[met], energy)

    names = [f"{device}: {sitting(device, args, out, add)}" for device in args.devices.split(",")]
    table.caption = "; ".join(names)
    Console(width=160).print(table)
    if args.out:
        (args.out / "gpu_figures.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
