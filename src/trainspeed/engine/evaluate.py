"""After training: the seeds' model.evaluate on the test set, and model.predict for anyone's images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import ImageShapeError
from ..models import ModelSpec
from .step import as_input, forward


class Evaluation(NamedTuple):
    loss: float
    accuracy: float
    confusion: list[list[int]]  # [true class][predicted class] -> count


@torch.no_grad()
def evaluate(spec: ModelSpec, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
             precision: str = "fp32") -> Evaluation:
    """The seeds' model.evaluate (mean loss and accuracy, dropout off), plus the confusion matrix."""
    network = spec.network
    network.eval()
    classes = spec.num_classes
    loss_sum = torch.zeros((), device=images.device)
    confusion = torch.zeros(classes * classes, device=images.device, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        batch_labels = labels[start:start + batch_size]
        logits, loss = forward(spec, images[start:start + batch_size], batch_labels, precision)
        loss_sum += loss * len(batch_labels)
        confusion += torch.bincount(batch_labels * classes + logits.argmax(-1), minlength=classes * classes)
    matrix = confusion.view(classes, classes).cpu()
    return Evaluation(loss_sum.item() / len(images), matrix.diagonal().sum().item() / len(images), matrix.tolist())


@dataclass
class Prediction:
    """What the seeds got from model.predict + argmax: a class per image, with probabilities."""

    classes: list[str]
    indices: np.ndarray
    probabilities: np.ndarray  # softmax outputs sum to 1 per image; the ann's sigmoid outputs need not
    class_names: tuple[str, ...] = ()  # every class, in the order of the probabilities' columns


def _as_nchw(images, channels: int) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images))
    if tensor.ndim == 3:  # one image
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ImageShapeError(f"expected images as (N, C, H, W) or (N, H, W, C), got shape {tuple(tensor.shape)}")
    if tensor.shape[1] != channels and tensor.shape[-1] == channels:
        tensor = tensor.permute(0, 3, 1, 2)  # Keras's channels-last layout
    return tensor


@torch.no_grad()
def predict(spec: ModelSpec, images, batch_size: int = 256) -> Prediction:
    """Class names and probabilities for uint8 images (or floats already scaled to [0, 1])."""
    network = spec.network
    network.eval()
    device = next(network.parameters()).device
    tensor = _as_nchw(images, spec.image_shape[0])
    if tuple(tensor.shape[1:]) != tuple(spec.image_shape):
        raise ImageShapeError(
            f"the {spec.name} was built for images of shape {spec.image_shape}, got {tuple(tensor.shape[1:])}; "
            "give images of that shape, or picture files (trainspeed.predict resizes those)")
    outputs = []
    for start in range(0, len(tensor), batch_size):
        batch = tensor[start:start + batch_size].to(device)
        batch = (as_input(batch, spec.memory_format) if batch.dtype == torch.uint8
                 else batch.to(torch.float32, memory_format=spec.memory_format))
        outputs.append(spec.probabilities(network(batch)).cpu())
    probabilities = torch.cat(outputs).numpy()
    indices = probabilities.argmax(-1)
    names = spec.class_names or tuple(str(i) for i in range(probabilities.shape[-1]))
    return Prediction([names[i] for i in indices], indices, probabilities, tuple(names))
