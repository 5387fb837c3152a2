"""A plain SGD update done by the weight-gradient GEMM itself: W <- W - lr (gy^T x) in one addmm.

Keras's SGD (no momentum, no decay) writes the gradient and then reads it back to update the
weights: for the ann's first layer that is 37 MB written and read again each step, and a separate
pass over the weights. The GEMM can add its product, scaled by -lr, straight into the weights.
The arithmetic is the same update (it differs only in rounding, as any other GEMM kernel does),
and like any kernel it is a candidate chosen by measurement (engine/kernels.py): "mkl", the
separate gradient and update, stays wherever the fused form does not win clearly.

The layer then leaves no .grad for its weight and bias, so the optimizer's own step passes over
them; it applies only where that is exactly SGD: a plain group, and no gradient already there.
"""

from __future__ import annotations

import torch
from torch import nn

UPDATE = "sgd update"
# The trial's learning rate: the timing does not depend on it, and the check compares like with like.
TRIAL_LR = 0.01


def update_separately(gy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The stock path: a fresh gradient tensor, then the weights updated from it."""
    return torch.add(weight, gy.t().mm(x), alpha=-TRIAL_LR)


def update_fused(gy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.addmm(weight, gy.t(), x, alpha=-TRIAL_LR)


UPDATE_CANDIDATES = {"mkl": update_separately, "fused": update_fused}


def plain_sgd_group(optimizer: torch.optim.Optimizer | None, parameter: nn.Parameter) -> dict | None:
    """The optimizer's group holding `parameter` when its update is exactly w -= lr * g, else None."""
    if not isinstance(optimizer, torch.optim.SGD):
        return None
    for group in optimizer.param_groups:
        if any(p is parameter for p in group["params"]):
            plain = (group["momentum"] == 0 and group["weight_decay"] == 0 and not group["nesterov"]
                     and not group["maximize"])
            return group if plain else None
    return None


def fuse_updates(network: nn.Module, optimizer: torch.optim.Optimizer, choices: dict[str, str]) -> list[str]:
    """Hand the optimizer's SGD group to every tuned layer whose "sgd update" choice is "fused";
    the keys of those layers."""
    fused = []
    for module in network.modules():
        key = getattr(module, "key", None)
        if not hasattr(module, "update_group") or choices.get(f"{key} {UPDATE}") != "fused":
            continue
        group = plain_sgd_group(optimizer, module.weight)
        if group is not None and (module.bias is None or plain_sgd_group(optimizer, module.bias) is group):
            module.update_group = group
            module.stock = False  # the update lives in the tuned backward
            fused.append(key)
    return fused


def update_in_backward(group: dict, gy: torch.Tensor, x: torch.Tensor, weight: nn.Parameter,
                       bias: nn.Parameter | None) -> bool:
    """Update the weights from this step's gradient right here, if nothing else holds a gradient
    for them (a caller that accumulates gradients gets them the ordinary way); whether it did."""
    if weight.grad is not None or (bias is not None and bias.grad is not None):
        return False
    with torch.no_grad():
        weight.addmm_(gy.t(), x, alpha=-group["lr"])
        if bias is not None:
            bias.add_(gy.sum(0), alpha=-group["lr"])
    return True
