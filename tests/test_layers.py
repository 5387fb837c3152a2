import pytest
import torch
from torch import nn

from trainspeed.layers import Dropout, keep_threshold, mask_from_words, random_words, word_bits
from trainspeed.models import create_model


def test_keep_threshold_splits_the_int32_range():
    assert keep_threshold(0.0) == 2**31  # every word is below it
    assert keep_threshold(0.25) == -2**31 + 3 * 2**30
    assert keep_threshold(1.0) == -2**31


def test_word_bits_is_the_narrowest_width_holding_the_rate_exactly():
    assert word_bits(0.25) == 8 and word_bits(0.5) == 8  # the seeds' cnn: 192 of 256 byte values kept
    assert word_bits(1 - 3 / 2**12) == 16
    assert word_bits(0.2) == 32  # 0.8 has no finite binary form: the widest word, off by under 2^-33
    assert keep_threshold(0.25, 8) == 64 and keep_threshold(0.2, 32) == -2**31 + 3435973837


def test_narrow_words_fill_every_value_uniformly():
    torch.manual_seed(5)
    like = torch.empty(32, 32, 16, 16).contiguous(memory_format=torch.channels_last)
    words = random_words(like, 8)
    assert words.dtype == torch.int8 and words.shape == like.shape and words.stride() == like.stride()
    counts = torch.bincount(words.flatten().long() + 128, minlength=256).double()
    expected = like.numel() / 256  # 1,024 per value
    assert counts.min().item() > expected - 5 * expected**0.5 and counts.max().item() < expected + 5 * expected**0.5
    assert abs((words < keep_threshold(0.25, 8)).double().mean().item() - 0.75) < 0.005


@pytest.mark.parametrize("rate, dtype", [(0.25, torch.int8), (0.5, torch.int8), (1 - 3 / 2**12, torch.int16),
                                         (0.2, torch.int32)])
def test_mask_keeps_exactly_the_words_below_the_threshold(rate, dtype):
    bits = torch.iinfo(dtype).bits
    if bits <= 16:  # every word there is
        words = torch.arange(-2**(bits - 1), 2**(bits - 1)).to(dtype)
    else:  # the threshold's neighbourhood and the ends
        threshold = keep_threshold(rate, bits)
        words = torch.tensor([-2**31, threshold - 2, threshold - 1, threshold, threshold + 1, 2**31 - 1], dtype=dtype)
    mask = mask_from_words(words, rate)
    expected = torch.where(words.long() < keep_threshold(rate, bits), 1 / (1 - rate), 0.0).float()
    assert mask.dtype == torch.float32 and torch.equal(mask, expected)
    if bits <= 16:
        assert (mask > 0).sum().item() == round((1 - rate) * 2**bits)  # the rate, exactly
    # Under bf16 autocast the mask takes the activations' type; 16-bit words are not exact there.
    assert torch.equal(mask_from_words(words, rate, torch.bfloat16), expected.to(torch.bfloat16))


def test_random_words_are_uniform_and_follow_the_layout():
    torch.manual_seed(0)
    like = torch.empty(64, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    words = random_words(like)
    assert words.dtype == torch.int32 and words.shape == like.shape
    assert words.stride() == like.stride()
    values = words.flatten().double()
    # Uniform over [-2^31, 2^31): mean 0, standard deviation 2^32/sqrt(12); 1M draws.
    assert abs(values.mean().item()) < 0.01 * 2**31
    assert abs(values.std().item() / (2**32 / 12**0.5) - 1) < 0.01
    assert abs((words < 0).double().mean().item() - 0.5) < 0.003


def test_dropout_zeroes_at_the_rate_and_scales_the_rest():
    torch.manual_seed(1)
    layer = Dropout(0.2).train()
    x = torch.rand(1000, 1000) + 1.0  # never zero before dropout
    y = layer(x)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - 0.2) < 0.002  # 5 standard deviations of a binomial on 1M draws
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)


def test_dropout_gradient_is_the_same_mask():
    torch.manual_seed(2)
    x = torch.randn(32, 64, 7, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = Dropout(0.25).train()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    mask = torch.where(y != 0, 1 / 0.75, 0.0)
    torch.testing.assert_close(x.grad, upstream * mask)


def test_dropout_is_identity_in_evaluation_and_reproducible_when_seeded():
    layer = Dropout(0.5)
    x = torch.randn(100, 100)
    assert torch.equal(layer.eval()(x), x)
    layer.train()
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert not torch.equal(layer(x), first)


def test_cnn_gives_the_same_outputs_channels_last_as_contiguous():
    torch.manual_seed(4)
    spec = create_model("cnn", (3, 32, 32), 10)
    assert spec.memory_format == torch.channels_last
    reference = create_model("cnn", (3, 32, 32), 10).network.to(memory_format=torch.contiguous_format)
    reference.load_state_dict(spec.network.state_dict())
    images = torch.rand(8, 3, 32, 32)
    spec.network.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(spec.network(images.contiguous(memory_format=torch.channels_last)),
                                   reference(images), rtol=1e-4, atol=1e-5)
    assert isinstance(spec.network[3], nn.Dropout)
