"""A resume finishes a run on the same data, machine and software, or refuses and says why."""

import json

import pytest

import trainspeed
from conftest import make_cifar_files, write_cifar_folder
from trainspeed import execute, resume
from trainspeed.data import cifar10
from trainspeed.errors import ResultsError

QUICK = dict(devices=["cpu"], epochs=1, synthetic_shape=(8, 8, 1), limit=64)


def statuses(result) -> dict[str, str]:
    return {case.model: case.status for case in result.cases}


def test_a_run_that_fell_back_to_synthetic_data_resumes_on_it_when_cifar10_appears(
        tmp_path, isolated_data, monkeypatch, closed_port_url):
    monkeypatch.setattr(cifar10, "CIFAR10_URL", closed_port_url)  # offline
    monkeypatch.setenv("TRAINSPEED_FAULT", "kill:mlp:2")
    first = trainspeed.run(models=["mlp:1", "mlp:2"], dataset="auto", out=str(tmp_path / "out"), **QUICK)
    assert first.dataset.name == "synthetic" and statuses(first) == {"mlp:1": "ok", "mlp:2": "failed"}

    write_cifar_folder(isolated_data / "cifar10", make_cifar_files(per_batch=20))  # CIFAR-10 is here now
    monkeypatch.delenv("TRAINSPEED_FAULT")
    resumed = execute.resume_run(tmp_path / "out")
    assert statuses(resumed) == {"mlp:1": "ok", "mlp:2": "ok"}
    assert {case.dataset for case in resumed.cases} == {"synthetic"} and resumed.dataset.name == "synthetic"
    # Each case says which session measured it, and each session what it ran on.
    assert [case.session for case in resumed.cases] == [0, 1]
    assert len(resumed.sessions) == 2 and resumed.sessions[1]["hostname"] == resumed.environment["hostname"]


def test_a_resume_on_changed_data_refuses(tmp_path, isolated_data, monkeypatch):
    folder = write_cifar_folder(tmp_path / "data", make_cifar_files(per_batch=20, seed=1))
    monkeypatch.setenv("TRAINSPEED_FAULT", "kill:mlp:2")
    trainspeed.run(models=["mlp:1", "mlp:2"], dataset="cifar10", data_dir=str(folder), batch_sizes=[16],
                   out=str(tmp_path / "out"), devices=["cpu"], epochs=1)
    for name, content in make_cifar_files(per_batch=20, seed=2).items():  # other images, in the same place
        (folder / name).write_bytes(content)
    monkeypatch.delenv("TRAINSPEED_FAULT")
    with pytest.raises(ResultsError, match="the data set has changed since .* a resume must train on the same data"):
        execute.resume_run(tmp_path / "out")


def test_a_resume_on_other_software_refuses_and_names_the_difference(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPEED_FAULT", "kill:mlp:2")
    trainspeed.run(models=["mlp:1", "mlp:2"], dataset="synthetic", out=str(tmp_path), **QUICK)
    path = tmp_path / "results.json"
    data = json.loads(path.read_text())
    data["environment"]["torch"] = "1.0.0"
    data["environment"]["cpu"]["model"] = "Another CPU"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError) as error:
        execute.resume_run(tmp_path)
    message = str(error.value)
    assert "measured on another machine or software (cpu.model: Another CPU -> " in message
    assert "torch: 1.0.0 -> " in message and "trainspeed compare" in message


def test_a_resume_by_another_version_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPEED_FAULT", "kill:mlp:1")
    trainspeed.run(models=["mlp:1"], dataset="synthetic", out=str(tmp_path), **QUICK)
    path = tmp_path / "results.json"
    path.write_text(path.read_text().replace(f'"trainspeed_version": "{trainspeed.__version__}"',
                                             '"trainspeed_version": "0.0.1"'))
    with pytest.raises(ResultsError, match="written by trainspeed 0.0.1, this is"):
        execute.resume_run(tmp_path)


def test_resume_where_results_json_is_a_folder_is_one_line(tmp_path):
    (tmp_path / "results.json").mkdir()
    with pytest.raises(ResultsError, match="nothing to resume: .*results.json is not a results file"):
        execute.resume_run(tmp_path)


JOB = {"torchrun": {"world_size": 2, "nodes": 1}}


@pytest.mark.parametrize("recorded, current, message", [
    # torchrun had set OMP_NUM_THREADS=1 and split the cores: this is the launcher, not another machine.
    (JOB, {}, "was measured by a torchrun job of 2 ranks on 1 machine: finish it the same way, with the same "
              "torchrun command on every machine and `-m trainspeed run --resume "),
    ({}, JOB, "was measured without torchrun: finish it without torchrun, with `trainspeed run --resume "),
    (JOB, {"torchrun": {"world_size": 4, "nodes": 2}},
     "was measured by a torchrun job of 2 ranks on 1 machine, this is a torchrun job of 4 ranks on 2 machines"),
])
def test_a_run_is_finished_by_the_launcher_that_started_it(tmp_path, recorded, current, message):
    path = tmp_path / "results.json"
    with pytest.raises(ResultsError) as refused:
        resume.check_launcher({"cpu": {"threads": 1}, **recorded}, {"cpu": {"threads": 2}, **current}, path)
    assert str(refused.value).startswith(f"{path} {message}")
    resume.check_launcher(JOB, dict(JOB), path)  # the same job: nothing to say
    # The job is the launcher's check; the machine's check does not see it.
    assert resume.differences({**JOB, "torch": "2.13.0"}, {"torch": "2.13.0"}) == []
