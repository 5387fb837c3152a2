"""Comparisons that cannot mislead: whole workloads matched, per-image figures said as such, noise respected."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import report_fixtures as fx
from trainspeed.errors import ConfigError
from trainspeed.reporting.build import build_blocks, write_report
from trainspeed.reporting.charts import row_label
from trainspeed.reporting.comparison import compare, headlines, machine_label, pivots, precision_effects
from trainspeed.reporting.document import Table
from trainspeed.stats import difference_half_width

SRC = Path(__file__).resolve().parents[1] / "src"


def test_compare_matches_like_with_like_and_lists_the_rest():
    laptop, server = fx.laptop_and_server()
    comparison = compare([("laptop", laptop), ("server", server)], baseline="laptop:cpu")
    assert comparison.columns == ["laptop:cpu", "server:cpu", "server:cuda:0"]
    assert list(comparison.rows) == [fx.workload("ann"), fx.workload("cnn")]
    assert comparison.speedup(fx.workload("cnn"), "server:cuda:0") == pytest.approx(9.0)
    assert comparison.speedup(fx.workload("ann"), "server:cpu") == pytest.approx(2.2)
    assert comparison.not_comparable == [
        "cnn on cifar10 (50,000 training images of 3x32x32) at batch 256 in fp32: only in laptop; "
        "the nearest in server differs in batch size (32)"]
    assert comparison.notes == ["the files come from different trainspeed versions: laptop 0.1.0, server 0.2.0"]


def test_compare_never_mixes_batch_sizes_or_data_sets():
    a = fx.run_result([fx.case("cnn", "cpu", 30.0, batch=32), fx.case("ann", "cpu", 20.0)])
    b = fx.run_result([fx.case("cnn", "cpu", 10.0, batch=256), fx.case("cnn", "cpu", 12.0, dataset_name="synthetic"),
                       fx.case("ann", "cpu", 10.0)])
    comparison = compare([("a", a), ("b", b)])
    assert list(comparison.rows) == [fx.workload("ann")]
    assert comparison.speedup(fx.workload("ann"), "b:cpu") == pytest.approx(2.0)
    assert comparison.not_comparable == [
        "cnn on cifar10 (50,000 training images of 3x32x32) at batch 32 in fp32: only in a; "
        "the nearest in b differs in batch size (256)",
        "cnn on cifar10 (50,000 training images of 3x32x32) at batch 256 in fp32: only in b; "
        "the nearest in a differs in batch size (32)",
        "cnn on synthetic (50,000 training images of 3x32x32) at batch 32 in fp32: only in b; "
        "the nearest in a differs in data set (cifar10)"]


def test_compare_refuses_an_unknown_baseline():
    laptop, server = fx.laptop_and_server()
    with pytest.raises(ConfigError, match="baseline 'desktop:cpu' is not among the results; choose one of: "
                                          "laptop:cpu, server:cpu, server:cuda:0"):
        compare([("laptop", laptop), ("server", server)], baseline="desktop:cpu")


def test_machine_labels_come_from_file_or_folder_names():
    assert machine_label(Path("runs/laptop.json")) == "laptop"
    assert machine_label(Path("runs/workstation/results.json")) == "workstation"
    again = replace(fx.seeds_run(), created="2026-11-23T12:00:00+00:00")
    same = compare([("results", fx.seeds_run()), ("results", again)])
    assert same.columns == ["results:cpu", "results:cuda:0", "results-2:cpu", "results-2:cuda:0"]


def limit_runs(*, small_under_load: bool = False):
    """Issue 9's pair: the same machine with --limit 2000 (13.0 s, 154 images/s) and --limit 500 (3.70 s, 135)."""
    big = fx.run_result([fx.case("ann", "cpu", 13.0, train=2000, test=1000)], gpus=False)
    small = fx.run_result([fx.case("ann", "cpu", 3.70, train=500, test=1000, under_load=small_under_load)],
                          gpus=False)
    return big, small


def test_runs_of_different_sizes_are_compared_per_image_and_say_so():
    big, small = limit_runs()
    comparison = compare([("run1", big), ("small", small)])
    key = fx.workload("ann", train=2000, test=1000)
    assert list(comparison.rows) == [key] and comparison.per_image(key)
    found = comparison.pace(key, "small:cpu")
    # (500 / 3.70) / (2000 / 13.0) = 135.14 / 153.85: slower per image, though its epochs are 3.5x shorter.
    assert found.per_image and found.ratio == pytest.approx(0.8784, abs=1e-4)
    assert headlines(comparison) == [
        "small:cpu (Intel Xeon Processor) trains the ann 1.14x slower than run1:cpu (Intel Xeon Processor) per image "
        "(135 vs 154 images/s; the runs trained on 500 and 2,000 images, so epochs are not compared)."]
    assert pivots(comparison) == []  # a seconds-per-epoch pivot would set unlike epochs side by side


