"""Your own data: an image-folder tree, an ``.npz`` array file, or tensors from Python.

Three ways in, one result: a :class:`~awsaa.data.datasets.Dataset` of in-memory uint8
tensors (the fast path the trainer and the search use for every small dataset) with its
facts computed from the data: the classes, the channels, the image size, the mean and
standard deviation, and the fill of the geometric ops (the training images' border value).

* **A folder** (``dataset: path/to/folder``)::

      folder/train/<class>/<image>    required; one folder per class, any number of classes
      folder/val/<class>/<image>      optional: the validation split (else carved from train)
      folder/test/<class>/<image>     optional: the test split (else ``test_fraction`` of
                                      train, stratified, seed 0)

  Every format Pillow reads (by extension); EXIF orientation applied; palette, RGBA, CMYK,
  bilevel and 16-bit images converted; the first frame of a multi-frame file. Other files
  are ignored and counted. Images are resized to ``image_size`` (shorter side, then a
  centre crop: ``PIL.ImageOps.fit``); without it they must all share one size. Grey when
  every image is grey (``channels`` forces 1 or 3).
* **An array file** (``dataset: path/to/data.npz``): ``x`` and ``y``, optionally
  ``x_val``/``y_val``, ``x_test``/``y_test`` and ``classes`` (names); images uint8, or float
  in [0, 1], as NHWC, NCHW or NHW; labels integers in [0, number of classes). Read with
  ``allow_pickle=False``: nothing is unpickled.
* **From Python**: :func:`from_arrays` (tensors or arrays) and :func:`from_torchvision` (any
  dataset of (image, label) pairs, e.g. a ``torchvision.datasets`` one) give a Dataset that
  ``Trainer(cfg, data=...)`` and the search take without a file being written.

Bad data is one :class:`~awsaa.errors.AWSAAError` line naming the file or the problem.
Everything is held in memory as uint8, so a dataset larger than ``max_memory_mb`` is
refused before it is decoded, naming its size and the option.
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from awsaa.data.datasets import Dataset, DatasetInfo, ImageTensors
from awsaa.data.split import stratified_split
from awsaa.errors import AWSAAError

SPLITS = ("train", "val", "test")
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class DataOptions:
    """How own data is read (the ``data`` section of a config, and ``image_size``)."""

    image_size: int | None = None  # square side to resize to; None = the images' own (all must share it)
    channels: int | None = None  # 1 or 3; None = 1 when every image is grey, else 3
    test_fraction: float = 0.2  # of train, held out as the test split when there is none
    skip_bad_images: bool = False  # skip (and count) images Pillow cannot read, instead of stopping
    max_memory_mb: int = 4096  # the decoded uint8 dataset's size limit

    def key(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_own(dataset: str) -> bool:
    """Whether config value ``dataset`` names own data (a folder or an .npz file) rather than a
    dataset of the registry: it holds a path separator or ends in ``.npz``."""
    return not is_handed_in(dataset) and (dataset.endswith(".npz") or "/" in dataset or os.sep in dataset)


HANDED_IN = "python:"  # the dataset name of data handed in from Python (``dataset: python:NAME``)


def is_handed_in(dataset: str) -> bool:
    """Whether config value ``dataset`` names data handed in from Python (``python:NAME``)."""
    return dataset.startswith(HANDED_IN)


def content_hash(ds: Dataset) -> str:
    """What identifies data handed in from Python: a hash of its training (and validation)
    images and labels. Stage 1's cached weights are keyed by it."""
    h = hashlib.sha256()
    for t in (ds.train, ds.val):
        if t is not None:
            h.update(t.images.contiguous().cpu().numpy().tobytes())
            h.update(t.labels.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(path: str | os.PathLike) -> str:
    """What identifies the data at ``path`` without reading it: each file's relative path, size
    and modification time (a folder) or the file's (an .npz). Cached stage-1 weights are keyed
    by it, so editing the data trains stage 1 again."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for p in sorted(_files(path, path, set())):
                st = p.stat()
                h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            st = path.stat()
            h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
    except OSError:
        h.update(b"unreadable")
    return h.hexdigest()[:16]


def load_own(path: str | os.PathLike, options: DataOptions | None = None,
             log: Callable[[str], None] | None = None) -> Dataset:
    """The dataset at ``path``: an image-folder tree or an .npz file (see the module docstring)."""
    opts = options or DataOptions()
    if is_handed_in(str(path)):
        raise AWSAAError(f"dataset {path} is data handed in from Python (awsaa.data.from_arrays, from_torchvision); "
                         f"it cannot be loaded by name: give the Dataset itself (Trainer(cfg, data=...), "
                         f"new_run(..., data=...))")
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise AWSAAError(f"dataset {p} does not exist (a folder with train/<class>/ images, or an .npz file)") from None
    except OSError as e:
        raise AWSAAError(f"dataset {p} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        return _load_folder(p, opts, log)
    if p.suffix.lower() == ".npz" and stat.S_ISREG(st.st_mode):
        return _load_npz(p, opts)
    raise AWSAAError(f"dataset {p} is neither a folder nor an .npz file")


# ----------------------------------------------------------------------------- facts


def info_from(name: str, train: ImageTensors, classes: list[str], val_size: int, source: str) -> DatasetInfo:
    """The facts of a dataset, computed from its training images: mean and standard deviation
    per channel, and the fill of the geometric ops (the median of the images' border pixels,
    so a black-background set fills black and a photo set fills its typical edge colour)."""
    x = train.images
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1).double() / 255
    mean = tuple(round(float(m), 4) for m in flat.mean(dim=1))
    std = tuple(round(max(float(s), 1e-3), 4) for s in flat.std(dim=1))
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    fill = int(border.float().median())
    return DatasetInfo(name, len(classes), c, x.shape[-1], mean, std, val_size, fill, True, source,
                       tuple(classes))


def _finish(name: str, source: str, splits: dict[str, tuple[Tensor, Tensor]], classes: list[str],
            opts: DataOptions) -> Dataset:
    """A Dataset from uint8 NCHW tensors per split: the test split carved from train when
    missing, the facts computed, the classes checked."""
    x, y = splits["train"]
    if len(classes) < 2:
        raise AWSAAError(f"dataset {source} has {len(classes)} class; a classifier needs at least 2")
    counts = torch.bincount(y, minlength=len(classes))
    if "test" not in splits:
        if not 0 < opts.test_fraction < 1:
            raise AWSAAError(f"dataset {source} has no test split and test_fraction is {opts.test_fraction}")
        n_test = max(len(classes), round(len(y) * opts.test_fraction))
        if n_test >= len(y) or int(counts.min()) < 2:
            raise AWSAAError(f"dataset {source} has too few training images ({len(y)}; fewest in a class: "
                             f"{int(counts.min())}) to hold out a test split; give it a test split")
        tr, te = stratified_split(y, n_test, seed=0)
        splits = {**splits, "train": (x[tr], y[tr]), "test": (x[te], y[te])}
    train = ImageTensors(*splits["train"])
    val = ImageTensors(*splits["val"]) if "val" in splits else None
    default_val = len(val) if val is not None else max(len(classes), len(train) // 5)
    info = info_from(name, train, classes, default_val, source)
    return Dataset(info, train, ImageTensors(*splits["test"]), Path(source) if os.path.exists(source) else None,
                   val=val)


def _check_memory(n: int, c: int, size: tuple[int, int], source: str, opts: DataOptions) -> None:
    need = n * c * size[0] * size[1]
    if need > opts.max_memory_mb * 2**20:
        raise AWSAAError(f"dataset {source}: {n:,} images of {c} x {size[0]} x {size[1]} take {need / 2**20:,.0f} MiB "
                         f"as uint8, over data.max_memory_mb ({opts.max_memory_mb:,}); raise it, or give a smaller "
                         f"image_size")


# ----------------------------------------------------------------------------- folders


def _extensions() -> set[str]:
    Image.init()
    return {e.lower() for e in Image.registered_extensions()}


def _files(root: Path, top: Path, seen: set[tuple[int, int]]) -> Iterable[Path]:
    """Every regular file under ``root`` (links followed, a loop refused), sorted by path."""
    try:
        st = root.stat()
    except OSError as e:
        raise AWSAAError(f"dataset folder {root} cannot be read: {e.strerror or e}") from None
    key = (st.st_dev, st.st_ino)
    if key in seen:
        raise AWSAAError(f"dataset folder {top}: {root} leads back to a folder above it (a symbolic link loop)")
    seen = seen | {key}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise AWSAAError(f"dataset folder {root} cannot be read: {e.strerror or e}") from None
    for entry in entries:
        p = Path(entry.path)
        try:
            if entry.is_dir():
                yield from _files(p, top, seen)
            elif entry.is_file():
                yield p
        except OSError as err:
            raise AWSAAError(f"dataset file {p} cannot be read: {err.strerror or err}") from None


def _scan(folder: Path, split: str, classes: list[str] | None) -> tuple[list[str], list[tuple[Path, int]], int]:
    """(classes, [(image file, label)], files ignored) of ``folder/split``."""
    root = folder / split
    try:
        dirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise AWSAAError(f"dataset folder {root} cannot be read: {e.strerror or e}") from None
    if not dirs:
        raise AWSAAError(f"dataset folder {root} holds no class folders (expected {split}/<class>/<image>)")
    if classes is None:
        classes = dirs
    else:
        extra = [d for d in dirs if d not in classes]
        if extra:
            raise AWSAAError(f"dataset folder {root} has class folders that train/ does not: {', '.join(extra[:5])}")
    exts = _extensions()
    items, ignored = [], 0
    for d in dirs:
        label = classes.index(d)
        files = list(_files(root / d, folder, set()))
        images = [f for f in files if f.suffix.lower() in exts]
        ignored += len(files) - len(images)
        if not images and split == "train":
            raise AWSAAError(f"class folder {root / d} holds no images (Pillow reads {', '.join(sorted(exts)[:8])}, ...)")
        items += [(f, label) for f in images]
    return classes, items, ignored


def _open(path: Path) -> Image.Image:
    """The image at ``path``, decoded, upright (EXIF), first frame; Pillow's errors as they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.seek(0)
            img.load()
            out = ImageOps.exif_transpose(img)
            return out if out is not img else img.copy()


def _upright_size(header: Image.Image) -> tuple[int, int]:
    """An image's (width, height) as :func:`_open` will return it: turned by its EXIF
    orientation (tags 5-8 swap the sides), read from the header alone."""
    w, h = header.size
    return (h, w) if header.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)


