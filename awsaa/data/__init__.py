"""Datasets: a registry (``load_dataset``), in-memory uint8 tensors, stratified splits."""

from awsaa.data.datasets import DATASETS, Dataset, DatasetInfo, ImageTensors, dataset_info, load_dataset
from awsaa.data.split import stratified_split, stratified_subset

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "ImageTensors",
    "dataset_info",
    "load_dataset",
    "stratified_split",
    "stratified_subset",
]
