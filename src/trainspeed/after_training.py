"""What a case does with its trained network before letting it go: times its answers, and saves it.

Both happen in the process that trained it (a case's own child, usually), because the network
lives only there; the saved file goes into the run's folder beside results.json.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import inference
from .cases import CaseKey, file_stem
from .config import RunConfig
from .engine.inference import measure_inference
from .models import ModelSpec
from .results import InferenceFigures
from .saved import SUFFIX, save_model

MODELS_FOLDER = "models"


def case_description(key: CaseKey, repeat: int, config: RunConfig, device_name: str,
                     test_accuracy: float | None) -> dict:
    """The case a saved network came from, as its file records it."""
    work = key.workload
    return {"model": work.model, "device": key.device, "device_name": device_name, "dataset": work.dataset,
            "train_images": work.train_images, "test_images": work.test_images, "batch_size": work.batch_size,
            "precision": work.precision, "engine": work.engine, "epochs": config.epochs, "seed": config.seed,
            "repeat": repeat, "test_accuracy": test_accuracy}


def model_path(config: RunConfig, key: CaseKey, repeat: int, suffix: str = SUFFIX) -> tuple[Path, str]:
    """Where a repeat's network is saved, and that path as results.json records it (relative to the run's folder)."""
    relative = f"{MODELS_FOLDER}/{file_stem(key, repeat, config.repeats)}{suffix}"
    return Path(config.out) / relative, relative


def after_training(config: RunConfig, key: CaseKey, repeat: int, spec: ModelSpec, test_images: torch.Tensor,
                   device: torch.device, device_name: str, test_accuracy: float | None,
                   progress, save: bool = True) -> tuple[InferenceFigures | None, str | None]:
    """The inference figures (if asked for) and the saved network's path (if asked for and `save`:
    a repeat cut short by a time budget has no fully trained network to save)."""
    figures = None
    if config.inference and len(test_images):
        figures = measure_inference(spec, test_images, key.workload.precision, device)
        progress.message(f"{key.label()}: {inference.describe(figures)}")
    saved = None
    if config.save_models and config.out and save:
        path, saved = model_path(config, key, repeat)
        save_model(spec, path, case_description(key, repeat, config, device_name, test_accuracy))
    return figures, saved

