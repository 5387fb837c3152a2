"""FLOPs and bytes of a training step, counted from the layer shapes (no forward pass needed).

Counts what training computes: for every Linear and Conv2d, the forward product (2 FLOPs per
multiply-add), the weight gradient, and the input gradient except for the first layer, whose
input (the images) needs none. Element-wise work (activations, pooling, the loss, the update)
is left out of the FLOPs: it is memory traffic, and the byte count covers it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

FLOAT_BYTES = 4

# Bytes per parameter an optimizer step moves: SGD reads weight and gradient and writes the
# weight; Adam also reads and writes its two moments.
UPDATE_BYTES_PER_PARAM = {"sgd": 3 * FLOAT_BYTES, "adam": 7 * FLOAT_BYTES}


@dataclass(frozen=True)
class StepCost:
    flops: float  # per training step at the given batch size
    bytes: float  # a lower bound on the bytes moved to and from memory per step


def _conv_output(size: int, module: nn.Conv2d, axis: int) -> int:
    kernel, stride = module.kernel_size[axis], module.stride[axis]
    if module.padding == "same":
        return size
    padding = module.padding[axis] if isinstance(module.padding, tuple) else 0
    return (size + 2 * padding - kernel) // stride + 1


def training_step_cost(network: nn.Module, image_shape: tuple[int, int, int], batch_size: int,
                       optimizer: str) -> StepCost:
    """FLOPs and a bytes floor for one training step of a sequential network."""
    channels, height, width = image_shape
    flat: int | None = None
    flops = 0.0
    activation_elements = batch_size * channels * height * width  # the input batch, read once
    parameters = 0
    first = True
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            out_h, out_w = _conv_output(height, module, 0), _conv_output(width, module, 1)
            macs = batch_size * out_h * out_w * module.out_channels * module.in_channels * \
                module.kernel_size[0] * module.kernel_size[1]
            channels, height, width = module.out_channels, out_h, out_w
        elif isinstance(module, nn.Linear):
            macs = batch_size * module.in_features * module.out_features
            flat = module.out_features
        elif isinstance(module, nn.MaxPool2d):
            kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            height, width = height // kernel, width // kernel
            activation_elements += batch_size * channels * height * width
            continue
        elif isinstance(module, nn.Flatten):
            flat = channels * height * width
            continue
        else:
            continue
        # forward + weight gradient, + input gradient for every layer but the first
        flops += 2 * macs * (2 if first else 3)
        first = False
        parameters += sum(p.numel() for p in module.parameters())
        outputs = batch_size * (flat if isinstance(module, nn.Linear) else channels * height * width)
        # Each output is written and read in the forward and backward passes, and so is its gradient.
        activation_elements += 4 * outputs
    weight_bytes = parameters * FLOAT_BYTES
    # Weights read for forward and for the input gradient, the gradient written, then the update.
    parameter_traffic = 3 * weight_bytes + parameters * UPDATE_BYTES_PER_PARAM[optimizer]
    return StepCost(flops=flops, bytes=parameter_traffic + activation_elements * FLOAT_BYTES)


def epoch_floor_s(cost: StepCost, steps: float, peak_flops: float, bandwidth: float) -> float:
    """The least time an epoch can take: bound by arithmetic or by memory, whichever is slower."""
    return max(cost.flops * steps / peak_flops, cost.bytes * steps / bandwidth)


def model_flops_utilization(flops_per_s: float, peak_flops: float) -> float:
    """MFU: the share of the measured peak that training achieved."""
    return flops_per_s / peak_flops
