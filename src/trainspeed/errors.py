"""Errors a user can cause. The CLI turns these into one-line messages; anything else is our bug."""

import functools
import re


class TrainspeedError(Exception):
    """A problem the user can fix; the message says how."""


class ConfigError(TrainspeedError):
    """A bad name, flag or combination of settings."""


class DeviceError(TrainspeedError):
    """A device that was asked for cannot be used."""


class DataError(TrainspeedError):
    """A data file is missing, corrupt or unreadable."""


class ChecksumError(DataError):
    """A downloaded or cached file does not have the published checksum."""


class DownloadError(DataError):
    """A file could not be fetched (no network, server error, interrupted transfer)."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or [message]


class ResultsError(TrainspeedError):
    """A results file that cannot be read or written."""


class ModelFileError(TrainspeedError):
    """A saved model file that is missing, damaged, or not one trainspeed wrote."""


class ImageFileError(TrainspeedError):
    """An image file that cannot be read as a picture."""


class ImageShapeError(TrainspeedError, ValueError):
    """Images of another shape than the model was built for."""


# Words that follow a flag in a sentence rather than being its value: "--epochs must be at least 1".
_NOT_VALUES = {"must", "needs", "writes", "works", "takes", "is", "are", "or", "and", "with", "to", "from", "for",
               "the", "a", "does", "in", "on", "if", "sets", "trains", "projects", "gives", "names", "times", "too",
               "make", "images"}
# A flag, and the token after it; backticked commands are matched first so that they stay as they are.
_FLAG = re.compile(r"`[^`]*`|--([a-z][a-z0-9-]*)(?: ([^\s;:)]+(?<![,.])))?")


def _keyword(match: re.Match) -> str:
    name, value = match.group(1), match.group(2)
    if name is None:
        return match.group(0)
    keyword = name.replace("-", "_")
    if value is None or value in _NOT_VALUES:
        return keyword + ("" if value is None else f" {value}")
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return f"{keyword}={value}"
    return f'{keyword}="{value}"'


def as_arguments(message: str) -> str:
    """A message written for the command line, for a Python caller: `--batch-size 32` as `batch_size=32`,
    `--data-dir` as `data_dir`. Commands in backticks, such as `trainspeed run --resume out`, stay commands."""
    return _FLAG.sub(_keyword, message)


def in_python_terms(function):
    """Let a public function's user errors speak of its keyword arguments instead of the command line's flags."""

    @functools.wraps(function)
    def speaking_python(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except TrainspeedError as error:
            if error.args and isinstance(error.args[0], str):
                error.args = (as_arguments(error.args[0]), *error.args[1:])
            raise

    return speaking_python
