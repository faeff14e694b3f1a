"""Datasets: a registry (``load_dataset``), in-memory uint8 tensors, stratified splits."""

from awsaa.data.datasets import DATASETS, Dataset, DatasetInfo, ImageTensors, dataset_info, load_dataset
from awsaa.data.own import (
    DataOptions,
    content_hash,
    fingerprint,
    from_arrays,
    from_torchvision,
    is_handed_in,
    is_own,
    load_own,
)
from awsaa.data.split import stratified_split, stratified_subset

__all__ = [
    "DATASETS",
    "DataOptions",
    "Dataset",
    "DatasetInfo",
    "ImageTensors",
    "content_hash",
    "dataset_info",
    "fingerprint",
    "from_arrays",
    "from_torchvision",
    "is_handed_in",
    "is_own",
    "load_dataset",
    "load_own",
    "stratified_split",
    "stratified_subset",
]
