"""What a trained network says about images: a network in memory or a saved one, arrays or picture files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine.evaluate import Prediction
from .engine.evaluate import predict as predict_arrays
from .image_files import Picture, read_picture
from .models import ModelSpec
from .saved import SavedModel, load_model

ModelLike = ModelSpec | SavedModel | str | Path


@dataclass(frozen=True)
class Guess:
    label: str
    probability: float


def as_spec(model: ModelLike) -> ModelSpec:
    """The network behind anything `predict` accepts: a trained ModelSpec, a SavedModel or its file."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, SavedModel):
        return model.spec
    return load_model(model).spec


def _is_paths(images) -> bool:
    if isinstance(images, (str, Path)):
        return True
    return isinstance(images, Sequence) and bool(images) and all(isinstance(i, (str, Path)) for i in images)


def read_pictures(paths: Sequence[str | Path], spec: ModelSpec) -> list[Picture]:
    return [read_picture(path, spec.image_shape) for path in paths]


def predict(model: ModelLike, images, batch_size: int = 256) -> Prediction:
    """The seeds' model.predict + argmax. `model`: a trained network (RunResult.trained), a saved model
    or the path of one; `images`: uint8 arrays (N, C, H, W) or (N, H, W, C), or picture files, which
    are converted and resized as the model needs (image_files.py)."""
    spec = as_spec(model)
    if _is_paths(images):
        paths = [images] if isinstance(images, (str, Path)) else list(images)
        images = np.stack([picture.pixels for picture in read_pictures(paths, spec)])
    return predict_arrays(spec, images, batch_size)


def top_guesses(prediction: Prediction, count: int) -> list[list[Guess]]:
    """Each image's `count` most probable classes, most probable first."""
    names = prediction.class_names
    guesses = []
    for row in prediction.probabilities:
        order = np.argsort(-row, kind="stable")[:count]
        guesses.append([Guess(names[i], float(row[i])) for i in order])
    return guesses


@dataclass(frozen=True)
class Answer:
    """One picture file, what was done to it, and the model's most probable classes for it."""

    picture: Picture
    guesses: list[Guess]


@dataclass(frozen=True)
class Answers:
    """`trainspeed predict`'s output: the saved model, and an answer per picture."""

    model: SavedModel
    answers: list[Answer]

    def to_dict(self) -> dict:
        info = self.model.info
        return {
            "model": {"path": str(self.model.path), "architecture": info.architecture,
                      "input_shape": list(info.input_shape), "classes": list(info.class_names),
                      "output_activation": info.output_activation, "trainspeed_version": info.trainspeed_version,
                      "case": info.case},
            "images": [{"path": str(a.picture.path), "size": list(a.picture.original_size),
                        "mode": a.picture.original_mode, "changes": list(a.picture.changes),
                        "top": [{"class": g.label, "probability": round(g.probability, 6)} for g in a.guesses]}
                       for a in self.answers]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)  # strict JSON, as results files are


def predict_files(model_path: str | Path, paths: Sequence[str | Path], top: int = 3) -> Answers:
    """A saved model's `top` guesses for each picture file; every file is read before any answer, so a
    bad one ends the call with its one-line error and nothing half printed."""
    saved = load_model(model_path)
    pictures = read_pictures(paths, saved.spec)
    prediction = predict_arrays(saved.spec, np.stack([picture.pixels for picture in pictures]))
    guesses = top_guesses(prediction, min(top, len(prediction.class_names)))
    return Answers(saved, [Answer(picture, guess) for picture, guess in zip(pictures, guesses, strict=True)])
