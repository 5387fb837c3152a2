"""Reports built from stored results: no training, hand-computed expectations."""

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import report_fixtures as fx
from trainspeed.reporting.build import write_report
from trainspeed.reporting.comparison import compare, crossovers, headlines, pivots

SRC = Path(__file__).resolve().parents[1] / "src"


def single(result):
    return compare([(None, result)])


def test_headline_is_the_sentence_the_seeds_wrote_by_hand():
    sentences = headlines(single(fx.seeds_run()))
    assert sentences == [
        f"On this machine the {fx.GPU_NAME} trains the ann 12.2x faster than the CPU (3.60 s vs 44.0 s per epoch).",
        f"On this machine the {fx.GPU_NAME} trains the cnn 9.4x faster than the CPU (4.00 s vs 37.6 s per epoch).",
    ]


def test_headline_without_a_gpu_says_why_and_gives_cpu_time():
    result = fx.run_result([fx.case("cnn", "cpu", 40.0)], gpus=False)
    assert headlines(single(result)) == [
        "No GPU was measured on this machine: this PyTorch (2.13.0+cpu) is built without CUDA.",
        "The CPU trains the cnn in 40.0 s per epoch (1,250 images/s).",
    ]


def test_headline_names_a_failed_case_and_its_reason():
    sentences = headlines(single(fx.failed_run()))
    assert sentences[0] == (f"On this machine the cnn failed on the {fx.GPU_NAME}: out of memory on cuda:0 at "
                            "batch size 32; try a smaller --batch-size.")
    assert sentences[1] == "The CPU trains the cnn in 37.6 s per epoch (1,330 images/s)."


def test_exercise_pivot_is_hidden_layers_by_device():
    (pivot,) = pivots(single(fx.exercise_run()))
    assert pivot.row_header == "hidden layers" and pivot.columns == ["cpu", "cuda:0"]
    assert pivot.rows == [("1", {"cpu": 6.0, "cuda:0": 2.0}), ("5", {"cpu": 9.0, "cuda:0": 2.5})]


def test_batch_sweep_pivot_and_crossover():
    comparison = single(fx.batch_sweep_run())
    (pivot,) = pivots(comparison)
    assert pivot.row_header == "batch size"
    assert [row[0] for row in pivot.rows] == ["8", "16", "32", "256"]
    assert pivot.rows[0][1] == {"cpu": 40.0, "cuda:0": 60.0}
    (crossing,) = crossovers(comparison)
    assert crossing.faster_from == 32 and crossing.batch_sizes == [8, 16, 32, 256]
    assert crossing.sentence == (f"Below batch 32 the CPU is faster for the ann on this machine; "
                                 f"from batch 32 up the {fx.GPU_NAME} is.")
    # Speedups at each batch: 40/60, 30/35, 25/12, 20/2.
    speedups = [comparison.speedup(fx.workload("ann", batch=b), "cuda:0") for b in (8, 16, 32, 256)]
    assert speedups == pytest.approx([0.6667, 0.8571, 2.0833, 10.0], abs=1e-4)


def test_crossover_when_one_device_always_wins():
    cases = [fx.case("ann", "cpu", 10.0, batch=b) for b in (32, 64)]
    cases += [fx.case("ann", "cuda:0", 20.0, batch=b) for b in (32, 64)]
    (crossing,) = crossovers(single(fx.run_result(cases, batch_sizes=(32, 64))))
    assert crossing.faster_from is None
    assert crossing.sentence == (f"The CPU is faster than the {fx.GPU_NAME} for the ann at every batch size "
                                 "measured (32-64).")


