"""Inference after training: the rules (pure, with an injected clock), the engine's calls, and the figures in
results, tables, reports and comparisons."""

import json

import numpy as np
import pytest
import torch

import trainspeed
from trainspeed import inference
from trainspeed.engine.inference import measure_inference
from trainspeed.models import create_model
from trainspeed.reporting.answering import inference_headlines
from trainspeed.reporting.build import write_report
from trainspeed.reporting.comparison import compare
from trainspeed.results import InferenceFigures
from trainspeed.stats import percentile
from trainspeed.timing import Timer


def test_percentile_interpolates_as_numpy_does():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.5]
    for fraction in (0.0, 0.1, 0.5, 0.9, 0.95, 1.0):
        assert percentile(values, fraction) == pytest.approx(np.percentile(values, fraction * 100))
    assert percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


class SteppingClock:
    """A clock that moves `step` seconds at every reading: each timed call (two readings) lasts `step`."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_time_calls_keeps_the_first_apart_and_stops_by_count_or_time():
    calls = []
    timer = Timer(clock=SteppingClock(0.001))
    first, times = inference.time_calls(timer, "x", calls.append, most=200, least=20, seconds=0.3)
    assert first == pytest.approx(0.001) and len(times) == 200 and calls == list(range(201))
    # Slow calls: the time limit ends it, but never before `least` calls.
    first, times = inference.time_calls(Timer(clock=SteppingClock(0.05)), "x", lambda n: None, most=200, least=20,
                                        seconds=0.3)
    assert len(times) == 20
    first, times = inference.time_calls(Timer(clock=SteppingClock(0.05)), "x", lambda n: None, most=200, least=3,
                                        seconds=0.3)
    assert len(times) == 6  # 6 x 0.05 s reaches 0.3 s


def test_figures_from_timed_calls():
    figures = inference.figures((0.5, [0.001, 0.002, 0.003, 0.004]), 1024, (0.9, [0.1, 0.1, 0.2]))
    assert figures.latency_median_s == pytest.approx(0.0025) and figures.latency_calls == 4
    assert figures.latency_p95_s == pytest.approx(0.00385) and figures.first_latency_s == 0.5
    assert figures.images_per_s == pytest.approx(1024 * 3 / 0.4) and figures.batch_calls == 3
    assert figures.first_batch_s == 0.9 and figures.note is None
    assert inference.describe(figures) == "one image in 2.5 ms (p95 3.85 ms); 7,680 images/s at batch 1024"


def test_a_batch_out_of_memory_is_halved_and_said():
    tried = []

    def batch_answerer(size):
        tried.append(size)
        if size > 256:
            raise MemoryError(f"{size} images do not fit")
        return lambda: None

    figures = inference.measure(Timer(clock=SteppingClock(0.01)), lambda n: None, batch_answerer,
                                lambda error: isinstance(error, MemoryError))
    assert tried == [1024, 512, 256] and figures.batch_size == 256
    assert figures.note == "batch 1024 ran out of memory; throughput measured at batch 256"
    with pytest.raises(RuntimeError, match="a bug"):  # anything else is our bug, not memory
        inference.measure(Timer(), lambda n: None, lambda size: (_ for _ in ()).throw(RuntimeError("a bug")),
                          lambda error: isinstance(error, MemoryError))
    nothing = inference.measure(Timer(clock=SteppingClock(0.01)), lambda n: None,
                                lambda size: (_ for _ in ()).throw(MemoryError()), lambda e: True)
    assert nothing.images_per_s is None and nothing.batch_size is None and "no batch of images fitted" in nothing.note


def test_measure_inference_times_the_real_network_and_leaves_it_unchanged():
    torch.manual_seed(0)
    spec = create_model("cnn", (3, 32, 32), 10)
    images = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    before = {name: value.clone() for name, value in spec.network.state_dict().items()}
    figures = measure_inference(spec, images, "fp32", torch.device("cpu"))
    assert inference.MIN_CALLS <= figures.latency_calls <= inference.LATENCY_CALLS
    assert 0 < figures.latency_median_s <= figures.latency_p95_s and figures.first_latency_s > 0
    assert figures.batch_size == 1024 and figures.batch_calls >= inference.MIN_BATCH_CALLS
    # A batch of 1024 cannot take less time per image than... any sane CPU: bounded both ways.
    assert 100 < figures.images_per_s < 1e7
    assert all(torch.equal(value, before[name]) for name, value in spec.network.state_dict().items())


@pytest.fixture(scope="module")
def answered_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("answered")
    result = trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=64, epochs=1,
                            warmup_steps=1, synthetic_shape=(8, 8, 1), out=str(out))
    return out, result


def test_each_case_records_its_inference_figures(answered_run):
    out, result = answered_run
    case = result.case("mlp:1", "cpu")
    assert isinstance(case.inference, InferenceFigures) and case.inference.images_per_s > 0
    written = json.loads((out / "results.json").read_text())["cases"][0]["inference"]
    assert written["latency_median_s"] == case.inference.latency_median_s and written["batch_size"] == 1024
    again = trainspeed.RunResult.read(out / "results.json").case("mlp:1", "cpu")
    assert again.inference == case.inference
    write_report(compare([(None, result)]), out)
    report = (out / "report.md").read_text()
    assert "After training: inference" in report and "1 image p95" in report
    assert "The CPU answers one image of the mlp:1 in " in report


def _with(case, **figures):
    from dataclasses import replace

    return replace(case, inference=InferenceFigures(**{"latency_p95_s": 0.002, "latency_calls": 200, **figures}))


def test_headline_against_the_cpu_and_across_machines(answered_run):
    _, result = answered_run
    from dataclasses import replace

    cpu = _with(result.cases[0], latency_median_s=0.0013, batch_size=1024, images_per_s=5200.0)
    gpu = replace(_with(result.cases[0], latency_median_s=0.00021, batch_size=1024, images_per_s=410_000.0),
                  device="cuda:0", device_name="NVIDIA H100")
    run = replace(result, cases=[cpu, gpu])
    assert inference_headlines(compare([(None, run)])) == [
        "The NVIDIA H100 answers one image of the mlp:1 in 0.210 ms vs 1.30 ms on the CPU; "
        "at batch 1024 it classifies 410,000 images/s vs 5,200."]
    laptop = replace(result, cases=[replace(cpu, inference=replace(cpu.inference, latency_median_s=0.0026,
                                                                   images_per_s=2600.0))])
    sentences = inference_headlines(compare([("server", run), ("laptop", laptop)], "laptop:cpu"))
    assert "server:cpu (" in sentences[0] and "in 1.30 ms vs 2.60 ms on laptop:cpu" in sentences[0]
    assert "5,200 images/s vs 2,600" in sentences[0]


def test_repeats_fold_into_the_median_of_each_figure():
    from trainspeed.fold import fold_inference
    from trainspeed.results import Measurement

    def repeat(number, latency, rate, batch=1024):
        figures = InferenceFigures(latency, latency * 2, 200, 0.01, batch, rate, 5, 0.2)
        return Measurement(repeat=number, steady_epoch_s=1.0, inference=figures)

    folded = fold_inference([repeat(1, 0.003, 900.0), repeat(2, 0.001, 1000.0), repeat(3, 0.002, 1200.0)])
    assert folded.latency_median_s == 0.002 and folded.latency_p95_s == 0.004 and folded.images_per_s == 1000.0
    assert folded.latency_calls == 600 and folded.batch_calls == 15
    # A repeat that had to halve its batch is not mixed into the others' images/s.
    halved = fold_inference([repeat(1, 0.003, 900.0), repeat(2, 0.001, 400.0, batch=512)])
    assert halved.images_per_s == 900.0 and halved.latency_median_s == 0.003
    assert fold_inference([Measurement(repeat=1, steady_epoch_s=1.0)]) is None
