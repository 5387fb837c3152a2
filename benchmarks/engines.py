"""trainspeed vs a plain PyTorch loop vs the seeds' Keras code: steady CPU epoch times, one sitting.

    python benchmarks/engines.py [--models ann,cnn] [--epochs 2] [--limit N] [--sittings 3]
                                 [--keras-python ~/tf/bin/python]

The Keras column needs a Python with TensorFlow (see benchmarks/keras_seeds.py); without one it
is skipped. Every engine trains the same recipe on the same random CIFAR-10-shaped data at batch
32; the steady epoch is the median of the epochs after the first. With several sittings the
engines take turns (ours, plain, Keras, then again), each sitting's ratio is printed, and the
summary row is the median: on a shared machine one sitting is not enough.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import trainspeed
from trainspeed.data import DataOptions, load_dataset
from trainspeed.machine import devices, precision

HERE = Path(__file__).resolve().parent


def steady(epoch_s: list[float]) -> float:
    return statistics.median(epoch_s[1:] or epoch_s)


def plain_pytorch(model: str, epochs: int, limit: int, device: str = "cpu", batch: int = 32) -> list[float]:
    """The loop a user would write: default init, stock optimizers, a float copy of the data on the
    host, each batch moved to the device as it is used. In true fp32, as trainspeed's fp32: PyTorch
    lets cuDNN's convolutions use TF32 by default, which would compare two precisions."""
    precision.apply("fp32")
    data = load_dataset("synthetic", DataOptions(synthetic_train=limit, synthetic_test=10))
    images = torch.from_numpy(data.train_images).float() / 255
    labels = torch.from_numpy(data.train_labels)
    if model == "ann":
        network = nn.Sequential(nn.Flatten(), nn.Linear(3072, 3000), nn.ReLU(), nn.Linear(3000, 1000), nn.ReLU(),
                                nn.Linear(1000, 10))
        optimizer = torch.optim.SGD(network.to(device).parameters(), lr=0.01)
    else:
        network = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(512, 10))
        optimizer = torch.optim.Adam(network.to(device).parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images))
        for index in order.split(batch):
            optimizer.zero_grad()
            loss = loss_fn(network(images[index].to(device)), labels[index].to(device))
            loss.backward()
            optimizer.step()
        devices.synchronize(torch.device(device))  # names its device: a bare synchronize waits for cuda:0
        times.append(time.perf_counter() - start)
    return times


def plain_pytorch_in_child(model: str, epochs: int, limit: int, device: str = "cpu", batch: int = 32) -> list[float]:
    """In a fresh process, so that trainspeed's process settings never help the plain loop."""
    done = subprocess.run([sys.executable, __file__, "--plain", model, "--epochs", str(epochs), "--limit", str(limit),
                           "--device", device, "--batch", str(batch)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def keras(python: str | None, model: str, epochs: int, limit: int) -> list[float] | None:
    if not python:
        return None
    done = subprocess.run([python, str(HERE / "keras_seeds.py"), "--model", model, "--epochs", str(epochs),
                           "--limit", str(limit)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"Keras run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["epoch_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ann,cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--sittings", type=int, default=1, help="run every engine this many times, in turns")
    parser.add_argument("--keras-python", default=None, help="a Python that has TensorFlow")
    parser.add_argument("--plain", default=None, help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_pytorch(args.plain, args.epochs, args.limit, args.device, args.batch)))
        return
    threads = torch.get_num_threads()
    title = f"steady CPU s/epoch, batch 32, {args.limit:,} images, {threads} threads"
    table = Table(title=title + (f", {args.sittings} sittings" if args.sittings > 1 else ""))
    for column in ("model", "sitting", "trainspeed", "plain PyTorch", "Keras (seed code)", "trainspeed vs Keras",
                   "trainspeed vs plain"):
        table.add_column(column, justify="right")
    for model in args.models.split(","):
        rows = []
        for sitting in range(1, args.sittings + 1):
            ours = trainspeed.run(models=[model], devices=["cpu"], dataset="synthetic", limit=args.limit,
                                  epochs=args.epochs, out=None).cases[0].steady_epoch_s
            plain = steady(plain_pytorch_in_child(model, args.epochs, args.limit))
            theirs = keras(args.keras_python, model, args.epochs, args.limit)
            rows.append((ours, plain, steady(theirs) if theirs else None))
            print(f"{model} sitting {sitting}: trainspeed {ours:.2f} s, plain {plain:.2f} s, Keras "
                  f"{rows[-1][2] or float('nan'):.2f} s", flush=True)
        for index, (ours, plain, keras_s) in enumerate(rows, 1):
            table.add_row(model, str(index), f"{ours:.2f}", f"{plain:.2f}", f"{keras_s:.2f}" if keras_s else "skipped",
                          f"{keras_s / ours:.2f}x" if keras_s else "-", f"{plain / ours:.2f}x")
        if len(rows) > 1:
            # Ratios are paired within a sitting (measured minutes apart), then summarized.
            keras_ratios = [keras_s / ours for ours, _, keras_s in rows if keras_s]
            medians = [statistics.median(column) if column else None for column in _columns(rows)]
            table.add_row(model, "median", *(f"{m:.2f}" if m else "skipped" for m in medians),
                          f"{statistics.median(keras_ratios):.2f}x" if keras_ratios else "-",
                          f"{statistics.median(plain / ours for ours, plain, _ in rows):.2f}x")
    Console(width=120).print(table)


def _columns(rows: list[tuple[float, float, float | None]]) -> list[list[float]]:
    """Each engine's times over the sittings (Keras's only where it ran)."""
    return [[row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows if row[2]]]


if __name__ == "__main__":
    main()
