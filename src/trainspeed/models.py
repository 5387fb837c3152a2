"""The models, by name: each is one builder that adapts to the data set's shape and classes.

Every layer starts as Keras's do (glorot-uniform kernels, zero biases) and trains with the
seeds' optimizer and loss, so results are comparable with the Keras originals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .layers import Dropout
from .losses import sigmoid_categorical_crossentropy, softmax_sparse_crossentropy
from .optimizers import KerasAdam, keras_sgd

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OptimizerFactory = Callable[[object], torch.optim.Optimizer]


@dataclass
class ModelSpec:
    """A network and the recipe it trains with. The network returns logits."""

    name: str
    network: nn.Module
    loss: LossFn
    make_optimizer: OptimizerFactory
    output_activation: str  # "softmax" or "sigmoid": how logits become the Keras outputs
    image_shape: tuple[int, int, int] = (0, 0, 0)  # (channels, height, width) it was built for
    class_names: tuple[str, ...] | None = None
    # How activations are laid out; inputs are converted to it (channels-last suits convolutions).
    memory_format: torch.memory_format = torch.contiguous_format

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    @property
    def convolutional(self) -> bool:
        return any(isinstance(m, nn.Conv2d) for m in self.network.modules())

    @property
    def num_classes(self) -> int:
        last = [m for m in self.network.modules() if isinstance(m, nn.Linear)][-1]
        return last.out_features

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, -1) if self.output_activation == "softmax" else torch.sigmoid(logits)


ImageShape = tuple[int, int, int]  # (channels, height, width)
Builder = Callable[[ImageShape, int, str], ModelSpec]
_MODELS: dict[str, tuple[Builder, str]] = {}


def register_model(name: str, usage: str | None = None) -> Callable[[Builder], Builder]:
    """Register a builder; `usage` documents a parameterized name such as 'mlp:N'."""
    def decorate(builder: Builder) -> Builder:
        _MODELS[name] = (builder, usage or name)
        return builder
    return decorate


def list_models() -> list[str]:
    return [usage for _, usage in _MODELS.values()]


def check_model(name: str, image_shape: ImageShape = (1, 8, 8), num_classes: int = 2) -> None:
    """Fail early, with the builder's own message, on a name or an image shape it does not accept.

    Built on the meta device: shapes are checked, and no memory is allocated or initialized.
    """
    base, _, argument = name.partition(":")
    entry = _MODELS.get(base)
    if entry is None:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(list_models())}")
    with torch.device("meta"):
        spec = entry[0](image_shape, num_classes, argument)
        spec.network(torch.zeros(1, *image_shape))


def create_model(name: str, image_shape: ImageShape, num_classes: int,
                 memory_format: torch.memory_format | None = None) -> ModelSpec:
    """The named model, initialized as Keras does; `memory_format` overrides a convolutional
    model's own choice of activation layout (the layout never changes the math)."""
    base, _, argument = name.partition(":")
    entry = _MODELS.get(base)
    if entry is None:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(list_models())}")
    spec = entry[0](image_shape, num_classes, argument)
    spec.image_shape = tuple(image_shape)
    if memory_format is not None and spec.convolutional:
        spec.memory_format = memory_format
    keras_init(spec.network)
    spec.network.to(memory_format=spec.memory_format)
    return spec


def keras_init(network: nn.Module) -> None:
    """Keras's defaults for Dense and Conv2D: glorot-uniform kernels, zero biases."""
    for module in network.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _no_argument(name: str, argument: str) -> None:
    if argument:
        raise ConfigError(f"model {name!r} takes no argument (got {name}:{argument})")


@register_model("ann")
def ann(image_shape: ImageShape, num_classes: int, argument: str) -> ModelSpec:
    """Seed 1: Flatten, Dense(3000, relu), Dense(1000, relu), Dense(classes, sigmoid); SGD."""
    _no_argument("ann", argument)
    channels, height, width = image_shape
    network = nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * height * width, 3000), nn.ReLU(),
        nn.Linear(3000, 1000), nn.ReLU(),
        nn.Linear(1000, num_classes),
    )
    return ModelSpec("ann", network, sigmoid_categorical_crossentropy, keras_sgd, "sigmoid")


def _conv_output(size: int, padding: str) -> int:
    return size if padding == "same" else size - 2


@register_model("cnn")
def cnn(image_shape: ImageShape, num_classes: int, argument: str) -> ModelSpec:
    """Seed 2: three 3x3 convolutions with max-pooling and dropout, Dense(512), softmax; Adam."""
    _no_argument("cnn", argument)
    channels, height, width = image_shape
    # Spatial size after: same conv, pool 2, same conv, valid conv, pool 2 (floor, as Keras).
    h = (_conv_output(height // 2, "valid")) // 2
    w = (_conv_output(width // 2, "valid")) // 2
    if h < 1 or w < 1:
        raise ConfigError(f"images of {height}x{width} are too small for the cnn (at least 8x8)")
    network = nn.Sequential(
        # Keras's Conv-ReLU-MaxPool as Conv-MaxPool-ReLU: ReLU is monotonic, so the outputs and the
        # gradients are the same, and ReLU then touches a quarter of the values (1.5 ms of a 16 ms
        # CPU step). In place: max-pooling keeps indices and a convolution its input, not these.
        nn.Conv2d(channels, 32, 3, padding="same"),
        nn.MaxPool2d(2), nn.ReLU(inplace=True),
        Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3),
        nn.MaxPool2d(2), nn.ReLU(inplace=True),
        Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * h * w, 512), nn.ReLU(inplace=True),
        Dropout(0.2),
        nn.Linear(512, num_classes),
    )
    # Channels-last: oneDNN's convolutions and max-pooling run 2 ms faster per step on it (of 22).
    return ModelSpec("cnn", network, softmax_sparse_crossentropy, KerasAdam, "softmax",
                     memory_format=torch.channels_last)


# A guard against typos such as mlp:100000 (the exercise it comes from uses 1 and 5 hidden layers).
MAX_HIDDEN_LAYERS = 100


@register_model("mlp", usage="mlp:N")
def mlp(image_shape: ImageShape, num_classes: int, argument: str) -> ModelSpec:
    """The exercise: Flatten, N hidden Dense(128, relu), Dense(classes, softmax); Adam."""
    if not argument.isdigit() or not 1 <= int(argument) <= MAX_HIDDEN_LAYERS:
        raise ConfigError(f"mlp needs a number of hidden layers from 1 to {MAX_HIDDEN_LAYERS}, e.g. mlp:1 or mlp:5 "
                          f"(got {'mlp:' + argument!r})")
    hidden = int(argument)
    channels, height, width = image_shape
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = channels * height * width
    for _ in range(hidden):
        layers += [nn.Linear(width_in, 128), nn.ReLU()]
        width_in = 128
    layers.append(nn.Linear(width_in, num_classes))
    return ModelSpec(f"mlp:{hidden}", nn.Sequential(*layers), softmax_sparse_crossentropy, KerasAdam, "softmax")
