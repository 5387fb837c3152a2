"""What trainspeed counts on its own model, handed to a Keras case so both report the same figures.

The parent builds trainspeed's model on the meta device (no memory, no initialization): its
parameter count is what the Keras model must have, and its FLOPs and bytes per step are the ones
every engine's MFU rests on.
"""

from __future__ import annotations

import torch

from .. import flops
from ..cases import CaseKey
from ..machine import devices
from ..models import create_model
from ..optimizers import keras_sgd


def counts_for(key: CaseKey, classes: int, device_name: str) -> dict:
    """Also the GPU's maker and NVML name, for the case's energy meter (its process has no torch)."""
    work = key.workload
    with torch.device("meta"):
        spec = create_model(work.model, work.image_shape, classes)
    optimizer = "sgd" if spec.make_optimizer is keras_sgd else "adam"
    cost = flops.training_step_cost(spec.network, work.image_shape, work.batch_size, optimizer)
    gpu = devices.gpu_identity(torch.device(key.device)) if key.device.startswith("cuda") else None
    return {"params": spec.params, "flops_per_step": cost.flops, "bytes_per_step": cost.bytes,
            "device_name": device_name, "gpu": list(gpu) if gpu else None}
