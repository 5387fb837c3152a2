"""The command line end to end, in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import SAMPLE_ARCHIVE, cifar_archive_bytes, make_cifar_files

SRC = Path(__file__).resolve().parents[1] / "src"


def trainspeed(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120",
                   "TRAINSPEED_DATA": str(cwd / "cache"), "HOME": str(cwd / "home"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "trainspeed", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_version(tmp_path):
    from trainspeed import __version__

    done = trainspeed("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"trainspeed {__version__}"


def test_devices_lists_the_cpu_and_says_why_there_is_no_gpu(tmp_path):
    done = trainspeed("devices", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0
    assert "cpu" in done.stdout and "threads used" in done.stdout and "precisions: fp32" in done.stdout
    if "no GPU" in done.stdout:  # the machine this runs on has none usable: the reason is given
        assert "CUDA" in done.stdout


def test_run_writes_valid_results_json(tmp_path):
    done = trainspeed("run", "--dataset", "synthetic", "--limit", "64", "--models", "mlp:1,mlp:3",
                      "--devices", "cpu", "--epochs", "2", "--batch-size", "16", "--synthetic-shape", "8x8x1",
                      "--out", "out [old]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "steady" in done.stdout and "mlp:3" in done.stdout and "Traceback" not in done.stderr
    # A folder name with brackets is printed as it is, not read as the terminal's markup.
    assert "results: out [old]/results.json" in done.stdout and "more files in out [old]" in done.stdout
    assert "after training: the network answering" in done.stdout and "answers one image of the mlp:3" in done.stdout
    data = json.loads((tmp_path / "out [old]" / "results.json").read_text())
    assert data["schema_version"] == 2 and data["config"]["batch_sizes"] == [16]
    assert data["dataset"]["name"] == "synthetic" and data["dataset"]["accuracy_meaningful"] is False
    assert data["environment"]["cpu"]["threads"] >= 1 and data["environment"]["torch"]
    for case, model in zip(data["cases"], ["mlp:1", "mlp:3"], strict=True):
        assert case["model"] == model and case["device"] == "cpu" and case["status"] == "ok"
        assert case["params"] == 64 * 128 + 128 + (2 if model == "mlp:3" else 0) * (128 * 128 + 128) + 1290
        assert len(case["epoch_s"]) == 2 and case["steps_per_epoch"] == 4
        assert case["first_epoch_s"] == case["epoch_s"][0] and case["steady_epoch_s"] == case["epoch_s"][1]
        assert case["images_per_s"] == pytest.approx(64 / case["steady_epoch_s"])
        assert case["speedup_vs_cpu"] == 1.0 and 0 <= case["test_accuracy"] <= 1
        assert case["peak_memory_bytes"] > 0 and len(case["history"]) == 2
        confusion = case["confusion_matrix"]
        assert len(confusion) == 10 and sum(map(sum, confusion)) == 10_000
        assert sum(confusion[i][i] for i in range(10)) / 10_000 == pytest.approx(case["test_accuracy"])
        assert len(case["sample_predictions"]) == 16 and all(0 <= p < 10 for p in case["sample_predictions"])
        answered = case["inference"]
        assert 0 < answered["latency_median_s"] <= answered["latency_p95_s"] and answered["images_per_s"] > 0
    assert len(data["dataset"]["sample_labels"]) == 16 and data["dataset"]["sample_images_b64"]
    # A second run keeps the first one's results beside its own.
    assert trainspeed("run", "--dataset", "synthetic", "--limit", "32", "--models", "mlp:1", "--devices", "cpu",
                      "--epochs", "1", "--synthetic-shape", "8x8x1", "--out", "out [old]", cwd=tmp_path).returncode == 0
    assert len(list((tmp_path / "out [old]").glob("results*.json"))) == 2


def corrupt_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "corrupt" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(cifar_archive_bytes(make_cifar_files())[:300])
    return archive


BAD_INPUTS = {
    "unknown model": (["--models", "resnet"], "unknown model 'resnet'; choose from: ann, cnn, mlp:N"),
    "unknown engine": (["--engines", "keras-mxnet"], "unknown engine 'keras-mxnet'; choose from: trainspeed, "
                       "keras-tensorflow, keras-jax, keras-torch"),
    "budget with keras": (["--engines", "keras-torch", "--time-budget", "5"],
                          "--time-budget works with the trainspeed engine only"),
    "unknown device": (["--devices", "tpu"], "unknown device 'tpu'; valid names: cpu, cuda, cuda:N, mps"),
    "unusable cuda": (["--devices", "cuda"], "cannot use 'cuda'"),
    "unknown data set": (["--dataset", "imagenet"], "unknown data set 'imagenet'; choose one of"),
    "missing data dir": (["--dataset", "cifar10", "--data-dir", "nowhere"], "--data-dir nowhere does not exist"),
    "corrupt archive": (["--dataset", "cifar10", "--data-dir", "corrupt"], "is corrupt or truncated (md5"),
    "no network": (["--dataset", "cifar10"], "cannot download cifar-10-python.tar.gz"),
    "bad epochs": (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    "thousands of threads": (["--cpu-threads", "100000"], "--cpu-threads 100000 is more than 4 per core"),
    "negative seed": (["--seed", "-1"], "--seed must be from 0 to 4294967295"),
    "seed past 2**64": (["--seed", str(2**64)], "--seed must be from 0 to 4294967295"),
    "nan time budget": (["--time-budget", "nan"], "--time-budget must be a number of seconds, got nan"),
    "infinite time budget": (["--time-budget", "inf"], "--time-budget must be a number of seconds, got inf"),
    "infinite dist timeout": (["--data-parallel", "cpu:2", "--dist-timeout", "inf"],
                              "--dist-timeout must be a number of seconds, got inf"),
    "a batch size twice": (["--batch-size", "16,16"], "a batch size is named twice in 16,16: name each once"),
    "empty out": (["--out", ""], "--out needs a folder name"),
    "out is a file": (["--out", "afile"], "--out afile is a file, not a folder; choose a folder"),
    "batch above the training set": (["--batch-size", "1000"],
                                     "--batch-size 1000 is larger than the training set, 32 images (with --limit)"),
    "synthetic images too big": (["--synthetic-shape", "4096x4096x3"], "synthetic images of 4096x4096x3 need"),
    "absurdly deep mlp": (["--models", "mlp:100000"], "hidden layers from 1 to 100"),
    "cnn on 1x1 images": (["--models", "cnn", "--synthetic-shape", "1x1x1"], "images of 1x1 are too small for the cnn"),
    "data dir symlink loop": (["--dataset", "cifar10", "--data-dir", "loop"], "loop is a symbolic link that loops"),
    "TRAINSPEED_DATA a file": (["--dataset", "cifar10"], "TRAINSPEED_DATA: afile is a file, not a folder"),
    "resume of a folder results.json": (["--resume", "broken"], "nothing to resume: broken/results.json is not"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_and_no_traceback(tmp_path, case, closed_port_url, monkeypatch, capsys):
    """In this process, through the command's own main (a subprocess per input cost a minute in all; the
    command as a process is tested above and below): exit 2, one line, nothing written."""
    from trainspeed.cli import main

    args, message = BAD_INPUTS[case]
    if case == "unusable cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a usable GPU")
    corrupt_archive(tmp_path)
    (tmp_path / "afile").write_text("mine")
    os.symlink("loop", tmp_path / "loop")
    (tmp_path / "broken" / "results.json").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    # A proxy where nothing listens makes this machine offline for the download, whatever its network.
    proxy = closed_port_url.rsplit("/", 1)[0]
    for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.setenv("no_proxy", "")
    # urlopen keeps the first opener it builds, proxies and all: this test's dead proxy must go with it.
    monkeypatch.setattr(urllib.request, "_opener", None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRAINSPEED_DATA", "afile" if case == "TRAINSPEED_DATA a file" else str(tmp_path / "cache"))
    code = main(["run", "--dataset", "synthetic", "--limit", "32", "--devices", "cpu", "--out", "out", *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("trainspeed: error: "), err
    assert message in lines[0]
    assert (tmp_path / "afile").read_text() == "mine" and not (tmp_path / "out" / "results.json").exists()


def test_models_saved_by_a_run_in_child_processes_predict_from_the_command_line(tmp_path):
    from PIL import Image

    done = trainspeed("run", "--dataset", "synthetic", "--limit", "64", "--models", "mlp:1", "--devices", "cpu",
                      "--epochs", "1", "--synthetic-shape", "8x8x1", "--save-models", "--no-inference",
                      "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    case = json.loads((tmp_path / "out" / "results.json").read_text())["cases"][0]
    assert case["model_files"] == ["models/mlp1-cpu-synthetic-b32-fp32.safetensors"] and case["inference"] is None
    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "red.jpg")
    done = trainspeed("predict", "out/" + case["model_files"][0], "red.jpg", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model"]["case"]["dataset"] == "synthetic" and answer["model"]["input_shape"] == [1, 8, 8]
    assert answer["images"][0]["changes"] == ["converted from RGB to L", "cropped to its central 480x480",
                                              "resized from 480x480 to 8x8"]


def test_bad_flag_value_is_refused_by_the_parser(tmp_path):
    done = trainspeed("run", "--synthetic-shape", "big", cwd=tmp_path)
    assert done.returncode == 2 and "expected HxWxC" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE_ARCHIVE.exists(), reason="the shared CIFAR-10 sample is not here")
def test_cnn_beats_chance_on_the_real_sample(tmp_path):
    done = trainspeed("run", "--dataset", "cifar10", "--data-dir", str(SAMPLE_ARCHIVE.parent), "--models", "cnn",
                      "--devices", "cpu", "--epochs", "2", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    case = data["cases"][0]
    assert data["dataset"]["matches_release"] is False and "not the official" in data["notes"][0]
    assert case["train_images"] == 5000 and case["test_images"] == 1000
    assert case["test_accuracy"] > 0.25  # chance is 0.10
    assert case["history"][1]["train_loss"] < case["history"][0]["train_loss"]


def test_a_worker_that_cannot_start_fails_its_cases_with_the_reason(tmp_path, monkeypatch):
    from trainspeed import isolation

    not_runnable = tmp_path / "python"
    not_runnable.write_text("")  # not executable
    monkeypatch.setattr(isolation.sys, "executable", str(not_runnable))
    result = trainspeed_api_run(tmp_path)
    case = result.cases[0]
    assert case.status == "failed"
    assert case.error.startswith(f"cannot start a process for the case ({not_runnable}: Permission denied)")


def trainspeed_api_run(tmp_path: Path):
    import trainspeed

    return trainspeed.run(models=["mlp:1"], dataset="synthetic", limit=32, devices=["cpu"], epochs=1,
                          synthetic_shape=(8, 8, 1), out=str(tmp_path / "out"))
