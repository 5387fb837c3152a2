"""Results files at the boundary: anything but a valid file is one line naming what is wrong."""

import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import report_fixtures as fx
from trainspeed.errors import ResultsError
from trainspeed.results import RunResult

SRC = Path(__file__).resolve().parents[1] / "src"


def written(tmp_path: Path, edit) -> Path:
    data = fx.seeds_run().to_dict()
    edit(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


BROKEN = {
    "cases a dict": (lambda d: d.update(cases={}), "cases: input should be a valid array"),
    "schema_version a string": (lambda d: d.update(schema_version="2"), "schema_version '2', not a whole number"),
    "config a string": (lambda d: d.update(config="fast"), "config: input should be an object"),
    "environment null": (lambda d: d.update(environment=None), "environment: input should be an object"),
    "steady time null on an ok case": (lambda d: d["cases"][0].update(steady_epoch_s=None),
                                       "cases[0] is ok but has no steady_epoch_s"),
    "steady time negative": (lambda d: d["cases"][0].update(steady_epoch_s=-1.0),
                             "cases[0].steady_epoch_s is negative (-1.0)"),
    "steady time a string": (lambda d: d["cases"][0].update(steady_epoch_s="3.2"),
                             "cases[0].steady_epoch_s: input should be a valid number"),
    "accuracy above 1": (lambda d: d["cases"][0].update(test_accuracy=75.6), "test_accuracy is 75.6, above 1"),
    "unknown status": (lambda d: d["cases"][0].update(status="great"), "cases[0].status is 'great'"),
    "repeat epoch a string": (lambda d: d["cases"][0]["repeats"].append({"repeat": 1, "steady_epoch_s": "x"}),
                              "cases[0].repeats[0].steady_epoch_s: input should be a valid number"),
    "a newer schema": (lambda d: d.update(schema_version=99), "newer than this trainspeed reads"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_results_file_is_one_line_naming_the_field(tmp_path, case):
    edit, message = BROKEN[case]
    with pytest.raises(ResultsError) as error:
        RunResult.read(written(tmp_path, edit))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_nan_in_a_file_is_refused_and_never_written(tmp_path):
    path = tmp_path / "results.json"
    text = re.sub(r'"steady_epoch_s": [0-9.]+', '"steady_epoch_s": NaN', json.dumps(fx.seeds_run().to_dict()), count=1)
    path.write_text(text)
    with pytest.raises(ResultsError, match="NaN is not a number JSON allows"):
        RunResult.read(path)
    # On the way out: a diverged loss is not a number, and JSON has none; it is written as null.
    run = fx.seeds_run()
    run.cases[0] = replace(run.cases[0], train_loss=math.nan, speedup_vs_cpu=math.inf)
    text = run.write(tmp_path / "out.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    again = RunResult.read(tmp_path / "out.json").cases[0]
    assert again.train_loss is None and again.speedup_vs_cpu is None


def test_unknown_fields_are_ignored_at_every_level(tmp_path):
    def add_fields(data):
        data["from_the_future"] = 1
        data["cases"][0]["from_the_future"] = 1
        data["cases"][0]["startup"] = {"process_s": 1.0, "from_the_future": 2}

    case = RunResult.read(written(tmp_path, add_fields)).cases[0]
    assert case.startup.process_s == 1.0


def test_a_folder_stands_for_the_results_file_in_it(tmp_path):
    fx.seeds_run().write(tmp_path / "run" / "results.json")
    assert len(RunResult.read(tmp_path / "run").cases) == len(fx.seeds_run().cases)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="is a folder without a results.json"):
        RunResult.read(tmp_path / "empty")


def trainspeed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}, timeout=120)


def test_report_and_compare_on_bad_files_exit_2_with_one_line(tmp_path):
    written(tmp_path, lambda d: d["cases"][0].update(steady_epoch_s="fast"))
    (tmp_path / "folder").mkdir()
    fx.seeds_run().write(tmp_path / "good.json")
    (tmp_path / "taken").write_text("a file")
    for args, message in ((["report", "results.json"], "steady_epoch_s: input should be a valid number"),
                          (["report", "folder"], "is a folder without a results.json"),
                          (["compare", "good.json", "results.json"], "input should be a valid number"),
                          (["compare", "good.json", "--out", "taken"], "--out taken is a file, not a folder")):
        done = trainspeed(*args, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], (args, done.stderr)
