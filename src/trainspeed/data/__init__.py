"""Data sets: finding, fetching, parsing and registering them; each set's module registers itself here."""

from . import cifar10, generated, idx  # noqa: F401  (registering their data sets)
from .dataset import DataOptions, Dataset, check_dataset, list_datasets, load_dataset, register_dataset

__all__ = ["DataOptions", "Dataset", "check_dataset", "list_datasets", "load_dataset", "register_dataset"]
