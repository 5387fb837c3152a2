"""Results files at the boundary: read and checked once against their schema, written as strict JSON.

The schema is the dataclasses themselves (results.py): pydantic validates a file's JSON against
their type hints in strict mode (a number must be a number, not a string that looks like one), so
the checks cannot drift from the types. What types cannot say (a time is never negative, a number
is always finite, an "ok" case has its time) is checked here, by field name.
Fields this version does not know are ignored everywhere, so a newer writer's additions never make
a file unreadable; fields it needs and cannot find are errors.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from .config import worth_settings_problem
from .errors import ResultsError
from .output import link_problem

T = TypeVar("T")

RESULTS_FILE = "results.json"

STATUSES = ("ok", "failed", "stalled", "interrupted", "partial")
# Counts and amounts: a negative one was not measured.
_NON_NEGATIVE = ("_s", "_bytes", "_images", "_steps", "batch_size", "epochs", "params", "flops_per_step",
                 "steps_per_epoch", "warmup_steps", "repeat", "cpu_threads", "other_cpu_load", "max_batch_size")
_FRACTIONS = ("train_accuracy", "test_accuracy", "mfu")


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _where(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def validated(cls: type[T], data: Any, source: str) -> T:
    """`data` (parsed JSON) as an instance of `cls`, or a one-line ResultsError naming the first bad field."""
    problem = number_problem(data)
    if problem:
        raise ResultsError(f"{source} is not a valid trainspeed results file: {problem}")
    try:
        return _adapter(cls).validate_json(json.dumps(data), strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ResultsError(f"{source} is not a valid trainspeed results file: {_where(first['loc'])}: "
                           f"{first['msg'].lower()}{more}") from None


def number_problem(data: Any, where: tuple = ()) -> str | None:
    """The first number that cannot be a measurement (not finite, negative, a fraction above 1), or None."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = str(key)
                if not math.isfinite(value):
                    return f"{_where(where + (name,))} is {value}, not a finite number"
                if value < 0 and name.endswith(_NON_NEGATIVE):
                    return f"{_where(where + (name,))} is negative ({value})"
                if name in _FRACTIONS and value > 1:
                    return f"{_where(where + (name,))} is {value}, above 1"
            problem = number_problem(value, where + (str(key),))
            if problem:
                return problem
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if isinstance(value, float) and not math.isfinite(value):
                return f"{_where(where + (index,))} is {value}, not a finite number"
            problem = number_problem(value, where + (index,))
            if problem:
                return problem
    return None


def finite(data: Any) -> Any:
    """`data` with every non-finite float as None: JSON has no NaN, and a diverged loss is not a number."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def dumps(data: dict) -> str:
    return json.dumps(finite(data), indent=2, allow_nan=False)


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def results_file(path: Path) -> Path:
    """The results file a path names: the file itself, or the results.json in a folder."""
    return path / RESULTS_FILE if path.is_dir() else path


def load(path: Path) -> tuple[dict, Path]:
    """The parsed JSON of a results file (or of the results.json in a folder), and the file's path."""
    path = Path(path).expanduser()
    problem = link_problem(path)
    if problem:
        raise ResultsError(problem)
    if path.is_dir() and not (path / RESULTS_FILE).is_file():
        raise ResultsError(f"{path} is a folder without a {RESULTS_FILE}; pass a results file")
    path = results_file(path)
    try:
        data = json.loads(path.read_text(), parse_constant=_no_constants)
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist") from None
    except OSError as error:
        raise ResultsError(f"cannot read {path} ({error.strerror or error})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path} is not valid JSON (truncated?): {error}") from None
    if not isinstance(data, dict) or "schema_version" not in data or "cases" not in data:
        raise ResultsError(f"{path} is not a trainspeed results file")
    return data, path


def mfu_left_out(mfu: float) -> str:
    """Why a case shows no MFU: above 100%, it measures the peak's reading, not the hardware."""
    return (f"no MFU shown: training ran at {mfu:.0%} of the measured matmul peak, "
            f"so that peak was measured low (another load during its measurement?)")


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A file of an older schema as this one reads it. Schema 1 kept the image shape only with the
    data set (every case of a run shares it). Versions up to 0.3.0 stored an MFU over 1 with a warning;
    it is left out, as they are now."""
    dataset = data.get("dataset")
    cases = data.get("cases")
    if not isinstance(cases, list):
        return data
    if data["schema_version"] < 2 and isinstance(dataset, dict):
        shape = dataset.get("image_shape", [])
        cases = [{"image_shape": shape, **case} if isinstance(case, dict) else case for case in cases]
    return {**data, "cases": [_without_mfu_beyond_peak(case) for case in cases]}


def _without_mfu_beyond_peak(case: Any) -> Any:
    mfu = case.get("mfu") if isinstance(case, dict) else None
    if not isinstance(mfu, (int, float)) or isinstance(mfu, bool) or not mfu > 1:
        return case
    kept = [w for w in case.get("warnings", []) if not (isinstance(w, str) and "training beat the measured" in w)]
    return {**case, "mfu": None, "warnings": [*kept, mfu_left_out(mfu)]}


def check_record(result, source: str) -> None:
    """Every case has a known status, and an ok one has its time; the settings a report reads from
    the config (prices, --cpu-watts, currency) have the types they must have."""
    config = result.config
    problem = worth_settings_problem(config.get("prices", {}), config.get("cpu_watts"), config.get("currency", ""))
    if problem:
        raise ResultsError(f"{source}: config: {problem}")
    for index, case in enumerate(result.cases):
        if case.status not in STATUSES:
            raise ResultsError(f"{source}: cases[{index}].status is {case.status!r}, not one of {', '.join(STATUSES)}")
        if case.ok and not case.steady_epoch_s:
            raise ResultsError(f"{source}: cases[{index}] is ok but has no steady_epoch_s")
