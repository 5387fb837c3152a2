"""Trustworthy runs: faults injected into real child processes, and what survives them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trainspeed
from trainspeed import execute, isolation, output, plan
from trainspeed.cases import CaseKey, Workload
from trainspeed.errors import ResultsError
from trainspeed.fold import fold_case
from trainspeed.reporting.build import write_report
from trainspeed.reporting.comparison import compare, headlines
from trainspeed.results import CaseResult, Failure, Measurement, RunResult

SRC = Path(__file__).resolve().parents[1] / "src"
# 3,200 images at batch 32: 100 steps, so a fault at the first progress report (step 50) is mid-epoch.
QUICK = dict(dataset="synthetic", limit=3200, devices=["cpu"], epochs=2, synthetic_shape=(8, 8, 1))
CNN = CaseKey(Workload("cnn", "synthetic", (3, 32, 32), 50_000, 10_000, 32, "fp32"), "cpu")


def statuses(result: RunResult) -> dict[str, str]:
    return {case.model: case.status for case in result.cases}


def check_file_and_report(directory: Path) -> RunResult:
    saved = RunResult.read(directory / "results.json")
    write_report(compare([(None, saved)]), directory / "report")
    assert (directory / "report" / "report.html").is_file()
    return saved


def test_a_child_killed_mid_epoch_costs_only_its_case_and_resume_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPEED_FAULT", "kill:mlp:1")
    result = trainspeed.run(models=["mlp:1", "mlp:2"], out=str(tmp_path), **QUICK)
    killed, fine = result.cases
    assert killed.status == "failed" and "killed by SIGKILL" in killed.error
    assert fine.ok and fine.steady_epoch_s > 0
    saved = check_file_and_report(tmp_path)
    assert statuses(saved) == {"mlp:1": "failed", "mlp:2": "ok"}

    monkeypatch.delenv("TRAINSPEED_FAULT")
    resumed = execute.resume_run(tmp_path)
    assert statuses(resumed) == {"mlp:1": "ok", "mlp:2": "ok"}
    # The finished case was kept as it was, not measured again.
    assert resumed.case("mlp:2", "cpu").epoch_s == fine.epoch_s
    assert statuses(check_file_and_report(tmp_path)) == {"mlp:1": "ok", "mlp:2": "ok"}


def test_a_child_that_raises_is_recorded_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPEED_FAULT", "raise:mlp:2")
    result = trainspeed.run(models=["mlp:2", "mlp:1"], out=str(tmp_path), **QUICK)
    assert result.cases[0].status == "failed"
    assert "exit status 1: RuntimeError: injected fault in the mlp:2" in result.cases[0].error
    assert result.cases[1].ok
    check_file_and_report(tmp_path)


def test_out_of_memory_in_a_child_finds_the_largest_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPEED_FAULT", "oom-above:100")
    result = trainspeed.run(models=["mlp:1"], batch_sizes=[32, 1000], find_max_batch=True, out=str(tmp_path),
                            **{**QUICK, "epochs": 1})
    fits, too_big = result.cases
    assert fits.ok and fits.max_batch_size is None
    assert too_big.status == "failed" and too_big.max_batch_size == 100
    assert "out of memory on cpu at batch size 1000" in too_big.error
    assert "the largest batch that fits is 100" in too_big.error and too_big.memory_total_bytes > 0
    check_file_and_report(tmp_path)


def test_data_gone_before_a_case_fails_that_case_with_the_reason(tmp_path):
    config = plan.make_config(models=["mlp:1"], **QUICK)
    data, _ = plan.load_data(config)
    from dataclasses import replace

    vanished = replace(data, name="cifar10", source=str(tmp_path / "removed"))
    key = CaseKey(plan.workload(vanished, "mlp:1", 32, "fp32"), "cpu")
    from trainspeed.progress import EpochProgress

    with EpochProgress() as progress:
        outcome = isolation.measure_in_child(config, key, 1, vanished, progress)
    assert isinstance(outcome, Failure) and "removed does not exist" in outcome.reason


def test_results_that_cannot_be_written_say_so_and_keep_the_last_copy(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    original_write = RunResult.write
    calls = []

    def disk_fills_up(self, target):
        calls.append(target)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return original_write(self, target)

    monkeypatch.setattr(RunResult, "write", disk_fills_up)
    with pytest.raises(ResultsError, match="No space left on device.*trainspeed run --resume"):
        trainspeed.run(models=["mlp:1", "mlp:2"], out=str(tmp_path), isolate=False, **QUICK)
    assert statuses(RunResult.read(path)) == {"mlp:1": "ok"}  # the first case, intact


def test_a_crash_while_writing_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    result = RunResult("0.1.0", "now", {}, {}, cases=[CaseResult("ann", "cpu", "synthetic", 32, steady_epoch_s=1.0)])
    path = result.write(tmp_path / "results.json")
    result.cases.append(CaseResult("cnn", "cpu", "synthetic", 32, steady_epoch_s=2.0))

    def dies_half_way(descriptor):
        os.ftruncate(descriptor, 20)  # the new content half on disk, when the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(output.os, "fsync", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        result.write(path)
    monkeypatch.undo()
    assert [case.model for case in RunResult.read(path).cases] == ["ann"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120", **(env or {})}
    # Restore Ctrl-C's default in the child: under a background job it would be ignored.
    return subprocess.Popen([sys.executable, "-m", "trainspeed", *args], cwd=cwd, env=environment,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_finished_case(path: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if any(case["status"] == "ok" for case in json.loads(path.read_text())["cases"]):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("no case finished in time")


def test_ctrl_c_keeps_finished_cases_exits_130_and_resume_completes(tmp_path):
    args = ["run", "--dataset", "synthetic", "--limit", "1600", "--devices", "cpu", "--synthetic-shape", "16x16x3",
            "--models", "mlp:1,cnn", "--epochs", "30", "--out", "out"]
    process = cli(*args, cwd=tmp_path)
    wait_for_finished_case(tmp_path / "out" / "results.json")
    time.sleep(1.0)  # the cnn is training now
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=180)
    assert process.returncode == 130, errors
    assert "Traceback" not in errors and "interrupted" in errors
    saved = check_file_and_report(tmp_path / "out")
    assert statuses(saved) == {"mlp:1": "ok", "cnn": "interrupted"}

    done = subprocess.run([sys.executable, "-m", "trainspeed", "run", "--resume", "out"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "already measured" in done.stderr
    final = check_file_and_report(tmp_path / "out")
    assert statuses(final) == {"mlp:1": "ok", "cnn": "ok"}
    assert final.case("mlp:1", "cpu").epoch_s == saved.case("mlp:1", "cpu").epoch_s


def wait_for_line(stream, *words: str) -> list[str]:
    """The lines `stream` printed up to the first holding every word (a plain log's epoch lines are
    printed as each epoch ends): the event a test waits on, instead of a sleep."""
    seen = []
    for line in stream:
        seen.append(line)
        if all(word in line for word in words):
            return seen
    raise AssertionError("the run ended before printing " + " ".join(words) + ":\n" + "".join(seen[-20:]))


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path, stop=signal.SIGTERM, code=143):
    """What `timeout`, docker stop, systemd and Slurm send: the running case is marked interrupted, the
    finished one kept and reported, and the run finished with --resume. SIGHUP (a closing terminal) takes
    the same path: tests/test_stopping.py."""
    args = ["run", "--dataset", "synthetic", "--limit", "1600", "--devices", "cpu", "--synthetic-shape", "16x16x3",
            "--models", "mlp:1,cnn", "--epochs", "30", "--no-inference", "--out", "out"]
    process = cli(*args, cwd=tmp_path)
    wait_for_line(process.stderr, "cnn on cpu", "epoch 1/30:")  # the cnn is training now
    process.send_signal(stop)
    _, errors = process.communicate(timeout=180)
    assert process.returncode == code, errors
    errors = " ".join(errors.split())
    assert "Traceback" not in errors and f"interrupted by {signal.Signals(stop).name}" in errors
    assert "(report: out/report.html)" in errors and "trainspeed run --resume out" in errors
    saved = RunResult.read(tmp_path / "out")
    assert statuses(saved) == {"mlp:1": "ok", "cnn": "interrupted"}
    assert saved.cases[1].error == f"the run was stopped by {signal.Signals(stop).name}"
    assert "mlp:1" in (tmp_path / "out" / "report.md").read_text()


def test_resume_refuses_a_truncated_results_file_in_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text('{"schema_version": 1, "cases": [{"model": "ann"')
    done = subprocess.run([sys.executable, "-m", "trainspeed", "run", "--resume", "out"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "results.json is not valid JSON (truncated?)" in done.stderr


def test_repeats_are_kept_with_their_median_and_spread(tmp_path):
    result = trainspeed.run(models=["mlp:1"], repeats=3, out=str(tmp_path), **QUICK)
    case = result.cases[0]
    steady = [r.steady_epoch_s for r in case.repeats]
    assert [r.repeat for r in case.repeats] == [1, 2, 3] and case.spread_of == "repeats"
    assert case.steady_epoch_s == sorted(steady)[1]
    assert case.steady_min_s == min(steady) and case.steady_max_s == max(steady)
    markdown = write_report(compare([(None, result)]), tmp_path / "report")[0].read_text()
    assert "steady s/epoch of each repeat" in markdown and "over 3 repeats" in markdown


def test_noisy_spread_is_flagged_in_table_and_report(tmp_path):
    key = CNN
    repeats = [Measurement(i + 1, steady, epoch_s=(12.0, steady), first_epoch_s=12.0)
               for i, steady in enumerate((10.0, 11.0, 12.0))]
    partial = fold_case(key, repeats[:2], repeats_wanted=3, epochs=2)
    assert partial.status == "partial" and partial.steady_epoch_s == 10.5
    case = fold_case(key, repeats, repeats_wanted=3, epochs=2)
    assert case.status == "ok" and case.steady_epoch_s == 11.0 and case.noisy and case.repeats == repeats
    assert case.steady_cv == pytest.approx(0.0742, abs=1e-4)  # pstdev 0.8165 / mean 11
    assert case.images_per_s == pytest.approx(50_000 / 11.0)
    quiet = fold_case(key, [Measurement(1, 10.05, epoch_s=(12.0, 10.0, 10.1, 10.05), first_epoch_s=12.0)],
                      repeats_wanted=1, epochs=4)
    assert quiet.spread_of == "epochs" and not quiet.noisy
    result = RunResult("0.1.0", "now", {}, {}, cases=[case, quiet])
    markdown = write_report(compare([(None, result)]), tmp_path)[0].read_text()
    assert "| 10.00-12.00 | 7.4%<br>over 3 repeats<br>noisy |" in markdown and "is not a result" in markdown

    from rich.console import Console

    from trainspeed.reporting.terminal import results_table

    console = Console(width=140, record=True)
    console.print(results_table(result))
    assert "│          11.00 │ 7.4% noisy │" in console.export_text()


def test_time_budget_projects_and_labels_the_figure(tmp_path):
    result = trainspeed.run(models=["cnn"], devices=["cpu"], dataset="synthetic", limit=6400, epochs=3,
                            time_budget_s=0.5, out=str(tmp_path / "run"), isolate=False, save_models=True)
    case = result.cases[0]
    assert case.ok and case.projected and case.measured_steps >= 1
    # Its answering speed is measured; a network cut short by the budget is not saved as a trained one.
    assert case.inference.latency_calls >= 20 and case.model_files == []
    assert "not saved (--save-models): the time budget cut its training short" in case.warnings
    assert not (tmp_path / "run" / "models").exists()
    assert case.epoch_s == [] and case.first_epoch_s is None and case.test_accuracy is None
    assert case.images_per_s == pytest.approx(6400 / case.steady_epoch_s)
    markdown = write_report(compare([(None, result)]), tmp_path)[0].read_text()
    assert f"projected from {case.measured_steps} steps" in markdown and "has no accuracy" in markdown
    # The headline says so too, not only the table.
    assert any("per epoch (" in line and f"projected by --time-budget from the CPU's {case.measured_steps:,} steps"
               in line for line in headlines(compare([(None, result)])))


def test_a_generous_budget_runs_the_case_in_full():
    result = trainspeed.run(models=["mlp:1"], time_budget_s=600, out=None, isolate=False, **QUICK)
    case = result.cases[0]
    assert not case.projected and len(case.epoch_s) == 2 and case.test_accuracy is not None


def test_exit_descriptions():
    assert isolation.describe_exit(-9, "") == ("the case's process was killed by SIGKILL (often the kernel's "
                                               "out-of-memory killer: try a smaller --batch-size)")
    assert isolation.describe_exit(-11, "") == "the case's process was killed by SIGSEGV (a crash in native code)"
    assert isolation.describe_exit(1, "ValueError: x") == ("the case's process failed with exit status 1: "
                                                           "ValueError: x")


def test_other_processes_loading_the_cpu_are_noticed():
    import torch

    from trainspeed.machine import validity

    before = validity.Snapshot(wall_s=0.0, own_cpu_s=0.0, machine=(1000, 5000), throttle_count=3, load_average=2.0)
    ticks = os.sysconf("SC_CLK_TCK")
    # 10 s of wall time; the machine was busy for 30 s of CPU, 20 s of which were ours: 1 core of others.
    after = validity.Snapshot(wall_s=10.0, own_cpu_s=20.0, machine=(1000 + 30 * ticks, 5000 + 40 * ticks),
                              throttle_count=5, load_average=3.1)
    assert validity.other_cpu_load(before, after) == pytest.approx(1.0)
    cpu = torch.device("cpu")
    assert validity.under_load(cpu, before, after) and not validity.under_load(torch.device("cuda"), before, after)
    found = validity.warnings_for(cpu, cpu, before, after)
    assert found[0] == ("other processes used 1.0 cores during this CPU case (load average 2.0 -> 3.1); "
                        "its time is too high")
    assert found[1] == "the CPU was thermally throttled 2 times during this case: clocks fell"
    assert validity.warnings_for(torch.device("cuda"), cpu, before, before, gpu_utilization=0.2) == [
        "asked for cuda but the model ran on cpu: this is not a cuda figure",
        "the GPU was busy only 20% of the time: the case is bound by data or the host, not by the GPU"]


def test_resume_keeps_an_interrupted_cases_finished_repeats_and_redoes_failures():
    key = CNN
    first = Measurement(1, 1.0, epoch_s=(2.0, 1.0), first_epoch_s=2.0)
    interrupted = fold_case(key, [first], repeats_wanted=2, epochs=2, interrupted="SIGTERM")
    assert interrupted.status == "interrupted" and interrupted.steady_epoch_s == 1.0
    assert interrupted.error == "the run was stopped by SIGTERM"
    assert plan.repeats_to_keep(interrupted) == [first]
    failed = fold_case(key, [], repeats_wanted=2, epochs=2, failure=Failure("out of memory"))
    assert failed.status == "failed" and failed.error == "out of memory" and plan.repeats_to_keep(failed) == []
    finished = fold_case(key, [first, first], repeats_wanted=2, epochs=2)
    assert finished.ok and plan.repeats_to_keep(finished) is None and plan.repeats_to_keep(None) == []


def test_start_up_is_measured_part_by_part(tmp_path):
    isolated = trainspeed.run(models=["mlp:1"], out=str(tmp_path), **QUICK).cases[0].startup
    # A fresh process pays Python and the torch import: far more than the rest here.
    assert 0.2 < isolated.process_s < 120 and isolated.process_s > isolated.build_s
    assert isolated.data_s > 0 and isolated.build_s > 0 and isolated.first_step_s > 0
    assert isolated.steady_step_s > 0 and isolated.first_step_extra_s >= 0
    assert isolated.tuning_s > 0  # the CPU's kernels, chosen by a trial before any timed step
    assert isolated.total_s == pytest.approx(isolated.process_s + isolated.data_s + isolated.build_s
                                             + isolated.tuning_s + isolated.first_step_extra_s)
    saved = RunResult.read(tmp_path / "results.json").cases[0].startup
    assert saved == isolated
    markdown = write_report(compare([(None, RunResult.read(tmp_path / "results.json"))]),
                            tmp_path / "report")[0].read_text()
    assert "### Start-up cost" in markdown and "| Python + imports s |" in markdown
    in_process = trainspeed.run(models=["mlp:1"], out=None, isolate=False, **QUICK).cases[0].startup
    assert in_process.process_s is None and in_process.data_s > 0 and in_process.first_step_s > 0


def test_a_child_ends_soon_after_its_parent_is_killed():
    waiting, held_open = os.pipe()  # the child's job never arrives, and its input never closes
    parent_code = ("import subprocess, sys, time; fd = int(sys.argv[1]); "
                   "child = subprocess.Popen([sys.executable, '-m', 'trainspeed.isolation'], stdin=fd, "
                   "pass_fds=(fd,)); "
                   "print(child.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, str(waiting)], pass_fds=(waiting,),
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    child = int(parent.stdout.readline())
    try:
        time.sleep(1.0)
        assert _running(child)  # alive while its parent is
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(child):
            time.sleep(0.1)
        if _running(child):
            pytest.fail("the child outlived its killed parent by 10 s")
    finally:
        os.close(waiting)
        os.close(held_open)


def _running(pid: int) -> bool:
    """Whether `pid` still runs; one that ended but waits to be reaped (a zombie, as an orphan may be
    where nobody reaps) does not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_a_difference_inside_overlapping_noisy_ranges_is_said_to_be_no_result():
    noisy = fold_case(CNN, [Measurement(i + 1, steady, epoch_s=(12.0, steady), first_epoch_s=12.0)
                            for i, steady in enumerate((10.0, 11.0, 12.0))], repeats_wanted=3, epochs=2)

    def run(steadies: tuple[float, ...], when: str) -> RunResult:
        repeats = [Measurement(i + 1, steady, epoch_s=(12.0, steady), first_epoch_s=12.0)
                   for i, steady in enumerate(steadies)]
        return RunResult("0.3.0", when, {}, {}, cases=[fold_case(CNN, repeats, repeats_wanted=3, epochs=2)])

    first = RunResult("0.3.0", "then", {}, {}, cases=[noisy])
    overlapping = headlines(compare([("a", first), ("b", run((11.5, 11.6, 11.7), "now"))]))
    assert overlapping[0].endswith("(11.6 s vs 11.0 s per epoch; their steady epochs ranged 11.5 s to 11.7 s and "
                                   "10.0 s to 12.0 s, overlapping, so the difference is not a result).")
    apart = headlines(compare([("a", first), ("b", run((6.0, 6.1, 6.2), "now"))]))
    assert apart[0].endswith("(6.10 s vs 11.0 s per epoch).")