def test_per_image_comparison_is_marked_in_the_tables_and_charts(tmp_path):
    big, small = limit_runs()
    comparison = compare([("run1", big), ("small", small)])
    assert row_label(fx.workload("ann", train=2000, test=1000), comparison) == "ann\nper image"
    names = {path.name for path in write_report(comparison, tmp_path)}
    assert "speedup.png" in names and "epoch_time.png" not in names  # no epoch bars for unlike epochs
    markdown = (tmp_path / "report.md").read_text()
    assert "| ann | small:cpu<br>" in markdown
    assert "| 3.70<br>epochs of 500 images | - | - | 135 | - | - | 0.88x per image |" in markdown
    assert ("| model | data | batch | precision | run1:cpu images/s | small:cpu images/s | small:cpu speedup |"
            in markdown)
    assert "| ann | cifar10 | 32 | fp32 | 154<br>of 2,000 | 135<br>of 500 | 0.88x |" in markdown
    assert "Bars marked per image compare images/s" in markdown
    assert "**small:cpu (Intel Xeon Processor) trains the ann 1.14x slower than run1:cpu per image.**" in markdown


def test_same_workloads_are_still_compared_per_epoch():
    big, _ = limit_runs()
    other = fx.run_result([fx.case("ann", "cpu", 6.5, train=2000, test=1000)], gpus=False)
    comparison = compare([("a", big), ("b", other)])
    assert comparison.pace(fx.workload("ann", train=2000, test=1000), "b:cpu").per_image is False
    assert headlines(comparison) == [
        "b:cpu (Intel Xeon Processor) trains the ann 2.0x faster than a:cpu (Intel Xeon Processor) "
        "(6.50 s vs 13.0 s per epoch)."]


def test_workloads_that_differ_beyond_image_counts_are_not_comparable_and_say_why():
    a = fx.run_result([fx.case("ann", "cpu", 20.0), fx.case("cnn", "cpu", 30.0)])
    b = fx.run_result([fx.case("ann", "cpu", 10.0),
                       fx.case("cnn", "cpu", 9.0, train=500, batch=64),  # a --limit and another batch size
                       fx.case("mlp:1", "cpu", 5.0)])
    b.cases[1] = replace(b.cases[1], image_shape=(3, 64, 64))
    comparison = compare([("a", a), ("b", b)])
    assert list(comparison.rows) == [fx.workload("ann")]
    assert comparison.not_comparable == [
        "cnn on cifar10 (50,000 training images of 3x32x32) at batch 32 in fp32: only in a; the nearest in b "
        "differs in image shape (3x64x64), training images (500), batch size (64)",
        "cnn on cifar10 (500 training images of 3x64x64) at batch 64 in fp32: only in b; the nearest in a differs "
        "in image shape (3x32x32), training images (50,000), batch size (32)",
        "mlp:1 on cifar10 (50,000 training images of 3x32x32) at batch 32 in fp32: only in b"]


def test_files_with_nothing_in_common_are_an_error_that_says_what_to_do():
    a = fx.run_result([fx.case("cnn", "cpu", 30.0, batch=32)])
    b = fx.run_result([fx.case("cnn", "cpu", 10.0, batch=256)])
    with pytest.raises(ConfigError) as raised:
        compare([("a", a), ("b", b)])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("nothing to compare: no case in a, b has the same model, data set, image shape, "
                              "batch size, precision and engine in another file (cnn on cifar10")
    assert message.endswith("run each machine with the same --models, --dataset, --batch-size, --precision "
                            "and --engines")


def trainspeed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}, timeout=120)


