"""`trainspeed.report`: the report the command line writes, from Python."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..results import RunResult
from .build import write_report
from .matching import compare, machine_label


def report(results: RunResult | str | Path | Sequence[RunResult | str | Path], out: str | Path | None = None,
           baseline: str | None = None) -> list[Path]:
    """Write report.md, report.html and the charts for a run's results (a RunResult, or a results file
    or its folder), or a comparison of several, as `trainspeed report` and `trainspeed compare` do.
    `out` defaults to the run's own folder; returns the files written."""
    many = isinstance(results, Sequence) and not isinstance(results, (str, Path))
    labelled = [_labelled(item) for item in (results if many else [results])]
    if not labelled:
        raise ConfigError("no results given to report on")
    if out is None:
        folders = {str(folder) for _, _, folder in labelled if folder is not None}
        if len(labelled) > 1 or len(folders) != 1:
            raise ConfigError("give out=, the folder to write the report in")
        out = folders.pop()
    named = [(label or f"run{index}", result) for index, (label, result, _) in enumerate(labelled, 1)] if many \
        else [(None, labelled[0][1])]
    return write_report(compare(named, baseline), Path(out))


def _labelled(item: RunResult | str | Path) -> tuple[str | None, RunResult, Path | None]:
    """A result, the name a comparison gives it (its file's or folder's, as `trainspeed compare` names it) and
    its folder: the one its results file is in (a run moved or read from elsewhere), else the run's own --out."""
    if isinstance(item, RunResult):
        folder = item.config.get("out")
        return (Path(folder).name if folder else None), item, (Path(folder) if folder else None)
    path = Path(item)
    results_file = path if path.suffix == ".json" else path / "results.json"
    return machine_label(results_file), RunResult.read(path), results_file.parent