def test_a_failed_later_repeat_keeps_the_others_and_the_run_measures_the_rest(tmp_path, monkeypatch):
    """--repeats 3 with repeat 2 killed: the case was failed, repeat 3 never ran, and --resume re-ran all three."""
    real, attempted = execute._measure, []

    def killed_second(config, key, kept, repeat, *args):
        attempted.append(repeat)
        if repeat == 2:
            return Failure("the case's process was killed by SIGKILL")
        return real(config, key, kept, repeat, *args)

    monkeypatch.setattr(execute, "_measure", killed_second)
    result = trainspeed.run(models=["mlp:1"], repeats=3, out=str(tmp_path), isolate=False, **QUICK)
    (case,) = result.cases
    assert attempted == [1, 2, 3] and case.ok and [r.repeat for r in case.repeats] == [1, 3]
    assert "1 of 3 repeats failed (the case's process was killed by SIGKILL); the figures rest on the 2 that " \
           "finished" in case.warnings
    assert plan.repeats_to_keep(RunResult.read(tmp_path).cases[0]) is None  # --resume has nothing to re-run
    # The first repeat failing still ends the case: the next would most likely fail the same way.
    monkeypatch.setattr(execute, "_measure", lambda *args: Failure("out of memory"))
    (failed,) = trainspeed.run(models=["mlp:1"], repeats=3, out=None, isolate=False, **QUICK).cases
    assert failed.status == "failed" and failed.error == "out of memory"
