"""The seeds' Keras code as engines: set-up, the models, a real run per installed backend, the verdicts."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import trainspeed
from report_fixtures import case, dataset, environment
from trainspeed.config import RunConfig
from trainspeed.errors import ConfigError
from trainspeed.keras_engine import backends
from trainspeed.keras_engine.seeds import seed_arrays
from trainspeed.reporting.comparison import compare, engine_effects, headlines, pivots
from trainspeed.results import RunResult

installed = {engine: backends.missing(engine) is None for engine in backends.BACKENDS}


def test_a_cpu_case_selects_its_backend_and_hides_every_gpu():
    env = backends.process_environment("keras-jax", "cpu", {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert env["KERAS_BACKEND"] == "jax" and env["CUDA_VISIBLE_DEVICES"] == "" and env["JAX_PLATFORMS"] == "cpu"
    assert env["PATH"] == "/bin"
    gpu = backends.process_environment("keras-tensorflow", "cuda:0", {"CUDA_VISIBLE_DEVICES": "3"})
    # The parent has already narrowed a GPU case to its own GPU; the backend is left to find it.
    assert gpu["KERAS_BACKEND"] == "tensorflow" and gpu["CUDA_VISIBLE_DEVICES"] == "3" and "JAX_PLATFORMS" not in gpu


def test_a_missing_package_is_named_with_its_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    reason = backends.missing("keras-jax")
    assert reason is not None and "jax" in reason and 'pip install "trainspeed[keras-jax]"' in reason
    assert backends.engines_installed()["keras-jax"] == reason
    from rich.console import Console

    from trainspeed.reporting.terminal import engines_table

    console = Console(width=200, record=True)
    console.print(engines_table(backends.engines_installed()))
    assert 'pip install "trainspeed[keras-jax]"' in console.export_text()  # not read as markup


def test_unknown_or_repeated_engines_and_a_time_budget_with_keras_are_refused():
    with pytest.raises(ConfigError, match="unknown engine 'keras-mxnet'"):
        RunConfig(engines=["keras-mxnet"]).validate()
    with pytest.raises(ConfigError, match="named twice"):
        RunConfig(engines=["trainspeed", "trainspeed"]).validate()
    # From Python, the message names the keyword argument.
    with pytest.raises(ConfigError, match="^time_budget works with the trainspeed engine only"):
        trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=64, synthetic_shape=(8, 8, 1),
                       engines=["keras-torch"], time_budget_s=5, out=None)


def test_the_seed_arrays_are_channels_last_scaled_and_one_hot_for_the_ann():
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    labels = np.array([2, 0])
    x, y = seed_arrays(images, labels, 3, "ann")
    assert x.shape == (2, 2, 2, 3) and x.dtype == np.float32
    assert x[1, 0, 1, 2] == pytest.approx(images[1, 2, 0, 1] / 255)
    assert y.tolist() == [[0, 0, 1], [1, 0, 0]]
    _, sparse = seed_arrays(images, labels, 3, "cnn")
    assert sparse.tolist() == [2, 0]


@pytest.mark.skipif(not installed["keras-torch"], reason="keras is not installed")
def test_the_seeds_keras_models_have_trainspeeds_parameter_counts():
    import subprocess
    import sys

    # Keras takes its backend at its first import: a process of its own, as every Keras case has.
    code = ("import keras; from trainspeed.keras_engine.seeds import build_seed; "
            "print([build_seed(keras, m, s, 10).count_params() for m, s in "
            "(('ann', (32, 32, 3)), ('cnn', (32, 32, 3)), ('mlp:5', (28, 28, 1)))])")
    counted = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "KERAS_BACKEND": "torch"}).stdout.strip().splitlines()[-1]
    from trainspeed.models import create_model

    ours = [create_model(m, s, 10).params for m, s in (("ann", (3, 32, 32)), ("cnn", (3, 32, 32)),
                                                         ("mlp:5", (1, 28, 28)))]
    assert counted == str(ours) == "[12230010, 1667594, 167818]"


def _run_engines(engines: list[str], tmp_path, **settings):
    return trainspeed.run(models=["ann", "cnn"], devices=["cpu"], dataset="synthetic", limit=96, epochs=2,
                          batch_sizes=[32], engines=engines, out=str(tmp_path / "out"), **settings)


@pytest.mark.parametrize("engine", list(backends.BACKENDS))
def test_a_keras_engine_trains_the_seeds_models_for_real(engine, tmp_path):
    if not installed[engine]:
        pytest.skip(backends.missing(engine))
    result = _run_engines(["trainspeed", engine], tmp_path)
    for model in ("ann", "cnn"):
        keras_case = result.case(model, "cpu", engine=engine)
        ours = result.case(model, "cpu", engine="trainspeed")
        assert keras_case.ok, keras_case.error
        assert keras_case.params == ours.params == (12_230_010 if model == "ann" else 1_667_594)
        # The same counts behind every engine's FLOPs and MFU.
        assert keras_case.flops_per_step == ours.flops_per_step > 0
        assert len(keras_case.history) == 2 and len(keras_case.epoch_s) == 2
        assert keras_case.steady_epoch_s == keras_case.epoch_s[1] > 0
        assert 0 <= keras_case.test_accuracy <= 1 and keras_case.test_loss > 0
        assert sum(map(sum, keras_case.confusion_matrix)) == keras_case.test_images
        startup = keras_case.startup
        assert startup.import_s > 0 and startup.build_s > 0 and startup.first_step_s > 0
        assert keras_case.engine_versions["keras"].startswith("3.")
        assert backends.BACKENDS[engine] in keras_case.engine_versions
        assert any("cpu" in device.lower() for device in keras_case.engine_devices)
        assert keras_case.peak_memory_bytes > 0
        # Inference by the same rules as trainspeed's engine: predict_on_batch, one image and a batch of 1024.
        answered = keras_case.inference
        assert answered.latency_calls >= 20 and 0 < answered.latency_median_s <= answered.latency_p95_s
        assert answered.batch_size == 1024 and answered.images_per_s > 0 and answered.first_batch_s > 0
        assert keras_case.model_files == []  # only trainspeed's engine saves networks
    # Written and read back: the engine is part of each case's identity.
    again = RunResult.read(tmp_path / "out")
    engines = ("trainspeed", engine)
    assert {(c.model, c.engine) for c in again.cases} == {(m, e) for m in ("ann", "cnn") for e in engines}
    effects = engine_effects(compare([(None, again)]))
    assert {(effect.key.model, effect.engine) for effect in effects} == {("ann", engine), ("cnn", engine)}


def test_an_engine_that_is_not_installed_fails_its_cases_and_the_run_goes_on(tmp_path, monkeypatch):
    def absent(engine):
        return f'{engine} needs jax, not installed here: pip install "trainspeed[{engine}]"'

    monkeypatch.setattr(backends, "missing", absent)
    result = trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=64, epochs=1,
                            synthetic_shape=(8, 8, 1), engines=["keras-jax", "trainspeed"], out=str(tmp_path / "o"))
    failed = result.case("mlp:1", "cpu", engine="keras-jax")
    assert failed.status == "failed" and 'pip install "trainspeed[keras-jax]"' in failed.error
    assert result.case("mlp:1", "cpu", engine="trainspeed").ok


def _engines_result(keras_accuracy: float) -> RunResult:
    ours = case("cnn", "cpu", 25.0, accuracy=0.750)
    tf = case("cnn", "cpu", 40.0, accuracy=keras_accuracy, engine="keras-tensorflow")
    jax = case("cnn", "cpu", 50.0, accuracy=0.752, engine="keras-jax")
    return RunResult("0.3.0", "2026-11-23T00:00:00+00:00", {}, environment(gpus=False), dataset(),
                     cases=[ours, tf, jax])


def test_the_report_sets_trainspeeds_engine_beside_each_keras_backend_with_the_accuracy_verdict():
    comparison = compare([(None, _engines_result(0.748))])
    effects = {effect.engine: effect for effect in engine_effects(comparison)}
    tf = effects["keras-tensorflow"]
    assert tf.speedup == pytest.approx(1.6) and tf.fastest_keras and not tf.costs_accuracy
    assert tf.sentence.startswith("trainspeed's engine trains the cnn 1.60x faster than Keras/TensorFlow on the CPU "
                                  "(25.0 s vs 40.0 s per epoch; the fastest Keras backend here)")
    assert "within the sampling noise of 10,000 test images (75.0% vs 74.8%: +0.2 ± 1.2 points)" in tf.sentence
    assert effects["keras-jax"].speedup == pytest.approx(2.0) and not effects["keras-jax"].fastest_keras
    [pivot] = pivots(comparison)
    assert pivot.row_header == "engine" and [row for row, _ in pivot.rows] == ["trainspeed", "keras-tensorflow",
                                                                                 "keras-jax"]
    assert [values["cpu"] for _, values in pivot.rows] == [25.0, 40.0, 50.0]
    assert any("with Keras/JAX in 50.0 s" in sentence for sentence in headlines(comparison))


def test_the_report_says_when_the_engines_accuracies_differ_beyond_noise():
    effects = {e.engine: e for e in engine_effects(compare([(None, _engines_result(0.70))]))}
    assert effects["keras-tensorflow"].costs_accuracy
    assert "moves +5.0 ± 1.2 points from Keras/TensorFlow's (75.0% vs 70.0%)" in effects["keras-tensorflow"].sentence


def test_compare_matches_engines_across_machines():
    laptop = _engines_result(0.748)
    server = _engines_result(0.748)
    server.environment["hostname"] = "server"
    server.cases = [case("cnn", "cpu", 12.5, accuracy=0.75), case("cnn", "cpu", 20.0, engine="keras-tensorflow")]
    comparison = compare([("laptop", laptop), ("server", server)])
    rows = {key.engine: cells for key, cells in comparison.rows.items()}
    assert set(rows["keras-tensorflow"]) == {"laptop:cpu", "server:cpu"}
    assert rows["keras-tensorflow"]["server:cpu"].steady_epoch_s == 20.0
    assert comparison.speedup(next(k for k in comparison.rows if k.engine == "trainspeed"), "server:cpu") == 2.0
    assert any("keras-jax" in reason for reason in comparison.not_comparable)
    # Keras/JAX ran on the laptop alone: not compared across machines, still set beside the laptop's own engine.
    effects = {(effect.engine, effect.column): effect.speedup for effect in engine_effects(comparison)}
    assert effects == {("keras-tensorflow", "laptop:cpu"): 1.6, ("keras-jax", "laptop:cpu"): 2.0,
                       ("keras-tensorflow", "server:cpu"): 1.6}


@pytest.mark.skipif(not installed["keras-torch"], reason="keras is not installed")
def test_a_lone_keras_epoch_is_warmed_up_first_from_the_seeds_weights_put_back(tmp_path):
    import subprocess
    import sys

    code = """