def png_ok(path: Path) -> None:
    pixels = imread(path)
    assert pixels.shape[0] > 250 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("build, expected", [
    (lambda: single(fx.seeds_run()), {"epoch_time.png", "speedup.png", "learning_ann.png", "learning_cnn.png",
                                      "predictions_ann.png", "predictions_cnn.png", "confusion_ann.png",
                                      "confusion_cnn.png"}),
    (lambda: single(fx.batch_sweep_run()), {"epoch_time.png", "speedup.png", "throughput_by_batch.png",
                                            "learning_ann-batch-8.png", "learning_ann-batch-256.png",
                                            "predictions_ann.png", "confusion_ann.png"}),
    (lambda: compare([("laptop", fx.laptop_and_server()[0]), ("server", fx.laptop_and_server()[1])]),
     {"epoch_time.png", "speedup.png", "learning_ann.png", "confusion_cnn.png"}),
])
def test_report_files_hold_every_chart_and_table(tmp_path, build, expected):
    written = write_report(build(), tmp_path)
    names = {path.name for path in written}
    assert {"report.md", "report.html"} <= names and expected <= names
    pngs = sorted(p for p in written if p.suffix == ".png")
    for png in pngs:
        png_ok(png)
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(pngs)  # self-contained: every chart embedded
    assert not re.search(r'(src|href)="(https?:|file:|[^"#d][^"]*\.png)', page)  # and nothing fetched
    assert '<meta name="viewport"' in page
    markdown = (tmp_path / "report.md").read_text()
    for png in pngs:
        assert f"]({png.name})" in markdown
    assert markdown.count("| model |") >= 1


def test_single_run_report_shows_table_values_and_headline(tmp_path):
    write_report(single(fx.seeds_run()), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert f"**On this machine the {fx.GPU_NAME} trains the cnn 9.4x faster than the CPU" in markdown
    assert "| model | device | first epoch s | steady s/epoch | steady range s | CV | images/s | MFU | floor s/epoch " \
           "| speedup vs CPU | test accuracy | peak memory MiB |" in markdown
    assert f"| cnn | cuda:0<br>{fx.GPU_NAME} | 5.20 | 4.00 | - | - | 12,500 | - | - | 9.4x | 70.0% | 900 |" in markdown
    assert "GPU cuda:0: NVIDIA H100 80GB HBM3, 80.00 GiB, compute capability 9.0, driver 570.86" in markdown


def test_exercise_report_has_the_filled_in_exercise_table(tmp_path):
    write_report(single(fx.exercise_run()), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    table = "| hidden layers | cpu | cuda:0 |\n|---|---|---|\n| 1 | 6.00 s | 2.00 s |\n| 5 | 9.00 s | 2.50 s |"
    assert table in markdown


def test_failed_case_is_in_the_table_and_the_rest_reported(tmp_path):
    write_report(single(fx.failed_run()), tmp_path)
    page = (tmp_path / "report.html").read_text()
    # The reason spans the figures it stands for, and a phone's card calls it the result, not "first epoch s".
    flagged = ('<td colspan="9" class="flag" data-label="result">failed: out of memory on cuda:0 at batch size 32; '
               'try a smaller <code class="flag-name">--batch-size</code></td></tr>')
    assert flagged in page
    assert "37.60" in page


def test_synthetic_data_gets_no_accuracy_pictures(tmp_path):
    result = fx.run_result([fx.case("cnn", "cpu", 40.0, dataset_name="synthetic", accuracy_meaningful=False)],
                           data=fx.dataset("synthetic", meaningful=False))
    names = {p.name for p in write_report(single(result), tmp_path)}
    assert not any(n.startswith(("predictions", "confusion")) for n in names)
    assert "random data: accuracy means nothing" in (tmp_path / "report.md").read_text()


def trainspeed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}, timeout=120)


