"""Data-parallel groups: what `--data-parallel` names, how a global batch is split among the ranks,
and how scaling is judged. Pure: no torch, so it is tested and reported on any machine.

A group is one DDP job (torch.distributed): `cpu:N` is N processes on this CPU talking over gloo,
the cores split between them; `cuda` is every GPU of this host, `cuda:0,1` those GPUs, over NCCL.
Its one-device reference is the same job with world size 1 on one device of the group (on the CPU,
one rank's share of the cores), so that speedup and scaling efficiency compare like with like.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ConfigError

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
# Where PyTorch documents CUDA graphs under DDP as safe it asks for conditions (NCCL's async error
# handling off, warm-up iterations before capture, static buckets) that trainspeed does not set up.
EAGER_REASON = ("eager steps: CUDA graphs under DDP need NCCL's asynchronous error handling off and static "
                "buckets, which would weaken the fault handling; data-parallel steps run eagerly")


@dataclass(frozen=True, order=True)
class Group:
    """One data-parallel job on this host: its device kind, its GPUs, and how many ranks."""

    kind: str  # "cpu" or "cuda"
    world_size: int
    gpus: tuple[int, ...] = ()  # the GPUs in rank order; none on the CPU

    @property
    def backend(self) -> str:
        return BACKENDS[self.kind]

    @property
    def device(self) -> str:
        """The group as results name it: 'cpu' (its size is the world size), 'cuda:0,1'."""
        return "cpu" if self.kind == "cpu" else "cuda:" + ",".join(map(str, self.gpus))

    def one_device(self) -> Group:
        """The reference: world size 1 on the group's first device."""
        return Group(self.kind, 1, self.gpus[:1])


# What a rank's collective says when another rank is gone: a consequence of that rank's end, not a cause.
LOST_PEER_WORDS = ("connection closed", "connection reset", "broken pipe", "peer")


def collective_text(error: BaseException) -> str:
    """An error's first line, without the wrapping a collective's callbacks add and the C++ file it came from."""
    text = re.sub(r"(Got the following error when running the callback: \w+: )+", "", str(error))
    text = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\] ", "", text).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def timed_out(text: str) -> bool:
    return "timed out" in text.lower() or "timeout" in text.lower()


def resume_command(out: str, under_torchrun: bool) -> str:
    """How to finish a run stopped early: the same way it was started."""
    if under_torchrun:
        return (f"the same torchrun command on every machine, with `-m trainspeed run --resume {out}` in place of "
                "its trainspeed options")
    return f"trainspeed run --resume {out}"


def launched_by_torchrun() -> bool:
    """Whether this process is a rank that torchrun (or another launcher of PyTorch's) started."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@dataclass(frozen=True)
class RankPlace:
    """Where this process stands in a torchrun job, as its launcher's variables say."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def rank_place(environ: dict[str, str]) -> RankPlace:
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and MASTER_PORT read and checked: a variable that is
    not what torchrun sets is named in one line, before any rank waits for another."""
    def number(name: str, default: str | None = None, least: int = 0) -> int:
        text = environ.get(name, default)
        if text is None or not text.strip().isdigit() or int(text) < least:
            raise ConfigError(f"{name}={text!r} is not what torchrun sets (a whole number of at least {least}): "
                              "start trainspeed with torchrun, or unset RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT "
                              "to run it alone")
        return int(text)

    place = RankPlace(number("RANK"), number("WORLD_SIZE", least=1), number("LOCAL_RANK", "0"),
                      number("LOCAL_WORLD_SIZE", "1", least=1))
    if place.rank >= place.world_size:
        raise ConfigError(f"RANK={place.rank} with WORLD_SIZE={place.world_size}: ranks are numbered 0 to "
                          f"{place.world_size - 1}; start every rank with torchrun")
    if place.local_rank >= place.local_world_size:
        raise ConfigError(f"LOCAL_RANK={place.local_rank} with LOCAL_WORLD_SIZE={place.local_world_size}: local ranks "
                          f"are numbered 0 to {place.local_world_size - 1}; start every rank with torchrun")
    port = number("MASTER_PORT", least=1)
    if port > 65535:
        raise ConfigError(f"MASTER_PORT={port} is not a port (1 to 65535); choose a free one with torchrun's "
                          "--master-port or --rdzv-endpoint HOST:PORT")
    return place


def group_of(device: str, world_size: int) -> Group:
    """The group a data-parallel case ran on, from its device and world size ('cuda:0,1', 2)."""
    kind, _, gpus = device.partition(":")
    return Group(kind, world_size, tuple(int(gpu) for gpu in gpus.split(",")) if gpus else ())


def first_device(device: str) -> str:
    """The group's first device, whose peaks and name stand for each of its devices: 'cuda:0'."""
    return device.split(",")[0]


