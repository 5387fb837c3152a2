"""One repeat of a data-parallel case, as one rank of a DDP job trains it (torch.distributed).

Every rank builds the model from the seed (DDP then broadcasts rank 0's weights), draws each
epoch's order from one generator seeded alike on every rank, and trains on its slice of each
global batch (data_parallel.shard), its loss weighted so that DDP's mean of the ranks' gradients
is the whole batch's gradient: the same step as one device with the same batch, up to rounding.
Each epoch is timed from a barrier to a synchronize on every rank; the slowest rank's time is the
case's. Gradient all-reduces are timed by a communication hook. Rank 0 alone evaluates and answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from statistics import median

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from . import faults, stopping
from .cases import CaseKey, repeat_label
from .config import RunConfig
from .data import Dataset
from .data_parallel import (
    EAGER_REASON,
    LOST_PEER_WORDS,
    ParallelFigures,
    collective_text,
    loss_weight,
    merged_seconds,
    shard,
    timed_out,
)
from .energy import EnergyFigures, figures
from .engine.evaluate import evaluate, predict
from .engine.step import DeviceData, EpochStats, PeekedStats, forward
from .errors import ConfigError
from .machine import devices, power, precision, validity
from .machine.describe import device_label
from .measure import copy_to_device, meter_for, step_cost
from .models import create_model
from .progress import REPORT_SECONDS
from .results import SAMPLE_IMAGES, EpochRecord, Measurement, StartupCost
from .stats import first_and_steady, steps_per_epoch
from .timing import Timer


def rank_device(kind: str) -> torch.device:
    """This rank's device: the CPU, or the GPU of its local rank among those it can see."""
    if kind == "cpu":
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


# Ranks start as processes that import torch: on a busy machine one may arrive many seconds after
# another. Joining waits this long at the least, whatever --dist-timeout allows a collective.
JOIN_TIMEOUT_S = 120.0
_collectives: dist.ProcessGroup | None = None


def join(timeout_s: float) -> None:
    """Join the job's process group, over gloo whatever the device: what goes through it is small and on the
    CPU (rank 0's plan, its refusal), and a rank can join before it knows the device (a resumed run learns it
    from rank 0). A rank that does not arrive within max(`timeout_s`, JOIN_TIMEOUT_S) raises instead of waiting."""
    if dist.is_initialized():
        return
    waited_s = max(timeout_s, JOIN_TIMEOUT_S)
    try:
        dist.init_process_group("gloo", timeout=timedelta(seconds=waited_s))
    except dist.DistError as error:
        raise ConfigError(_join_failure(error, waited_s)) from None


def open_collectives(backend: str, timeout_s: float) -> None:
    """The group training's collectives run in: the device's backend (gloo, NCCL) and --dist-timeout, so that
    a collective a rank stopped answering raises within `timeout_s` instead of hanging. Every rank calls it."""
    global _collectives
    if _collectives is None:
        _collectives = dist.new_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def _join_failure(error: BaseException, waited_s: float) -> str:
    """Why this rank could not join its job, and what to do: the launcher's variables named."""
    text = str(error)
    port = os.environ.get("MASTER_PORT", "?")
    if "EADDRINUSE" in text or "address already in use" in text.lower():
        return (f"MASTER_PORT={port} is in use by another program: choose a free port with torchrun's "
                "--master-port, or --rdzv-endpoint HOST:PORT")
    if isinstance(error, dist.DistStoreError) or "timeout" in text.lower() or "timed out" in text.lower():
        return (f"rank {os.environ.get('RANK', '?')} waited {waited_s:g} s for the job's WORLD_SIZE="
                f"{os.environ.get('WORLD_SIZE', '?')} ranks at {os.environ.get('MASTER_ADDR', '?')}:{port}, and not "
                "all of them came: start every rank with the same torchrun command (--nnodes on each machine)")
    return f"this rank could not join its job at {os.environ.get('MASTER_ADDR', '?')}:{port}: {text.splitlines()[0]}"