def test_report_and_compare_commands(tmp_path):
    laptop, server = fx.laptop_and_server()
    laptop.write(tmp_path / "laptop.json")
    server.write(tmp_path / "server.json")
    done = trainspeed("report", "laptop.json", "--out", "rebuilt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rebuilt" / "report.html").is_file()
    done = trainspeed("compare", "laptop.json", "server.json", "--baseline", "laptop:cpu", "--out", "cmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "cmp" / "report.md").read_text()
    assert ("| model | data | batch | precision | laptop:cpu s/epoch | server:cpu s/epoch | server:cuda:0 s/epoch "
            "| server:cpu speedup | server:cuda:0 speedup |") in markdown
    assert "| cnn | cifar10 | 32 | fp32 | 36.00 | 15.00 | 4.00 | 2.4x | 9.0x |" in markdown
    assert "cnn on cifar10 (50,000 training images of 3x32x32) at batch 256 in fp32: only in laptop" in markdown


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 1, "cases": [{"model"', "is not valid JSON (truncated?)"),
    ('{"name": "something else"}', "is not a trainspeed results file"),
    (json.dumps({"schema_version": 99, "cases": []}), "has schema 99, newer than this trainspeed reads"),
])
def test_report_on_a_bad_file_is_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    for args in (["report", "bad.json"], ["compare", "bad.json", "bad.json"]):
        done = trainspeed(*args, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
        assert lines[0].startswith("trainspeed: error: bad.json") and message in lines[0]


def test_compare_with_unknown_baseline_is_one_line(tmp_path):
    laptop, server = fx.laptop_and_server()
    laptop.write(tmp_path / "laptop.json")
    server.write(tmp_path / "server.json")
    done = trainspeed("compare", "laptop.json", "server.json", "--baseline", "desk:cpu", cwd=tmp_path)
    assert done.returncode == 2 and "choose one of: laptop:cpu, server:cpu, server:cuda:0" in done.stderr


def test_prediction_grid_marks_wrong_guesses(tmp_path):
    from trainspeed.reporting.charts import prediction_grid_chart

    images = np.zeros((4, 8, 8, 3), np.uint8)
    path = prediction_grid_chart(images, [0, 1, 2, 3], [0, 1, 2, 0], ["a", "b", "c", "d"], "t", tmp_path / "g.png")
    pixels = imread(path)[..., :3]
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert red.sum() > 200  # the one wrong guess is framed in red


def precision_run(bf16_accuracy: float):
    return fx.run_result([fx.case("cnn", "cpu", 40.0, accuracy=0.700),
                          fx.case("cnn", "cpu", 16.0, accuracy=bf16_accuracy, precision="bf16")])


def test_a_lower_precision_is_judged_on_speed_and_accuracy_against_fp32():
    from trainspeed.reporting.comparison import precision_effects

    assert pivots(single(precision_run(0.695)))[0].rows == [("cnn fp32", {"cpu": 40.0}), ("cnn bf16", {"cpu": 16.0})]
    (within,) = precision_effects(single(precision_run(0.695)))
    assert within.speedup == 2.5 and within.accuracy_points == pytest.approx(-0.5)
    # 1.96 * sqrt(0.695 * 0.305 / 10,000 + 0.7 * 0.3 / 10,000) = 1.273 points of sampling noise.
    assert within.noise_points == pytest.approx(1.273, abs=1e-3)
    assert not within.costs_accuracy
    assert within.sentence == ("The CPU trains the cnn 2.5x faster in bf16 than in fp32 (16.0 s vs 40.0 s per epoch); "
                               "its test accuracy stays within the sampling noise of 10,000 test images "
                               "(69.5% vs 70.0%: -0.5 ± 1.3 points).")
    (beyond,) = precision_effects(single(precision_run(0.672)))
    assert beyond.noise_points == pytest.approx(1.286, abs=1e-3)
    assert beyond.costs_accuracy
    assert beyond.sentence.endswith("but its test accuracy moves -2.8 ± 1.3 points from fp32's (67.2% vs 70.0%), "
                                    "beyond the sampling noise of 10,000 test images.")
    # Headlines name the precision once more than one was measured.
    assert "The CPU trains the cnn in bf16 in 16.0 s per epoch" in " ".join(headlines(single(precision_run(0.7))))


def test_report_shows_precision_column_and_flags_lost_accuracy(tmp_path):
    write_report(single(precision_run(0.672)), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| model | precision | device |" in markdown and "| cnn | bf16 | cpu<br>" in markdown
    page = (tmp_path / "report.html").read_text()
    assert re.search(r'class="warning">The CPU trains the cnn 2.5x faster in bf16[^<]*beyond the sampling noise', page)


def test_precisions_get_their_own_rows_charts_and_sweeps(tmp_path):
    cases = [fx.case(model, device, steady * (0.5 if precision == "bf16" else 1.0), batch=batch,
                     precision=precision)
             for model in ("ann",) for precision in ("fp32", "bf16") for batch in (32, 1024)
             for device, steady in (("cpu", 40.0 if batch == 32 else 10.0), ("cuda:0", 50.0 if batch == 32 else 2.0))]
    comparison = single(fx.run_result(cases, batch_sizes=(32, 1024)))
    assert [p.title for p in pivots(comparison)] == ["ann in fp32: seconds per epoch by batch size",
                                                     "ann in bf16: seconds per epoch by batch size"]
    assert [c.sentence for c in crossovers(comparison)] == [
        f"Below batch 1024 the CPU is faster for the ann in {p} on this machine; from batch 1024 up the "
        f"{fx.GPU_NAME} is." for p in ("fp32", "bf16")]
    names = {path.name for path in write_report(comparison, tmp_path)}
    assert {"learning_ann-batch-32-fp32.png", "learning_ann-batch-32-bf16.png",
            "learning_ann-batch-1024-bf16.png"} <= names


def test_the_report_modules_never_import_torch():
    code = ("import trainspeed.reporting.build, trainspeed.reporting.terminal, trainspeed.reporting.comparison, "
            "trainspeed.reporting.charts; import sys; assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def rendered(table) -> str:
    from rich.console import Console

    console = Console(record=True, width=220, color_system=None)
    console.print(table)
    return console.export_text()


def sweep_with_warnings():
    cases = [fx.case("ann", "cpu", 40.0, batch=8, warnings=["the CPU governor is powersave"], noisy=True),
             fx.case("ann", "cpu", 25.0, batch=32, warnings=["the CPU governor is powersave"]),
             fx.case("ann", "cuda:0", 12.0, batch=32)]
    return fx.run_result(cases, batch_sizes=(8, 32))


def test_terminal_table_and_warnings_name_the_batch_of_a_sweep():
    from trainspeed.reporting.terminal import NOISE_ADVICE, results_table, warning_lines

    text = rendered(results_table(sweep_with_warnings()))
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in text.splitlines() if "ann" in line]
    assert rows == [["ann", "8", "cpu"], ["ann", "32", "cpu"], ["ann", "32", "cuda:0"]]
    assert warning_lines(sweep_with_warnings()) == [
        "[yellow]warning:[/] ann on cpu, batch 8: the CPU governor is powersave",
        f"[yellow]warning:[/] ann on cpu, batch 8 is noisy: {NOISE_ADVICE}",
        "[yellow]warning:[/] ann on cpu, batch 32: the CPU governor is powersave"]
    # Without a sweep the batch is no axis, and the table keeps its old columns.
    assert warning_lines(fx.run_result([fx.case("ann", "cpu", 9.0, warnings=["w [x]"])])) == [
        "[yellow]warning:[/] ann on cpu: w \\[x]"]
    header = next(line for line in rendered(results_table(fx.seeds_run())).splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:3]] == ["model", "device"]


def test_report_warnings_and_start_up_table_name_the_batch_of_a_sweep(tmp_path):
    from trainspeed.results import StartupCost

    result = sweep_with_warnings()
    result.cases[:] = [replace(case, startup=StartupCost(process_s=1.5, data_s=0.5, first_step_s=0.2,
                                                         steady_step_s=0.01)) for case in result.cases]
    write_report(single(result), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    # Each warning in its row, named by the case; the page shows it in a row of its own beneath.
    assert "| 70.0% | 900 | ann on cpu, batch 8: the CPU governor is powersave |" in markdown
    assert "| 70.0% | 900 | ann on cpu, batch 32: the CPU governor is powersave |" in markdown
    assert "| 70.0% | 900 |  |" in markdown  # the GPU's row has none
    page = (tmp_path / "report.html").read_text()
    assert ('</tr>\n<tr class="note"><td colspan="13">ann on cpu, batch 8: the CPU governor is powersave</td></tr>'
            in page.replace("</tr><tr", "</tr>\n<tr"))
    assert "| model | batch | device | Python + imports s |" in markdown
    assert "| ann | 8 | cpu | 1.50 | 0.50 | - | 0.20 | 10.00 | 2.19 |" in markdown


def test_a_recorded_cuda_graph_has_its_own_start_up_column(tmp_path):
    from trainspeed.results import StartupCost

    result = fx.seeds_run()
    result.cases[:] = [replace(case, startup=StartupCost(process_s=1.5, data_s=0.5, build_s=0.3, first_step_s=0.2,
                                                         steady_step_s=0.01, graph_record_s=0.4
                                                         if case.device == "cuda:0" else None))
                       for case in result.cases]
    write_report(single(result), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert ("| model | device | Python + imports s | data to device s | model build s | CUDA graph record s "
            "| first step s | steady step ms |") in markdown
    # 1.5 + 0.5 + 0.3 + 0.4 + (0.2 - 0.01)
    assert "| ann | cuda:0<br>" in markdown and "| 0.40 | 0.20 | 10.00 | 2.89 |" in markdown
    assert "| 0.30 | - | 0.20 | 10.00 | 2.49 |" in markdown  # the CPU recorded none


def test_a_case_under_load_is_marked_in_tables_and_headline(tmp_path):
    from trainspeed.reporting.terminal import results_table

    result = fx.run_result([fx.case("cnn", "cpu", 37.6, under_load=True), fx.case("cnn", "cuda:0", 4.0)])
    assert headlines(single(result)) == [
        f"On this machine the {fx.GPU_NAME} trains the cnn 9.4x faster than the CPU (4.00 s vs 37.6 s per epoch; "
        "the CPU was measured while other programs used the CPU: its time is too high; close other programs, "
        "set --cpu-threads, or use --repeats)."]
    text = rendered(results_table(result))
    assert "37.60 under load" in text and "under load: measured while other programs used the CPU" in text
    assert "4.00 under load" not in text
    write_report(single(result), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert '<td class="flag" data-label="steady s/epoch">37.60<br>under load</td>' in page
    assert '<td class="flag" data-label="steady s/epoch">4.00' not in page


def test_devices_table_reads_recorded_precisions():
    from types import SimpleNamespace

    from trainspeed.reporting.terminal import devices_table

    cpu = SimpleNamespace(model=fx.CPU_NAME, logical_cores=32, physical_cores=16, usable_cores=32, threads=16,
                          torch_capability="AVX512", features=["avx2"], governor=None, max_mhz=None,
                          precisions=["fp32", "bf16"])
    gpu = SimpleNamespace(device="cuda:0", name=fx.GPU_NAME, memory_bytes=80 * 2**30, compute_capability="9.0",
                          multiprocessors=132, driver="570.86", cuda="12.8", cudnn=None,
                          precisions=["fp32", "tf32", "bf16"])
    text = rendered(devices_table(SimpleNamespace(cpu=cpu, gpus=[gpu], no_gpu_reason=None)))
    assert "precisions: fp32, bf16" in text and "precisions: fp32, tf32, bf16" in text


def test_the_gpu_settings_a_run_used_are_in_the_machine_section():
    from trainspeed.reporting.settings import machine_lines

    result = fx.seeds_run()
    result.environment["gpu_settings"] = "cuDNN autotuning on (torch.backends.cudnn.benchmark)"
    assert "GPU settings: cuDNN autotuning on (torch.backends.cudnn.benchmark)" in machine_lines(None, result)
    assert not any(line.startswith("GPU settings") for line in machine_lines(None, fx.seeds_run()))


def _nested(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth > 1:
            return True
        depth = max(depth, 0)
    return False


@pytest.mark.parametrize("build", [
    lambda: single(fx.seeds_run()), lambda: single(fx.batch_sweep_run()), lambda: single(fx.failed_run()),
    lambda: single(sweep_with_warnings()), lambda: single(fx.run_result([fx.case("cnn", "cpu", 37.6)], gpus=False)),
    lambda: compare([("laptop", fx.laptop_and_server()[0]), ("server", fx.laptop_and_server()[1])]),
])
def test_no_sentence_nests_parentheses_even_around_trademarked_names(tmp_path, build):
    from trainspeed.reporting.build import build_blocks
    from trainspeed.reporting.document import Bullets, Paragraph, Table

    texts = []
    for block in build_blocks(build(), tmp_path):
        texts += ([block.text] if isinstance(block, Paragraph) else block.items if isinstance(block, Bullets)
                  else [block.caption] if isinstance(block, Table) else [])
    assert texts and not [text for text in texts if _nested(text)]
    assert "server:cpu (Intel Xeon Processor) trains the ann 2.2x faster" in " ".join(texts) or "laptop" not in \
        " ".join(texts)


def test_the_speedup_column_only_with_something_to_compare_and_one_unit_a_column(tmp_path):
    from trainspeed.reporting.terminal import results_table

    alone = fx.run_result([fx.case("cnn", "cpu", 37.6, peak_memory_bytes=3 * 2**30),
                           fx.case("ann", "cpu", 44.0, peak_memory_bytes=512 * 2**20)], gpus=False)
    write_report(single(alone), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model | device |"))
    assert "speedup" not in header and header.endswith("| test accuracy | peak memory GiB |")
    assert "| 70.0% | 3.00 |" in markdown and "| 70.0% | 0.50 |" in markdown  # GiB both, not GiB and MiB
    assert "speedup" not in rendered(results_table(alone))
    paired = fx.run_result([fx.case("cnn", "cpu", 37.6), fx.case("cnn", "cuda:0", 4.0, speedup_vs_cpu=9.4)])
    assert "speedup vs CPU" in rendered(results_table(paired)) and "9.4x" in rendered(results_table(paired))


def test_the_terminal_table_fits_80_columns_with_every_header_whole():
    from rich.console import Console

    from trainspeed.reporting.terminal import results_table

    cases = [fx.case("cnn", "cpu", 37.6, steady_cv=0.012, batch=b) for b in (32, 256)]
    cases += [fx.case("cnn", "cuda:0", 4.0, speedup_vs_cpu=9.4, steady_cv=0.07, noisy=True, batch=b, precision="bf16")
              for b in (32, 256)]
    for result in (fx.run_result(cases, batch_sizes=(32, 256)), fx.seeds_run()):
        console = Console(record=True, width=80, color_system=None)
        console.print(results_table(result, console.width))
        text = console.export_text()
        assert max(map(len, text.splitlines())) <= 80
        for word in ("accuracy", "images/s", "s/epoch", "epoch s"):
            assert word in text and "…" not in text
    stacked = Console(record=True, width=80, color_system=None)
    stacked.print(results_table(fx.run_result(cases, batch_sizes=(32, 256)), 80))
    lines = stacked.export_text().splitlines()
    assert [line.split()[0] for line in lines if line.startswith(" batch")] == ["batch"] * 4  # whole, not cut


def test_learning_curves_ask_devices_to_agree_only_when_there_are_several(tmp_path):
    write_report(single(fx.run_result([fx.case("cnn", "cpu", 40.0)])), tmp_path / "one")
    write_report(single(fx.seeds_run()), tmp_path / "two")
    one, two = ((tmp_path / name / "report.md").read_text() for name in ("one", "two"))
    assert "Training loss and accuracy per epoch." in one and "should follow" not in one
    assert "Training loss and accuracy per epoch; the devices' curves should follow each other." in two


def test_a_report_beside_a_results_file_describes_that_file(tmp_path, capsys):
    from trainspeed.cli import main

    folder = tmp_path / "sv"
    fx.seeds_run().write(folder / "results.json")
    fx.run_result([fx.case("ann", "cpu", 44.0)], gpus=False).write(folder / "results-20261101-120000.json")
    # An archived run's report goes to a folder of its own, not over the current run's.
    assert main(["report", str(folder / "results-20261101-120000.json")]) == 0
    assert (folder / "results-20261101-120000-report" / "report.md").is_file() and not (folder / "report.md").exists()
    assert main(["report", str(folder)]) == 0 and "cnn" in (folder / "report.md").read_text()
    # At other prices than the file holds, the report needs a folder named for it.
    before = (folder / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", str(folder), "--price", "cpu=9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainspeed: error: ") and err.count("\n") == 1
    assert "results.json at the prices it holds; give --out FOLDER for the report at the new prices" in err
    assert (folder / "report.md").read_text() == before
    assert main(["report", str(folder), "--price", "cpu=9", "--out", str(tmp_path / "priced")]) == 0


def test_a_new_report_leaves_no_picture_of_an_earlier_one(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("# old\n\n![learning curves of the mlp:9](learning_mlp9.png)\n")
    (out / "learning_mlp9.png").write_bytes(b"an earlier run's picture")
    (out / "mine.png").write_bytes(b"the user's own")
    written = write_report(compare([(None, fx.seeds_run())]), out)
    assert not (out / "learning_mlp9.png").exists() and (out / "mine.png").exists()
    assert all(path.exists() for path in written)