import keras, numpy as np
from trainspeed.keras_engine.measure import warm_up
from trainspeed.keras_engine.seeds import build_seed
from trainspeed.timing import Timer
keras.utils.set_random_seed(0)
model = build_seed(keras, "mlp:1", (8, 8, 1), 3)
before = model.get_weights()
model.optimizer.build(model.trainable_variables)  # Adam's moments, made as zeros
state = [np.array(v) for v in model.optimizer.variables]
x = np.random.rand(70, 8, 8, 1).astype("float32"); y = np.random.randint(0, 3, 70)
timer = Timer()
trained = warm_up(keras, model, x, y, 32, 50, timer)
same = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
kept = all(np.array_equal(a, np.array(b)) for a, b in zip(state, model.optimizer.variables))
steps = int(np.array(model.optimizer.iterations))
print(trained, same, steps, len(state) > 2 and kept, len(timer.records["first step"]))
"""
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "KERAS_BACKEND": "torch"}).stdout.strip().splitlines()[-1]
    # Trained three steps (two whole batches and the last partial one), then put back as built.
    assert printed == "3 True 0 True 1"
    result = trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=96, epochs=1,
                            synthetic_shape=(8, 8, 1), engines=["keras-torch"], out=str(tmp_path / "out"),
                            inference=False)
    lone = result.case("mlp:1", "cpu", engine="keras-torch")
    assert lone.ok and len(lone.epoch_s) == 1 and lone.startup.first_step_s > 0 and lone.warmup_steps == 3
    assert not any("single keras-torch epoch" in warning for warning in lone.warnings)


def test_charts_and_tables_name_the_engine_wherever_engines_are_mixed(tmp_path):
    from trainspeed.reporting.build import write_report
    from trainspeed.reporting.charts import row_label

    laptop = _engines_result(0.748)
    comparison = compare([(None, laptop)])
    assert [row_label(key, comparison) for key in comparison.rows] == [
        "cnn\ntrainspeed's engine", "cnn\nKeras/TensorFlow", "cnn\nKeras/JAX"]
    markdown = write_report(comparison, tmp_path / "one")[0].read_text()
    for name in ("trainspeed's engine", "Keras/TensorFlow", "Keras/JAX"):
        assert f"learning curves of the cnn ({name})" in markdown
    server = _engines_result(0.748)
    server.environment["hostname"] = "server"
    markdown = write_report(compare([("laptop", laptop), ("server", server)]), tmp_path / "two")[0].read_text()
    assert "| model | data | batch | precision | engine | laptop:cpu s/epoch |" in markdown
    assert "| cnn | cifar10 | 32 | fp32 | keras-jax |" in markdown
