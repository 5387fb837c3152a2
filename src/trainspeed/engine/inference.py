"""trainspeed's engine answering after training: the calls that inference.py's rules time."""

from __future__ import annotations

import torch

from .. import inference
from ..machine import devices
from ..machine import precision as precision_modes
from ..models import ModelSpec
from ..results import InferenceFigures
from ..timing import Timer
from .step import as_input


def answer(spec: ModelSpec, images: torch.Tensor, precision: str) -> torch.Tensor:
    """The class probabilities for a batch of uint8 images, as model.predict returns them."""
    with precision_modes.autocast(precision, images.device):
        logits = spec.network(as_input(images, spec.memory_format))
    return spec.probabilities(logits.float())


@torch.no_grad()
def measure_inference(spec: ModelSpec, images: torch.Tensor, precision: str, device: torch.device) -> InferenceFigures:
    """By inference.py's rules: single test images (a different one each call, as requests come), then
    a large batch (a small test set is cycled through to fill it)."""
    spec.network.eval()
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    count = min(len(images), inference.LATENCY_CALLS + 1)

    def batch_answerer(size: int):
        stacked = images[torch.arange(size, device=images.device) % len(images)]
        return lambda: answer(spec, stacked, precision)

    return inference.measure(timer, lambda n: answer(spec, images[n % count:n % count + 1], precision),
                             batch_answerer, devices.is_out_of_memory, lambda: devices.empty_cache(device))