@contextmanager
def peers_lost_stop_the_run() -> Iterator[None]:
    """Within: a collective that fails because another rank is gone or silent stops this run as a signal
    would (stopping.PeerLost), so that the finished cases are kept and the run can be resumed, rather than
    ending in the backend's traceback. Any other error is ours, and goes on as it is."""
    try:
        yield
    except RuntimeError as error:
        text = collective_text(error)
        communication = isinstance(error, dist.DistError) or any(
            word in str(error).lower() for word in ("gloo", "nccl", *LOST_PEER_WORDS))
        if not communication:
            raise
        stopping.ignore_stops()  # the launcher's SIGTERM to this rank follows: the clean-up comes first
        if timed_out(text):
            raise stopping.PeerLost(f"a rank of the job that stopped answering ({text}; raise --dist-timeout if "
                                    "the ranks are only slow)") from None
        raise stopping.PeerLost(f"the loss of another rank of the job ({text})") from None


def collectives() -> dist.ProcessGroup | None:
    """The job's group for training's collectives, with --dist-timeout; None before open_collectives."""
    return _collectives


class AllReduceClock:
    """A DDP communication hook: PyTorch's own all-reduce, with the time each bucket was in flight."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.intervals: list[tuple[float, float]] = []
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.reference: torch.cuda.Event | None = None  # where a GPU's intervals are measured from

    # Unannotated: DDP checks a hook's annotations against the classes, and these would be strings here.
    def hook(self, state, bucket):
        start = time.perf_counter()
        began = torch.cuda.Event(enable_timing=True) if self.cuda else None
        if began is not None:
            began.record()
        future = default_hooks.allreduce_hook(state, bucket)

        def finished(done: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            if began is not None:  # the callback runs on the stream the result is ready on
                ended = torch.cuda.Event(enable_timing=True)
                ended.record()
                self.events.append((began, ended))
            else:
                self.intervals.append((start, time.perf_counter()))
            return done.value()

        return future.then(finished)

    def seconds(self) -> float:
        """All-reduce seconds since the last call, read after the device was synchronized: the time
        covered by at least one bucket in flight. A bucket queued behind the one before it spans that
        one's time too, so a sum of the buckets' spans would count it twice."""
        if self.cuda and self.reference is not None:
            self.intervals = [(self.reference.elapsed_time(began) / 1e3, self.reference.elapsed_time(ended) / 1e3)
                              for began, ended in self.events]
        total = merged_seconds(self.intervals)
        self.intervals, self.events = [], []
        self.reference = self._mark()
        return total

    def _mark(self) -> torch.cuda.Event | None:
        """An event recorded now, before any of the next period's buckets, to measure them from."""
        if not self.cuda:
            return None
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event


def _gathered(value: float, device: torch.device) -> list[float]:
    """`value` from every rank, in rank order (NCCL reduces tensors on the GPU, gloo on the CPU)."""
    slots = torch.zeros(dist.get_world_size(), dtype=torch.float64, device=device)
    slots[dist.get_rank()] = value
    dist.all_reduce(slots, group=collectives())
    return slots.tolist()


