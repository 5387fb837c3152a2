"""Saved models: a trained network written by --save-models reads back and predicts the same."""

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import trainspeed
from trainspeed.errors import ModelFileError
from trainspeed.models import create_model
from trainspeed.reporting.build import write_report
from trainspeed.reporting.comparison import compare
from trainspeed.saved import FORMAT, file_digest, load_model, save_model


@pytest.fixture(scope="module")
def run_with_saved_models(tmp_path_factory):
    """A tiny cnn and ann trained by a real run, kept in memory and saved by --save-models."""
    out = tmp_path_factory.mktemp("saved")
    result = trainspeed.run(models=["cnn", "ann"], devices=["cpu"], dataset="synthetic", limit=64, epochs=1,
                            warmup_steps=1, out=str(out), keep_models=True, save_models=True, inference=False)
    return out, result


def test_each_case_records_its_saved_file(run_with_saved_models):
    out, result = run_with_saved_models
    for model in ("cnn", "ann"):
        case = result.case(model, "cpu")
        assert case.inference is None  # the run asked for none
        assert case.model_files == [f"models/{model}-cpu-synthetic-b32-fp32.safetensors"]
        assert (out / case.model_files[0]).is_file()
    write_report(compare([(None, result)]), out)
    assert "models/cnn-cpu-synthetic-b32-fp32.safetensors" in (out / "report.md").read_text()
    written = json.loads((out / "results.json").read_text())
    assert [case["model_files"] for case in written["cases"]] == [
        ["models/cnn-cpu-synthetic-b32-fp32.safetensors"], ["models/ann-cpu-synthetic-b32-fp32.safetensors"]]


@pytest.mark.parametrize("model", ["cnn", "ann"])
def test_saved_model_predicts_exactly_as_the_trained_one(run_with_saved_models, model):
    out, result = run_with_saved_models
    trained = result.trained(model, "cpu")
    saved = trainspeed.load_model(out / result.case(model, "cpu").model_files[0])
    images = np.random.default_rng(1).integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    before, after = trainspeed.predict(trained, images), trainspeed.predict(saved, images)
    # The weights come back bit for bit; the trained ann may run a oneDNN kernel the trial chose, whose sums
    # round differently from the stock kernel the loaded one runs, in the last bit of a float.
    for name, value in trained.network.state_dict().items():
        assert torch.equal(saved.spec.network.state_dict()[name], value.contiguous())
    np.testing.assert_allclose(after.probabilities, before.probabilities, rtol=1e-5, atol=1e-7)
    assert before.classes == after.classes and after.class_names == tuple(f"class {i}" for i in range(10))
    # The path itself is accepted too, and the description says where the network came from.
    assert trainspeed.predict(saved.path, images).classes == before.classes
    info = saved.info
    assert info.architecture == model and info.input_shape == (3, 32, 32) and info.trainspeed_version
    assert info.case["dataset"] == "synthetic" and info.case["device"] == "cpu" and info.case["epochs"] == 1
    assert info.output_activation == ("softmax" if model == "cnn" else "sigmoid")
    assert not saved.spec.network.training


def test_a_saved_file_holds_only_tensors_and_a_plain_header(tmp_path):
    torch.manual_seed(0)
    spec = create_model("mlp:2", (1, 8, 8), 3)
    spec.class_names = ("a", "b", "c")
    path = save_model(spec, tmp_path / "m.safetensors", {"model": "mlp:2"})
    length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8:8 + length])
    assert header["__metadata__"]["format"] == FORMAT
    assert set(header) - {"__metadata__"} == set(spec.network.state_dict())
    loaded = load_model(path)
    assert loaded.spec.class_names == ("a", "b", "c") and loaded.spec.name == "mlp:2"
    for name, value in spec.network.state_dict().items():
        assert torch.equal(loaded.spec.network.state_dict()[name], value)


def _saved(tmp_path):
    torch.manual_seed(0)
    spec = create_model("mlp:1", (1, 8, 8), 2)
    spec.class_names = ("dark", "bright")
    return save_model(spec, tmp_path / "good.safetensors")


def _rewrite_header(path, change, digest_again=True):
    """The file with its header changed; with `digest_again`, as a forger would: the digest made to match."""
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    change(header)
    if digest_again:
        tensors = load_file(str(path))
        header["__metadata__"]["digest"] = file_digest(header["__metadata__"]["trainspeed"], tensors)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + length:]


