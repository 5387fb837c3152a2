"""Data sets: finding, fetching, parsing and registering them."""

from .registry import DataOptions, Dataset, list_datasets, load_dataset, register_dataset

__all__ = ["DataOptions", "Dataset", "list_datasets", "load_dataset", "register_dataset"]
