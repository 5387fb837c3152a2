"""One training step, and the steps of an epoch: the seeds' `model.fit`, with data kept on the device.

Images stay uint8 on the device and are scaled by 1/255 per batch there, which moves a quarter
of the bytes a float copy would and keeps the host out of the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import torch

from ..machine import precision as precision_modes
from ..models import ModelSpec
from ..stats import steps_per_epoch


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
    _laid_out: dict[torch.memory_format, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, train_images, train_labels, test_images, test_labels, device: torch.device) -> DeviceData:
        def move(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device)

        return cls(move(train_images), move(train_labels), move(test_images), move(test_labels))

    def train_images_as(self, memory_format: torch.memory_format | None) -> torch.Tensor:
        """The training images, stored in the layout the model's activations use (a copy made once).

        A batch gathered from them is then laid out as `as_input` returns it, and scaling it is a
        plain cast instead of a transposing one: 0.06 vs 0.15 ms per cnn batch on the CPU. A GPU
        casts either way in a few microseconds, and the copy would cost its memory: kept as it is.
        """
        images = self.train_images
        if memory_format in (None, torch.contiguous_format) or images.ndim != 4 or images.device.type != "cpu":
            return images
        if memory_format not in self._laid_out:
            self._laid_out[memory_format] = images.contiguous(memory_format=memory_format)
        return self._laid_out[memory_format]

    def keep_only_layout(self, memory_format: torch.memory_format | None) -> None:
        """Free the copies a layout probe made for layouts the case did not choose (150 MB for CIFAR-10)."""
        for other in [fmt for fmt in self._laid_out if fmt != memory_format]:
            del self._laid_out[other]


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


class RecordedStep(Protocol):
    """A full-batch step replayed without Python (engine.graph.StepGraph), and its running sums."""

    loss_sum: torch.Tensor
    correct: torch.Tensor

    def update(self) -> None:
        """The optimizer update the recording uses, for eager steps that must agree with it."""

    def run(self, index: torch.Tensor) -> None: ...


class EpochSteps:
    """Training steps over one epoch's random order: the seeds' fit(shuffle=True), step by step.

    Running sums stay on the device; `stats` reads them and so waits for the device, `peek`
    does not. With a `graph`, full batches replay its recorded step and the last, partial batch
    runs eagerly into the same sums, with the graph's update: replays run no Python, so an
    optimizer's Python-side state (Keras Adam's step count) is stale, and only the update the
    graph uses reads the true state from the device.
    """

    def __init__(self, spec: ModelSpec, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, generator: torch.Generator, precision: str = "fp32",
                 graph: RecordedStep | None = None) -> None:
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
        """Steps start, start + 1, ... (count of them, or to the end of the epoch)."""
        for step in range(start, min(start + count, self.steps)):
            index = self.order[step * self.batch_size:(step + 1) * self.batch_size]
            if self.graph is not None and len(index) == self.batch_size:
                self.graph.run(index)
            else:
                train_step(self.spec, self.optimizer, self.images, self.labels, index, self.precision,
                           self.loss_sum, self.correct, update=self.graph.update if self.graph else None)
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
