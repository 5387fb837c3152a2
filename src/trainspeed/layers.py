"""Layers whose stock PyTorch form is slow on some device, rewritten with the same math."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Random words of these widths, narrowest first: a 64-bit draw fills 8 of int8, 2 of int32.
WORD_TYPES = {8: torch.int8, 16: torch.int16, 32: torch.int32}


def word_bits(rate: float) -> int:
    """The narrowest word that splits its range at exactly 1 - rate (8 bits for the seeds' 0.25);
    32 bits otherwise, as close as the float draw Keras makes (rate 0.2: off by 2^-33)."""
    for bits in (8, 16):
        if ((1.0 - rate) * 2**bits).is_integer():
            return bits
    return 32


def random_words(like: torch.Tensor, bits: int = 32) -> torch.Tensor:
    """Uniform random signed words of `bits` bits laid out like `like` (contiguous or channels-last).

    Filled from 64-bit draws, 64 / bits words each: the CPU generator's cost is per draw, so 32-bit
    words are 4x cheaper than one draw per element and 5x cheaper than `bernoulli_`, and 8-bit
    words 4x cheaper again (0.54 vs 0.13 ms for the cnn's first dropout).
    """
    if not (like.is_contiguous() or like.is_contiguous(memory_format=torch.channels_last)):
        like = like.contiguous()
    count = like.numel()
    per_draw = 64 // bits
    draws = torch.empty((count + per_draw - 1) // per_draw, dtype=torch.int64, device=like.device)
    draws.random_(-2**63, None)  # the full 64-bit range
    return draws.view(WORD_TYPES[bits])[:count].as_strided(like.shape, like.stride())


def keep_threshold(rate: float, bits: int = 32) -> int:
    """Words below this are kept: a fraction 1 - rate of the 2^bits possible signed values."""
    return -2**(bits - 1) + round((1.0 - rate) * 2**bits)


class _MaskedScale(torch.autograd.Function):
    """x * mask, with the mask (0 or 1/(1-rate)) saved for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rate: float) -> torch.Tensor:
        bits = word_bits(rate)
        mask = (random_words(x, bits) < keep_threshold(rate, bits)).to(x.dtype).mul_(1.0 / (1.0 - rate))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad_output * mask, None


class Dropout(nn.Dropout):
    """Keras's Dropout: in training, zero each value with probability `p`, scale the rest by 1/(1-p).

    On the CPU, PyTorch draws its mask with `bernoulli_`, one generator call per element and
    single-threaded: about 3 ms of a 20 ms cnn step. Thresholding random words gives the same
    distribution: the rate exact where the word's width holds it (0.25 in 8 bits), else to 2^-32
    (TensorFlow's float draw has 2^-23), at a fifth of the cost or less. Elsewhere the stock fused
    kernel is already fast.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return F.dropout(x, self.p, self.training, self.inplace)
        if self.p == 1.0:
            return x * 0.0
        return _MaskedScale.apply(x, self.p)
