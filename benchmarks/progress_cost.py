"""What the live progress costs the timed epoch: the same epochs with and without the bar, taking turns.

    python benchmarks/progress_cost.py [--model mlp:1] [--rounds 5] [--images 20000]

Progress reports come by the clock (progress.REPORT_SECONDS) and read the running sums without
waiting for the device; this measures their cost where it would show most: a model whose steps
take tens of microseconds (the Fashion-MNIST exercise's mlp:1), and the cnn. The bar draws to a
real Rich terminal console writing into memory, as it would draw to a screen.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from rich.console import Console

from trainspeed.engine.loop import train_epoch
from trainspeed.machine import devices
from trainspeed.models import create_model
from trainspeed.progress import REPORT_SECONDS, EpochProgress


def epoch_seconds(model: str, shape: tuple[int, int, int], images: torch.Tensor, labels: torch.Tensor,
                  with_bar: bool) -> float:
    torch.manual_seed(0)
    spec = create_model(model, shape, 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    progress = EpochProgress(Console(file=io.StringIO(), force_terminal=True, width=80))
    with progress:
        if with_bar:
            progress.start_epoch(f"{model} on cpu, batch 32: epoch 1/1", -(-len(images) // 32))
        start = time.perf_counter()
        train_epoch(spec, optimizer, images, labels, batch_size=32, generator=torch.Generator().manual_seed(0),
                    on_progress=progress.update if with_bar else None)
        return time.perf_counter() - start


def redraw_seconds(calls: int = 200) -> float:
    """One report's cost on its own: the bar updated and redrawn, as often as it will go."""
    progress = EpochProgress(Console(file=io.StringIO(), force_terminal=True, width=80), min_interval_s=0)
    with progress:
        progress.start_epoch("cnn on cpu, batch 32: epoch 1/1", calls)
        start = time.perf_counter()
        for step in range(1, calls + 1):
            progress.update(step, calls, 2.3, 0.1)
        return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="one model (default: mlp:1 on 28x28x1, then the cnn)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    devices.configure_process()
    models = [(args.model, (1, 28, 28) if args.model.startswith("mlp") else (3, 32, 32))] if args.model else [
        ("mlp:1", (1, 28, 28)), ("cnn", (3, 32, 32))]
    print("| model | steps | without progress s | with progress s | cost |")
    print("|---|---|---|---|---|")
    for model, shape in models:
        count = args.images if model.startswith("mlp") else args.images // 4
        images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8)
        labels = torch.randint(0, 10, (count,))
        epoch_seconds(model, shape, images[:640], labels[:640], True)  # warm both paths' allocations
        times: dict[bool, list[float]] = {False: [], True: []}
        for round_number in range(args.rounds):
            # Taking turns, first one then the other first: a load that comes and goes, or a
            # second run's warmer caches, falls on both alike.
            for with_bar in ((False, True) if round_number % 2 == 0 else (True, False)):
                times[with_bar].append(epoch_seconds(model, shape, images, labels, with_bar))
        without, with_bar = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {model} | {-(-count // 32):,} | {without:.3f} | {with_bar:.3f} | {with_bar / without - 1:+.1%} |")
    cost = redraw_seconds()
    print(f"\none report (update and redraw of the bar): {cost * 1e3:.2f} ms; at one per "
          f"{REPORT_SECONDS:g} s of training that is {cost / REPORT_SECONDS:.2%} of the time")


if __name__ == "__main__":
    main()
