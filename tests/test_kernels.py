import copy
import dataclasses
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspeed.engine import kernels
from trainspeed.engine.kernels import CANDIDATES, PRODUCTS, TunedLinear, Tuning, apply, choose, tune

COMBINATIONS = [dict(zip(PRODUCTS, names, strict=True))
                for names in itertools.product(*(CANDIDATES[product] for product in PRODUCTS))]


def label(kernels_by_product: dict[str, str]) -> str:
    return "/".join(kernels_by_product.values())


def random_linear(inputs: int, outputs: int, bias: bool = True, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(inputs, outputs, bias=bias)
    if bias:
        nn.init.normal_(layer.bias)  # not zero: a candidate that drops the bias must show
    return layer


def outputs_and_gradients(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(x.requires_grad)
    y = layer(x)
    # A weighted sum, so each output's gradient differs (a transposed gradient would not pass).
    (y * torch.linspace(-1, 2, y.numel()).reshape(y.shape)).sum().backward()
    grads = tuple(p.grad.clone() for p in layer.parameters())
    for p in layer.parameters():
        p.grad = None
    return (y.detach(), *grads, x.grad)


@pytest.mark.parametrize("chosen", COMBINATIONS, ids=label)
@pytest.mark.parametrize("batch, inputs, outputs, bias, input_grad", [
    (7, 37, 23, True, True),  # a batch that is a multiple of nothing
    (1, 300, 5, True, True),
    (13, 64, 129, False, True),
    (32, 50, 40, True, False),  # a first layer: its input (data) needs no gradient
])
def test_every_combination_matches_nn_linear(chosen, batch, inputs, outputs, bias, input_grad):
    stock = random_linear(inputs, outputs, bias)
    tuned = TunedLinear.from_linear(copy.deepcopy(stock), chosen)
    assert tuned.kernels == chosen
    x = torch.randn(batch, inputs, generator=torch.Generator().manual_seed(1)).requires_grad_(input_grad)
    expected, got = outputs_and_gradients(stock, x), outputs_and_gradients(tuned, x)
    assert (got[-1] is None) == (not input_grad)
    for want, have in zip(expected, got, strict=True):
        if want is not None:
            assert torch.allclose(have, want, rtol=1e-5, atol=1e-5), (want - have).abs().max()
    if chosen != dict.fromkeys(PRODUCTS, "mkl"):  # all-mkl layers run F.linear, not the tuned function
        assert type(tuned(x).grad_fn).__name__.startswith("_TunedLinearFunction")


def test_a_first_layer_computes_no_input_gradient(monkeypatch):
    def must_not_run(gy, weight):
        raise AssertionError("input gradient computed for an input that needs none")

    monkeypatch.setitem(kernels.CANDIDATES, "input gradient", {"mkl": must_not_run, "onednn": must_not_run})
    layer = TunedLinear.from_linear(random_linear(6, 3), {"input gradient": "onednn", "weight gradient": "onednn"})
    layer(torch.randn(4, 6)).sum().backward()
    assert torch.allclose(layer.bias.grad, torch.full((3,), 4.0))


def test_inputs_with_several_leading_dimensions():
    stock = random_linear(12, 5)
    tuned = TunedLinear.from_linear(copy.deepcopy(stock), {"forward": "onednn", "weight gradient": "onednn"})
    x = torch.randn(2, 3, 12)
    expected, got = outputs_and_gradients(stock, x.requires_grad_()), outputs_and_gradients(tuned, x)
    assert got[0].shape == (2, 3, 5)
    for want, have in zip(expected, got, strict=True):
        assert torch.allclose(have, want, rtol=1e-5, atol=1e-5)


def mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 40), nn.ReLU(inplace=True), nn.Linear(40, 30), nn.ReLU(),
                         nn.Linear(30, 4))


