"""A training step recorded once as a CUDA graph and replayed for every full batch.

At batch 32 a GPU finishes a small model's kernels faster than Python can launch them, so an
eager loop times the host. A graph launches the whole step (gather the batch, forward, backward,
optimizer update, running loss and accuracy) with one call. What a graph needs:

- fixed addresses: the batch is chosen by copying indices into one static buffer, and the
  running sums live in static tensors;
- no Python numbers that change between steps: the optimizer's update runs with its step count
  on the device (optimizers.graph_safe_update);
- its memory and lazy state made before recording: a few warm-up steps run at learning rate 0
  and the optimizer is then reset in place, so the model trains exactly as if they never ran.

The recording itself is done by a backend, so the logic is testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .models import ModelSpec
from .optimizers import graph_safe_update
from .train import train_step

Step = Callable[[], None]


class CudaGraphs:
    """Records with torch.cuda.graph after warming up on a side stream, as PyTorch documents."""

    def warm_up(self, step: Step, times: int) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(times):
                step()
        torch.cuda.current_stream().wait_stream(side)

    def record(self, step: Step) -> Step:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph.replay


class Eager:
    """Runs the step as it is: the same buffers and order of work, without a graph (CPU tests)."""

    def warm_up(self, step: Step, times: int) -> None:
        for _ in range(times):
            step()

    def record(self, step: Step) -> Step:
        return step


class StepGraph:
    """Full-batch training steps replayed from one recording, made at the first step."""

    WARM_UP_STEPS = 3

    def __init__(self, spec: ModelSpec, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, precision: str, backend=None) -> None:
        self.spec, self.optimizer = spec, optimizer
        self.images, self.labels, self.batch_size, self.precision = images, labels, batch_size, precision
        self.backend = backend or CudaGraphs()
        device = images.device
        self.index = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self._update = graph_safe_update(optimizer)
        self._replay: Step | None = None
        self.failure: str | None = None  # why recording failed; the steps then run without a graph

    @property
    def replaying(self) -> bool:
        return self._replay is not None and self.failure is None

    def _step(self) -> None:
        train_step(self.spec, self.optimizer, self.images, self.labels, self.index, self.precision,
                   self.loss_sum, self.correct, update=self._update)

    def _record(self, index: torch.Tensor) -> None:
        self.index.copy_(index)
        rates = [group["lr"] for group in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["lr"] = 0.0  # warm-up steps allocate and initialize, but must not train
        try:
            self.backend.warm_up(self._step, self.WARM_UP_STEPS)
        finally:
            for group, rate in zip(self.optimizer.param_groups, rates, strict=True):
                group["lr"] = rate
        self._restart()
        try:
            self._replay = self.backend.record(self._step)
        except RuntimeError as error:
            if isinstance(error, torch.OutOfMemoryError):
                raise
            # A model or PyTorch build that cannot be recorded still trains, only slower.
            self.failure = f"CUDA graph capture failed ({str(error).splitlines()[0][:160]}); steps ran without a graph"
            self._restart()
            self._replay = self._step

    def _restart(self) -> None:
        """Back to the state before any step: optimizer at step 0, no gradients, sums at zero."""
        reset = getattr(self.optimizer, "reset_state", None)
        if reset is not None:
            reset()
        self.loss_sum.zero_(), self.correct.zero_()
        self.optimizer.zero_grad(set_to_none=True)

    def run(self, index: torch.Tensor) -> None:
        """One training step on the images at `index` (a full batch, on the device)."""
        if self._replay is None:
            self._record(index)
        self.index.copy_(index)
        self._replay()
