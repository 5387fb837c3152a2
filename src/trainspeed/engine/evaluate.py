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
    ones = torch.ones(min(batch_size, len(images)), device=images.device, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        batch_labels = labels[start:start + batch_size]
        logits, loss = forward(spec, images[start:start + batch_size], batch_labels, precision)
        loss_sum += loss * len(batch_labels)
        # Counted where the tensors are: CUDA's bincount reads its input's maximum back to the host, two
        # waits per batch that an evaluation's time (eval_s) would carry.
        cells = batch_labels * classes + logits.argmax(-1)
        confusion.index_add_(0, cells, ones[:len(cells)])
    matrix = confusion.view(classes, classes).cpu()
    return Evaluation(loss_sum.item() / len(images), matrix.diagonal().sum().item() / len(images), matrix.tolist())


@dataclass
class Prediction:
    """What the seeds got from model.predict + argmax: a class per image, with probabilities."""

    classes: list[str]
    indices: np.ndarray
    probabilities: np.ndarray  # softmax outputs sum to 1 per image; the ann's sigmoid outputs need not
    class_names: tuple[str, ...] = ()  # every class, in the order of the probabilities' columns


def _as_pixels(images, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 pixels (N, C, H, W) from what a person may hand over: uint8 or other whole numbers in 0-255,
    floats already scaled to 0-1 (the seeds' x / 255), channels first or last, one image or many."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    try:
        array = np.array(images)  # a copy: writable and contiguous, whatever the caller's strides
    except ValueError as error:
        raise ImageShapeError(f"the images do not form one array ({error}); give arrays of one shape") from None
    channels, height, width = shape
    if array.ndim == 3 and channels == 1 and array.shape[1:] == (height, width):
        array = array[:, None]  # Keras's greyscale batches (N, H, W) have no channel axis
    elif array.ndim == 3:
        array = array[None]  # one image
    if array.ndim != 4:
        raise ImageShapeError(f"expected images as (N, C, H, W) or (N, H, W, C), got shape {array.shape}")
    if array.shape[1] != channels and array.shape[-1] == channels:
        array = array.transpose(0, 3, 1, 2)  # Keras's channels-last layout
    if tuple(array.shape[1:]) != tuple(shape):
        raise ImageShapeError(f"the model was built for images of shape {tuple(shape)}, got {tuple(array.shape[1:])}; "
                              "give images of that shape, or picture files (trainspeed.predict resizes those)")
    if not len(array):
        raise ImageShapeError("no images given")
    return torch.from_numpy(np.ascontiguousarray(_as_uint8(array)))


def _as_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iub":
        if array.min() < 0 or array.max() > 255:
            raise ImageShapeError(f"whole-number pixels must be from 0 to 255, got {array.min()} to {array.max()}")
        return array.astype(np.uint8)
    if array.dtype.kind != "f":
        raise ImageShapeError(f"images must hold numbers, got {array.dtype}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ImageShapeError(f"float pixels must be scaled to 0-1 as the seeds scale them (x / 255), got "
                              f"{np.nanmin(array):g} to {np.nanmax(array):g}; or give uint8 pixels")
    # Back to the 8-bit values they came from: the network's own scaling then gives the same input.
    return np.round(array * 255.0).astype(np.uint8)


@torch.no_grad()
def predict(spec: ModelSpec, images, batch_size: int = 256) -> Prediction:
    """Class names and probabilities for images: uint8 (or whole numbers in 0-255), or floats in 0-1."""
    if batch_size < 1:
        raise ImageShapeError(f"batch_size must be at least 1, got {batch_size}")
    network = spec.network
    network.eval()
    device = next(network.parameters()).device
    pixels = _as_pixels(images, spec.image_shape)
    outputs = []
    for start in range(0, len(pixels), batch_size):
        batch = as_input(pixels[start:start + batch_size].to(device), spec.memory_format)
        outputs.append(spec.probabilities(network(batch)).float().cpu())
    probabilities = torch.cat(outputs).numpy()
    indices = probabilities.argmax(-1)
    names = spec.class_names or tuple(str(i) for i in range(probabilities.shape[-1]))
    return Prediction([names[i] for i in indices], indices, probabilities, tuple(names))