def _fit(img: Image.Image, opts: DataOptions) -> Image.Image:
    """``img`` resized to ``image_size`` square (shorter side, then a centre crop), when set."""
    side = opts.image_size
    if side and img.size != (side, side):
        return ImageOps.fit(img, (side, side), method=Image.Resampling.BILINEAR)
    return img


def _unreadable(f: Path, e: BaseException, opts: DataOptions, skipped: list[str]) -> None:
    """An image Pillow cannot read: one line naming it, or skipped and counted when asked."""
    if not opts.skip_bad_images:
        raise AWSAAError(f"image {f} cannot be read: {_why(e)} (data.skip_bad_images: true skips such files)") from None
    skipped.append(str(f))


def _to_array(img: Image.Image) -> np.ndarray:
    """An image as uint8 HWC with 1 or 3 channels: 16- and 32-bit grey scaled to 8 bits,
    palette / RGBA / CMYK / bilevel converted as Pillow converts them."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8)[:, :, None]
    if img.mode in ("L", "1", "LA", "La"):
        return np.asarray(img.convert("L"), dtype=np.uint8)[:, :, None]
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _load_folder(folder: Path, opts: DataOptions, log: Callable[[str], None] | None) -> Dataset:
    if not (folder / "train").is_dir():
        raise AWSAAError(f"dataset folder {folder} has no train/ folder (expected train/<class>/<image>, "
                         f"and optionally val/ and test/)")
    classes, train_items, ignored = _scan(folder, "train", None)
    if len(classes) > MAX_CLASSES:
        raise AWSAAError(f"dataset folder {folder} has {len(classes):,} classes; at most {MAX_CLASSES:,}")
    lists = {"train": train_items}
    for split in ("val", "test"):
        if (folder / split).is_dir():
            _, lists[split], more = _scan(folder, split, classes)
            ignored += more
    # Pass 1: sizes and modes from the headers (no decoding), so a size problem or a dataset
    # too large for memory is refused before any image is decoded.
    sizes: dict[Path, tuple[int, int]] = {}
    skipped: list[str] = []
    for items in lists.values():
        for f, _ in items:
            try:
                with Image.open(f) as header:
                    sizes[f] = _upright_size(header)
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
                _unreadable(f, e, opts, skipped)
    distinct = sorted(set(sizes.values()))
    if opts.image_size is None and len(distinct) > 1:
        raise AWSAAError(f"dataset folder {folder} holds images of {len(distinct)} sizes ({_sizes(distinct)}); "
                         f"set image_size to resize them all to one square size")
    size = (opts.image_size, opts.image_size) if opts.image_size else distinct[0]
    n = len(sizes)
    _check_memory(n, opts.channels or 3, (size[1], size[0]), str(folder), opts)
    # Pass 2: decode.
    splits: dict[str, tuple[Tensor, Tensor]] = {}
    grey = True
    for split, items in lists.items():
        arrays, labels = [], []
        for f, label in items:
            if f not in sizes:
                continue
            try:
                a = _to_array(_fit(_open(f), opts))
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning) as e:
                _unreadable(f, e, opts, skipped)
                continue
            if a.shape[2] == 3 and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])):
                grey = False
            arrays.append(a)
            labels.append(label)
        if not arrays:
            if split == "train":
                raise AWSAAError(f"dataset folder {folder}: no training image could be read")
            continue
        channels = opts.channels or 3
        x = np.stack([_channels(a, channels) for a in arrays])
        splits[split] = (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels))
    if opts.channels is None and grey:
        splits = {k: (x[:, :1].contiguous(), y) for k, (x, y) in splits.items()}
    counts = torch.bincount(splits["train"][1], minlength=len(classes))
    empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if empty:
        raise AWSAAError(f"dataset folder {folder}: class {empty[0]!r} has no readable training image")
    if log is not None and (ignored or skipped):
        log(f"dataset {folder}: {ignored} non-image file(s) ignored, {len(skipped)} unreadable image(s) skipped"
            + (f" (first: {skipped[0]})" if skipped else ""))
    return _finish(str(folder), str(folder), splits, classes, opts)


def _channels(a: np.ndarray, c: int) -> np.ndarray:
    if a.shape[2] == c:
        return a
    if c == 3:
        return np.repeat(a, 3, axis=2)
    # ITU-R 601-2 luma, as Pillow's convert("L")
    return np.round(a[..., :3] @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)[:, :, None]


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


def _sizes(distinct: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"{w}x{h}" for w, h in distinct[:4])
    return shown + (", ..." if len(distinct) > 4 else "")


# ----------------------------------------------------------------------------- arrays


def _load_npz(path: Path, opts: DataOptions) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"x", "y"} <= keys:
                raise AWSAAError(f"array file {path} must hold arrays named x and y (has: {', '.join(sorted(keys))})")
            unknown = keys - {"x", "y", "x_val", "y_val", "x_test", "y_test", "classes"}
            if unknown:
                raise AWSAAError(f"array file {path} holds arrays awsaa does not know: {', '.join(sorted(unknown))} "
                                 f"(x, y, x_val, y_val, x_test, y_test, classes)")
            arrays = {k: z[k] for k in sorted(keys)}
    except AWSAAError:
        raise
    except ValueError as e:  # an object array needs pickle: refused
        raise AWSAAError(f"array file {path} cannot be read without unpickling ({_why(e)}); save plain arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise AWSAAError(f"array file {path} is not a readable .npz file: {_why(e)}") from None
    classes = None
    if "classes" in arrays:
        names = arrays.pop("classes")
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise AWSAAError(f"array file {path}: classes must be a 1-D array of names")
        classes = [str(c) for c in names.tolist()]
    return from_arrays(arrays["x"], arrays["y"], arrays.get("x_val"), arrays.get("y_val"), arrays.get("x_test"),
                       arrays.get("y_test"), classes=classes, options=opts, source=str(path))


def _images(x: Any, what: str, source: str) -> Tensor:
    """uint8 NCHW from uint8 or float-in-[0, 1] NHWC, NCHW or NHW."""
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4:
        last, second = a.shape[-1] in (1, 3), a.shape[1] in (1, 3)
        if last and second and a.shape[1] != a.shape[-1]:
            raise AWSAAError(f"{source}: {what} of shape {a.shape} could be NHWC or NCHW; store it as NCHW "
                             f"(N, C, H, W) with C = 1 or 3")
        if last and not second:
            a = a.transpose(0, 3, 1, 2)
        elif not second:
            raise AWSAAError(f"{source}: {what} of shape {a.shape} has no channel axis of 1 or 3 (NHWC, NCHW or NHW)")
    else:
        raise AWSAAError(f"{source}: {what} must be images (NHWC, NCHW or NHW), got shape {a.shape}")
    if a.shape[0] == 0:
        raise AWSAAError(f"{source}: {what} holds no images")
    if a.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(a))
    if a.dtype.kind != "f":
        raise AWSAAError(f"{source}: {what} must be uint8, or float in [0, 1]; got {a.dtype}")
    if not np.isfinite(a).all():
        raise AWSAAError(f"{source}: {what} holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise AWSAAError(f"{source}: {what} is float with values in [{lo:.4g}, {hi:.4g}]; floats must lie in [0, 1] "
                         f"(or store uint8)")
    return torch.from_numpy(np.round(a * 255).astype(np.uint8))


def _labels(y: Any, n: int, what: str, source: str) -> Tensor:
    a = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if a.ndim != 1:
        raise AWSAAError(f"{source}: {what} must be a 1-D array of class indices, got shape {a.shape}")
    if len(a) != n:
        raise AWSAAError(f"{source}: {what} holds {len(a)} labels for {n} images")
    if a.dtype.kind not in "iu":
        raise AWSAAError(f"{source}: {what} must hold integers (class indices), got {a.dtype}")
    if len(a) and int(a.min()) < 0:
        raise AWSAAError(f"{source}: {what} holds a negative label ({int(a.min())})")
    return torch.from_numpy(a.astype(np.int64))


def from_arrays(x: Any, y: Any, x_val: Any = None, y_val: Any = None, x_test: Any = None, y_test: Any = None,
                classes: list[str] | None = None, options: DataOptions | None = None,
                source: str = "arrays") -> Dataset:
    """A Dataset from images ``x`` (uint8, or float in [0, 1]; NHWC, NCHW or NHW; numpy arrays
    or tensors) and integer labels ``y``, with optional validation and test splits and class
    names; the test split is carved from ``x`` when missing (``options.test_fraction``)."""
    opts = options or DataOptions()
    splits: dict[str, tuple[Tensor, Tensor]] = {}
    for split, (xs, ys) in {"train": (x, y), "val": (x_val, y_val), "test": (x_test, y_test)}.items():
        if xs is None and ys is None:
            continue
        name = "x" if split == "train" else f"x_{split}"
        if xs is None or ys is None:
            raise AWSAAError(f"{source}: {name} and its labels come together; one of them is missing")
        images = _images(xs, name, source)
        splits[split] = (images, _labels(ys, images.shape[0], name.replace("x", "y", 1), source))
    shapes = {s: tuple(t[0].shape[2:]) for s, t in splits.items()}
    if opts.image_size is None and len(set(shapes.values())) > 1:
        raise AWSAAError(f"{source}: the splits' images differ in size ({shapes}); set image_size")
    top = max(int(t[1].max()) for t in splits.values())
    k = len(classes) if classes is not None else top + 1
    if top >= k:
        raise AWSAAError(f"{source}: label {top} is out of range for {k} class names")
    if k > MAX_CLASSES:
        raise AWSAAError(f"{source}: labels up to {top} make {k:,} classes; at most {MAX_CLASSES:,}")
    n = sum(len(t[1]) for t in splits.values())
    c = opts.channels or splits["train"][0].shape[1]
    h, w = (opts.image_size, opts.image_size) if opts.image_size else shapes["train"]
    _check_memory(n, c, (h, w), source, opts)
    splits = {s: (_resize_channels(xs, opts, c), ys) for s, (xs, ys) in splits.items()}
    counts = torch.bincount(splits["train"][1], minlength=k)
    if (counts == 0).any():
        missing = int((counts == 0).nonzero()[0])
        raise AWSAAError(f"{source}: class {missing} has no training image (labels must run from 0 to the number of "
                         f"classes - 1)")
    names = classes if classes is not None else [str(i) for i in range(k)]
    return _finish(source, source, splits, names, opts)


def _resize_channels(x: Tensor, opts: DataOptions, c: int) -> Tensor:
    if x.shape[1] != c:
        if c == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        else:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if opts.image_size and tuple(x.shape[2:]) != (opts.image_size, opts.image_size):
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        x = F.resize(x, [opts.image_size, opts.image_size], antialias=True)
    return x


def from_torchvision(dataset: Any, test: Any = None, classes: list[str] | None = None,
                     options: DataOptions | None = None) -> Dataset:
    """A Dataset from any dataset of (image, label) pairs (PIL images or uint8 CHW tensors),
    e.g. ``torchvision.datasets.MNIST(...)``; ``test`` likewise (else carved from it). Class
    names from ``classes``, else from the dataset's ``classes`` attribute when it has one."""
    opts = options or DataOptions()

    def arrays(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(len(ds)):
            img, label = ds[i]
            if isinstance(img, Image.Image):
                a = _to_array(_fit(img, opts)).transpose(2, 0, 1)
            elif isinstance(img, Tensor) and img.dtype == torch.uint8 and img.dim() == 3:
                a = img.numpy()
            else:
                raise AWSAAError(f"dataset item {i} is a {type(img).__name__}; give PIL images or uint8 CHW tensors")
            xs.append(a)
            ys.append(int(label))
        if not xs:
            raise AWSAAError("the dataset is empty")
        channels = max(a.shape[0] for a in xs)
        xs = [np.repeat(a, channels, axis=0) if a.shape[0] != channels else a for a in xs]
        if len({a.shape for a in xs}) > 1:
            raise AWSAAError("the dataset's images differ in size; set image_size")
        return np.stack(xs), np.array(ys, dtype=np.int64)

    x, y = arrays(dataset)
    xt, yt = arrays(test) if test is not None else (None, None)
    names = classes or (list(dataset.classes) if hasattr(dataset, "classes") else None)
    return from_arrays(x, y, x_test=xt, y_test=yt, classes=names, options=opts,
                       source=type(dataset).__name__)
