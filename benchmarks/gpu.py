"""Issue 5's GPU targets in one sitting: every GPU figure from one call, printed as one table.

    PYTHONPATH=src python benchmarks/gpu.py [--device cuda] [--limit 50000] [--epochs 3] [--out DIR]

Rows: at batch 32 (fp32) the ann and the cnn three ways: trainspeed replaying a recorded CUDA
graph, trainspeed launching each step from Python (--no-cuda-graphs), and the plain PyTorch loop
a user would write; at batch 2048, trainspeed in fp32 and bf16 with its MFU against the peak
measured in the same run. The target column holds issue 5's numbers for an H100. With --out,
the results files and this table's figures are kept there. `--device cpu --limit 640` runs the
same script on a machine without a GPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from engines import plain_pytorch_in_child
from rich.console import Console
from rich.table import Table

import trainspeed

# Issue 5, target 3, on an H100: the steady CIFAR-10 epoch at batch 32, and MFU at batch 2048.
EPOCH_TARGET_S = {"ann": 0.25, "cnn": 0.4}
MFU_TARGET = {"fp32": 0.50, "bf16": 0.30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    common = dict(models=["ann", "cnn"], devices=[args.device], dataset="synthetic", limit=args.limit,
                  epochs=args.epochs)
    out = (lambda name: str(args.out / name)) if args.out else (lambda name: None)
    graphed = trainspeed.run(batch_sizes=[32, 2048], precisions=["fp32", "bf16"], out=out("graphed"), **common)
    launched = trainspeed.run(batch_sizes=[32], cuda_graphs=False, out=out("launched"), **common)
    table = Table(title=f"{args.device}: {graphed.cases[0].device_name}, {args.limit:,} images, steady s/epoch")
    for column in ("model", "batch", "precision", "engine", "steady s/epoch", "MFU", "start-up s", "target", "met"):
        table.add_column(column, justify="right")
    figures = []

    def add(model, batch, precision, engine, steady, mfu=None, startup=None, target=None, met=None):
        figures.append(dict(model=model, batch=batch, precision=precision, engine=engine, steady_s=steady, mfu=mfu,
                            startup_s=startup, target=target, met=met))
        table.add_row(model, str(batch), precision, engine, f"{steady:.3f}" if steady else "failed",
                      f"{mfu:.0%}" if mfu is not None else "-", f"{startup:.2f}" if startup is not None else "-",
                      target or "-", {True: "yes", False: "NO", None: "-"}[met])

    for case in graphed.cases + launched.cases:
        engine = ("trainspeed, CUDA graph" if case.cuda_graph else "trainspeed, launched") if case.ok else "trainspeed"
        target = met = None
        if case.batch_size == 32 and case.precision == "fp32":
            target = f"<= {EPOCH_TARGET_S[case.model]} s"
            met = case.ok and case.steady_epoch_s <= EPOCH_TARGET_S[case.model]
        elif case.batch_size == 2048:
            target = f"MFU >= {MFU_TARGET[case.precision]:.0%}"
            met = case.ok and case.mfu is not None and case.mfu >= MFU_TARGET[case.precision]
        add(case.model, case.batch_size, case.precision, engine, case.steady_epoch_s if case.ok else None,
            case.mfu, case.startup.total_s if case.startup else None, target, met)
    for model in ("ann", "cnn"):
        times = plain_pytorch_in_child(model, args.epochs, args.limit, args.device, 32)
        add(model, 32, "fp32", "plain PyTorch loop", statistics.median(times[1:] or times))
    Console(width=140).print(table)
    if args.out:
        (args.out / "gpu_figures.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
