"""Your own data, as real files: digits written as a PNG folder tree and as an .npz file,
real photographs of different sizes and modes, and tensors handed in from Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from awsaa import AWSAAError
from awsaa.data import DataOptions, from_arrays, from_torchvision, load_dataset, load_own

SAMPLES = Path(__import__("matplotlib").get_data_path()) / "sample_data"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def write_digit_folder(root: Path, ds, test: bool = True, extra: bool = True, test_count: int | None = None) -> Path:
    """The digits pool as train/<class>/*.png (and the test set, or its first ``test_count``
    images, as test/), class folders named by word so the names are not the labels; a README
    and a stray note to be ignored."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    splits = [("train", ds.train)] + ([("test", ds.test)] if test else [])
    for split, t in splits:
        n = test_count if split == "test" else None
        for i, (x, y) in enumerate(zip(t.images[:n], t.labels[:n], strict=True)):
            d = root / split / words[int(y)]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[0].numpy()).save(d / f"{i:04d}.png")
    if extra:
        (root / "README.txt").write_text("digits, as PNG files\n")
        (root / "train" / "zero" / "notes.txt").write_text("not an image\n")
    return root


def sorted_rows(x: torch.Tensor) -> list[bytes]:
    return sorted(bytes(r.numpy()) for r in x.reshape(len(x), -1))


def test_a_png_folder_of_digits_loads_as_the_same_images_with_its_class_names(tmp_path, digits):
    ds = load_own(write_digit_folder(tmp_path / "digits", digits))
    assert ds.info.classes[:3] == ("eight", "five", "four")  # sorted folder names
    assert ds.info.num_classes == 10 and ds.info.channels == 1 and ds.info.image_size == 16
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape == (200, 1, 16, 16)
    assert sorted_rows(ds.train.images) == sorted_rows(digits.train.images)  # PNG is lossless
    assert len(ds.test) == 1597 and ds.val is None
    # the facts, from the data: statistics as the registry's, black border -> fill 0
    assert ds.info.mean == digits.info.mean and ds.info.std == digits.info.std and ds.info.fill == 0
    words = ds.info.classes
    for x, y in zip(ds.train.images[:20], ds.train.labels[:20], strict=True):  # labels follow the folders
        (i,) = [k for k, row in enumerate(digits.train.images) if torch.equal(row, x)][:1]
        assert words[int(y)] == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                 "nine"][int(digits.train.labels[i])]


def test_without_a_test_folder_a_stratified_seeded_test_split_is_held_out(tmp_path, digits):
    root = write_digit_folder(tmp_path / "d", digits, test=False)
    a = load_own(root, DataOptions(test_fraction=0.25))
    b = load_own(root, DataOptions(test_fraction=0.25))
    assert len(a.test) == 50 and len(a.train) == 150
    assert torch.equal(a.test.images, b.test.images)  # seeded: the same split every time
    assert torch.bincount(a.test.labels).min() >= 4  # stratified: every class in the test split


def test_an_npz_of_digits_in_every_layout_loads_the_same(tmp_path, digits):
    x = digits.train.images.numpy()  # (N, 1, 16, 16) uint8
    y = digits.train.labels.numpy()
    layouts = {"nchw": x, "nhwc": x.transpose(0, 2, 3, 1), "nhw": x[:, 0], "float": x.astype(np.float32) / 255}
    for name, xs in layouts.items():
        f = tmp_path / f"{name}.npz"
        np.savez(f, x=xs, y=y, x_test=digits.test.images.numpy(), y_test=digits.test.labels.numpy(),
                 classes=np.array([f"c{i}" for i in range(10)]))
        ds = load_dataset(str(f))
        assert torch.equal(ds.train.images, digits.train.images), name
        assert torch.equal(ds.test.labels, digits.test.labels) and ds.info.classes[9] == "c9"


def test_real_photographs_of_different_sizes_and_modes_load_with_image_size(tmp_path):
    """matplotlib's sample photographs (RGB JPEG 512x600, RGBA PNGs 542x130 and 128x128) and
    files Pillow makes from them in the modes users have: palette GIF, CMYK JPEG, 16-bit
    grey PNG, a JPEG rotated by its EXIF tag, a two-page TIFF."""
    root = tmp_path / "photos"
    a, b = root / "train" / "portrait", root / "train" / "logo"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    grace = Image.open(SAMPLES / "grace_hopper.jpg")
    grace.save(a / "rgb.jpg")
    grace.convert("P", palette=Image.Palette.ADAPTIVE).save(a / "palette.gif")
    grace.convert("CMYK").save(a / "cmyk.jpg")
    Image.fromarray(np.asarray(grace.convert("L")).astype(np.uint16) * 257).save(a / "grey16.png")
    exif = grace.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    grace.save(a / "exif_rotated.jpg", exif=exif)
    grace.save(a / "pages.tif", save_all=True, append_images=[grace.rotate(90)])
    shutil.copy(SAMPLES / "logo2.png", b / "rgba.png")
    shutil.copy(SAMPLES / "Minduka_Present_Blue_Pack.png", b / "rgba2.png")
    assert {Image.open(f).mode for f in root.rglob("*.*")} == {"RGB", "P", "CMYK", "I;16", "RGBA"}
    # four sizes upright: the EXIF-tagged copy of the 512x600 photo stands 600x512
    with pytest.raises(AWSAAError, match=r"4 sizes \(128x128, 512x600, 542x130, 600x512\); set image_size"):
        load_own(root)
    ds = load_own(root, DataOptions(image_size=32, test_fraction=0.25))
    assert ds.info.channels == 3 and ds.info.classes == ("logo", "portrait")
    assert ds.train.images.shape[1:] == (3, 32, 32) and len(ds.train) + len(ds.test) == 8
    # the loader turns the EXIF-tagged copy upright (its pixels are the plain copy's, turned),
    # reads the first page of the TIFF, and scales 16-bit grey to 8 bits
    from awsaa.data.own import _open, _to_array

    assert Image.open(a / "exif_rotated.jpg").size == (512, 600) and _open(a / "exif_rotated.jpg").size == (600, 512)
    assert np.asarray(_open(a / "pages.tif")).shape == (600, 512, 3)
    grey16 = _to_array(_open(a / "grey16.png"))
    assert grey16.dtype == np.uint8 and np.array_equal(grey16[..., 0], np.asarray(grace.convert("L")))
    grey = load_own(root, DataOptions(image_size=32, channels=1, test_fraction=0.25))
    assert grey.info.channels == 1 and grey.train.images.shape[1] == 1


def test_python_tensors_and_a_torchvision_dataset_need_no_file(digits):
    from torchvision.datasets import FakeData

    ds = from_arrays(digits.train.images, digits.train.labels, x_test=digits.test.images, y_test=digits.test.labels)
    assert torch.equal(ds.train.images, digits.train.images) and ds.info.fill == 0
    fake = FakeData(size=40, image_size=(3, 12, 12), num_classes=4, random_offset=0)
    tv = from_torchvision(fake, options=DataOptions(test_fraction=0.25))
    assert tv.info.channels == 3 and tv.train.images.shape[1:] == (3, 12, 12) and tv.info.num_classes == 4


def test_the_trainer_trains_on_a_folder_and_on_arrays_handed_in(tmp_path, digits):
    from awsaa.config import TrainConfig, load
    from awsaa.train.trainer import Trainer

    root = write_digit_folder(tmp_path / "d", digits)
    for data, dataset in ((None, str(root)), (from_arrays(digits.train.images, digits.train.labels), "digits")):
        cfg = load(TrainConfig, Path("configs/train/digits.yaml"),
                   {"dataset": dataset, "epochs": 2, "optim.warmup_epochs": 0, "aug": "uniform"})
        t = Trainer(cfg, device="cpu", data=data)
        stats = t.run_epoch()
        assert stats.train_loss > 0 and t.info.num_classes == 10


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, digits):
    root = write_digit_folder(tmp_path / "d", digits, test=False)
    with pytest.raises(AWSAAError, match=r"take .* MiB as uint8, over data.max_memory_mb \(1\)"):
        load_own(root, DataOptions(image_size=1024, max_memory_mb=1))


def test_unreadable_images_can_be_skipped_and_counted(tmp_path, digits):
    root = write_digit_folder(tmp_path / "d", digits, test=False)
    bad = root / "train" / "one" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(AWSAAError, match=r"broken\.png cannot be read"):
        load_own(root)
    lines = []
    ds = load_own(root, DataOptions(skip_bad_images=True), log=lines.append)
    assert len(ds.train) + len(ds.test) == 200 and "1 unreadable image(s) skipped" in lines[0]


def test_a_folder_the_user_cannot_read_is_one_line(tmp_path, digits):
    """As a user without the right (nobody), not root, which reads everything."""
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"awsaa-perm-{os.getpid()}"
    base.mkdir(mode=0o755)
    try:
        root = write_digit_folder(base / "d", digits, test=False, extra=False)
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (root / "train" / "three").chmod(0o700)  # root's alone
        code = textwrap.dedent(f"""
            import os, sys
            from PIL import Image
            from awsaa.data import load_own
            from awsaa.errors import AWSAAError
            Image.init()  # every module is loaded before the rights are dropped (the venv may be root's)
            os.setgid(65534); os.setuid(65534)
            try:
                load_own({str(root)!r})
            except AWSAAError as e:
                print(e); sys.exit(2)
            """)
        repo = Path(__file__).parents[1]
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo,
                           env={**os.environ, "PYTHONPATH": str(repo)})
        assert r.returncode == 2, r.stderr
        assert "three cannot be read: Permission denied" in r.stdout and r.stdout.count("\n") == 1
    finally:
        shutil.rmtree(base)


TINY_OWN = {"loops": 1, "trajectories": 2, "pretrain.epochs": 3, "pretrain.stop_epoch": 2,
            "pretrain.optim.warmup_epochs": 0, "finetune.epochs": 1, "finetune.reward_top_k": 1, "workers.count": 1,
            "fill": 3}


def _check_facts(run: Path, data: Path, first_class: str) -> None:
    """The data's facts recorded with the run and in its policy."""
    import json

    facts = json.loads((run / "run.json").read_text())["data"]
    assert facts["num_classes"] == 10 and facts["channels"] == 1 and facts["fill"] == 3
    assert facts["train_images"] == 200 and facts["mean"] == [0.3]
    meta = json.loads((run / "policy.json").read_text())["meta"]
    assert meta["data"] == facts and meta["dataset"] == str(data.resolve()) and meta["seed"] == 0
    assert meta["data"]["classes"][0] == first_class


def test_search_and_train_on_a_png_folder_with_the_tools(tmp_path, digits, capsys):
    """The tools on own data, end to end: a search loop on the folder, recording the data's
    facts with the run and in the policy; then a training epoch with the found policy (the
    training config's fill, 0, wins over the search's: the test below leaves it to the policy)."""
    import json

    from awsaa.cli.search import main as search_main
    from awsaa.cli.train import main as train_main

    folder = write_digit_folder(tmp_path / "digits-png", digits, test_count=100)  # the test split only evaluated
    rc = search_main(["-c", "configs/search/digits.yaml", "--dataset", str(folder), "--storage", str(tmp_path / "s"),
                      "--name", "png", "--set", *[f"{k}={v}" for k, v in TINY_OWN.items()]])
    assert rc == 0, capsys.readouterr().err
    run = tmp_path / "s" / "png"
    _check_facts(run, folder, "eight")
    rc = train_main(["-c", "configs/train/digits.yaml", "--dataset", str(folder), "--aug", str(run / "policy.json"),
                     "--epochs", "1", "--set", "optim.warmup_epochs=0", "--storage", str(tmp_path / "t"),
                     "--name", "png"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads((tmp_path / "t" / "png" / "summary.json").read_text())
    assert summary[0]["status"] == "done" and summary[0]["epochs_done"] == 1


def test_search_and_train_on_an_npz_from_python(tmp_path, digits):
    """The same on an array file, from Python in this process (awsaa.search.run, the trainer):
    the tools' path to the data is the folder's (above); what differs is the file."""
    from awsaa.config import SearchConfig, TrainConfig, load
    from awsaa.search import run as search
    from awsaa.train.trainer import Trainer

    arrays = tmp_path / "digits.npz"
    np.savez(arrays, x=digits.train.images.numpy(), y=digits.train.labels.numpy(),
             x_test=digits.test.images.numpy()[:300], y_test=digits.test.labels.numpy()[:300])
    cfg = load(SearchConfig, Path("configs/search/digits.yaml"), {**TINY_OWN, "dataset": str(arrays)})
    result = search(cfg, storage=tmp_path / "s", name="npz", log=lambda line: None)
    _check_facts(result.run_dir, arrays, "0")
    cfg = load(TrainConfig, Path("configs/train/digits.yaml"), {"dataset": str(arrays), "epochs": 1,
                                                               "optim.warmup_epochs": 0, "fill": None,
                                                               "aug": str(result.run_dir / "policy.json")})
    t = Trainer(cfg, device="cpu")
    assert t.pipeline.policy.fill == 3  # the search's fill
    assert t.run_epoch().train_loss > 0 and t.info.num_classes == 10


def test_the_policy_s_data_facts_set_the_training_fill_and_statistics(tmp_path, digits):
    from awsaa import Policy
    from awsaa.config import TrainConfig, load
    from awsaa.train.trainer import Trainer

    f = tmp_path / "p.json"
    pol = Policy.uniform()
    pol.meta = {"data": {"channels": 1, "fill": 7, "mean": [0.5], "std": [0.25]}}
    pol.save(f)
    cfg = load(TrainConfig, Path("configs/train/digits.yaml"), {"aug": str(f), "fill": None, "epochs": 2,
                                                               "optim.warmup_epochs": 0})
    t = Trainer(cfg, device="cpu")
    assert t.pipeline.policy.fill == 7
    assert float(t.mean.flatten()[0]) == pytest.approx(127.5) and float(t.std.flatten()[0]) == pytest.approx(63.75)
    cfg = load(TrainConfig, Path("configs/train/digits.yaml"), {"aug": str(f), "fill": 0, "epochs": 2,
                                                               "optim.warmup_epochs": 0})
    assert Trainer(cfg, device="cpu").pipeline.policy.fill == 0  # the config's own fill wins


def test_a_job_names_its_data_by_path_and_uploads_none_of_it(tmp_path):
    from awsaa.cli.search import build_parser
    from awsaa.distributed.jobs import job_command

    data = tmp_path / "big.npz"
    data.write_bytes(b"x" * 1000)
    parser = build_parser()
    args = parser.parse_args(["-c", "configs/search/digits.yaml", "--dataset", str(data), "--address", "http://h:8265"])
    work = tmp_path / "work"
    work.mkdir()
    command = job_command("awsaa-search", parser, args, work)
    assert f"--dataset={data}" in command and [p.name for p in work.iterdir()] == ["digits.yaml"]


def test_a_search_takes_data_handed_in_from_python_and_asks_for_it_again_on_resume(tmp_path, digits):
    import json

    from awsaa.config import SearchConfig, load
    from awsaa.distributed.raycluster import init_ray
    from awsaa.distributed.search import run_search
    from awsaa.search.runs import new_run, resume_run

    nhwc = digits.train.images.numpy().transpose(0, 2, 3, 1)  # as a user's array would be
    data = from_arrays(nhwc, digits.train.labels.numpy(), classes=[f"d{i}" for i in range(10)])
    cfg = load(SearchConfig, Path("configs/search/digits.yaml"), {
        "dataset": "python:my-digits", "loops": 1, "trajectories": 2, "pretrain.epochs": 3, "pretrain.stop_epoch": 2,
        "pretrain.optim.warmup_epochs": 0, "finetune.epochs": 1, "finetune.reward_top_k": 1, "workers.count": 1})
    with pytest.raises(AWSAAError, match="handed in from Python: pass it again"):
        new_run(cfg, tmp_path, "py")
    init_ray()
    run = new_run(cfg, tmp_path, "py", data=data)
    assert run.cache.name.count("-") == 1  # the stage-1 cache is keyed by the data's content too
    cfg1 = load(SearchConfig, Path("configs/search/digits.yaml"), {"dataset": "python:x", "loops": 1, "val_size": 0.5})
    assert run.cache != new_run(cfg1, tmp_path, "other", data=from_arrays(nhwc[:100], digits.train.labels[:100]
                                                                           .numpy())).cache
    summary = run_search(run, log=lambda line: None)
    assert summary["loops_done"] == 1
    facts = json.loads((tmp_path / "py" / "run.json").read_text())["data"]
    assert facts["classes"][3] == "d3" and facts["channels"] == 1 and facts["fill"] == 0
    with pytest.raises(AWSAAError, match="pass it again"):
        resume_run(tmp_path / "py")
