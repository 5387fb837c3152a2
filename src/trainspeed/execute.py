"""A whole run: plan its cases, measure each repeat (in its own process, or here), fold, write.

    plan (plan.py) -> measure each repeat: isolation.py (a child) or measure.py (here)
                   -> fold the repeats into the case (fold.py) -> write results.json

The results file is rewritten atomically after every repeat, so no finished work is lost.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from . import __version__, isolation, launch, output, resume, schema, stopping
from .after_training import MODELS_FOLDER
from .cases import CaseKey, varying_axes
from .config import RunConfig
from .data import Dataset
from .data_parallel import first_device, group_of, planned_groups, threads_per_rank
from .dataset_info import DatasetInfo
from .engine.step import DeviceData
from .errors import ResultsError
from .eta import duration_phrase, time_left
from .fold import fold_case, group_peaks, with_scaling, with_speedups
from .machine import devices, environment, precision
from .machine.describe import device_label
from .machine.peaks import measure_peaks
from .measure import copy_to_device, measure_repeat
from .models import check_model
from .plan import check_plan, load_data, make_config, peaks_key, plan_cases, repeats_to_keep
from .progress import EpochProgress
from .results import RESULTS_FILE, SAMPLE_IMAGES, Failure, Measurement, RunResult, StartupCost
from .rows import CSV_FILE, to_csv


def dataset_info(data: Dataset) -> DatasetInfo:
    sample = np.ascontiguousarray(data.test_images[:SAMPLE_IMAGES])
    return DatasetInfo(
        name=data.name, source=data.source,
        train_images=len(data.train_images), test_images=len(data.test_images),
        image_shape=list(data.image_shape), classes=list(data.class_names),
        matches_release=data.matches_release, accuracy_meaningful=data.accuracy_meaningful,
        notes=list(data.notes),
        sample_images_b64=base64.b64encode(sample.tobytes()).decode("ascii"),
        sample_labels=data.test_labels[:SAMPLE_IMAGES].tolist(), fingerprint=resume.fingerprint(data),
    )


def new_result(config: RunConfig, data: Dataset, machine: dict) -> RunResult:
    """A run's results before any case: its settings, machine and data."""
    return RunResult(trainspeed_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     config=asdict(config), environment=machine, dataset=dataset_info(data), notes=list(data.notes))


