import json

import pytest

from trainspeed.errors import ResultsError
from trainspeed.fold import with_speedups
from trainspeed.results import SCHEMA_VERSION, CaseResult, EpochRecord, RunResult


def sample_result() -> RunResult:
    cases = [
        CaseResult("cnn", "cpu", "cifar10", 32, steady_epoch_s=36.0, epoch_s=[40.0, 36.0],
                   history=[EpochRecord(1, 40.0, 1.5, 0.45), EpochRecord(2, 36.0, 1.1, 0.6)]),
        CaseResult("cnn", "cuda:0", "cifar10", 32, steady_epoch_s=4.0),
        CaseResult("ann", "cuda:0", "cifar10", 32, steady_epoch_s=3.6),  # no CPU case to compare with
        CaseResult("cnn", "cuda:0", "cifar10", 256, steady_epoch_s=1.0),  # other batch: not comparable
        CaseResult("cnn", "mps", "cifar10", 32, status="failed", error="out of memory"),
    ]
    return RunResult("0.1.0", "2026-11-22T00:00:00+00:00", {"epochs": 2}, {"os": "Linux"}, cases=cases)


def test_speedups_compare_like_with_like():
    result = sample_result()
    assert [c.speedup_vs_cpu for c in with_speedups(result.cases)] == [1.0, 9.0, None, None, None]
    # The same model and batch on 500 training images is another workload: no CPU time to compare with.
    from dataclasses import replace

    fewer = replace(result.cases[1], train_images=500)
    assert with_speedups([result.cases[0], fewer])[1].speedup_vs_cpu is None


def test_results_round_trip_through_json(tmp_path):
    result = sample_result()
    path = result.write(tmp_path / "out" / "results.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and "models" not in data
    assert data["cases"][0]["history"][1] == {"epoch": 2, "seconds": 36.0, "train_loss": 1.1,
                                              "train_accuracy": 0.6}
    again = RunResult.read(path)
    assert again == result
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("content, message", [
    ('{"cases": [', "not valid JSON"),
    ('{"hello": 1}', "not a trainspeed results file"),
    (json.dumps({"schema_version": SCHEMA_VERSION + 1, "cases": []}), "newer than this trainspeed reads"),
    (json.dumps({"schema_version": 1, "cases": [{"model": "ann"}]}), "not a valid trainspeed results file"),
])
def test_unreadable_results_name_the_file(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message) as error:
        RunResult.read(path)
    assert str(path) in str(error.value)


def test_an_older_files_mfu_over_one_is_read_as_left_out(tmp_path):
    result = sample_result()
    path = result.write(tmp_path / "results.json")
    data = json.loads(path.read_text())
    data["cases"][0]["mfu"] = 1.1624693335619598  # as 0.3.0 wrote it, beside its warning
    data["cases"][0]["warnings"] = ["MFU 116%: training beat the measured matmul peak, so that peak was measured low"]
    data["cases"][1]["mfu"] = 0.25
    path.write_text(json.dumps(data))
    again = RunResult.read(path)
    assert again.cases[0].mfu is None and again.cases[1].mfu == 0.25
    assert again.cases[0].warnings == ["no MFU shown: training ran at 116% of the measured matmul peak, so that "
                                       "peak was measured low (another load during its measurement?)"]
