"""A whole run as one rank of a job that torchrun started: several machines, one DDP case at a time.

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        -m trainspeed run --data-parallel cpu --models cnn ...

Rank 0 decides and the others follow: it alone holds the output folder, reads what a resumed run
finished, plans the cases, and sends the settings and the plan to every rank (torch.distributed's
broadcast_object_list). Every rank then trains each planned case as one rank of the job; rank 0 alone
prints, writes results.json and the report. A rank that is lost stops the run as a signal would: the
finished cases are kept, and the same torchrun command with `-m trainspeed run --resume DIR` finishes it.
A group's one-device reference cannot run inside the job (every rank takes part in every case):
measure it with a plain run and set the two side by side with `compare`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console

from . import output, resume
from .cases import CaseKey
from .config import RunConfig
from .data_parallel import BACKENDS, Group, RankPlace, rank_place
from .distributed import join, measure_rank_repeat, open_collectives, peers_lost_stop_the_run, rank_device
from .errors import ConfigError, TrainspeedError
from .execute import fresh_results_path, new_result, resumable, store_case
from .fold import fold_case, group_peaks
from .machine import devices, environment
from .machine.describe import device_label
from .machine.peaks import measure_peaks
from .measure import copy_to_device
from .plan import check_plan, load_data, make_config, peaks_key, plan_cases, repeats_to_keep
from .progress import EpochProgress
from .results import RESULTS_FILE, Measurement, RunResult, StartupCost
from .stopping import exit_code, how


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


def run_as_rank(config: RunConfig | None = None, *, resume_from: Path | None = None, console: Console | None = None,
                **overrides) -> RunResult | None:
    """This rank's part of the run; rank 0 returns (and writes) the results, the others None.
    `resume_from`: the folder of a torchrun run that stopped early, finished with the settings it recorded."""
    asked = make_config(config, **overrides)
    place = rank_place(dict(os.environ))
    devices.configure_process()
    join(asked.dist_timeout_s)
    if place.rank == 0:
        return _rank_zero(asked, resume_from, place, console)
    try:
        _other_rank(place)
    except KeyboardInterrupt as stop:  # a signal, or a lost rank: rank 0 says so for the job
        raise SystemExit(exit_code(stop)) from None
    return None


# --- rank 0 tells, the others are told ---------------------------------------------------------

def _tell(decision: Any) -> None:
    with peers_lost_stop_the_run():
        dist.broadcast_object_list([decision], src=0)


def _told() -> Any:
    """Rank 0's decision; None when rank 0 refused the run. Rank 0 says why and fails the job: the others
    end without an error, which would make torchrun stop rank 0 before it has said it."""
    box = [None]
    with peers_lost_stop_the_run():
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def _refusals_told() -> Iterator[None]:
    """A user's error on rank 0 (a folder in use, nothing to resume, a bad setting) ends every rank at once."""
    try:
        yield
    except TrainspeedError:
        _tell(None)
        raise


