"""Errors a user can cause. The CLI turns these into one-line messages; anything else is our bug."""


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
