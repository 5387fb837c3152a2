"""Layers whose stock PyTorch form is slow on some device, rewritten with the same math."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def random_words(like: torch.Tensor) -> torch.Tensor:
    """Uniform random int32 words laid out like `like` (contiguous or channels-last).

    Filled from 64-bit draws, two words each: the CPU generator's cost is per draw, so this is
    4x cheaper than one draw per element and 5x cheaper than `bernoulli_`.
    """
    if not (like.is_contiguous() or like.is_contiguous(memory_format=torch.channels_last)):
        like = like.contiguous()
    count = like.numel()
    draws = torch.empty((count + 1) // 2, dtype=torch.int64, device=like.device)
    draws.random_(-2**63, None)  # the full 64-bit range
    return draws.view(torch.int32)[:count].as_strided(like.shape, like.stride())


def keep_threshold(rate: float) -> int:
    """Words below this are kept: a fraction 1 - rate of the 2^32 possible int32 values."""
    return -2**31 + round((1.0 - rate) * 2**32)


class _MaskedScale(torch.autograd.Function):
    """x * mask, with the mask (0 or 1/(1-rate)) saved for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rate: float) -> torch.Tensor:
        mask = (random_words(x) < keep_threshold(rate)).to(x.dtype).mul_(1.0 / (1.0 - rate))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad_output * mask, None


class Dropout(nn.Dropout):
    """Keras's Dropout: in training, zero each value with probability `p`, scale the rest by 1/(1-p).

    On the CPU, PyTorch draws its mask with `bernoulli_`, one generator call per element and
    single-threaded: about 3 ms of a 20 ms cnn step. Thresholding 32-bit random words gives the
    same distribution (the rate exact to 2^-32; TensorFlow's float draw has 2^-23) at a fifth of
    the cost. Elsewhere the stock fused kernel is already fast.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return F.dropout(x, self.p, self.training, self.inplace)
        if self.p == 1.0:
            return x * 0.0
        return _MaskedScale.apply(x, self.p)
