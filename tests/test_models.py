import math

import pytest
import torch
from torch import nn

from trainspeed.errors import ConfigError
from trainspeed.models import create_model, list_models

CIFAR = (3, 32, 32)
FASHION = (1, 28, 28)
EXAMPLES = {"ann": "ann", "cnn": "cnn", "mlp:N": "mlp:3"}


@pytest.mark.parametrize(
    "name, shape, expected",
    [
        ("ann", CIFAR, 12_230_010),  # Keras's model.summary() for seed 1
        ("cnn", CIFAR, 1_667_594),  # Keras's model.summary() for seed 2
        ("mlp:1", FASHION, 784 * 128 + 128 + 128 * 10 + 10),
        ("mlp:5", FASHION, 784 * 128 + 128 + 4 * (128 * 128 + 128) + 128 * 10 + 10),
        ("cnn", FASHION, 320 + 18_496 + 36_928 + (6 * 6 * 64 * 512 + 512) + 5_130),
    ],
)
def test_parameter_counts_equal_keras(name, shape, expected):
    assert create_model(name, shape, 10).params == expected


@pytest.mark.parametrize("usage", list_models())
@pytest.mark.parametrize("shape", [CIFAR, FASHION])
def test_every_registered_model_maps_images_to_class_logits(usage, shape):
    spec = create_model(EXAMPLES[usage], shape, 7)
    logits = spec.network(torch.rand(4, *shape))
    assert logits.shape == (4, 7)
    probabilities = spec.probabilities(logits)
    assert torch.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.parametrize("usage", list_models())
def test_keras_initialization(usage):
    spec = create_model(EXAMPLES[usage], CIFAR, 10)
    layers = [m for m in spec.network.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers
    for layer in layers:
        receptive = layer.weight[0, 0].numel() if layer.weight.dim() > 2 else 1
        fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= limit
        assert layer.weight.abs().max() > 0.9 * limit  # uniform over the whole range, not narrower
        assert torch.count_nonzero(layer.bias) == 0


def test_recipes_match_the_seeds():
    ann, cnn, mlp = create_model("ann", CIFAR, 10), create_model("cnn", CIFAR, 10), create_model("mlp:1", CIFAR, 10)
    sgd = ann.make_optimizer(ann.network.parameters())
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["lr"] == 0.01 and sgd.defaults["momentum"] == 0
    assert ann.output_activation == "sigmoid"
    for spec in (cnn, mlp):
        adam = spec.make_optimizer(spec.network.parameters())
        assert (adam.defaults["lr"], adam.defaults["betas"], adam.keras_eps) == (1e-3, (0.9, 0.999), 1e-7)
        assert adam.defaults["weight_decay"] == 0 and not adam.defaults["amsgrad"]
        assert spec.output_activation == "softmax"
    dropouts = [m.p for m in cnn.network.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.25, 0.25, 0.2]


@pytest.mark.parametrize("name, message", [
    ("resnet", "unknown model 'resnet'; choose from: ann, cnn, mlp:N"),
    ("mlp", "mlp needs a number of hidden layers"),
    ("mlp:x", "mlp needs a number of hidden layers"),
    ("mlp:0", "mlp needs a number of hidden layers"),
    ("ann:2", "takes no argument"),
])
def test_bad_model_names(name, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name, CIFAR, 10)


def test_cnn_refuses_images_too_small():
    with pytest.raises(ConfigError, match="too small"):
        create_model("cnn", (3, 6, 6), 10)


def test_cnn_pools_before_relu_with_the_same_outputs_and_gradients_as_keras_order():
    torch.manual_seed(5)
    ours = create_model("cnn", CIFAR, 10).network.eval()
    convs = [m for m in ours if isinstance(m, nn.Conv2d)]
    dense = [m for m in ours if isinstance(m, nn.Linear)]
    keras_order = nn.Sequential(  # the seed's layer order, without dropout (evaluation mode)
        convs[0], nn.ReLU(), nn.MaxPool2d(2), convs[1], nn.ReLU(), convs[2], nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), dense[0], nn.ReLU(), dense[1])
    images = torch.rand(4, *CIFAR) - 0.5  # negative values too, where ReLU and pooling interact
    theirs = keras_order(images.contiguous(memory_format=torch.channels_last))
    expected = [g.clone() for g in torch.autograd.grad(theirs.square().sum(), list(ours.parameters()))]
    mine = ours(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    for got, want in zip(torch.autograd.grad(mine.square().sum(), list(ours.parameters())), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
