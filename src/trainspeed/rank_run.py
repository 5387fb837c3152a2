"""A whole run as one rank of a job that torchrun started: several machines, one DDP case at a time.

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        -m trainspeed run --data-parallel cpu --models cnn ...

Every rank runs the same command, so every rank plans the same cases and trains each as one rank
of the job; torchrun's world is the group. Rank 0 alone prints, writes results.json and the report;
the other ranks write nothing. A group's one-device reference cannot run inside the job (every rank
takes part in every case): measure it with a plain run and set the two side by side with `compare`.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict

import torch
from rich.console import Console

from . import output, resume
from .config import RunConfig
from .data_parallel import BACKENDS, Group, rank_place
from .distributed import join, measure_rank_repeat, rank_device
from .errors import ConfigError
from .execute import new_result, write_results
from .fold import fold_case, group_peaks, with_scaling
from .machine import devices, environment
from .machine.describe import device_label
from .machine.peaks import measure_peaks
from .measure import copy_to_device
from .plan import check_plan, load_data, make_config, peaks_key, plan_cases
from .progress import EpochProgress
from .results import RESULTS_FILE, RunResult, StartupCost


class _Silent:
    """The progress of a rank other than 0: it says nothing, rank 0 speaks for the job."""

    def start_epoch(self, label: str, steps: int, images: int | None = None) -> None: ...

    def update(self, step: int, steps: int, loss: float, accuracy: float, elapsed_s: float | None = None) -> None: ...

    def message(self, text: str) -> None: ...


def _kind(config: RunConfig) -> str:
    if len(config.data_parallel) != 1 or config.data_parallel[0] not in BACKENDS:
        raise ConfigError("under torchrun, --data-parallel names what each rank trains on, cpu or cuda; torchrun's "
                          "--nnodes and --nproc-per-node make the group")
    return config.data_parallel[0]


def run_as_rank(config: RunConfig | None = None, *, console: Console | None = None, **overrides) -> RunResult | None:
    """This rank's part of the run; rank 0 returns (and writes) the results, the others None."""
    config = make_config(config, **overrides)
    kind = _kind(config)
    place = rank_place(dict(os.environ))
    rank, world = place.rank, place.world_size
    threads = config.cpu_threads or max(1, devices.usable_cores() // place.local_world_size)
    devices.configure_process()
    torch.set_num_threads(threads)
    device = rank_device(kind)
    group = Group(kind, world)
    with devices.use(device):
        join(group.backend, config.dist_timeout_s)
        data, load_s = load_data(config)
        check_plan(config, data, [group])
        planned = plan_cases(config, [], data, [group])
        copied = copy_to_device(data, device)  # once for the job's cases, as a run in one process does
        if rank != 0:
            for key in planned:
                for repeat in range(1, config.repeats + 1):
                    measure_rank_repeat(config, key, repeat, data, device, _Silent(), StartupCost(data_s=load_s),
                                        threads, copied)
            return None
        with output.claimed(config.out) if config.out else nullcontext() as folder:
            return _rank_zero(config, planned, data, load_s, device, threads, copied, folder, console)


def _rank_zero(config, planned, data, load_s, device, threads, copied, folder, console) -> RunResult:
    path = folder / RESULTS_FILE if folder else None
    machine = environment.collect()
    result = new_result(config, data, machine)
    result.sessions.append(resume.session(machine))
    # Rank 0's own device, measured while the others wait at the first case's barrier.
    peaks = {mode: asdict(measure_peaks(device, mode)) for mode in config.precisions}
    result.environment["peaks"] = {peaks_key(str(device), mode): value for mode, value in peaks.items()}
    progress = EpochProgress(console).__enter__()
    try:
        for number, key in enumerate(planned, 1):
            progress.message(f"[bold]case {number} of {len(planned)}:[/] {key.label()}")
            repeats = [measure_rank_repeat(config, key, repeat, data, device, progress, StartupCost(data_s=load_s),
                                           threads, copied) for repeat in range(1, config.repeats + 1)]
            result.put(fold_case(key, repeats, repeats_wanted=config.repeats, epochs=config.epochs,
                                 accuracy_meaningful=data.accuracy_meaningful,
                                 peaks=group_peaks(peaks.get(key.workload.precision), key, _nodes()),
                                 device_name=device_label(device)))
            result.cases = with_scaling(result.cases)
            write_results(result, path)
    finally:
        progress.__exit__(None, None, None)
    return result


def _nodes() -> int:
    """The machines of the job: torchrun's number of agents, one per node."""
    return int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1)
