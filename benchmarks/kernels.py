"""Milliseconds per training step with stock nn.Linear vs the kernels `tune` picks on this machine.

    python benchmarks/kernels.py [--models ann,cnn-dense] [--batch 32] [--rounds 5] [--steps 30] [--budget 3]

ann: the seed's whole network (create_model("ann")) with its SGD and loss. cnn-dense: the cnn's
two dense layers (Linear(3136, 512), ReLU, Linear(512, 10)) on random flattened features, with
its Adam and loss; its convolutions are not linear layers and would only add noise. Each step is
forward, backward and the optimizer's update on random data. Stock and tuned copies of the same
network take turns, `--rounds` times `--steps` steps each, after a few untimed steps; the table
shows the medians over rounds, and below it what the trial measured and chose.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from trainspeed.engine.kernels import tune
from trainspeed.engine.updates import fuse_updates
from trainspeed.machine import devices
from trainspeed.models import ModelSpec, create_model

WARMUP_STEPS = 5


def model(name: str) -> tuple[ModelSpec, tuple[int, ...]]:
    """The spec to train and the shape of one input."""
    if name == "ann":
        return create_model("ann", (3, 32, 32), 10), (3, 32, 32)
    if name == "cnn-dense":
        spec = create_model("cnn", (3, 32, 32), 10)
        first, last = [m for m in spec.network if isinstance(m, nn.Linear)]
        spec.network = nn.Sequential(first, nn.ReLU(inplace=True), last)
        spec.memory_format = torch.contiguous_format
        return spec, (first.in_features,)
    raise SystemExit(f"unknown model {name!r}; choose from: ann, cnn-dense")


class Trainer:
    """One network and its own optimizer, stepping on a fixed batch."""

    def __init__(self, spec: ModelSpec, network: nn.Module, images: torch.Tensor, labels: torch.Tensor):
        self.spec, self.network, self.images, self.labels = spec, network, images, labels
        self.optimizer = spec.make_optimizer(network.parameters())

    def steps(self, count: int) -> float:
        """Milliseconds per step over `count` steps."""
        start = time.perf_counter()
        for _ in range(count):
            self.optimizer.zero_grad(set_to_none=True)  # fresh gradients, as the engine's step does
            self.spec.loss(self.network(self.images), self.labels).backward()
            self.optimizer.step()
        return (time.perf_counter() - start) / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ann,cnn-dense")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--budget", type=float, default=3.0, help="the trial's budget in seconds")
    args = parser.parse_args()
    devices.configure_process()  # as every case does: without it each step re-faults its large gradients
    console = Console()
    table = Table(title=f"ms per training step, batch {args.batch}, {torch.get_num_threads()} threads, "
                        f"medians of {args.rounds} alternating rounds of {args.steps} steps")
    for column in ("model", "stock nn.Linear", "tuned", "speed-up", "trial s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    all_notes = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        spec, shape = model(name)
        images = torch.rand(args.batch, *shape, generator=torch.Generator().manual_seed(1))
        labels = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(2))
        tuned_network = copy.deepcopy(spec.network)
        # As a case does: the trial knows the optimizer (a plain SGD may take its update into the GEMM).
        tuning = tune(tuned_network, args.batch, budget_s=args.budget,
                      optimizer=spec.make_optimizer(tuned_network.parameters()))
        stock, tuned = Trainer(spec, spec.network, images, labels), Trainer(spec, tuned_network, images, labels)
        fuse_updates(tuned_network, tuned.optimizer, tuning.choices)
        for trainer in (stock, tuned):
            trainer.steps(WARMUP_STEPS)
        rounds: dict[str, list[float]] = {"stock": [], "tuned": []}
        for _ in range(args.rounds):
            rounds["stock"].append(stock.steps(args.steps))
            rounds["tuned"].append(tuned.steps(args.steps))
        stock_ms, tuned_ms = statistics.median(rounds["stock"]), statistics.median(rounds["tuned"])
        table.add_row(name, f"{stock_ms:.2f}", f"{tuned_ms:.2f}", f"{stock_ms / tuned_ms:.2f}x",
                      f"{tuning.seconds:.2f}")
        all_notes += [f"{name}: {note}" for note in tuning.notes]
    console.print(table)
    for note in all_notes:
        console.print(note, highlight=False)


if __name__ == "__main__":
    main()