def _take_place(config: RunConfig, place: RankPlace) -> tuple[torch.device, int]:
    """This rank's device and CPU threads, and the group its training's collectives run in."""
    kind = _kind(config)
    threads = config.cpu_threads or max(1, devices.usable_cores() // place.local_world_size)
    torch.set_num_threads(threads)
    open_collectives(BACKENDS[kind], config.dist_timeout_s)
    return rank_device(kind), threads


def _other_rank(place: RankPlace) -> None:
    settings = _told()
    if settings is None:
        return
    config = make_config(RunConfig.from_dict(settings))
    device, threads = _take_place(config, place)
    with devices.use(device):
        data, load_s = load_data(config)
        planned: list[tuple[CaseKey, int]] | None = _told()
        if planned is None:
            return
        copied = copy_to_device(data, device)  # once for the job's cases, as a run in one process does
        for key, first in planned:
            for repeat in range(first, config.repeats + 1):
                with peers_lost_stop_the_run():
                    measure_rank_repeat(config, key, repeat, data, device, _Silent(), StartupCost(data_s=load_s),
                                        threads, copied)


def _rank_zero(asked: RunConfig, resume_from: Path | None, place: RankPlace, console: Console | None) -> RunResult:
    named = resume_from or asked.out
    with ExitStack() as held:
        with _refusals_told():
            folder = held.enter_context(output.claimed(named)) if named else None
            previous, config = resumable(folder, _job(place)) if resume_from else (None, asked)
            _kind(config)
        _tell(asdict(config))
        device, threads = _take_place(config, place)
        held.enter_context(devices.use(device))
        with _refusals_told():
            data, load_s = load_data(config)
            result, planned = _planned(config, previous, data, folder, place)
        _tell([(key, len(kept) + 1) for key, kept in planned])
        copied = copy_to_device(data, device)
        _measure_cases(config, result, planned, data, load_s, device, threads, copied, folder, console)
        return result


def _planned(config: RunConfig, previous: RunResult | None, data, folder: Path | None,
             place: RankPlace) -> tuple[RunResult, list[tuple[CaseKey, list[Measurement]]]]:
    """The run's results so far (a resumed run's, checked to be the same job, machine and data), and each
    case still to measure with the repeats it keeps."""
    group = Group(_kind(config), place.world_size)
    check_plan(config, data, [group])
    machine = {**environment.collect(), **_job(place)}
    path = folder / RESULTS_FILE if folder else None
    if previous is not None:
        resume.check_machine(previous.environment, machine, path)
        resume.check_data(previous.dataset, data, path)
    if previous is None and folder is not None:
        fresh_results_path(folder)  # only now, when every check has passed: a refused run moves nothing
    result = previous or new_result(config, data, machine)
    result.sessions.append(resume.session(machine))
    planned = []
    for key in plan_cases(config, [], data, [group]):
        kept = repeats_to_keep(next((case for case in result.cases if case.key == key), None))
        if kept is not None:
            planned.append((key, kept))
    return result, planned


def _measure_cases(config, result, planned, data, load_s, device, threads, copied, folder, console) -> None:
    path = folder / RESULTS_FILE if folder else None
    session = len(result.sessions) - 1
    peaks = result.environment.setdefault("peaks", {})
    # Rank 0's own device, measured while the others wait at the first case's barrier; a resumed run keeps its own.
    for mode in config.precisions:
        if peaks_key(str(device), mode) not in peaks:
            peaks[peaks_key(str(device), mode)] = asdict(measure_peaks(device, mode))
    progress = EpochProgress(console).__enter__()
    try:
        for number, (key, kept) in enumerate(planned, 1):
            progress.message(f"[bold]case {number} of {len(planned)}:[/] {key.label()}")
            repeats = list(kept)
            fold = _folding(config, data, peaks, key, device, session)
            try:
                for repeat in range(len(kept) + 1, config.repeats + 1):
                    with peers_lost_stop_the_run():
                        repeats.append(measure_rank_repeat(config, key, repeat, data, device, progress,
                                                           StartupCost(data_s=load_s), threads, copied))
            except KeyboardInterrupt as stop:
                store_case(result, fold(repeats, interrupted=how(stop)), path)
                raise
            store_case(result, fold(repeats), path)
    finally:
        progress.__exit__(None, None, None)


def _folding(config: RunConfig, data, peaks: dict, key: CaseKey, device: torch.device, session: int):
    """fold(repeats, interrupted=...): the case as it stands, its peaks those of the whole group."""
    def fold(repeats, **ending):
        return fold_case(key, repeats, repeats_wanted=config.repeats, epochs=config.epochs,
                         accuracy_meaningful=data.accuracy_meaningful,
                         peaks=group_peaks(peaks.get(peaks_key(str(device), key.workload.precision)), key, _nodes()),
                         device_name=device_label(device), session=session, **ending)
    return fold


def _job(place: RankPlace) -> dict[str, dict[str, int]]:
    """What the results record of the job, so that only the same job finishes it."""
    return {resume.TORCHRUN: {"world_size": place.world_size, "nodes": _nodes()}}


def _nodes() -> int:
    """The machines of the job: torchrun's number of agents, one per node."""
    return int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1)
