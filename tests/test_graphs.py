"""The recorded-step logic, checked on the CPU with a backend that treats Python as a replay does."""

import time

import numpy as np
import pytest
import torch

import trainspeed
from trainspeed.engine.graph import ReplayLike, StepGraph
from trainspeed.engine.loop import train_epoch
from trainspeed.models import create_model

SHAPE = (1, 8, 8)


def data(count=100, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 10, count))
    return images, labels


def replay_like(spec, optimizer):
    holder = {}
    backend = ReplayLike(optimizer, lambda: holder["graph"].written_tensors())
    return backend, holder


def train(model: str, graph_backend, epochs: int = 2):
    """Two epochs of 100 images at batch 32: three full batches and a partial one each.

    `graph_backend`: None (plain steps), "replay" (ReplayLike) or a backend object."""
    torch.manual_seed(0)
    spec = create_model(model, SHAPE, 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    images, labels = data()
    graph = None
    if graph_backend == "replay":
        backend, holder = replay_like(spec, optimizer)
        graph = holder["graph"] = StepGraph(spec, optimizer, images, labels, 32, "fp32", backend)
    elif graph_backend is not None:
        graph = StepGraph(spec, optimizer, images, labels, 32, "fp32", graph_backend)
    if graph is not None:
        graph.prepare()
    order = torch.Generator().manual_seed(0)
    stats = [train_epoch(spec, optimizer, images, labels, batch_size=32, generator=order, graph=graph)
             for _ in range(epochs)]
    return spec, stats, graph


@pytest.mark.parametrize("model", ["mlp:1", "ann"])  # Keras's Adam and SGD; no dropout, so no randomness
def test_recorded_steps_train_exactly_like_plain_steps(model):
    plain, plain_stats, _ = train(model, None)
    replayed, replayed_stats, graph = train(model, "replay")
    assert graph.replaying and graph.failure is None
    for a, b in zip(plain.network.parameters(), replayed.network.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for a, b in zip(plain_stats, replayed_stats, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-5) and b.accuracy == a.accuracy


def test_warm_up_steps_leave_the_model_and_optimizer_untouched():
    torch.manual_seed(0)
    spec = create_model("mlp:1", SHAPE, 10)
    before = [p.detach().clone() for p in spec.network.parameters()]
    optimizer = spec.make_optimizer(spec.network.parameters())
    images, labels = data()
    backend, holder = replay_like(spec, optimizer)
    graph = holder["graph"] = StepGraph(spec, optimizer, images, labels, 32, "fp32", backend)
    graph.prepare()
    for p, q in zip(spec.network.parameters(), before, strict=True):
        assert torch.equal(p, q)
    assert all(state["step"].item() == 0 and state["exp_avg"].abs().sum() == 0 for state in optimizer.state.values())
    assert graph.loss_sum.item() == 0 and graph.correct.item() == 0
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3]


class FailingRecorder:
    def __init__(self, error):
        self.error = error

    def warm_up(self, step, times):
        for _ in range(times):
            step()

    def record(self, step):
        raise self.error


def test_a_step_that_cannot_be_recorded_still_trains_the_same_and_says_why():
    plain, plain_stats, _ = train("mlp:1", None)
    fallback, stats, graph = train("mlp:1", FailingRecorder(RuntimeError("operation not permitted when capturing")))
    assert not graph.replaying
    assert graph.failure == ("CUDA graph capture failed (operation not permitted when capturing); "
                             "steps ran without a graph")
    for a, b in zip(plain.network.parameters(), fallback.network.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_out_of_memory_while_recording_is_not_hidden():
    with pytest.raises(torch.OutOfMemoryError):
        train("mlp:1", FailingRecorder(torch.OutOfMemoryError("CUDA out of memory")))


def test_replay_like_runs_no_python_per_step():
    """What a replay does to Python, shown on Keras Adam's Python step count: it never moves."""
    torch.manual_seed(0)
    spec = create_model("mlp:1", SHAPE, 10)
    optimizer = spec.make_optimizer(spec.network.parameters())
    images, labels = data()
    backend, holder = replay_like(spec, optimizer)
    graph = holder["graph"] = StepGraph(spec, optimizer, images, labels, 32, "fp32", backend)
    graph.prepare()
    recorded = optimizer.steps_taken
    for _ in range(5):
        graph.run(torch.arange(32))
    assert optimizer.steps_taken == recorded  # Python did not run
    assert all(state["step"].item() == 5 for state in optimizer.state.values())  # the device did


def test_the_partial_batch_after_replayed_steps_uses_the_devices_step_count():
    """Keras Adam's epsilon depends on the step count; after replays only the device knows it.

    An eager last batch that trusted the Python count would take step 2 instead of step 4: its
    epsilon would be about 20x too large, once per epoch.
    """
    plain, _, _ = train("mlp:1", None, epochs=1)
    replayed, _, graph = train("mlp:1", "replay", epochs=1)
    assert all(state["step"].item() == 4 for state in graph.optimizer.state.values())
    for a, b in zip(plain.network.parameters(), replayed.network.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


class SlowGraph(StepGraph):
    """The GPU path's graph on the CPU: recording takes `record_s`, each replay `replay_s`, replays counted."""

    record_s, replay_s, replays = 0.0, 0.0, 0

    def __init__(self, spec, optimizer, images, labels, batch_size, precision, backend=None):
        super().__init__(spec, optimizer, images, labels, batch_size, precision,
                         ReplayLike(optimizer, lambda: self.written_tensors()))

    def prepare(self):
        time.sleep(self.record_s)
        super().prepare()

    def run(self, index):
        type(self).replays += 1
        time.sleep(self.replay_s)
        super().run(index)


@pytest.fixture
def gpu_path_on_the_cpu(monkeypatch):
    from trainspeed import measure

    monkeypatch.setattr(measure, "uses_graphs", lambda config, device, images, batch: images >= batch)
    monkeypatch.setattr(measure, "StepGraph", SlowGraph)
    monkeypatch.setattr(SlowGraph, "replays", 0)
    return SlowGraph


QUICK = dict(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=3200, synthetic_shape=(8, 8, 1),
             out=None, isolate=False)


@pytest.mark.parametrize("epochs", [1, 2])
def test_recording_the_graph_is_never_timed_as_an_epoch(gpu_path_on_the_cpu, epochs):
    gpu_path_on_the_cpu.record_s = 4.0
    case = trainspeed.run(epochs=epochs, **QUICK).cases[0]
    assert case.cuda_graph and case.startup.graph_record_s >= 4.0
    # 100 steps of a tiny model take about 0.1 s: an epoch that held the 4 s recording would pass 4 s, and
    # one under 3 s leaves room for a machine thirty times slower than usual.
    assert max(case.epoch_s) < 3.0, case.epoch_s
    assert gpu_path_on_the_cpu.replays == 100 * epochs  # every full batch replayed, none eagerly


def test_a_time_budget_projects_from_the_replayed_steps(gpu_path_on_the_cpu):
    gpu_path_on_the_cpu.replay_s = 0.005  # a replayed step is slow here; an eager one takes under 1 ms
    case = trainspeed.run(epochs=3, time_budget_s=0.3, **QUICK).cases[0]
    assert case.projected and case.cuda_graph
    assert gpu_path_on_the_cpu.replays >= case.measured_steps
    assert case.steady_epoch_s >= 100 * 0.005  # the replays' pace, not the eager steps'
