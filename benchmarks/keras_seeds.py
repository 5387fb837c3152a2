"""The seeds' own Keras code, kept exactly, timed per epoch. Runs in a TensorFlow environment:

    python3 -m venv ~/tf && ~/tf/bin/pip install tensorflow-cpu
    ~/tf/bin/python benchmarks/keras_seeds.py --model cnn --epochs 2 [--limit N]

Prints one JSON line: {"model", "epoch_s": [...], "tensorflow": version}. The data is random
uint8 images of CIFAR-10's shape, scaled by 1/255 as the seeds scale theirs (timing only).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def ann_seed(keras):
    """Seed 1, as written: Flatten, Dense(3000), Dense(1000), Dense(10, sigmoid); SGD."""
    model = keras.Sequential([
        keras.layers.Input(shape=(32, 32, 3)),
        keras.layers.Flatten(),
        keras.layers.Dense(3000, activation="relu"),
        keras.layers.Dense(1000, activation="relu"),
        keras.layers.Dense(10, activation="sigmoid"),
    ])
    model.compile(optimizer="SGD", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn_seed(keras):
    """Seed 2, as written: three 3x3 convolutions, pooling, dropout, Dense(512), softmax; Adam."""
    layers = keras.layers
    model = keras.Sequential([
        layers.Input(shape=(32, 32, 3)),
        layers.Conv2D(32, (3, 3), padding="same"), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same"), layers.Activation("relu"),
        layers.Conv2D(64, (3, 3)), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Flatten(), layers.Dense(512), layers.Activation("relu"), layers.Dropout(0.2),
        layers.Dense(10), layers.Activation("softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["ann", "cnn"], required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=50_000)
    args = parser.parse_args()
    import tensorflow as tf
    from tensorflow import keras

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.limit, 32, 32, 3), dtype=np.uint8).astype("float32") / 255
    labels = rng.integers(0, 10, args.limit)
    model = ann_seed(keras) if args.model == "ann" else cnn_seed(keras)
    targets = keras.utils.to_categorical(labels, 10) if args.model == "ann" else labels
    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    assert model.count_params() == (12_230_010 if args.model == "ann" else 1_667_594)
    model.fit(images, targets, epochs=args.epochs, batch_size=32, verbose=0, callbacks=[EpochTimer()])
    print(json.dumps({"model": args.model, "epoch_s": times, "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
