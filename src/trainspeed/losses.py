"""Keras's losses, reproduced exactly so accuracies can be set beside the seeds' figures."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# keras.backend.epsilon(): the clip Keras applies to probabilities before the log.
KERAS_EPSILON = 1e-7


def keras_categorical_crossentropy(probabilities: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """Keras `categorical_crossentropy(from_logits=False)` averaged over the batch.

    Keras renormalizes the outputs to sum to one (the ANN's sigmoid outputs do not) and clips
    them to [eps, 1 - eps] before the log; both steps change the gradients, so we keep them.
    """
    probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True)
    probabilities = probabilities.clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
    return -(one_hot * probabilities.log()).sum(dim=-1).mean()


def sigmoid_categorical_crossentropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ANN seed's loss: sigmoid outputs, one-hot targets, Keras's categorical cross-entropy."""
    one_hot = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return keras_categorical_crossentropy(torch.sigmoid(logits), one_hot)


def softmax_sparse_crossentropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras `sparse_categorical_crossentropy` on a softmax output layer.

    Keras sees that the probabilities come from a softmax and computes the loss from its logits
    (no clipping), which is exactly the log-softmax cross-entropy.
    """
    return F.cross_entropy(logits, labels)
