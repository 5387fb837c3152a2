import math

import torch

from trainspeed.losses import (
    keras_categorical_crossentropy,
    sigmoid_categorical_crossentropy,
    softmax_sparse_crossentropy,
)


def test_keras_categorical_crossentropy_renormalizes_and_clips():
    probabilities = torch.tensor([[0.2, 0.6, 0.2], [1.0, 0.0, 0.5]])
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # Row 1 sums to 1: -log(0.6). Row 2: p = [2/3, 0, 1/3]; the true class is clipped to 1e-7.
    expected = (-math.log(0.6) - math.log(1e-7)) / 2
    assert math.isclose(keras_categorical_crossentropy(probabilities, one_hot).item(), expected, rel_tol=1e-6)


def test_sigmoid_outputs_are_divided_by_their_sum():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigmoids 0.5 and 0.75
    loss = sigmoid_categorical_crossentropy(logits, torch.tensor([1]))
    assert math.isclose(loss.item(), -math.log(0.75 / 1.25), rel_tol=1e-6)


def test_sparse_crossentropy_is_minus_log_softmax():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    expected = -math.log(math.exp(2.0) / (math.exp(1.0) + math.exp(2.0) + math.exp(3.0)))
    assert math.isclose(softmax_sparse_crossentropy(logits, torch.tensor([1])).item(), expected, rel_tol=1e-6)
