"""The training loop: the seeds' `model.fit` and `model.evaluate`, with data kept on the device.

Images stay uint8 on the device and are scaled by 1/255 per batch there, which moves a quarter
of the bytes a float copy would and keeps the host out of the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from . import precision as precision_modes
from .models import ModelSpec
from .stats import steps_per_epoch
from .timing import Timer

if TYPE_CHECKING:
    from .graphs import StepGraph


class EpochStats(NamedTuple):
    loss: float
    accuracy: float


@dataclass
class DeviceData:
    """A data set's arrays as tensors on one device."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @classmethod
    def from_arrays(cls, train_images, train_labels, test_images, test_labels, device: torch.device) -> DeviceData:
        def move(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device)

        return cls(move(train_images), move(train_labels), move(test_images), move(test_labels))


def as_input(images: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """The seeds' preprocessing: uint8 pixels scaled by 1/255, laid out as the model wants."""
    if images.ndim != 4:
        memory_format = torch.contiguous_format
    return images.to(torch.float32, memory_format=memory_format).div_(255.0)


# Called every few steps with (step, steps, running loss, running accuracy).
StepCallback = Callable[[int, int, float, float], None]


def forward(spec: ModelSpec, images: torch.Tensor, labels: torch.Tensor,
            precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and loss for one batch; under bf16 the network autocasts and the loss stays fp32."""
    with precision_modes.autocast(precision, images.device):
        logits = spec.network(as_input(images, spec.memory_format))
    logits = logits.float()
    return logits, spec.loss(logits, labels)


def train_step(spec: ModelSpec, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               index: torch.Tensor, precision: str, loss_sum: torch.Tensor, correct: torch.Tensor,
               update: Callable[[], None] | None = None) -> None:
    """One step on the images at `index`, its loss and hits added to the running sums.

    `update` is the optimizer's update (its `step` unless said otherwise, e.g. a graph-safe one).
    """
    # Fresh gradients: keeping zeroed buffers costs a memset and a read-add-write of every
    # gradient per step (27.6 vs 21.9 ms per ann step); allocation is cheap once glibc keeps
    # freed blocks (devices.keep_freed_host_memory). In a CUDA graph this is Python only: recorded
    # with no gradients, backward writes fresh ones each replay.
    optimizer.zero_grad(set_to_none=True)
    batch_labels = labels[index]
    logits, loss = forward(spec, images[index], batch_labels, precision)
    loss.backward()
    (update or optimizer.step)()
    with torch.no_grad():
        loss_sum += loss.detach() * len(index)
        correct += (logits.argmax(-1) == batch_labels).sum()


class StepRunner:
    """Training steps over one epoch's random order: the seeds' fit(shuffle=True), step by step.

    Running sums stay on the device; `stats` reads them and so waits for the device, `peek`
    does not. With a `graph` (graphs.StepGraph), full batches replay its recorded step and the
    last, partial batch runs eagerly into the same sums.
    """

    def __init__(self, spec: ModelSpec, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, generator: torch.Generator, precision: str = "fp32",
                 graph: StepGraph | None = None) -> None:
        self.spec, self.optimizer, self.precision, self.graph = spec, optimizer, precision, graph
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.order = torch.randperm(len(images), generator=generator).to(images.device, non_blocking=True)
        self.steps = steps_per_epoch(len(images), batch_size)
        if graph is not None:
            self.loss_sum, self.correct = graph.loss_sum.zero_(), graph.correct.zero_()
        else:
            self.loss_sum = torch.zeros((), device=images.device)
            self.correct = torch.zeros((), device=images.device, dtype=torch.int64)
        self.seen = 0
        self._peeked = PeekedStats(self.loss_sum, self.correct) if images.device.type == "cuda" else None
        spec.network.train()

    def run(self, start: int, count: int) -> None:
        for step in range(start, min(start + count, self.steps)):
            index = self.order[step * self.batch_size:(step + 1) * self.batch_size]
            if self.graph is not None and len(index) == self.batch_size:
                self.graph.run(index)
            else:
                train_step(self.spec, self.optimizer, self.images, self.labels, index, self.precision,
                           self.loss_sum, self.correct)
            self.seen += len(index)

    def stats(self) -> EpochStats:
        seen = max(self.seen, 1)
        return EpochStats(self.loss_sum.item() / seen, self.correct.item() / seen)

    def peek(self) -> EpochStats:
        """The running loss and accuracy as far as the device has got, without waiting for it."""
        return self.stats() if self._peeked is None else self._peeked.latest(self.seen)


class PeekedStats:
    """Running sums copied to pinned host memory in the background; read once the copy is done.

    Reading a CUDA tensor waits for every queued kernel, which would drain the queue that keeps
    the GPU busy; an event says without waiting whether the last copy has landed.
    """

    def __init__(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        self.loss_sum, self.correct = loss_sum, correct
        self.host = torch.zeros(2, pin_memory=True)
        self.event: torch.cuda.Event | None = None
        self.copied_seen = 0
        self.known = EpochStats(float("nan"), float("nan"))

    def latest(self, seen: int) -> EpochStats:
        if self.event is not None and self.event.query():
            count = max(self.copied_seen, 1)
            self.known = EpochStats(self.host[0].item() / count, self.host[1].item() / count)
            self.event = None
        if self.event is None:
            self.host.copy_(torch.stack((self.loss_sum, self.correct.to(self.loss_sum.dtype))), non_blocking=True)
            self.copied_seen = seen
            self.event = torch.cuda.Event()
            self.event.record()
        return self.known


def train_epoch(
    spec: ModelSpec,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    on_progress: StepCallback | None = None,
    report_every: int = 50,
    max_steps: int | None = None,
    precision: str = "fp32",
    first_step_timer: Timer | None = None,
    graph: StepGraph | None = None,
) -> EpochStats:
    """One pass over the data in a fresh random order, as Keras's fit(shuffle=True) does.

    With `first_step_timer`, the first step is timed on its own ("first step"): it carries the
    start-up costs a notebook's one-epoch timing includes.
    """
    runner = StepRunner(spec, optimizer, images, labels, batch_size, generator, precision, graph)
    steps = runner.steps if max_steps is None else min(runner.steps, max_steps)
    done = 0
    if first_step_timer is not None and steps:
        with first_step_timer.measure("first step"):
            runner.run(0, 1)
        done = 1
    while done < steps:
        count = min(report_every - done % report_every, steps - done)  # blocks end at multiples of report_every
        runner.run(done, count)
        done += count
        if on_progress is not None:
            loss, accuracy = runner.peek()
            on_progress(done, steps, loss, accuracy)
    return runner.stats()


class Evaluation(NamedTuple):
    loss: float
    accuracy: float
    confusion: list[list[int]]  # [true class][predicted class] -> count


@torch.no_grad()
def evaluate(spec: ModelSpec, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
             precision: str = "fp32") -> Evaluation:
    """The seeds' model.evaluate (mean loss and accuracy, dropout off), plus the confusion matrix."""
    network = spec.network
    network.eval()
    classes = spec.num_classes
    loss_sum = torch.zeros((), device=images.device)
    confusion = torch.zeros(classes * classes, device=images.device, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        batch_labels = labels[start:start + batch_size]
        logits, loss = forward(spec, images[start:start + batch_size], batch_labels, precision)
        loss_sum += loss * len(batch_labels)
        confusion += torch.bincount(batch_labels * classes + logits.argmax(-1), minlength=classes * classes)
    matrix = confusion.view(classes, classes).cpu()
    return Evaluation(loss_sum.item() / len(images), matrix.diagonal().sum().item() / len(images), matrix.tolist())


@dataclass
class Prediction:
    """What the seeds got from model.predict + argmax: a class per image, with probabilities."""

    classes: list[str]
    indices: np.ndarray
    probabilities: np.ndarray


def _as_nchw(images, channels: int) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images))
    if tensor.ndim == 3:  # one image
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"expected images as (N, C, H, W) or (N, H, W, C), got shape {tuple(tensor.shape)}")
    if tensor.shape[1] != channels and tensor.shape[-1] == channels:
        tensor = tensor.permute(0, 3, 1, 2)  # Keras's channels-last layout
    return tensor


@torch.no_grad()
def predict(spec: ModelSpec, images, batch_size: int = 256) -> Prediction:
    """Class names and probabilities for uint8 images (or floats already scaled to [0, 1])."""
    network = spec.network
    network.eval()
    device = next(network.parameters()).device
    tensor = _as_nchw(images, spec.image_shape[0])
    if tuple(tensor.shape[1:]) != tuple(spec.image_shape):
        raise ValueError(
            f"the {spec.name} was built for images of shape {spec.image_shape}, got {tuple(tensor.shape[1:])}")
    outputs = []
    for start in range(0, len(tensor), batch_size):
        batch = tensor[start:start + batch_size].to(device)
        batch = (as_input(batch, spec.memory_format) if batch.dtype == torch.uint8
                 else batch.to(torch.float32, memory_format=spec.memory_format))
        outputs.append(spec.probabilities(network(batch)).cpu())
    probabilities = torch.cat(outputs).numpy()
    indices = probabilities.argmax(-1)
    names = spec.class_names or tuple(str(i) for i in range(probabilities.shape[-1]))
    return Prediction([names[i] for i in indices], indices, probabilities)
