"""Optimizers with Keras's update rules and defaults, on PyTorch's fastest kernels."""

from __future__ import annotations

import math

import torch

# Device types with single-kernel ("fused") SGD and Adam in PyTorch; others use multi-tensor ops.
_FUSED_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def _fused_available(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.device.type in _FUSED_DEVICE_TYPES and p.is_floating_point() for p in params)


def keras_sgd(params, lr: float = 0.01) -> torch.optim.Optimizer:
    """Keras SGD defaults: learning rate 0.01, no momentum, no weight decay (PyTorch's rule)."""
    params = list(params)
    fused = _fused_available(params)
    return torch.optim.SGD(params, lr=lr, momentum=0.0, fused=fused, foreach=not fused)


class KerasAdam(torch.optim.Adam):
    """Adam as Keras computes it, on PyTorch's fused Adam kernel.

    Keras adds epsilon to sqrt(v) *before* bias correction (the paper's "epsilon hat") and folds
    the corrections into the step size; PyTorch adds it after. The two agree exactly when
    PyTorch's epsilon at step t is Keras's divided by sqrt(1 - beta2^t):

        lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
          = lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps/sqrt(1-b2^t))

    so each step sets that epsilon and lets the fused kernel (one pass over every parameter,
    3x faster than multi-tensor ops for the cnn on a CPU) do the update.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        if eps <= 0:
            raise ValueError(f"invalid Adam epsilon {eps}")
        params = list(params)
        fused = _fused_available(params)
        super().__init__(params, lr=lr, betas=betas, eps=eps, fused=fused, foreach=not fused)
        self.keras_eps = eps
        # Every parameter advances together in these models, so one count serves them all.
        self.steps_taken = 0

    def step(self, closure=None):
        self.steps_taken += 1
        for group in self.param_groups:
            group["eps"] = self.keras_eps / math.sqrt(1.0 - group["betas"][1] ** self.steps_taken)
        return super().step(closure)
