"""What reading energy costs the timed epoch: the same epochs with and without a PowerLog, taking turns.

    python benchmarks/power_cost.py [--rounds 6] [--images 20000]

The log's thread reads its meter every power.SAMPLE_INTERVAL_S while the epoch trains. Where the
machine has RAPL (or, with a GPU, NVML) the real meter is read; elsewhere a powercap tree in a
temporary folder, read through the same files and code, stands in for it, so the cost of the
thread and its reads is measured on any machine. The mlp:1 on 28x28x1 images is the worst case:
its steps are the shortest, so a thread that takes the interpreter's lock shows most there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainspeed.engine.loop import train_epoch
from trainspeed.machine import devices, power
from trainspeed.models import create_model


def fake_powercap(root: Path) -> Path:
    for zone, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "dram")):
        (root / zone).mkdir(parents=True)
        (root / zone / "name").write_text(name + "\n")
        (root / zone / "energy_uj").write_text("123456789\n")
        (root / zone / "max_energy_range_uj").write_text("262143328850\n")
    return root


def epoch_seconds(model: str, shape, images: torch.Tensor, labels: torch.Tensor, metered: bool) -> tuple[float, int]:
    torch.manual_seed(0)
    spec = create_model(model, shape, 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    log = power.PowerLog(power.meter_for("cpu") if metered else "off")
    with log:
        with log.epoch():
            start = time.perf_counter()
            train_epoch(spec, optimizer, images, labels, batch_size=32, generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
    return seconds, len(log.trace)


def sample_seconds(calls: int = 2000) -> float:
    """One sample's cost on its own: the meter read and the trace appended, as the thread does it."""
    log = power.PowerLog(power.meter_for("cpu"))
    start = time.perf_counter()
    for _ in range(calls):
        log._read()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    devices.configure_process()
    with tempfile.TemporaryDirectory() as folder:
        real = power.meter_for("cpu")
        if isinstance(real, str):
            power.POWERCAP = fake_powercap(Path(folder))
            print(f"no RAPL here ({real.split(';')[0]}): a powercap tree in {folder} stands in, read the same way\n")
        print(f"sampling every {power.SAMPLE_INTERVAL_S:g} s\n")
        print("| model | steps | without energy s | with energy s | samples | cost |")
        print("|---|---|---|---|---|---|")
        for model, shape in (("mlp:1", (1, 28, 28)), ("cnn", (3, 32, 32))):
            count = args.images if model.startswith("mlp") else args.images // 4
            images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8)
            labels = torch.randint(0, 10, (count,))
            epoch_seconds(model, shape, images[:640], labels[:640], True)  # warm both paths' allocations
            times: dict[bool, list[float]] = {False: [], True: []}
            samples = 0
            for round_number in range(args.rounds):
                # Taking turns, each round swapping which goes first: a passing load falls on both alike.
                for metered in ((False, True) if round_number % 2 == 0 else (True, False)):
                    seconds, taken = epoch_seconds(model, shape, images, labels, metered)
                    times[metered].append(seconds)
                    samples = max(samples, taken)
            without, with_log = statistics.median(times[False]), statistics.median(times[True])
            print(f"| {model} | {-(-count // 32):,} | {without:.3f} | {with_log:.3f} | {samples} | "
                  f"{with_log / without - 1:+.1%} |")
        cost = sample_seconds()
        print(f"\none sample (every zone read, the trace appended): {cost * 1e6:.0f} us; at one per "
              f"{power.SAMPLE_INTERVAL_S:g} s of training that is {cost / power.SAMPLE_INTERVAL_S:.3%} of the time")


if __name__ == "__main__":
    main()
