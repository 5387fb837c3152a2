"""The field's habits from Python: results as rows and CSV, a public report(), keywords named as the flags."""

import csv
import io
import shutil

import pytest

import trainspeed
from trainspeed.errors import ConfigError, as_arguments
from trainspeed.plan import keyword_settings, make_config
from trainspeed.rows import CASE_COLUMNS, CSV_FILE, case_rows, summary_html, summary_text, to_csv


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Two batch sizes, two repeats each, with the keywords a command-line user already knows."""
    out = tmp_path_factory.mktemp("rows")
    result = trainspeed.run(models="mlp:1", devices="cpu", dataset="synthetic", limit=64, epochs=1, warmup_steps=1,
                            synthetic_shape="8x8x1", batch_size="16,32", repeats=2, out=str(out), no_inference=True,
                            in_process=True)
    return out, result


def test_keywords_named_as_the_flags_reach_the_config(swept):
    _, result = swept
    config = result.config
    assert config["models"] == ["mlp:1"] and config["devices"] == ["cpu"] and config["batch_sizes"] == [16, 32]
    assert tuple(config["synthetic_shape"]) == (8, 8, 1) and config["inference"] is False and config["repeats"] == 2
    assert keyword_settings({"batch_size": 32, "precision": "fp32,bf16", "engine": "keras-torch", "time_budget": 5,
                             "in_process": True, "no_download": True}) == {
        "batch_sizes": [32], "precisions": ["fp32", "bf16"], "engines": ["keras-torch"], "time_budget_s": 5,
        "isolate": False, "download": False}
    with pytest.raises(ConfigError, match="batch_sizes is given twice"):
        keyword_settings({"batch_size": 32, "batch_sizes": [64]})
    with pytest.raises(ConfigError, match="batch_size takes whole numbers"):
        keyword_settings({"batch_size": "big"})


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"precision": ""}, 'no precision given, e.g. precision="fp32" or precision="fp32,bf16"'),
    ({"save_models": True, "out": None}, "save_models writes into the run's folder: give out=\"FOLDER\""),
    ({"cpu_threads": 0}, "cpu_threads must be at least 1, got 0"),
    # Refused up front, not in each case's process (epochs=1.5 once failed every case with a traceback).
    ({"epochs": 1.5}, "epochs takes a whole number, got 1.5"),
    ({"batch_size": [32, "64"]}, "batch_size takes a whole number, got '64'"),
    ({"batch_size": True}, "batch_size takes whole numbers such as 32 or 32,256, got True"),
    ({"repeats": 1.5}, "repeats takes a whole number, got 1.5"),
    ({"time_budget": "5"}, "time_budget takes a number of seconds, got '5'"),
    ({"dist_timeout": 0}, "dist_timeout must be at least 1, got 0"),
    ({"per_device_batch": True}, "per_device_batch sets the batch of each device of a group: give data_parallel too"),
])
def test_errors_raised_to_python_name_the_keyword_arguments(settings, message):
    with pytest.raises(ConfigError) as raised:
        trainspeed.run(models="ann", **settings)
    assert str(raised.value) == message


def test_commands_in_a_message_stay_commands_and_the_command_line_keeps_its_flags():
    assert as_arguments("free space and run `trainspeed run --resume out`; --data-dir /d is empty") == (
        'free space and run `trainspeed run --resume out`; data_dir="/d" is empty')
    assert as_arguments("use a smaller --synthetic-shape or --limit, or --epochs 2 or more") == (
        "use a smaller synthetic_shape or limit, or epochs=2 or more")
    # Verbs after a flag in the messages themselves are words, not the flag's value.
    assert as_arguments("--per-device-batch sets the batch of each device: give --data-parallel too") == (
        "per_device_batch sets the batch of each device: give data_parallel too")
    assert as_arguments("--data-parallel trains with trainspeed's engine only; --time-budget projects one") == (
        "data_parallel trains with trainspeed's engine only; time_budget projects one")
    with pytest.raises(ConfigError, match="^--batch-size must be at least 1"):
        make_config(models=["ann"], batch_sizes=[0])


def test_one_row_per_case_and_repeat_in_the_csv_beside_the_results(swept):
    out, result = swept
    rows = result.to_rows()
    assert len(rows) == 4 and [(r["batch_size"], r["repeat_repeat"]) for r in rows] == [(16, 1), (16, 2), (32, 1),
                                                                                         (32, 2)]
    for row in rows:
        case = result.case("mlp:1", "cpu", batch_size=row["batch_size"])
        assert row["steady_epoch_s"] == case.steady_epoch_s and row["image_shape"] == "1x8x8"
        assert row["repeat_steady_epoch_s"] == case.repeats[row["repeat_repeat"] - 1].steady_epoch_s
        assert row["inference_latency_median_s"] is None and row["status"] == "ok"
    written = list(csv.DictReader(io.StringIO((out / CSV_FILE).read_text())))
    assert list(written[0])[:len(CASE_COLUMNS)] == list(CASE_COLUMNS) and len(written) == 4
    assert float(written[1]["repeat_steady_epoch_s"]) == pytest.approx(rows[1]["repeat_steady_epoch_s"])
    assert written[0]["error"] == "" and written[0]["model"] == "mlp:1"


def test_a_case_that_never_measured_has_one_row_with_its_reason(swept):
    from dataclasses import replace

    _, result = swept
    failed = replace(result.cases[0], status="failed", error="out of memory", repeats=[])
    (row,) = case_rows([failed])
    assert row["status"] == "failed" and row["error"] == "out of memory" and row["repeat_repeat"] is None
    assert to_csv([row]).splitlines()[1].startswith("mlp:1,cpu,")


def test_to_dataframe_when_pandas_is_there(swept):
    _, result = swept
    pandas = pytest.importorskip("pandas")
    frame = result.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 4 and "steady_epoch_s" in frame


def test_report_from_python_writes_what_the_command_writes(swept, tmp_path):
    out, result = swept
    written = trainspeed.report(result)
    assert written[0] == out / "report.md" and (out / "report.html").is_file()
    assert "seconds per epoch by batch size" in written[0].read_text()
    # A results file and its folder are one run: the report says so rather than compare it with itself.
    compared = trainspeed.report([out / "results.json", out], out=tmp_path / "both")
    assert "not compared with itself" in compared[0].read_text()
    with pytest.raises(ConfigError, match="give out="):
        trainspeed.report([result, result])


def test_a_moved_run_is_reported_beside_its_results_file(swept, tmp_path):
    out, _ = swept
    moved = tmp_path / "moved run"
    moved.mkdir()
    shutil.copy(out / "results.json", moved / "results.json")
    assert trainspeed.report(moved)[0] == moved / "report.md"
    assert trainspeed.report(moved / "results.json")[0] == moved / "report.md"


def test_a_result_shows_itself_briefly_in_a_notebook(swept):
    _, result = swept
    text = repr(result)
    assert text.startswith("RunResult(trainspeed ") and len(text) < 1000 and "b64" not in text
    assert "mlp:1 on cpu (batch 16, fp32, trainspeed): " in text and " s/epoch, " in text
    html = result._repr_html_()
    assert html.count("<tr>") == 3 and "steady s/epoch" in html and "base64" not in html and len(html) < 3000
    assert "sample_images_b64" not in repr(result.dataset)


def test_every_row_format_tells_data_parallel_cases_apart():
    """Three cases that differ only in their ranks were three identical rows, the 2-rank job 1.0x 'vs CPU'."""
    import report_fixtures as fx
    from trainspeed.data_parallel import ParallelFigures
    from trainspeed.fold import with_speedups
    from trainspeed.results import RunResult

    alone = fx.case("mlp:1", "cpu", 0.9)
    one = fx.case("mlp:1", "cpu", 1.0, world_size=1, backend="gloo")
    two = fx.case("mlp:1", "cpu", 0.6, world_size=2, backend="gloo", parallel=ParallelFigures(
        world_size=2, backend="gloo", shards="16 + 16", threads_per_rank=1, one_device="cpu", speedup_vs_one=1.67,
        scaling_efficiency=0.83, allreduce_share=0.1))
    result = RunResult("0.3.0", "now", {}, {}, cases=with_speedups([alone, one, two]))
    rows = result.to_rows()
    identities = {tuple(row[name] for name in ("model", "device", "batch_size", "world_size", "backend",
                                                 "per_device_batch")) for row in rows}
    assert len(identities) == 3
    by_ranks = {(row["world_size"], row["backend"]): row for row in rows}
    assert by_ranks[(2, "gloo")]["speedup_vs_cpu"] is None and by_ranks[(1, "")]["speedup_vs_cpu"] == 1.0
    assert by_ranks[(2, "gloo")]["parallel_scaling_efficiency"] == 0.83
    assert by_ranks[(2, "gloo")]["parallel_shards"] == "16 + 16" and by_ranks[(1, "")]["parallel_shards"] is None
    assert "world_size,backend,per_device_batch" in to_csv(rows).splitlines()[0]
    assert "2 ranks (gloo)" in summary_text(result.cases) and "<th>ranks</th>" in summary_html(result.cases)
