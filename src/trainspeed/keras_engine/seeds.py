"""The seeds' Keras models, written as the seeds write them, layer for layer, and their data.

Each builder takes the imported `keras` module, so the same code runs on every backend. The
parameter counts equal trainspeed's own models' (12,230,010 for the ann and 1,667,594 for the
cnn on CIFAR-10), which the case asserts before it trains.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError

# (height, width, channels), as Keras writes an image shape.
KerasShape = tuple[int, int, int]
Builder = Callable[[object, KerasShape, int, str], object]
_SEEDS: dict[str, Builder] = {}


def register_seed(name: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        _SEEDS[name] = builder
        return builder
    return decorate


def build_seed(keras, model: str, shape: KerasShape, classes: int):
    """The compiled Keras model for trainspeed's model name (ann, cnn, mlp:N)."""
    base, _, argument = model.partition(":")
    if base not in _SEEDS:
        raise ConfigError(f"the Keras engines have no {model!r}; they train: {', '.join(sorted(_SEEDS))}")
    return _SEEDS[base](keras, shape, classes, argument)


def one_hot_labels(model: str) -> bool:
    """The ann's seed trains on one-hot labels (categorical cross-entropy); the others on integers."""
    return model == "ann"


def seed_arrays(images: np.ndarray, labels: np.ndarray, classes: int, model: str) -> tuple[np.ndarray, np.ndarray]:
    """What the seeds hand to fit: images channels-last scaled by 1/255, labels as their loss wants.

    The seeds divide uint8 arrays by 255 and get float64, which Keras casts to float32 at the
    model's input; float32 here is the same values without that per-batch cast.
    """
    scaled = np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32)
    scaled /= 255.0
    if one_hot_labels(model):
        targets = np.zeros((len(labels), classes), dtype=np.float32)
        targets[np.arange(len(labels)), labels] = 1.0  # keras.utils.to_categorical
        return scaled, targets
    return scaled, labels.astype(np.int64)


@register_seed("ann")
def ann(keras, shape: KerasShape, classes: int, argument: str):
    """Seed 1: Flatten, Dense(3000, relu), Dense(1000, relu), Dense(10, sigmoid); SGD."""
    model = keras.Sequential([
        keras.Input(shape=shape),
        keras.layers.Flatten(),
        keras.layers.Dense(3000, activation="relu"),
        keras.layers.Dense(1000, activation="relu"),
        keras.layers.Dense(classes, activation="sigmoid"),
    ])
    model.compile(optimizer="SGD", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@register_seed("cnn")
def cnn(keras, shape: KerasShape, classes: int, argument: str):
    """Seed 2: three 3x3 convolutions, max-pooling, dropout, Dense(512), softmax; Adam."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=shape),
        layers.Conv2D(32, (3, 3), padding="same"), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same"), layers.Activation("relu"),
        layers.Conv2D(64, (3, 3)), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512), layers.Activation("relu"),
        layers.Dropout(0.2),
        layers.Dense(classes), layers.Activation("softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@register_seed("mlp")
def mlp(keras, shape: KerasShape, classes: int, argument: str):
    """The exercise: Flatten, N x Dense(128, relu), Dense(classes, softmax); Adam."""
    model = keras.Sequential([keras.Input(shape=shape), keras.layers.Flatten()]
                             + [keras.layers.Dense(128, activation="relu") for _ in range(int(argument))]
                             + [keras.layers.Dense(classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
