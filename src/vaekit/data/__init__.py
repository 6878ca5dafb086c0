"""Data loading: readers for the user's files, built-in datasets, and verified downloads.
Imports only numpy; Pillow, scikit-learn and tqdm load when first needed."""

from vaekit.data.datasets import (
    DATASETS,
    SOURCES,
    Dataset,
    DatasetSource,
    dataset_names,
    load_dataset,
    split_validation,
)
from vaekit.data.download import download
from vaekit.data.readers import read_arrays, read_idx, read_image_folder

__all__ = [
    "DATASETS",
    "SOURCES",
    "Dataset",
    "DatasetSource",
    "dataset_names",
    "download",
    "load_dataset",
    "read_arrays",
    "read_idx",
    "read_image_folder",
    "split_validation",
]
