"""Trained networks saved in a portable form, and read back.

One `.safetensors` file per network: the weights in the format the field shares models in (it
holds only tensors, so loading it runs no code, unlike a pickle), and in its header everything
needed to use them: the architecture's name, the input shape, how pixels are scaled, the class
names, the trainspeed version and the case it was trained in. A digest of the weights tells a
damaged file from a sound one, since safetensors itself checks only the file's structure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .errors import ModelFileError, TrainspeedError
from .models import ModelSpec, create_model
from .output import replacing

FORMAT = "trainspeed-model"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
# What the network expects of its input, in words: the seeds' preprocessing.
NORMALIZATION = "uint8 pixels divided by 255, channels first (C, H, W)"


@dataclass(frozen=True)
class ModelInfo:
    """What a saved network's file says about it, beside its weights."""

    architecture: str  # a registered model name: ann, cnn, mlp:N
    input_shape: tuple[int, int, int]  # (channels, height, width)
    class_names: tuple[str, ...]
    output_activation: str
    normalization: str = NORMALIZATION
    trainspeed_version: str = __version__
    case: dict[str, Any] = field(default_factory=dict)  # the case it was trained in (model, device, dataset...)


@dataclass
class SavedModel:
    """A network read back from its file, ready to predict: `spec.network` on the CPU, in eval mode."""

    spec: ModelSpec
    info: ModelInfo
    path: Path


def file_digest(description: str, tensors: dict[str, torch.Tensor]) -> str:
    """A digest of the description and every weight: an edit to either, or damage, changes it."""
    digest = hashlib.blake2b(description.encode(), digest_size=16)
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().view(torch.uint8).numpy().data if tensor.numel() else b"")
    return digest.hexdigest()


def save_model(spec: ModelSpec, path: str | Path, case: dict[str, Any] | None = None) -> Path:
    """Write `spec`'s network to `path` (atomically: a reader never sees half a file)."""
    path = Path(path)
    # Contiguous fp32 CPU copies: safetensors stores dense arrays, and a channels-last weight is
    # only a layout, not other values.
    tensors = {name: value.detach().to("cpu", torch.float32).contiguous().clone()
               for name, value in spec.network.state_dict().items()}
    info = ModelInfo(spec.name, tuple(spec.image_shape), tuple(spec.class_names or ()), spec.output_activation,
                     case=dict(case or {}))
    description = json.dumps(_info_json(info))
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "digest": file_digest(description, tensors),
              "trainspeed": description}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:
        save_file(tensors, str(temporary), metadata=header)
    return path


def _info_json(info: ModelInfo) -> dict[str, Any]:
    return {"architecture": info.architecture, "input_shape": list(info.input_shape),
            "class_names": list(info.class_names), "output_activation": info.output_activation,
            "normalization": info.normalization, "trainspeed_version": info.trainspeed_version, "case": info.case}


def load_model(path: str | Path) -> SavedModel:
    """A network saved by `trainspeed run --save-models`, on the CPU; a file that is not one, is
    damaged, or does not fit its own description raises ModelFileError with what to do."""
    path = Path(path)
    if path.is_dir():
        # A run's folder keeps its networks in models/: point there rather than say the folder has none.
        inside = sorted(path.glob(f"*{SUFFIX}")) or sorted(path.glob(f"models/*{SUFFIX}"))
        raise ModelFileError(f"{path} is a folder; give one model file in it" + (
            f", such as {inside[0]}" if inside else f" (it holds no {SUFFIX} file)"))
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}; save one with trainspeed run --save-models")
    header, tensors = _read(path)
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a safetensors file, but not a model trainspeed saved (no "
                             f"{FORMAT!r} header); save one with trainspeed run --save-models")
    version = header.get("format_version", "")
    if version != str(FORMAT_VERSION):
        raise ModelFileError(f"{path} is in trainspeed's model format {version or '?'}, this version reads "
                             f"format {FORMAT_VERSION}; load it with the trainspeed that saved it")
    description = header.get("trainspeed", "")
    if header.get("digest") != file_digest(description, tensors):
        raise ModelFileError(f"{path} is damaged or was edited: its weights and description do not match the "
                             "digest saved with them; save the model again")
    if not all(torch.isfinite(tensor).all() for tensor in tensors.values()):
        raise ModelFileError(f"{path} holds weights that are not numbers (NaN or infinity: its training "
                             "diverged); train it again, e.g. with a smaller learning rate or another seed")
    info = _info(path, description)
    spec = _network(path, info, tensors)
    return SavedModel(spec, info, path)


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            header = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise ModelFileError(f"{path} is not a model file trainspeed can read, or it is truncated ({reason}); "
                             "give a .safetensors file written by trainspeed run --save-models") from None
    return header, tensors


def _info(path: Path, text: str) -> ModelInfo:
    try:
        data = json.loads(text)
        if not (isinstance(data["class_names"], list) and isinstance(data["input_shape"], list)
                and all(isinstance(size, int) for size in data["input_shape"])):
            raise TypeError("class_names and input_shape must be lists, the shape of whole numbers")
        info = ModelInfo(str(data["architecture"]), tuple(int(size) for size in data["input_shape"]),
                         tuple(str(name) for name in data["class_names"]), str(data["output_activation"]),
                         str(data.get("normalization", NORMALIZATION)), str(data.get("trainspeed_version", "?")),
                         dict(data.get("case") or {}))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path} has a damaged description ({type(error).__name__}: {error}); "
                             "save the model again") from None
    if (len(info.input_shape) != 3 or min(info.input_shape) < 1 or not info.class_names
            or info.output_activation not in ("softmax", "sigmoid")):
        raise ModelFileError(f"{path} describes an impossible network (input shape {info.input_shape}, "
                             f"{len(info.class_names)} classes, {info.output_activation} output); save the model again")
    return info


def _network(path: Path, info: ModelInfo, tensors: dict[str, torch.Tensor]) -> ModelSpec:
    classes = len(info.class_names)
    try:
        with torch.device("meta"):  # the shapes first, so that a described giant is never allocated
            planned = create_model(info.architecture, info.input_shape, classes).network.state_dict()
    except TrainspeedError as error:
        raise ModelFileError(f"{path} holds a {info.architecture!r} this trainspeed cannot build ({error})") from None
    unfit = sorted(set(planned) ^ set(tensors)) or [name for name in planned
                                                      if planned[name].shape != tensors[name].shape]
    if unfit:
        shape = "x".join(map(str, info.input_shape))
        raise ModelFileError(f"{path} does not fit its own description (a {info.architecture} for {shape} images "
                             f"and {classes} classes): {len(unfit)} weights differ, the first {unfit[0]}; "
                             "save the model again")
    spec = create_model(info.architecture, info.input_shape, classes)
    spec.network.load_state_dict(tensors, strict=True)
    spec.class_names = info.class_names
    spec.network.eval()
    return spec
