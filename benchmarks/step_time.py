"""Milliseconds per training step on the CPU, and where they go: the loop behind issue 5's profiles.

    python benchmarks/step_time.py [--model cnn] [--batch 32] [--steps 100] [--profile]

Random CIFAR-10-shaped uint8 images, trainspeed's own step (EpochSteps) after 30 warm-up steps.
With --profile, PyTorch's profiler table of 50 more steps, by operator and input shape.
"""

from __future__ import annotations

import argparse
import time

import torch

from trainspeed.engine.step import EpochSteps
from trainspeed.machine import devices
from trainspeed.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    devices.configure_process()
    torch.manual_seed(0)
    spec = create_model(args.model, (3, 32, 32), 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    count = (30 + args.steps + 50) * args.batch
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,))
    runner = EpochSteps(spec, optimizer, images, labels, args.batch, torch.Generator().manual_seed(0))
    runner.run(0, 30)
    start = time.perf_counter()
    runner.run(30, args.steps)
    print(f"{args.model}, batch {args.batch}, {torch.get_num_threads()} threads: "
          f"{(time.perf_counter() - start) / args.steps * 1e3:.2f} ms per step")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
            runner.run(30 + args.steps, 50)
        print(profiler.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
