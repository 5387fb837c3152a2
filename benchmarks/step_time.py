"""Milliseconds per training step on the CPU, and where they go: the loop behind issue 5's profiles.

    python benchmarks/step_time.py [--model cnn] [--batch 32] [--steps 100] [--ops | --profile]

Random CIFAR-10-shaped uint8 images and trainspeed's own step (EpochSteps) as a case runs it: the
kernels its trial chooses, the images stored in the model's layout, 30 warm-up steps first.

--ops times each operator of 100 more steps with the clock, as it runs inside the step, and
prints the 30 costliest by shape. PyTorch's profiler (--profile) records every operator too, but
on this 2-core machine it inflated some small ones several times over (the cnn's dense weight
gradient: 1.2-1.8 ms in its table, 0.47 ms by the clock), so --ops is the one to read for where
the time goes; the profiler's table stays for its call tree.
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trainspeed.engine import kernels
from trainspeed.engine.step import DeviceData, EpochSteps
from trainspeed.engine.updates import fuse_updates
from trainspeed.machine import devices
from trainspeed.models import create_model


class OperatorClock(TorchDispatchMode):
    """Seconds and calls per (operator, input shapes). CPU operators finish before they return."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))[:2]
        self.seconds[(str(func), shapes)] += time.perf_counter() - start
        self.calls[(str(func), shapes)] += 1
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--ops", action="store_true", help="time each operator by the clock")
    parser.add_argument("--profile", action="store_true", help="PyTorch's profiler table")
    args = parser.parse_args()
    devices.configure_process()
    torch.manual_seed(0)
    spec = create_model(args.model, (3, 32, 32), 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    tuning = kernels.tune(spec.network, args.batch, optimizer=optimizer)  # in place, the same parameters
    fuse_updates(spec.network, optimizer, tuning.choices)
    count = (30 + args.steps + 100) * args.batch
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,))
    images = DeviceData(images, labels, images, labels).train_images_as(spec.memory_format)
    runner = EpochSteps(spec, optimizer, images, labels, args.batch, torch.Generator().manual_seed(0))
    runner.run(0, 30)
    start = time.perf_counter()
    runner.run(30, args.steps)
    print(f"{args.model}, batch {args.batch}, {torch.get_num_threads()} threads: "
          f"{(time.perf_counter() - start) / args.steps * 1e3:.2f} ms per step")
    print("kernels: " + "; ".join(tuning.notes))
    if args.ops:
        steps = 100
        with OperatorClock() as clock:
            runner.run(30 + args.steps, steps)
        total = sum(clock.seconds.values())
        print(f"operators: {total / steps * 1e3:.2f} ms per step in all (the clock adds a little to each)")
        for (name, shapes), seconds in clock.seconds.most_common(30):
            print(f"{seconds / steps * 1e3:8.3f} ms  x{clock.calls[(name, shapes)] // steps}  {name} {shapes}")
    elif args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
            runner.run(30 + args.steps, 50)
        print(profiler.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