def test_compare_command_with_nothing_in_common_exits_2_with_one_line(tmp_path):
    fx.run_result([fx.case("cnn", "cpu", 30.0, batch=32)]).write(tmp_path / "a.json")
    fx.run_result([fx.case("ann", "cpu", 10.0)]).write(tmp_path / "b.json")
    done = trainspeed("compare", "a.json", "b.json", cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("trainspeed: error: nothing to compare: no case in a, b has the same model")


def test_a_file_compared_with_itself_is_one_report_with_a_note(tmp_path):
    run = fx.seeds_run()
    comparison = compare([("results", run), ("results", fx.seeds_run())])  # the same content, read twice
    assert comparison.single_machine and comparison.columns == ["cpu", "cuda:0"]
    assert comparison.notes == ["file 2 (results) holds the same results as file 1 (results): the same file given "
                                "twice, or a copy; it is shown once, not compared with itself"]
    assert headlines(comparison)[0].startswith(f"On this machine the {fx.GPU_NAME} trains the ann 12.2x faster")
    run.write(tmp_path / "laptop.json")
    done = trainspeed("compare", "laptop.json", "laptop.json", "--out", "cmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # Said on the terminal too, not only in the report.
    assert "note: file 2 (laptop) holds the same results as file 1 (laptop)" in " ".join(done.stdout.split())
    markdown = (tmp_path / "cmp" / "report.md").read_text()
    assert markdown.startswith("# trainspeed report\n")
    assert "> file 2 (laptop) holds the same results as file 1 (laptop)" in markdown


def test_comparison_settings_mark_what_differs(tmp_path):
    laptop, server = fx.laptop_and_server()
    server.environment["torch"] = "2.14.0"
    comparison = compare([("laptop", laptop), ("server", server)])
    (table,) = [block for block in build_blocks(comparison, tmp_path)
                if isinstance(block, Table) and block.headers == ["setting", "laptop", "server"]]
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["data set"] == ["cifar10", "cifar10"]
    assert rows["training images"] == ["50,000", "50,000"] and rows["image shape"] == ["3x32x32", "3x32x32"]
    assert rows["batch sizes (differs)"] == ["32, 256", "32"]
    assert rows["trainspeed (differs)"] == ["0.1.0", "0.2.0"]
    assert rows["PyTorch (differs)"] == ["2.13.0", "2.14.0"]
    assert rows["seed"] == ["0", "0"] and rows["epochs"] == ["4", "4"]
    differing = [index for index, row in enumerate(table.rows) if row[0].endswith("(differs)")]
    assert table.flagged == {(index, column) for index in differing for column in (1, 2)}


@pytest.mark.parametrize("p1, n1, p2, n2, points", [
    (0.5, 1000, 0.5, 1000, 4.383),  # 1.96 * sqrt(2 * 0.25 / 1000)
    (0.7, 1000, 0.684, 1000, 4.046),  # 1.96 * sqrt((0.21 + 0.216144) / 1000)
    (0.9, 100, 0.8, 400, 7.067),  # 1.96 * sqrt(0.09 / 100 + 0.16 / 400)
    (1.0, 500, 1.0, 500, 0.0),
])
def test_difference_half_width_matches_hand_computed_values(p1, n1, p2, n2, points):
    assert 100 * difference_half_width(p1, n1, p2, n2) == pytest.approx(points, abs=1e-3)


def test_difference_half_width_needs_test_images():
    with pytest.raises(ValueError, match="at least one trial"):
        difference_half_width(0.5, 0, 0.5, 100)


def precision_pair(bf16_accuracy: float, test_images: int | None):
    test = test_images or 0
    return compare([(None, fx.run_result([
        fx.case("cnn", "cpu", 40.0, accuracy=0.700, test=test),
        fx.case("cnn", "cpu", 16.0, accuracy=bf16_accuracy, test=test, precision="bf16")]))])


def test_a_point_and_a_half_on_a_thousand_test_images_is_noise():
    (effect,) = precision_effects(precision_pair(0.684, 1000))
    assert effect.accuracy_points == pytest.approx(-1.6) and effect.noise_points == pytest.approx(4.046, abs=1e-3)
    assert not effect.costs_accuracy
    assert effect.sentence.endswith("its test accuracy stays within the sampling noise of 1,000 test images "
                                    "(68.4% vs 70.0%: -1.6 ± 4.0 points).")


def test_a_difference_beyond_the_noise_is_a_departure():
    (effect,) = precision_effects(precision_pair(0.62, 1000))
    # 1.96 * sqrt((0.62 * 0.38 + 0.21) / 1000) = 4.137 points; -8 is beyond it.
    assert effect.noise_points == pytest.approx(4.137, abs=1e-3) and effect.costs_accuracy
    assert "moves -8.0 ± 4.1 points from fp32's (62.0% vs 70.0%), beyond the sampling noise of 1,000" in (
        effect.sentence)


def test_without_the_test_set_size_no_departure_is_claimed():
    (effect,) = precision_effects(precision_pair(0.60, None))
    assert effect.noise_points is None and not effect.costs_accuracy
    assert "the test-set size is not recorded, so noise cannot be ruled out" in effect.sentence
