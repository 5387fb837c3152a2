"""Is a time-budget projection a fair stand-in for a full epoch? Prints a table of both.

For each model: one case timed over full epochs (the steady epoch: median of epochs 2..N),
and one case under --time-budget that times steady steps only and projects the epoch.
Both run in the same sitting, one after the other, on the full-size synthetic CIFAR-10 set.

    python benchmarks/projection.py [--models cnn,ann] [--budget 10] [--epochs 3] [--limit N]

Target (issue 4): the projection within 10% of the full steady epoch.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

import trainspeed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,ann")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"projected vs full epoch ({args.device}, synthetic CIFAR-10, batch 32)")
    for column in ("model", "full steady s/epoch", "projected s/epoch", "timed steps", "projected / full"):
        table.add_column(column, justify="right")
    common = dict(devices=[args.device], dataset="synthetic", limit=args.limit, out=None)
    for model in args.models.split(","):
        full = trainspeed.run(models=[model], epochs=args.epochs, **common).cases[0]
        projected = trainspeed.run(models=[model], epochs=args.epochs, time_budget_s=args.budget, **common).cases[0]
        ratio = projected.steady_epoch_s / full.steady_epoch_s
        table.add_row(model, f"{full.steady_epoch_s:.2f}", f"{projected.steady_epoch_s:.2f}",
                      str(projected.measured_steps), f"{ratio:.3f} ({(ratio - 1):+.1%})")
    console.print(table)


if __name__ == "__main__":
    main()
