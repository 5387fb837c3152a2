"""The output folder: owned by one run, checked before training, every file whole or not at all."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from trainspeed import cli, output
from trainspeed.errors import ConfigError, ResultsError
from trainspeed.results import RunResult

SRC = Path(__file__).resolve().parents[1] / "src"
QUICK = ["run", "--dataset", "synthetic", "--limit", "64", "--models", "mlp:1", "--devices", "cpu", "--epochs", "1",
         "--synthetic-shape", "8x8x1"]


def launch(*args: str, cwd: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    return subprocess.Popen([sys.executable, "-m", "trainspeed", *args], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_loses_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    with FileLock(tmp_path / "out" / output.LOCK_FILE):  # a run holding the folder
        second = launch(*QUICK, "--out", "out", cwd=tmp_path)
        _, errors = second.communicate(timeout=120)
    assert second.returncode == 2
    assert errors.strip() == ("trainspeed: error: another trainspeed run is writing to out; wait for it to finish, "
                              "or give this run its own --out")
    assert not (tmp_path / "out" / "results.json").exists()


def test_two_runs_started_at_once_keep_one_whole_file_and_refuse_the_other(tmp_path):
    fx_old = RunResult("0.3.0", "earlier", {}, {})
    fx_old.write(tmp_path / "out" / "results.json")
    runs = [launch(*QUICK, "--seed", str(seed), "--out", "out", cwd=tmp_path) for seed in (1, 2)]
    codes = sorted(run.wait(timeout=300) for run in runs)
    assert codes == [0, 2]
    winner = next(run for run in runs if run.returncode == 0)
    seed = int(winner.args[winner.args.index("--seed") + 1])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["config"]["seed"] == seed and saved["cases"][0]["status"] == "ok"
    # The earlier run's file was kept beside the new one, not overwritten.
    kept = [path for path in (tmp_path / "out").glob("results-*.json")]
    assert len(kept) == 1 and json.loads(kept[0].read_text())["created"] == "earlier"


@pytest.mark.parametrize("out, message", [("", "--out needs a folder name"),
                                          ("afile", "--out afile is a file, not a folder"),
                                          ("loop", "--out loop is a symbolic link that loops back on itself")])
def test_an_unusable_out_is_refused_before_any_training(tmp_path, monkeypatch, out, message):
    (tmp_path / "afile").write_text("mine")
    os.symlink("loop", tmp_path / "loop")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        output.prepare_folder(out)
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_unwritable_out_says_to_choose_another_before_training(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(output.tempfile, "TemporaryFile", read_only)
    with pytest.raises(ResultsError, match=r"\(Read-only file system\): choose a folder you can write to with --out"):
        output.prepare_folder(tmp_path / "out")


def test_a_full_disk_when_writing_the_report_keeps_results_and_prints_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real = output.write_atomically

    def full_for_reports(path, content):
        if path.name.startswith("report"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, content)

    monkeypatch.setattr(output, "write_atomically", full_for_reports)
    monkeypatch.setattr("trainspeed.reporting.build.write_atomically", full_for_reports)
    code = cli.main([*QUICK, "--in-process", "--out", "out"])
    shown = capsys.readouterr()
    assert code == 2
    assert "mlp:1" in shown.out and "results: out/results.json" in shown.out  # the table, printed
    assert shown.err.strip().splitlines()[-1].startswith(
        "trainspeed: error: the results are safe in out/results.json, but the report was not written: cannot write "
        "out/report.md (No space left on device): free space on that disk")
    assert RunResult.read(tmp_path / "out" / "results.json").cases[0].ok
    assert not list((tmp_path / "out").glob(".report*"))  # no half-written temporary left behind


def test_a_write_that_fails_halfway_leaves_the_old_file(tmp_path, monkeypatch):
    path = output.write_atomically(tmp_path / "report.html", "old")

    def dies(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", dies)
    with pytest.raises(OSError):
        output.write_atomically(path, "new and much longer")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.fixture
def read_only_mount(tmp_path):
    """A read-only file system (a tmpfs mounted ro), where this machine lets us mount one."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a file system here (not root, or no mount)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_report_and_run_into_a_read_only_file_system_say_so_in_one_line(tmp_path, read_only_mount):
    from report_fixtures import seeds_run

    seeds_run().write(tmp_path / "results.json")
    for args in (["report", "results.json", "--out", "ro"], [*QUICK, "--out", "ro/run"]):
        done = subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "(Read-only file system): choose a folder you can write to with --out" in lines[0]