def sgd_steps(network: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    generator = torch.Generator().manual_seed(2)
    for _ in range(steps):
        images, labels = torch.randn(9, 3, 4, 4, generator=generator), torch.randint(0, 4, (9,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(network(images), labels).backward()
        optimizer.step()


@pytest.mark.parametrize("chosen", [{"forward": "onednn", "input gradient": "onednn", "weight gradient": "mkl-nt"},
                                    {"input gradient": "onednn", "weight gradient": "onednn"},
                                    {"forward": "mkl-nt", "weight gradient": "mkl-nn"}], ids=label)
def test_training_with_tuned_layers_gives_the_same_weights(chosen):
    stock, tuned = mlp(), mlp()
    # An optimizer built before the swap: the tuned layers must hold the very parameters it updates.
    optimizer = torch.optim.SGD(tuned.parameters(), lr=0.1)
    apply(tuned, {f"linear {shape} {product}": name for shape in ["48->40", "40->30", "30->4"]
                  for product, name in chosen.items()})
    assert sum(isinstance(m, TunedLinear) and not m.stock for m in tuned) == 3
    sgd_steps(stock, torch.optim.SGD(stock.parameters(), lr=0.1))
    sgd_steps(tuned, optimizer)
    before = mlp().state_dict()
    for name, value in stock.state_dict().items():
        assert not torch.equal(value, before[name]), f"{name} did not train"
        assert torch.allclose(tuned.state_dict()[name], value, rtol=1e-5, atol=1e-6), name


def test_tune_swaps_every_linear_and_keeps_its_parameters():
    network = mlp()
    parameters = list(network.parameters())
    keys = network.state_dict().keys()
    tuning = tune(network, 9, budget_s=1.0)
    layers = [m for m in network.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 3 and all(type(m) is TunedLinear for m in layers)
    assert all(a is b for a, b in zip(network.parameters(), parameters, strict=True))
    assert network.state_dict().keys() == keys
    assert [(m.in_features, m.out_features) for m in layers] == [(48, 40), (40, 30), (30, 4)]
    assert set(tuning.choices) == {f"linear {i}->{o} {p}" for i, o in [(48, 40), (40, 30), (30, 4)] for p in PRODUCTS}
    assert all(tuning.choices[key] in CANDIDATES[key.split(" ", 2)[2]] for key in tuning.choices)
    assert len(tuning.notes) == 9 and all(" ms" in note for note in tuning.notes)
    assert 0 < tuning.seconds < 5
    assert json.loads(json.dumps(dataclasses.asdict(tuning)))["choices"] == tuning.choices
    # Tuning again reuses the TunedLinear modules instead of wrapping them twice.
    tune(network, 9, budget_s=0)
    assert [m for m in network.modules() if isinstance(m, nn.Linear)] == layers


def test_no_budget_keeps_stock_kernels_and_says_so():
    network = mlp()
    tuning = tune(network, 9, budget_s=0)
    assert set(tuning.choices.values()) == {"mkl"} and len(tuning.choices) == 9
    assert all(note.endswith("not measured (trial budget spent); mkl kept") for note in tuning.notes)
    assert all(m.stock for m in network.modules() if isinstance(m, TunedLinear))


class FakeClock:
    """Time that passes only when a fake kernel says so: the trial's choices without timing noise."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def costing(self, seconds: float, kernel):
        def timed(*arguments):
            self.now += seconds
            return kernel(*arguments)
        return timed


def with_costs(monkeypatch, clock: FakeClock, costs_ms: dict[str, dict[str, float]], broken=None) -> None:
    registry = {product: {name: clock.costing(costs_ms[product][name] / 1e3, kernel)
                          for name, kernel in CANDIDATES[product].items()} for product in PRODUCTS}
    for product, (name, kernel) in (broken or {}).items():
        registry[product][name] = clock.costing(1e-3, kernel)
    monkeypatch.setattr(kernels, "CANDIDATES", registry)


COSTS_MS = {"forward": {"mkl": 5.9, "mkl-nt": 4.4, "onednn": 3.9},
            "input gradient": {"mkl": 2.0, "onednn": 2.0},  # a tie: stock stays
            "weight gradient": {"mkl": 9.9, "mkl-nn": 9.5, "mkl-nt": 2.1, "onednn": 3.2}}


def test_tune_picks_the_fastest_candidate_by_the_clock(monkeypatch):
    clock = FakeClock()
    with_costs(monkeypatch, clock, COSTS_MS)
    network = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 16))
    tuning = tune(network, 5, budget_s=100, clock=clock)
    assert tuning.choices == {"linear 24->16 forward": "onednn", "linear 24->16 input gradient": "mkl",
                              "linear 24->16 weight gradient": "mkl-nt", "linear 16->16 forward": "onednn",
                              "linear 16->16 input gradient": "mkl", "linear 16->16 weight gradient": "mkl-nt"}
    assert tuning.notes[2] == ("linear 24->16 weight gradient: mkl-nt 2.10 ms vs onednn 3.20 ms vs mkl-nn 9.50 ms "
                               "vs mkl 9.90 ms; mkl-nt chosen")
    # The two 16->16 layers share one measurement: two shapes, three products each.
    assert len(tuning.notes) == 6
    assert network[2].kernels == network[3].kernels == {"forward": "onednn", "input gradient": "mkl",
                                                        "weight gradient": "mkl-nt"}
    # Each candidate: one verifying call, 2 warm-up calls and 20 timed calls (the most), at its fake cost.
    per_layer_ms = sum(23 * cost for costs in COSTS_MS.values() for cost in costs.values())
    assert tuning.seconds == pytest.approx(2 * per_layer_ms / 1e3)


def test_a_tiny_budget_bounds_the_trial(monkeypatch):
    clock = FakeClock()
    with_costs(monkeypatch, clock, COSTS_MS)
    tuning = tune(nn.Sequential(nn.Linear(24, 16), nn.Linear(16, 8), nn.Linear(8, 4)), 5, budget_s=0.2, clock=clock)
    # Past its share, a product finishes at most one candidate's warm-up and 3 timed calls of each candidate.
    weight_gradients_s = sum(COSTS_MS["weight gradient"].values()) / 1e3
    assert 0.2 <= tuning.seconds <= 0.2 + 3 * 9.9e-3 + 3 * weight_gradients_s
    assert any("not measured (trial budget spent)" in note for note in tuning.notes)
    assert set(tuning.choices) == {f"linear {s} {p}" for s in ["24->16", "16->8", "8->4"] for p in PRODUCTS}


def test_a_tight_budget_goes_to_the_biggest_layer_first(monkeypatch):
    clock = FakeClock()
    with_costs(monkeypatch, clock, COSTS_MS)
    tuning = tune(nn.Sequential(nn.Linear(4, 4), nn.Linear(64, 64)), 5, budget_s=0.1, clock=clock)
    assert tuning.notes[0] == "linear 64->64 forward: onednn 3.90 ms vs mkl-nt 4.40 ms vs mkl 5.90 ms; onednn chosen"
    assert tuning.notes[-1] == "linear 4->4 weight gradient: not measured (trial budget spent); mkl kept"


def test_a_candidate_that_disagrees_is_dropped(monkeypatch):
    clock = FakeClock()
    broken = {"weight gradient": ("mkl-nt", lambda gy, x: x.t().mm(gy).t()),  # correct values, wrong layout
              "forward": ("onednn", lambda x, w, b: x.mm(w.t()))}  # forgets the bias
    with_costs(monkeypatch, clock, COSTS_MS, broken)
    tuning = tune(nn.Sequential(nn.Linear(24, 16)), 5, budget_s=100, clock=clock)
    assert tuning.choices["linear 24->16 forward"] == "mkl-nt"  # the fastest that agrees
    assert tuning.choices["linear 24->16 weight gradient"] == "onednn"
    assert "; onednn dropped: differs from mkl by" in tuning.notes[0]
    assert tuning.notes[2].endswith("; onednn chosen; mkl-nt dropped: gives a non-contiguous result")


def test_a_candidate_that_raises_is_dropped(monkeypatch):
    def unsupported(*arguments):
        raise RuntimeError("no oneDNN in this build\nmore detail")

    monkeypatch.setitem(kernels.CANDIDATES, "input gradient", {"mkl": CANDIDATES["input gradient"]["mkl"],
                                                               "onednn": unsupported})
    tuning = tune(nn.Sequential(nn.Linear(24, 16)), 5, budget_s=1.0)
    assert tuning.choices["linear 24->16 input gradient"] == "mkl"
    assert tuning.notes[1].endswith("mkl chosen; onednn dropped: RuntimeError: no oneDNN in this build")


@pytest.mark.parametrize("seconds, expected", [
    ({"mkl": 9.9e-3, "mkl-nt": 2.1e-3, "onednn": 3.2e-3}, "mkl-nt"),
    ({"mkl": 4.0e-3, "onednn": 3.7e-3}, "mkl"),  # 7.5% faster: within the noise margin
    ({"mkl": 4.0e-3, "onednn": 3.5e-3}, "onednn"),  # 12.5% faster
    ({"mkl": 30e-6, "onednn": 15e-6}, "mkl"),  # half the time, but 15 us: less than the tuned path costs
    ({"mkl": 2e-3, "onednn": 2e-3}, "mkl"),
    ({"onednn": 1e-3}, "mkl"),  # no stock reference measured
])
def test_choose_needs_a_clear_win_over_stock(seconds, expected):
    assert choose(seconds) == expected


def test_choose_without_margins_takes_the_fastest():
    assert choose({"mkl": 4.0e-3, "onednn": 3.99e-3}, margin=0, min_gain_s=0) == "onednn"


def test_apply_sets_known_choices_and_defaults_the_rest():
    network = mlp()
    apply(network, {"linear 48->40 forward": "onednn", "linear 48->40 weight gradient": "no-such-kernel",
                    "linear 40->30 input gradient": "mkl-nt", "linear 99->1 forward": "onednn"})
    assert network[1].kernels == {"forward": "onednn", "input gradient": "mkl", "weight gradient": "mkl"}
    assert network[3].stock and network[5].stock
    assert isinstance(network[1], nn.Linear) and network[1].out_features == 40


@pytest.mark.parametrize("batch", [1, 5])
def test_every_forward_kernel_gives_a_fresh_tensor_an_in_place_relu_may_change(batch):
    # One row transposed is already contiguous: a kernel returning that view broke ReLU(inplace=True).
    for name in CANDIDATES["forward"]:
        stock = random_linear(12, 7)
        tuned = TunedLinear.from_linear(copy.deepcopy(stock), {"forward": name})
        x = torch.randn(batch, 12)
        got = torch.relu_(tuned(x.clone().requires_grad_()))
        got.sum().backward()
        torch.testing.assert_close(got, torch.relu(stock(x)), msg=name)


def test_bf16_autocast_takes_the_stock_path():
    stock = random_linear(32, 16)
    tuned = TunedLinear.from_linear(copy.deepcopy(stock), dict.fromkeys(PRODUCTS, "onednn"))
    x = torch.randn(4, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = stock(x), tuned(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)
    assert type(got.grad_fn).__name__ == type(want.grad_fn).__name__  # autocast's addmm, not the tuned function


def test_meta_device_and_other_dtypes_take_the_stock_path():
    with torch.device("meta"):
        network = nn.Sequential(nn.Linear(8, 4))
    apply(network, {})
    assert type(network[0]) is nn.Linear  # not on the CPU: left alone
    layer = TunedLinear(8, 4, device="meta", kernels={"forward": "onednn"})
    assert layer(torch.zeros(3, 8, device="meta")).shape == (3, 4)
    double = TunedLinear.from_linear(random_linear(8, 4).double(), {"forward": "onednn"})
    x = torch.randn(3, 8, dtype=torch.float64)
    assert torch.equal(double(x), nn.functional.linear(x, double.weight, double.bias))


def test_a_lone_linear_is_refused():
    with pytest.raises(TypeError, match="wrap a lone Linear"):
        tune(nn.Linear(4, 2), 3)


def test_tuning_is_a_plain_record():
    assert dataclasses.asdict(Tuning()) == {"choices": {}, "notes": [], "seconds": 0.0}


def test_timed_calls_take_turns_and_give_medians():
    clock, order = FakeClock(), []
    costs = {"mkl": [3, 1, 2], "onednn": [5, 9, 4]}  # ms per call, in call order

    def kernel(name):
        def call():
            order.append(name)
            clock.now += costs[name][order.count(name) - 1] / 1e3
        return call

    seconds = kernels.median_seconds({name: kernel(name) for name in costs}, calls=3, clock=clock)
    assert order == ["mkl", "onednn"] * 3
    assert seconds == pytest.approx({"mkl": 2e-3, "onednn": 5e-3})


# --- the SGD update fused into the weight-gradient GEMM (engine/updates.py) ----------------------

def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(37, 23), nn.ReLU(), nn.Linear(23, 5))


def _sgd_steps(network: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    generator = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x, target = torch.randn(7, 37, generator=generator), torch.randint(0, 5, (7,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(x), target).backward()
        optimizer.step()


def test_a_fused_sgd_update_trains_exactly_as_keras_sgd_does():
    from trainspeed.engine.updates import UPDATE, fuse_updates

    stock, fused = _mlp(), _mlp()
    choices = {"linear 37->23 sgd update": "fused"}  # the last layer keeps the optimizer's own update
    kernels.apply(fused, choices)
    optimizer = torch.optim.SGD(fused.parameters(), lr=0.05)
    assert fuse_updates(fused, optimizer, choices) == ["linear 37->23"]
    _sgd_steps(stock, torch.optim.SGD(stock.parameters(), lr=0.05))
    _sgd_steps(fused, optimizer)
    for ours, theirs, initial in zip(fused.parameters(), stock.parameters(), _mlp().parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        assert (ours - initial).abs().max() > 1e-4  # every parameter trained
    # The fused layer's update happened in the backward: it leaves no gradient for the optimizer.
    assert fused[0].weight.grad is None and fused[0].bias.grad is None and fused[2].weight.grad is not None
    assert UPDATE == "sgd update"


def test_a_gradient_already_there_is_accumulated_the_ordinary_way():
    from trainspeed.engine.updates import fuse_updates

    network = _mlp()
    choices = {"linear 37->23 sgd update": "fused"}
    kernels.apply(network, choices)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.05)
    fuse_updates(network, optimizer, choices)
    before = network[0].weight.detach().clone()
    x = torch.randn(4, 37)
    for parameter in network[0].parameters():  # a caller accumulating gradients over several passes
        parameter.grad = torch.zeros_like(parameter)
    network(x).sum().backward()
    reference = _mlp()
    expected = torch.autograd.grad(reference(x).sum(), reference[0].weight)[0]
    assert torch.equal(network[0].weight.detach(), before)  # backward did not update: the step will
    torch.testing.assert_close(network[0].weight.grad, expected, rtol=1e-5, atol=1e-6)


def test_only_a_plain_sgd_takes_its_update_into_the_gemm():
    from trainspeed.engine.updates import fuse_updates, plain_sgd_group

    network = _mlp()
    kernels.apply(network, {})
    weight = network[0].weight
    assert plain_sgd_group(torch.optim.SGD(network.parameters(), lr=0.1), weight) is not None
    for other in (torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9),
                  torch.optim.SGD(network.parameters(), lr=0.1, weight_decay=1e-4),
                  torch.optim.Adam(network.parameters()), None):
        assert plain_sgd_group(other, weight) is None
        assert fuse_updates(network, other, {"linear 37->23 sgd update": "fused"}) == [] if other else True


def test_the_trial_offers_the_fused_update_only_with_a_plain_sgd():
    network = _mlp()
    with_sgd = kernels.tune(network, 7, optimizer=torch.optim.SGD(network.parameters(), lr=0.01))
    assert with_sgd.choices["linear 37->23 sgd update"] in ("mkl", "fused")
    assert any(note.startswith("linear 37->23 sgd update: ") for note in with_sgd.notes)
    other = _mlp()
    with_adam = kernels.tune(other, 7, optimizer=torch.optim.Adam(other.parameters()))
    assert not any("sgd update" in key for key in with_adam.choices)