def _saved_with_nan(path):
    spec = load_model(path).spec
    with torch.no_grad():
        spec.network[1].weight[0, 0] = float("nan")
    return save_model(spec, path.with_name("nan.safetensors")).read_bytes()


def _edit_description(header, **changes):
    info = json.loads(header["__metadata__"]["trainspeed"])
    info.update(changes)
    header["__metadata__"]["trainspeed"] = json.dumps(info)


def _giant_shape(header):
    _edit_description(header, input_shape=[3, 100000, 100000])


def _names_as_string(header):
    _edit_description(header, class_names="ab")


def _other_shape(header):
    info = json.loads(header["__metadata__"]["trainspeed"])
    info["input_shape"] = [3, 8, 8]
    header["__metadata__"]["trainspeed"] = json.dumps(info)


BAD_FILES = {
    "missing": (lambda path: None, "no model file at"),
    "a folder": (lambda path: (path.with_name("bad.safetensors").mkdir(), None)[1], "is a folder; give one model file"),
    "not safetensors": (lambda path: b"\x89PNG\r\n\x1a\n not a model", "is not a model file trainspeed can read"),
    "truncated": (lambda path: path.read_bytes()[:-100], "is not a model file trainspeed can read"),
    "empty": (lambda path: b"", "is not a model file trainspeed can read"),
    "weights changed": (lambda path: path.read_bytes()[:-8] + b"\x00\x00\x80\x3f" * 2, "is damaged"),
    "description edited": (lambda path: _rewrite_header(path, _other_shape, digest_again=False), "was edited"),
    "weights not numbers": (lambda path: _saved_with_nan(path), "NaN or infinity"),
    "a described giant": (lambda path: _rewrite_header(path, _giant_shape), "does not fit its own description"),
    "class names a string": (lambda path: _rewrite_header(path, _names_as_string), "has a damaged description"),
    "description for another shape": (lambda path: _rewrite_header(path, _other_shape),
                                      "does not fit its own description (a mlp:1 for 3x8x8 images"),
    "description damaged": (lambda path: _rewrite_header(path, lambda h: h["__metadata__"].update(trainspeed="{")),
                            "has a damaged description"),
    "newer format": (lambda path: _rewrite_header(path, lambda h: h["__metadata__"].update(format_version="9")),
                     "this version reads format 1"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_model_file_raises_one_clear_error(tmp_path, case):
    make, message = BAD_FILES[case]
    good = _saved(tmp_path)
    bad = tmp_path / "bad.safetensors"
    content = make(good)
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(")) as raised:
        load_model(bad)
    assert "\n" not in str(raised.value)


def test_a_run_folder_points_to_the_networks_in_its_models_folder(tmp_path):
    (tmp_path / "models").mkdir()
    _saved(tmp_path / "models")
    with pytest.raises(ModelFileError, match=r"is a folder; give one model file in it, such as .*models.good"):
        load_model(tmp_path)


def test_a_safetensors_file_from_elsewhere_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="not a model trainspeed saved"):
        load_model(path)


def test_save_models_needs_an_output_folder():
    with pytest.raises(trainspeed.errors.ConfigError, match="^save_models writes into the run's folder"):
        trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=32, out=None, save_models=True)


def test_a_second_run_into_the_folder_keeps_the_first_runs_networks_with_its_results(tmp_path):
    settings = dict(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=64, epochs=1, warmup_steps=1,
                    synthetic_shape=(8, 8, 1), out=str(tmp_path), save_models=True, inference=False, isolate=False)
    trainspeed.run(seed=0, **settings)
    first = (tmp_path / "models" / "mlp1-cpu-synthetic-b32-fp32.safetensors").read_bytes()
    trainspeed.run(seed=1, **settings)
    archived = next(tmp_path.glob("results-*.json"))
    old = trainspeed.RunResult.read(archived).cases[0]
    stamp = archived.stem.removeprefix("results-")
    assert old.model_files == [f"models-{stamp}/mlp1-cpu-synthetic-b32-fp32.safetensors"]
    assert old.repeats[0].model_file == old.model_files[0]
    assert (tmp_path / old.model_files[0]).read_bytes() == first
    assert load_model(tmp_path / old.model_files[0]).info.case["seed"] == 0
    assert load_model(tmp_path / "models" / "mlp1-cpu-synthetic-b32-fp32.safetensors").info.case["seed"] == 1
