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


def mask_from_words(words: torch.Tensor, rate: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """1/(1-rate) where a word is below keep_threshold, 0 elsewhere, laid out like `words`.

    On the CPU a comparison and a bool-to-float cast each cost about 0.1 ms on the cnn's first
    mask (0.26M values), as much as drawing the words. Words of 8 or 16 bits are exact in float32,
    where the same test is three fast in-place steps: threshold - word is at least 1 for a kept word
    and at most 0 otherwise, so clamping it to [0, 1] gives the keep indicator exactly.
    """
    bits = words.element_size() * 8
    scale = 1.0 / (1.0 - rate)
    if bits > 16:  # float32 cannot hold every 32-bit word: compare the words themselves
        return (words < keep_threshold(rate, bits)).to(dtype).mul_(scale)
    kept = words.to(torch.float32).neg_().add_(keep_threshold(rate, bits)).clamp_(0.0, 1.0)
    return kept.to(dtype).mul_(scale)


class _MaskedScale(torch.autograd.Function):
    """x * mask, with the mask (0 or 1/(1-rate)) saved for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rate: float) -> torch.Tensor:
        mask = mask_from_words(random_words(x, word_bits(rate)), rate, x.dtype)
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
