"""Test accuracy over several seeds, to tell a change in accuracy from seed-to-seed noise.

    python benchmarks/accuracy.py --data-dir ../shared/data/cifar10-sample [--model cnn] [--epochs 5]
                                  [--seeds 5] [--precision fp32] [--src OTHER_CHECKOUT/src]

Each seed is one `trainspeed run` of the model on the real data, in its own process. `--src`
runs another checkout's code instead (for example the commit before a speed change) so the two
can be set side by side: a change is real only if it is large against the spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE_SRC = Path(__file__).resolve().parents[1] / "src"


def accuracy(src: Path, seed: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "trainspeed", "run", "--dataset", "cifar10", "--data-dir", args.data_dir,
                   "--no-download", "--models", args.model, "--devices", "cpu", "--epochs", str(args.epochs),
                   "--seed", str(seed), "--out", out]
        if args.precision != "fp32":
            command += ["--precision", args.precision]
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(src)})
        return json.loads((Path(out) / "results.json").read_text())["cases"][0]["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--src", type=Path, default=HERE_SRC, help="the trainspeed source tree to run")
    args = parser.parse_args()
    values = []
    for seed in range(args.seeds):
        values.append(accuracy(args.src.resolve(), seed, args))
        print(f"seed {seed}: test accuracy {values[-1]:.1%}", flush=True)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    print(f"{args.model}, {args.epochs} epochs, {args.precision}, {args.src}: mean {statistics.mean(values):.1%}, "
          f"standard deviation {spread:.1%} over {len(values)} seeds")


if __name__ == "__main__":
    main()
