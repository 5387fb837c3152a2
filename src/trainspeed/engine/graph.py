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

The recording itself is done by a backend, so the logic is testable without a GPU: `ReplayLike`
runs the step on the CPU the way a replay does, with no Python per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models import ModelSpec
from ..optimizers import graph_safe_update
from .step import train_step

Step = Callable[[], None]


class CudaGraphs:
    """Records with torch.cuda.graph after warming up on a side stream, as PyTorch documents.

    Every stream is made on the case's own device: made on the current device instead, they
    would record an empty graph (or fail) for any GPU but cuda:0.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def warm_up(self, step: Step, times: int) -> None:
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(times):
                    step()
            torch.cuda.current_stream(self.device).wait_stream(side)

    def record(self, step: Step) -> Step:
        with torch.cuda.device(self.device):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(self.device)):
                step()
        return graph.replay


class ReplayLike:
    """Plays a graph's part on the CPU: what the recording run did in Python stays, what it
    computed does not, and each replay runs the step's arithmetic with the Python state of the
    moment it was recorded, leaving that state as it found it.

    That is what a CUDA graph does to Python: recording runs the step's Python once and queues
    no work; a replay re-runs the recorded kernels with the numbers they were recorded with and
    runs no Python at all. Code that keeps a count in Python (rather than on the device) shows
    the same stale count here as on a GPU.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, tensors: Callable[[], list[torch.Tensor]]) -> None:
        self.optimizer = optimizer
        self.tensors = tensors  # every tensor a step writes to (weights, optimizer state, sums)

    def warm_up(self, step: Step, times: int) -> None:
        for _ in range(times):
            step()

    def _python_state(self) -> dict:
        groups = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        plain = {k: v for k, v in vars(self.optimizer).items() if isinstance(v, (int, float, bool))}
        return {"groups": groups, "plain": plain}

    def _restore(self, state: dict) -> None:
        for group, saved in zip(self.optimizer.param_groups, state["groups"], strict=True):
            group.update(saved)
        vars(self.optimizer).update(state["plain"])

    def record(self, step: Step) -> Step:
        recorded = self._python_state()
        saved = [tensor.detach().clone() for tensor in self.tensors()]
        step()  # the recording run: its Python effects stay, its arithmetic is undone
        with torch.no_grad():
            for tensor, value in zip(self.tensors(), saved, strict=True):
                tensor.copy_(value)

        def replay() -> None:
            now = self._python_state()
            self._restore(recorded)
            try:
                step()
            finally:
                self._restore(now)

        return replay


class StepGraph:
    """Full-batch training steps replayed from one recording.

    `prepare` records; it runs steps (at learning rate 0) and so belongs before any timed region.
    `update` is the optimizer's update the graph uses; eager steps in the same epoch use it too.
    """

    WARM_UP_STEPS = 3

    def __init__(self, spec: ModelSpec, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, precision: str, backend=None) -> None:
        self.spec, self.optimizer = spec, optimizer
        self.images, self.labels, self.batch_size, self.precision = images, labels, batch_size, precision
        device = images.device
        self.backend = backend or CudaGraphs(device)
        self.index = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.update = graph_safe_update(optimizer)
        self._replay: Step | None = None
        self.failure: str | None = None  # why recording failed; the steps then run without a graph

    @property
    def replaying(self) -> bool:
        return self._replay is not None and self.failure is None

    def written_tensors(self) -> list[torch.Tensor]:
        """What a step writes: the weights, the optimizer's state and the running sums."""
        state = [value for entry in self.optimizer.state.values() for value in entry.values() if torch.is_tensor(value)]
        return [*self.spec.network.parameters(), *self.spec.network.buffers(), *state, self.loss_sum, self.correct]

    def _step(self) -> None:
        train_step(self.spec, self.optimizer, self.images, self.labels, self.index, self.precision,
                   self.loss_sum, self.correct, update=self.update)

    def prepare(self) -> None:
        """Record the step, leaving the model and optimizer as they were before any step."""
        if self._replay is not None:
            return
        self.index.copy_(torch.arange(self.batch_size, device=self.index.device) % len(self.images))
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
            # Recording here would land inside whatever the caller is timing.
            raise RuntimeError("StepGraph.prepare() must record the step before it is run")
        self.index.copy_(index)
        self._replay()
