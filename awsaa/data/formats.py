"""Readers for the on-disk formats of the datasets: IDX (MNIST family), the CIFAR python
pickles, SVHN's MATLAB files. Each returns uint8 NCHW images and int64 labels.

CIFAR's files are pickles; they are read with an unpickler that only rebuilds plain
containers and numpy arrays, so a file that carries code is refused, not run.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from awsaa.errors import AWSAAError


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise AWSAAError(f"corrupted dataset file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise AWSAAError(f"corrupted dataset file {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AWSAAError(f"corrupted dataset file {path}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise AWSAAError(f"corrupted dataset file {path}: {len(raw) - header} data bytes for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise AWSAAError(f"corrupted dataset files {images_path.name}/{labels_path.name}: "
                         f"{images.shape} images for {labels.shape} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path, label_key: str) -> tuple[Tensor, Tensor]:
    """One file of ``cifar-10-batches-py`` / ``cifar-100-python``: a pickled dict with
    ``data`` (N x 3072 uint8, channel-major rows) and ``labels`` / ``fine_labels``."""
    try:
        with path.open("rb") as f:
            d = _ArrayUnpickler(io.BufferedReader(f), encoding="latin1").load()
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as e:
        raise AWSAAError(f"corrupted dataset file {path}: {type(e).__name__}: {e}") from None
    if len(images) != len(labels):
        raise AWSAAError(f"corrupted dataset file {path}: {len(images)} images for {len(labels)} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def read_svhn_mat(path: Path) -> tuple[Tensor, Tensor]:
    """SVHN's ``*_32x32.mat``: X is (32, 32, 3, N), y is (N, 1) with digit 0 stored as 10."""
    import scipy.io  # only SVHN needs scipy

    try:
        d = scipy.io.loadmat(str(path))
        x, y = d["X"], d["y"].astype(np.int64).reshape(-1)
    except Exception as e:  # scipy raises several types for a damaged file
        raise AWSAAError(f"corrupted dataset file {path}: {type(e).__name__}: {e}") from None
    y[y == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, torch.from_numpy(y)