def parse_group(spec: str, gpu_count: int) -> Group:
    """`cpu:N`, `cuda` (every GPU here), `cuda:N` (that GPU alone) or `cuda:0,1` (those GPUs)."""
    kind, _, rest = spec.strip().lower().partition(":")
    example = "e.g. --data-parallel cpu:2, --data-parallel cuda or --data-parallel cuda:0,1"
    if kind == "cpu":
        if not rest:
            return Group("cpu", 1)
        if not rest.isdigit() or int(rest) < 1:
            raise ConfigError(f"--data-parallel {spec}: cpu:N takes a number of processes, N >= 1 ({example})")
        return Group("cpu", int(rest))
    if kind != "cuda":
        raise ConfigError(f"--data-parallel {spec}: not a group trainspeed can run ({example})")
    if gpu_count == 0:
        raise ConfigError(f"--data-parallel {spec}: no CUDA GPU can be used here (see `trainspeed devices`); "
                          "on the CPU use --data-parallel cpu:2")
    if not rest:
        return Group("cuda", gpu_count, tuple(range(gpu_count)))
    parts = [part.strip() for part in rest.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(parts)) < len(parts):
        raise ConfigError(f"--data-parallel {spec}: name each GPU once by its number ({example})")
    gpus = tuple(int(part) for part in parts)
    missing = [gpu for gpu in gpus if gpu >= gpu_count]
    if missing:
        raise ConfigError(f"--data-parallel {spec}: this host has {gpu_count} GPU(s), cuda:0 to "
                          f"cuda:{gpu_count - 1}, not cuda:{missing[0]}")
    return Group("cuda", len(gpus), gpus)


def planned_groups(specs: list[str], gpu_count: int) -> list[Group]:
    """The groups asked for, each preceded by its one-device reference, none twice."""
    groups: list[Group] = []
    for spec in specs:
        group = parse_group(spec, gpu_count)
        for wanted in (group.one_device(), group):
            if wanted not in groups:
                groups.append(wanted)
    return groups


def threads_per_rank(group: Group, groups: list[Group], cores: int, asked: int | None) -> int:
    """Threads for each of `group`'s ranks: `--cpu-threads` if given, else the cores split so that the
    ranks together use each core once. A CPU rank's share comes from the largest CPU group of the run,
    the same for every CPU group so that its sizes compare; a GPU rank's from its own group (its host
    threads feed the GPU: eight ranks with every core each would oversubscribe the CPU eightfold)."""
    if asked:
        return asked
    if group.kind != "cpu":
        return max(1, cores // group.world_size)
    largest = max((other.world_size for other in groups if other.kind == "cpu"), default=1)
    return max(1, cores // largest)


def global_batch(batch_size: int, world_size: int, per_device: bool) -> int:
    """The batch one optimizer step sees: the seeds' batch split across ranks (faithful), or
    `batch_size` on every device (`--per-device-batch`, a different recipe)."""
    return batch_size * world_size if per_device else batch_size


def shard(batch: int, world_size: int, rank: int) -> tuple[int, int]:
    """The slice of a batch of `batch` images that `rank` trains on: as even as can be, the first
    ranks one image more. A rank may get none (a last batch smaller than the group): it still
    steps, with zero weight, so that every rank runs the same number of steps."""
    base, extra = divmod(batch, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def loss_weight(shard_size: int, batch: int, world_size: int) -> float:
    """What a rank's mean loss is multiplied by so that DDP's average of the ranks' gradients is
    the gradient of the whole batch's mean loss: shard_size * world_size / batch."""
    return shard_size * world_size / batch


def scaling_efficiency(images_per_s: float, one_device_images_per_s: float, world_size: int) -> float:
    """Throughput with N devices over N times the throughput with one."""
    return images_per_s / (world_size * one_device_images_per_s)


def merged_seconds(intervals: list[tuple[float, float]]) -> float:
    """The time covered by at least one of the intervals: buckets' all-reduces overlap each other."""
    covered, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return covered


def devices_in(device: str, world_size: int, nodes: int = 1) -> int:
    """The devices a case occupies, for peaks and prices: a job on N GPUs holds N of them; ranks on
    a CPU share it, so a job holds as many CPUs as it has machines (`nodes`)."""
    return world_size if device.startswith("cuda") else nodes


@dataclass(frozen=True)
class ParallelFigures:
    """What a data-parallel repeat measured beyond a one-device case, and how it scaled."""

    world_size: int
    backend: str
    nodes: int = 1  # machines: torchrun's agents
    rank_epoch_s: tuple[float, ...] = ()  # each rank's steady epoch, barrier to synchronize
    slowest_rank: int = 0
    # Wall time with a gradient all-reduce in flight over the epoch's time, on the rank where it is
    # largest (overlapping backward: what it costs is at most this).
    allreduce_share: float | None = None
    allreduce_s: float | None = None  # that rank's all-reduce seconds per steady epoch
    shards: str = ""  # how a global batch is split: "16 + 16"
    threads_per_rank: int | None = None  # on the CPU
    cores: int | None = None  # on the CPU: the cores of each machine the ranks shared
    step_mode: str = ""  # eager, and why
    # Against the same model on one device of the group (fold.with_scaling); None without one.
    one_device: str | None = None
    speedup_vs_one: float | None = None
    scaling_efficiency: float | None = None

    @property
    def oversubscribed(self) -> bool:
        """CPU ranks whose threads together exceed their machine's cores: no scaling result."""
        per_machine = -(-self.world_size // max(self.nodes, 1))
        return bool(self.threads_per_rank and self.cores and per_machine * self.threads_per_rank > self.cores)