def measure_rank_repeat(config: RunConfig, key: CaseKey, repeat: int, data: Dataset, device: torch.device,
                        progress, startup: StartupCost, threads: int | None,
                        copied: tuple[DeviceData, float] | None = None) -> Measurement | None:
    """Train this rank's share of the case; rank 0 returns the repeat's Measurement, others None.
    `copied`: the data already on the device, and the seconds that copy took (else copied here)."""
    work = key.workload
    rank, world = dist.get_rank(), dist.get_world_size()
    precision.apply(work.precision)
    devices.configure_device(device)
    timer = Timer(synchronize=lambda: devices.synchronize(device))
    on_device, copy_s = copied or copy_to_device(data, device)
    with timer.measure("build") as built:
        torch.manual_seed(config.seed)
        spec = create_model(work.model, data.image_shape, data.num_classes)
        spec.network.to(device)
        network = DistributedDataParallel(spec.network, device_ids=[device.index] if device.type == "cuda" else None,
                                          process_group=collectives())
        clock = AllReduceClock(device)
        network.register_comm_hook(collectives() or dist.group.WORLD, clock.hook)
        optimizer = spec.make_optimizer(network.parameters())
    # Dropout's masks: each rank its own stream, as in one device's batch, rather than the same masks
    # on every rank's slice (the weights are the same everywhere: DDP broadcast rank 0's).
    torch.manual_seed(config.seed + rank)
    cost = step_cost(spec, optimizer, data.image_shape, work.batch_size)
    trained = replace(spec, network=network)
    batch, count = work.batch_size, len(on_device.train_images)
    steps = steps_per_epoch(count, batch)
    label = repeat_label(key, repeat, config.repeats)
    generator = torch.Generator().manual_seed(config.seed)
    history, own_s, allreduce_s = [], [], []
    epoch_s, first_step_s = [], None
    # Each GPU is read by its own rank; a CPU, shared by the ranks on its machine, by the first of them.
    reads = device.type == "cuda" or int(os.environ.get("LOCAL_RANK", "0")) == 0
    meter = power.PowerLog(meter_for(device, config.cpu_watts) if reads else "")
    with meter:
        for epoch in range(1, config.epochs + 1):
            progress.start_epoch(f"{label}: epoch {epoch}/{config.epochs}", steps, count)
            order = torch.randperm(count, generator=generator).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.float64, device=device)
            peeked = PeekedStats(loss_sum, correct) if rank == 0 and device.type == "cuda" else None
            network.train()
            dist.barrier(group=collectives())
            devices.synchronize(device)
            clock.seconds()  # forget the barrier's and the last epoch's
            meter.epoch_started()
            started = time.perf_counter()
            next_report = started + REPORT_SECONDS
            for step in range(steps):
                faults.at_training_step(work.model, rank)
                batch_index = order[step * batch:(step + 1) * batch]
                low, high = shard(len(batch_index), world, rank)
                # An empty slice still steps, on one image with zero weight: DDP needs every rank's gradients.
                mine = batch_index[low:high] if high > low else batch_index[:1]
                weight = loss_weight(high - low, len(batch_index), world)
                optimizer.zero_grad(set_to_none=True)
                logits, loss = forward(trained, on_device.train_images[mine], on_device.train_labels[mine],
                                       work.precision)
                (loss * weight).backward()
                optimizer.step()
                with torch.no_grad():
                    loss_sum += loss.detach().double() * (high - low)
                    correct += (logits.argmax(-1) == on_device.train_labels[mine]).sum().double() if high > low else 0
                if first_step_s is None:
                    devices.synchronize(device)
                    first_step_s = time.perf_counter() - started
                if rank == 0 and (step + 1 == steps or time.perf_counter() >= next_report):
                    seen = min((step + 1) * batch, count) / world  # its own share, roughly: no waiting on others
                    # A GPU's sums are peeked at, as one device's are: reading them would drain its queue.
                    shown = peeked.latest(seen) if peeked is not None and step + 1 < steps else EpochStats(
                        loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1))
                    progress.update(step + 1, steps, shown.loss, shown.accuracy)
                    next_report = time.perf_counter() + REPORT_SECONDS
            devices.synchronize(device)
            own = time.perf_counter() - started
            reduced = clock.seconds()
            ranks_s = _gathered(own, device)
            meter.epoch_ended()  # after the gather: the job's epoch, a fast device's wait for the slowest included
            sums = torch.stack((loss_sum, correct))
            dist.all_reduce(sums, group=collectives())
            epoch_s.append(max(ranks_s))  # the job is as fast as its slowest rank
            own_s.append(ranks_s)
            allreduce_s.append(_gathered(reduced, device))
            history.append(EpochRecord(epoch, epoch_s[-1], sums[0].item() / count, sums[1].item() / count))
    energy = _group_energy(meter, reads, epoch_s, count, device, world)
    if rank != 0:
        return None
    measurement = _rank_zero_measurement(key, repeat, spec, on_device, device, cost, timer, history, epoch_s,
                                         own_s, allreduce_s, steps, threads, replace(
                                             startup, data_s=(startup.data_s or 0.0) + copy_s,
                                             build_s=built.seconds, first_step_s=first_step_s))
    return replace(measurement, energy=energy)