def fresh_results_path(folder: Path) -> Path:
    """Where a new run writes its results; an earlier run's results and networks are kept beside, renamed by date."""
    path = folder / RESULTS_FILE
    models = folder / MODELS_FOLDER
    archived = None
    if path.exists() or models.is_dir():
        # Never overwrite an earlier run's measurements or networks: keep them beside the new ones.
        stamp = datetime.fromtimestamp((path if path.exists() else models).stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        if path.exists():
            archived = path.replace(path.with_name(f"results-{stamp}.json"))
        if (folder / CSV_FILE).exists():
            (folder / CSV_FILE).replace(folder / f"results-{stamp}.csv")
        if models.is_dir():
            models.replace(folder / f"{MODELS_FOLDER}-{stamp}")
            if archived is not None:
                _point_at_archived_models(archived, f"{MODELS_FOLDER}-{stamp}")
    return path


def _point_at_archived_models(results: Path, archive: str) -> None:
    """The archived results file's saved networks, named where they now are."""
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return  # not a results file we can read: the networks are still kept, beside it
    moved = f"{archive}/"
    for case in data.get("cases", []) if isinstance(data, dict) else []:
        if isinstance(case, dict):
            case["model_files"] = [name.replace(f"{MODELS_FOLDER}/", moved, 1) for name in case.get("model_files", [])]
            for repeat in case.get("repeats", []):
                if isinstance(repeat, dict) and repeat.get("model_file"):
                    repeat["model_file"] = repeat["model_file"].replace(f"{MODELS_FOLDER}/", moved, 1)
    output.write_atomically(results, schema.dumps(data))


def resume_run(directory: Path, *, console: Console | None = None) -> RunResult:
    """Finish an interrupted run: keep its finished cases, run the rest with the same settings,
    on the same machine, software and data (resume.py), or refuse."""
    with output.claimed(directory) as folder:
        previous, config = resumable(folder, {})
        return _run(config, console, False, previous, folder)


def resumable(folder: Path, job: dict) -> tuple[RunResult, RunConfig]:
    """An interrupted run's results and settings, when this version of trainspeed and this `job` (a torchrun
    job's shape, or {} for a run without torchrun) can finish them."""
    path = folder / RESULTS_FILE
    if not path.is_file():
        raise ResultsError(f"nothing to resume: {path} is not a results file")
    previous = RunResult.read(path)
    resume.check_version(previous.trainspeed_version, path)
    resume.check_launcher(previous.environment, job, path)  # a run started otherwise is finished otherwise
    return previous, make_config(resume.resumed_config(previous.config, previous.dataset, folder))


def run(
    config: RunConfig | None = None,
    *,
    console: Console | None = None,
    keep_models: bool = False,
    **overrides,
) -> RunResult:
    """Train every model on every device; returns (and writes to config.out) the results.

    Each repeat of a case runs in a child process unless `keep_models` asks for the trained
    networks (they only exist in this process) or `isolate=False`. Progress goes to `console`
    (stderr). The output folder is checked and held by this run alone before any work starts.
    """
    config = make_config(config, **overrides)
    if not config.out:
        return _run(config, console, keep_models, None, None)
    with output.claimed(config.out) as folder:
        return _run(config, console, keep_models, None, folder)


def _run(config: RunConfig, console: Console | None, keep_models: bool, previous: RunResult | None,
         folder: Path | None) -> RunResult:
    path = folder / RESULTS_FILE if folder else None
    isolate = config.isolate and not keep_models
    for name in config.models:
        check_model(name)
    devices.configure_process()
    groups = planned_groups(config.data_parallel, torch.cuda.device_count() if devices.cuda_usable() else 0)
    # A run of data-parallel groups trains on the devices named as well only when asked to.
    alone = [] if groups and config.devices is None else devices.resolve(config.devices)
    targets = [devices.display_name(device) for device in alone]
    # Named once: a case that never measured (unsupported, failed) still says what the device is.
    device_names = {name: device_label(torch.device(name)) for name in targets}
    device_names.update({group.device: device_label(torch.device(first_device(group.device))) for group in groups})
    devices.set_cpu_threads(config.cpu_threads)
    machine = environment.collect()
    if previous is not None:
        resume.check_machine(previous.environment, machine, path)
    announcer = console or Console(stderr=True)
    if announcer.is_terminal:  # a person watching a blank screen; a log keeps to results and errors
        announcer.print(f"loading the data set ({config.dataset})", highlight=False)
    data, load_s = load_data(config)
    check_plan(config, data, groups)
    if previous is not None:
        resume.check_data(previous.dataset, data, path)
        result = previous
    else:
        if path is not None:  # only now, when every check has passed: a refused run moves nothing
            fresh_results_path(folder)
        result = new_result(config, data, machine)
    result.sessions.append(resume.session(machine))
    session = len(result.sessions) - 1
    # Opened only now: a download above shows its own bar, and Rich before 14 allows one live display.
    progress = EpochProgress(console).__enter__()
    for note in data.notes:  # said once, here, and kept in the results
        progress.message(f"[yellow]note:[/] {note}")
    on_device: dict[str, tuple[DeviceData, float]] = {}  # with the seconds the copy took
    try:
        peaks = _peaks(result, config, list(dict.fromkeys(targets + [first_device(g.device) for g in groups])),
                       isolate, progress)
        planned = plan_cases(config, targets, data, groups)
        finished: dict[CaseKey, float] = {}  # this session's cases and their wall times, for the run's ETA
        owed = [key for key in planned if repeats_to_keep(_existing(result, key)) is not None]
        for number, key in enumerate(planned, 1):
            kept = repeats_to_keep(_existing(result, key))
            started = time.perf_counter()
            if kept is not None:
                left = time_left(owed[owed.index(key):], finished)
                progress.message(f"[bold]case {number} of {len(planned)}:[/] {key.label(varying_axes(planned))}"
                                 + (f" - {duration_phrase(left)} left in the run, estimated"
                                    if left is not None else ""))
            if kept is None:
                progress.message(f"{key.label(('batch_size', 'precision'))}: already measured")
                continue
            fold = _folding(config, data, peaks, key, device_names[key.device], session)
            unsupported = precision.unsupported_reason(key.workload.precision,
                                                       torch.device(first_device(key.device)))
            if unsupported:
                progress.message(f"[yellow]{key.label(('batch_size', 'precision'))}: not measured:[/] {unsupported}")
                store_case(result, fold([], failure=Failure(unsupported)), path)
                continue
            failed: list[Failure] = []  # later repeats that failed: the others still count
            while len(kept) + len(failed) < config.repeats:
                repeat = len(kept) + len(failed) + 1
                try:
                    if key.workload.backend:  # one DDP job, launched by torchrun, whatever `isolate` says
                        group = group_of(key.device, key.workload.world_size)
                        outcome = launch.measure_group(config, key, repeat, data, group, threads_per_rank(
                            group, groups, devices.usable_cores(), config.cpu_threads), progress)
                    else:
                        outcome = _measure(config, key, kept, repeat, data, progress, isolate, keep_models,
                                           on_device, load_s, result, device_names[key.device])
                except KeyboardInterrupt as interrupt:
                    store_case(result, fold(kept, interrupted=stopping.how(interrupt), failed_repeats=failed), path)
                    raise
                if isinstance(outcome, Failure) and not kept:
                    # The first repeat: the next would most likely fail the same way (out of memory, a bug).
                    store_case(result, fold(kept, failure=outcome), path)
                    break
                if isinstance(outcome, Failure):
                    failed.append(outcome)
                    progress.message(f"[yellow]{key.label(('batch_size', 'precision'))}, repeat {repeat}: "
                                     f"{outcome.reason}; the other repeats go on[/]")
                    store_case(result, fold(kept, failed_repeats=failed), path)
                    continue
                kept.append(outcome)
                case = fold(kept, failed_repeats=failed)
                store_case(result, case, path)
                if case.status == "stalled":
                    progress.message(f"[yellow]{key.label(('batch_size', 'precision'))}: {case.error}[/]")
                    break
            finished[key] = time.perf_counter() - started
    finally:
        progress.__exit__(None, None, None)
        write_results(result, path)  # whatever happened, the finished cases are kept
    return result


def _existing(result: RunResult, key: CaseKey):
    return next((case for case in result.cases if case.key == key), None)


def _folding(config: RunConfig, data: Dataset, peaks: dict, key: CaseKey, device_name: str, session: int):
    """fold(repeats, failure=..., interrupted=...): the case as it stands, for this run's settings."""
    def fold(repeats, **ending):
        return fold_case(key, repeats, repeats_wanted=config.repeats, epochs=config.epochs,
                         accuracy_meaningful=data.accuracy_meaningful,
                         peaks=group_peaks(peaks.get(peaks_key(first_device(key.device), key.workload.precision)),
                                           key),
                         device_name=device_name, session=session, **ending)
    return fold


def _measure(config: RunConfig, key: CaseKey, kept: list[Measurement], repeat: int, data: Dataset, progress,
             isolate: bool, keep_models: bool, on_device: dict, load_s: float, result: RunResult, device_name: str):
    """Repeat `repeat`, in a child process or here; a kept network is stored with the results.
    A Keras engine always runs in a child: Keras picks its backend once per process."""
    # Every repeat of a case times the layout and the kernels its first repeat chose.
    layout_chosen = (kept[0].memory_format, kept[0].layout_choice) if kept and kept[0].memory_format else None
    kernels = kept[0].kernels if kept else None
    if isolate or key.workload.engine != "trainspeed":
        return isolation.measure_in_child(config, key, repeat, data, progress, layout_chosen, kernels, device_name)
    if key.device not in on_device:
        on_device[key.device] = copy_to_device(data, torch.device(key.device))
    arrays, copy_s = on_device[key.device]
    # This process imported everything long ago; loading was paid once for all cases.
    outcome, trained = measure_repeat(config, key, repeat, data, torch.device(key.device), progress,
                                      on_device=arrays, startup=StartupCost(data_s=load_s + copy_s),
                                      layout_chosen=layout_chosen, kernels=kernels)
    if keep_models and trained is not None:
        result.models[key] = trained
    return outcome


def _peaks(result: RunResult, config: RunConfig, targets: list[str], isolate: bool, progress) -> dict:
    """Each device's measured peaks per precision; measured once, and a resumed run keeps its own."""
    peaks = result.environment.setdefault("peaks", {})
    for device in targets:
        wanted = [mode for mode in config.precisions if peaks_key(device, mode) not in peaks
                  and precision.unsupported_reason(mode, torch.device(device)) is None]
        if not wanted:
            continue
        progress.message(f"measuring {device}'s peak FLOP/s and memory bandwidth in {', '.join(wanted)} (for MFU)")
        if isolate:
            peaks.update(isolation.peaks_in_child(config, device, wanted, progress))
            continue
        for mode in wanted:
            with devices.use(torch.device(device)):
                peaks[peaks_key(device, mode)] = asdict(measure_peaks(torch.device(device), mode))
    return peaks


def store_case(result: RunResult, case, path: Path | None) -> None:
    """The case in place of its earlier state, the run's ratios brought up to date, and the files rewritten."""
    result.put(case)
    result.cases = with_scaling(with_speedups(result.cases))
    write_results(result, path)


def write_results(result: RunResult, path: Path | None) -> None:
    """results.json, and results.csv beside it: one row per case and repeat for a spreadsheet."""
    if path is None:
        return
    for target, write in ((path, result.write),
                          (path.with_name(CSV_FILE), lambda at: output.write_atomically(at, to_csv(result.to_rows())))):
        try:
            write(target)
        except OSError as error:
            raise output.write_error(target, error, resume=True) from None
