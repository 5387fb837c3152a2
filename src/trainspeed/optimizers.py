"""Optimizers with Keras's update rules and defaults."""

from __future__ import annotations

import math

import torch


def keras_sgd(params, lr: float = 0.01) -> torch.optim.Optimizer:
    """Keras SGD defaults: learning rate 0.01, no momentum, no weight decay (PyTorch's rule)."""
    return torch.optim.SGD(params, lr=lr, momentum=0.0, foreach=True)


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras computes it.

    Keras adds epsilon to sqrt(v) *before* bias correction (the paper's "epsilon hat") and folds
    the corrections into the step size; PyTorch adds it after. With Keras's epsilon of 1e-7 the
    two differ most in early steps, so for faithful accuracies we use Keras's form, with
    multi-tensor (foreach) kernels so it costs no more than PyTorch's own Adam.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        if lr <= 0 or eps <= 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Adam settings lr={lr} betas={betas} eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
            # All parameters of a group advance together, so one step count serves them all.
            step = self.state[params[0]]["step"]
            grads = [p.grad for p in params]
            ms = [self.state[p]["m"] for p in params]
            vs = [self.state[p]["v"] for p in params]
            alpha = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
            torch._foreach_lerp_(ms, grads, 1.0 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
            denominators = torch._foreach_sqrt(vs)
            torch._foreach_add_(denominators, group["eps"])
            torch._foreach_addcdiv_(params, ms, denominators, value=-alpha)
        return loss