def _group_energy(meter: power.PowerLog, reads: bool, epoch_s: list[float], images: int, device: torch.device,
                  world: int) -> EnergyFigures | None:
    """The job's energy on rank 0: every reading rank's epochs summed; else the first reason one had none."""
    mine = None
    if reads:
        mine = (dist.get_rank(), meter.epoch_joules(epoch_s), meter.reason, meter.meter.source if meter.meter else "",
                bool(meter.meter and meter.meter.estimate))
    everyone: list = [None] * world
    dist.all_gather_object(everyone, mine, group=collectives())
    readers = [entry for entry in everyone if entry is not None]
    failed = next((entry for entry in readers if entry[1] is None), None)
    if failed is not None:
        reason = failed[2] or "the meter gave no reading for an epoch"
        return EnergyFigures(not_measured=reason if len(readers) == 1 else f"rank {failed[0]}: {reason}")
    if len(readers) == 1:  # rank 0, the first rank of the first machine: its own figures are the job's
        return meter.figures(epoch_s, images)
    summed = [sum(entry[1][epoch] for entry in readers) for epoch in range(len(epoch_s))]
    estimate = any(entry[4] for entry in readers)
    # Several devices: their sum has no one trace, peak or utilization (rank 0's would pass for the job's).
    whose = "GPUs" if device.type == "cuda" else "machines"
    sources = " + ".join(dict.fromkeys(entry[3] for entry in readers))
    return figures(summed, epoch_s, images, [], f"{sources}, summed over {len(readers)} {whose}", estimate)


def _rank_zero_measurement(key, repeat, spec, on_device, device, cost, timer, history, epoch_s, own_s,
                           allreduce_s, steps, threads, startup) -> Measurement:
    """The repeat as rank 0 reports it: the slowest rank's epochs, the network evaluated."""
    work = key.workload
    world = len(own_s[0])
    with timer.measure("eval") as evaluated:
        test = evaluate(spec, on_device.test_images, on_device.test_labels, work.batch_size, work.precision)
    first_epoch_s, steady_epoch_s = first_and_steady(tuple(epoch_s))
    steady = own_s[1:] or own_s  # per epoch, per rank
    rank_steady = [median([epoch[rank] for epoch in steady]) for rank in range(world)]
    shares = [sum(epoch[rank] for epoch in allreduce_s[-len(steady):]) / sum(epoch[rank] for epoch in steady)
              for rank in range(world)]
    heaviest = max(range(world), key=lambda rank: shares[rank])
    sizes = [high - low for low, high in (shard(work.batch_size, world, rank) for rank in range(world))]
    parallel = ParallelFigures(
        world_size=world, backend=work.backend, nodes=int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1),
        rank_epoch_s=tuple(rank_steady),
        slowest_rank=max(range(world), key=lambda rank: rank_steady[rank]),
        allreduce_share=shares[heaviest],
        allreduce_s=median([epoch[heaviest] for epoch in allreduce_s[-len(steady):]]),
        shards=" + ".join(map(str, sizes)), threads_per_rank=threads if device.type == "cpu" else None,
        cores=validity.usable_cores() if device.type == "cpu" else None,
        step_mode=EAGER_REASON if device.type == "cuda" else "eager")
    last = history[-1]
    return Measurement(
        repeat=repeat, steady_epoch_s=steady_epoch_s, epoch_s=tuple(epoch_s), first_epoch_s=first_epoch_s,
        history=tuple(history), train_loss=last.train_loss, train_accuracy=last.train_accuracy,
        test_loss=test.loss, test_accuracy=test.accuracy, eval_s=evaluated.seconds, confusion_matrix=test.confusion,
        sample_predictions=predict(spec, on_device.test_images[:SAMPLE_IMAGES]).indices.tolist(),
        steps_per_epoch=steps, params=spec.params, flops_per_step=cost.flops, bytes_per_step=cost.bytes,
        peak_memory_bytes=devices.peak_device_memory_bytes(device),
        peak_host_memory_bytes=devices.peak_host_memory_bytes(), startup=replace(
            startup, steady_step_s=steady_epoch_s / steps),
        device_name=device_label(device), cpu_threads=torch.get_num_threads(), parallel=parallel,
        warnings=(validity.oversubscription(threads, -(-world // parallel.nodes), parallel.cores),)
        if parallel.oversubscribed else ())
