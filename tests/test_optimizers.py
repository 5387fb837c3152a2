import math

import pytest
import torch

from trainspeed.optimizers import KerasAdam


def keras_adam_by_hand(gradients, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7):
    """Keras's Adam.update_step, written out for one scalar."""
    value, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate(gradients, start=1):
        alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        m += (g - m) * (1 - beta1)
        v += (g * g - v) * (1 - beta2)
        value -= m * alpha / (math.sqrt(v) + eps)
    return value


def test_keras_adam_matches_keras_update_rule():
    gradients = [0.5, -0.25, 1e-6]
    weight = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = KerasAdam([weight])
    for g in gradients:
        weight.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
    assert math.isclose(weight.item(), keras_adam_by_hand(gradients), rel_tol=0, abs_tol=1e-12)


def test_epsilon_placement_differs_from_pytorch_adam_for_tiny_gradients():
    # Where the gradient is tiny, where epsilon sits decides the step: the reason for KerasAdam.
    ours = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    theirs = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    keras, torch_adam = KerasAdam([ours]), torch.optim.Adam([theirs], eps=1e-7)
    for parameter, optimizer in ((ours, keras), (theirs, torch_adam)):
        parameter.grad = torch.tensor([1e-7], dtype=torch.float64)
        optimizer.step()
    # The hand-written rule starts from 1.0; these parameters start from 0.
    assert math.isclose(ours.item(), keras_adam_by_hand([1e-7]) - 1.0, rel_tol=1e-9)
    # Keras: (lr sqrt(1-b2) / (1-b1)) * m / (sqrt(v) + eps) = 3.162e-4 * 1e-8 / (3.16e-9 + 1e-7) = 3.07e-5.
    # PyTorch: lr * m_hat / (sqrt(v_hat) + eps) = 1e-3 * 1e-7 / (1e-7 + 1e-7) = 5e-4.
    assert ours.item() == pytest.approx(-3.065e-5, rel=1e-3)
    assert theirs.item() == pytest.approx(-5.0e-4, rel=1e-3)


def test_keras_adam_tracks_the_keras_rule_over_many_float32_steps():
    torch.manual_seed(0)
    start = torch.randn(2, 500)
    weights = [torch.nn.Parameter(start[0].clone()), torch.nn.Parameter(start[1].clone())]
    stock = torch.nn.Parameter(start.clone())
    optimizer, stock_adam = KerasAdam(weights), torch.optim.Adam([stock], eps=1e-7)
    expected = start.double().clone()
    m, v = torch.zeros_like(expected), torch.zeros_like(expected)
    for t in range(1, 301):
        # Gradients near epsilon, where Keras's placement of it changes every step.
        gradients = torch.randn(2, 500) * 1e-7
        for weight, gradient in zip(weights, gradients, strict=True):
            weight.grad = gradient.clone()
        stock.grad = gradients.clone()
        optimizer.step(), stock_adam.step()
        alpha = 1e-3 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        m += (gradients.double() - m) * 0.1
        v += (gradients.double() ** 2 - v) * 0.001
        expected -= m * alpha / (v.sqrt() + 1e-7)
    ours = torch.stack([w.detach() for w in weights]).double()
    torch.testing.assert_close(ours, expected, rtol=5e-6, atol=1e-7)  # float32 rounding, 300 steps
    assert (stock.detach().double() - expected).abs().max() > 1e-3  # the test can tell the rules apart


def test_device_step_gives_the_keras_update_with_the_step_count_on_the_device():
    torch.manual_seed(1)
    start = torch.randn(3, 200)
    eager = [torch.nn.Parameter(row.clone()) for row in start]
    graph_safe = [torch.nn.Parameter(row.clone()) for row in start]
    first, second = KerasAdam(eager), KerasAdam(graph_safe)
    second.initialize_state()
    for t in range(1, 51):
        gradients = torch.randn(3, 200) * (1e-7 if t % 3 else 1.0)
        for a, b, g in zip(eager, graph_safe, gradients, strict=True):
            a.grad, b.grad = g.clone(), g.clone()
        first.step()
        second.device_step()
    for a, b in zip(eager, graph_safe, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    assert second.state[graph_safe[0]]["step"].item() == 50 == second.steps_taken
    # An eager step after device steps continues the same count and rule.
    for p in eager + graph_safe:
        p.grad = torch.ones_like(p)
    first.step(), second.step()
    for a, b in zip(eager, graph_safe, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    second.reset_state()
    assert second.steps_taken == 0 and second.state[graph_safe[0]]["exp_avg"].abs().sum() == 0


class AdamStep(KerasAdam):
    """KerasAdam with every step through torch.optim.Adam.step, as before its direct fused call."""

    def _plain_fused_work(self):
        return None


def adam_run(optimizer_class, steps: int = 20, hook: bool = False):
    torch.manual_seed(7)
    weights = [torch.nn.Parameter(torch.randn(64, 30)), torch.nn.Parameter(torch.randn(64))]
    optimizer = optimizer_class(weights)
    seen = []
    if hook:
        optimizer.register_step_post_hook(lambda *arguments: seen.append(1))
    for t in range(steps):
        for weight in weights:
            weight.grad = torch.randn_like(weight) * (1e-7 if t % 2 else 1.0)
        optimizer.step()
    return [w.detach() for w in weights], optimizer, seen


def test_the_direct_fused_step_is_adam_step_to_the_bit():
    direct, optimizer, _ = adam_run(KerasAdam)
    through_adam, reference, _ = adam_run(AdamStep)
    assert all(torch.equal(a, b) for a, b in zip(direct, through_adam, strict=True))
    assert optimizer._plain_fused_work() is not None  # after the first step, the direct call ran
    assert [s["step"].item() for s in optimizer.state.values()] == [20.0, 20.0]
    for mine, theirs in zip(optimizer.state.values(), reference.state.values(), strict=True):
        assert all(torch.equal(mine[k], theirs[k]) for k in ("exp_avg", "exp_avg_sq"))


def test_step_hooks_still_run_around_the_direct_step():
    weights, optimizer, seen = adam_run(KerasAdam, steps=1, hook=True)
    assert optimizer._plain_fused_work() is not None
    before = len(seen)
    for _ in range(4):
        for weight in optimizer.param_groups[0]["params"]:
            weight.grad = torch.ones_like(weight)
        optimizer.step()
    assert len(seen) == before + 4
    amsgrad = KerasAdam([torch.nn.Parameter(torch.ones(3))])
    amsgrad.param_groups[0]["amsgrad"] = True
    assert amsgrad._plain_fused_work() == []  # no gradients yet: nothing to do either way
