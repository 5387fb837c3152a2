"""A process stopped while it was timed (SIGSTOP, Ctrl-Z, a frozen machine) never yields an 'ok' time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainspeed import faults
from trainspeed.cases import CaseKey, Workload
from trainspeed.fold import fold_case
from trainspeed.machine import stalls
from trainspeed.results import Measurement, RunResult

SRC = Path(__file__).resolve().parents[1] / "src"
QUICK = ["run", "--dataset", "synthetic", "--limit", "2048", "--models", "mlp:1", "--devices", "cpu", "--epochs", "2",
         "--synthetic-shape", "8x8x1", "--out", "out"]


def trainspeed(*args: str, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    environment.pop(faults.VARIABLE, None)
    if fault:
        environment[faults.VARIABLE] = fault
    return subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["in a child", "in process"])
def test_a_case_stopped_by_sigstop_mid_epoch_is_flagged_and_resume_measures_it_anew(tmp_path, mode):
    done = trainspeed(*QUICK, *mode, cwd=tmp_path, fault="stall:mlp:1")
    assert done.returncode == 1, done.stderr
    case = RunResult.read(tmp_path / "out").cases[0]
    assert case.status == "stalled" and not case.ok and case.speedup_vs_cpu is None
    assert faults.STALL_SECONDS - 0.3 < case.stalled_s < faults.STALL_SECONDS + 1.0
    assert f"stopped or starved for {case.stalled_s:.1f} s while it was being timed" in case.error
    assert "stalled" in done.stdout  # the table shows it

    again = trainspeed("run", "--resume", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    case = RunResult.read(tmp_path / "out").cases[0]
    assert case.ok and case.stalled_s < 0.5 and len(case.repeats) == 1


def test_an_undisturbed_case_records_no_stall(tmp_path):
    assert trainspeed(*QUICK, cwd=tmp_path).returncode == 0
    case = RunResult.read(tmp_path / "out").cases[0]
    assert case.ok and case.stalled_s == 0.0


def measurement(stalled_s: float | None) -> Measurement:
    return Measurement(repeat=1, steady_epoch_s=0.3, epoch_s=(0.35, 0.3), stalled_s=stalled_s)


def test_a_stall_spoils_a_case_only_when_it_is_a_real_share_of_its_time():
    key = CaseKey(Workload("mlp:1", "synthetic", (1, 8, 8), 2048, 100, 32, "fp32"), "cpu")
    fold = lambda *repeats: fold_case(key, repeats, repeats_wanted=len(repeats), epochs=2)  # noqa: E731
    assert fold(measurement(0.0)).ok
    assert fold(measurement(0.005)).ok  # under 1% of the 0.65 s timed: scheduling noise
    spoiled = fold(measurement(10.0))
    assert spoiled.status == "stalled" and spoiled.stalled_s == 10.0 and "10.0 s" in spoiled.error
    # One spoiled repeat spoils the case, so that a resume measures it from scratch.
    assert fold(measurement(0.0), measurement(2.0)).status == "stalled"
    assert stalls.spoils(1.0, 50.0) and not stalls.spoils(0.4, 50.0) and not stalls.spoils(None, 1.0)
