"""Finishing an interrupted run without mixing figures: same version, same machine, same data.

A results file describes one machine, one software stack and one data set; its speedups divide
its cases by each other. A resume that measured its remaining cases with other software, on
another machine or on other data would file them under the first session's description and
divide them by cases they have nothing in common with. So a resume checks each of the three
against what the file recorded and refuses, naming the difference, rather than mix.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .config import RunConfig
from .data import Dataset
from .dataset_info import DatasetInfo
from .errors import ResultsError

# Measured once per run and kept with it, not a property of the machine to compare.
_NOT_IDENTITY = ("peaks",)
# The job a torchrun run was (its ranks and machines): checked on its own, with its own advice.
TORCHRUN = "torchrun"
FRESH_START = "start a new run with --out, and set the two files side by side with `trainspeed compare`"


def fingerprint(data: Dataset) -> str:
    """A digest of every image and label the run trains and tests on (after --limit)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (data.train_images, data.train_labels, data.test_images, data.test_labels):
        digest.update(str(array.shape).encode())
        digest.update(memoryview(array).cast("B") if array.flags.c_contiguous else array.tobytes())
    return digest.hexdigest()


def session(environment: dict[str, Any]) -> dict[str, Any]:
    """What a session of a run is recorded with: when it started, and the machine and software."""
    return {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trainspeed": __version__,
            **{key: value for key, value in environment.items() if key not in _NOT_IDENTITY}}


def differences(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """'name: recorded -> current' for each part of the machine and software that changed."""
    found = []
    for key in sorted(set(recorded) | set(current)):
        if key in _NOT_IDENTITY or (not prefix and key == TORCHRUN):
            continue
        before, after = recorded.get(key), current.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            found += differences(before, after, f"{prefix}{key}.")
        elif before != after:
            found.append(f"{prefix}{key}: {before} -> {after}")
    return found


def resumed_config(previous_config: dict[str, Any], dataset: DatasetInfo | None, directory: Path) -> RunConfig:
    """The run's own settings, loading the data set it actually used (not 'auto' again)."""
    config = RunConfig.from_dict(previous_config)
    config.out = str(directory)
    if dataset is not None:
        # A run that fell back to synthetic data must not find CIFAR-10 in the cache on resuming.
        config.dataset = dataset.name
    return config


def check_version(written_by: str, path: Path) -> None:
    if written_by != __version__:
        raise ResultsError(f"{path} was written by trainspeed {written_by}, this is {__version__}: its figures "
                           f"cannot be mixed with this version's; {FRESH_START}")


def check_machine(recorded: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    changed = differences(recorded, current)
    if changed:
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ResultsError(f"{path} was measured on another machine or software ({shown}): a resume here "
                           f"would mix the two in one file; {FRESH_START}")


def _job(shape: dict[str, int]) -> str:
    ranks, nodes = shape["world_size"], shape["nodes"]
    return f"a torchrun job of {ranks} rank{'s' * (ranks != 1)} on {nodes} machine{'s' * (nodes != 1)}"


def check_launcher(recorded: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """A torchrun run is finished by the same job (its cases are that group's), a plain run without torchrun:
    the launcher's own settings (its ranks' thread counts, OMP_NUM_THREADS) are then the same too."""
    before, after = recorded.get(TORCHRUN), current.get(TORCHRUN)
    if before == after:
        return
    folder = path.parent
    if after is None:
        raise ResultsError(f"{path} was measured by {_job(before)}: finish it the same way, with the same torchrun "
                           f"command on every machine and `-m trainspeed run --resume {folder}` in place of its "
                           "trainspeed options")
    if before is None:
        raise ResultsError(f"{path} was measured without torchrun: finish it without torchrun, with "
                           f"`trainspeed run --resume {folder}`")
    raise ResultsError(f"{path} was measured by {_job(before)}, this is {_job(after)}: its cases are that group's; "
                       "finish it with the same --nnodes and --nproc-per-node, or " + FRESH_START)


def check_data(recorded: DatasetInfo | None, data: Dataset, path: Path) -> None:
    if recorded is None or recorded.fingerprint is None:
        raise ResultsError(f"{path} does not record which data it trained on, so a resume cannot prove it uses "
                           f"the same; {FRESH_START}")
    if recorded.fingerprint != fingerprint(data):
        raise ResultsError(f"the data set has changed since {path} was started ({recorded.name} from "
                           f"{recorded.source} then, {data.name} from {data.source} now, with other images): a "
                           f"resume must train on the same data; {FRESH_START}")
