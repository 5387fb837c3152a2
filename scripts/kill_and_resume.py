"""Kill a 4-case run at random moments and check what survives; then resume it.

Each try starts `trainspeed run` (4 cases, 2 repeats each) in its own process group, waits a
random time, and kills it: SIGKILL to the whole group (as a crash or power loss would) or
SIGINT to the parent (Ctrl-C). Then it checks that the results file is valid and that every
case marked finished is complete, runs `trainspeed run --resume`, and checks that all four
cases finish, that the cases finished before the kill are unchanged, and that the report
shows the repeats with their spread.

With --stalls N it then stops the case's process N times (SIGSTOP, a random 2-6 s, SIGCONT), as
Ctrl-Z or a frozen machine would, lets the run finish, and checks that no case measured across
the stop is reported ok: the stopped case is marked stalled with the length of the stop, and a
resume measures it anew.

    python scripts/kill_and_resume.py [--tries 10] [--stalls 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
RUN = ["run", "--dataset", "synthetic", "--limit", "1600", "--synthetic-shape", "16x16x3", "--devices", "cpu",
       "--models", "mlp:1,cnn", "--batch-size", "32,64", "--epochs", "2", "--repeats", "2"]


def default_sigint() -> None:
    # A job started in the background of a shell ignores SIGINT, and Python keeps an inherited
    # "ignore"; restore the default so that SIGINT is a real Ctrl-C for trainspeed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def trainspeed(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "trainspeed", *args], cwd=cwd, env=env, preexec_fn=default_sigint,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


def one_try(number: int, rng: random.Random, workdir: Path) -> str:
    out = workdir / f"try{number}"
    delay = rng.uniform(0.5, 25.0)
    how = "SIGKILL to the process group" if rng.random() < 0.7 else "SIGINT to the parent"
    process = trainspeed([*RUN, "--out", str(out)], workdir, start_new_session=True)
    time.sleep(delay)
    if process.poll() is not None:
        return f"try {number}: finished before the kill at {delay:.1f} s (nothing to test)"
    if how.startswith("SIGKILL"):
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    results = out / "results.json"
    if not results.exists():
        before = {}
        state = "no results file yet (killed before the first case was written)"
    else:
        data = json.loads(results.read_text())  # must be valid JSON: writes are atomic
        before = {(c["model"], c["batch_size"]): c for c in data["cases"]}
        for case in before.values():
            if case["status"] == "ok":
                assert len(case["repeats"]) == 2 and case["steady_epoch_s"] > 0, case
        state = ", ".join(f"{m}@{b}: {c['status']} ({len(c['repeats'])} repeats)" for (m, b), c in before.items())
    if not results.exists():
        resumed = trainspeed([*RUN, "--out", str(out)], workdir)
    else:
        resumed = trainspeed(["run", "--resume", str(out)], workdir)
    _, errors = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, errors
    final = {(c["model"], c["batch_size"]): c for c in json.loads(results.read_text())["cases"]}
    assert len(final) == 4 and all(c["status"] == "ok" and len(c["repeats"]) == 2 for c in final.values()), final
    for key, case in before.items():
        if case["status"] == "ok":
            assert final[key]["repeats"] == case["repeats"], f"{key} was measured again"
    report = (out / "report.md").read_text()
    assert "steady s/epoch of each repeat" in report and "over 2 repeats" in report
    return f"try {number}: {how} at {delay:.1f} s -> file valid; {state}; --resume completed all 4 cases"


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def one_stall(number: int, rng: random.Random, workdir: Path) -> str:
    out = workdir / f"stall{number}"
    delay, pause = rng.uniform(3.0, 25.0), rng.uniform(2.0, 6.0)
    process = trainspeed([*RUN, "--out", str(out)], workdir)
    time.sleep(delay)
    stopped = children(process.pid)
    if process.poll() is not None or not stopped:
        process.wait(timeout=600)
        return f"stall {number}: no case process at {delay:.1f} s (nothing to stop)"
    for child in stopped:
        os.kill(child, signal.SIGSTOP)
    time.sleep(pause)
    for child in stopped:
        os.kill(child, signal.SIGCONT)
    _, errors = process.communicate(timeout=600)
    assert process.returncode in (0, 1), errors
    cases = json.loads((out / "results.json").read_text())["cases"]
    for case in cases:
        if case["status"] == "ok":  # never an ok case whose time holds the stop
            assert all((r["stalled_s"] or 0) < 0.5 for r in case["repeats"]), case
    stalled = [c for c in cases if c["status"] == "stalled"]
    assert process.returncode == (1 if stalled else 0)
    if stalled:
        case = stalled[0]
        assert pause - 0.5 < case["stalled_s"] < pause + 1.0, (pause, case["stalled_s"])
        found = f"{case['model']}@{case['batch_size']} stalled, {case['stalled_s']:.1f} s recorded"
    else:
        waited = [f"{c['model']}@{c['batch_size']}" for c in cases for r in c["repeats"]
                  if any("waited" in w for w in r["warnings"]) and r["startup"]["process_s"] is None]
        found = (f"the stop hit the start of {', '.join(waited)}'s process: its start-up time left out, "
                 "with a warning" if waited else
                 "no case stalled: the stop fell between cases or in the peaks' best-of-3 measurement")
    resumed = trainspeed(["run", "--resume", str(out)], workdir)
    _, errors = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, errors
    final = json.loads((out / "results.json").read_text())["cases"]
    assert all(c["status"] == "ok" for c in final), final
    return f"stall {number}: SIGSTOP at {delay:.1f} s for {pause:.1f} s -> {found}; --resume: all 4 cases ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--stalls", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        for number in range(1, args.tries + 1):
            print(one_try(number, rng, Path(workdir)), flush=True)
        for number in range(1, args.stalls + 1):
            print(one_stall(number, rng, Path(workdir)), flush=True)


if __name__ == "__main__":
    main()
