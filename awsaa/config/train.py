"""The training config (``awsaa-train``): :class:`TrainConfig`, its optimizer and how own data is read."""

from __future__ import annotations

import itertools
from dataclasses import field
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from awsaa import models  # the model and dataset registries (named in the config contract)
from awsaa.arch import Arch, is_arch_file
from awsaa.augs import check_aug  # the augmentation names (named in the config contract)
from awsaa.config.errors import ConfigError, _require
from awsaa.config.fields import (
    SECTION,
    Bool,
    FillValue,
    Float,
    Fraction,
    Int,
    NonNegative,
    Positive,
    Seed,
    Str,
    ValSize,
)
from awsaa.data import DATASETS, is_handed_in, is_own
from awsaa.errors import AWSAAError


@dataclass(config=SECTION)
class OptimConfig:
    """SGD with Nesterov momentum; linear warm-up, then cosine to ``final_lr`` or step decay
    (``multistep``: times ``gamma`` at each of ``milestones``, in epochs), stepped per batch."""

    lr: Annotated[Float, Field(
        gt=0, le=100, description="Peak learning rate, reached at the end of the warm-up.")] = 0.1
    momentum: Annotated[Fraction, Field(description="SGD momentum factor.")] = 0.9
    nesterov: Annotated[Bool, Field(description="Use Nesterov momentum (needs momentum > 0).")] = True
    weight_decay: Annotated[Float, Field(
        ge=0, le=1, description="L2 weight decay; not applied to BatchNorm parameters and biases.")] = 5e-4
    warmup_epochs: Annotated[Float, Field(
        ge=0, le=1e6, description="Length of the linear learning-rate warm-up, in epochs (fractions allowed); "
                                  "0 = none.")] = 0.0
    warmup_from: Annotated[Annotated[Float, Field(ge=0)] | None, Field(
        description="Learning rate at step 0 of the warm-up; null = lr / 10.")] = None
    schedule: Annotated[Literal["cosine", "multistep", "constant"], Field(
        description="Learning-rate schedule after the warm-up: cosine to final_lr, step decay at milestones, or "
                    "constant.")] = "cosine"
    final_lr: Annotated[Float, Field(
        ge=0, description="Learning rate at the end of the cosine schedule (cosine only).")] = 0.0
    milestones: Annotated[list[Positive], Field(
        description="Epochs at which the learning rate is multiplied by gamma, strictly increasing (multistep "
                    "only).")] = field(default_factory=list)
    gamma: Annotated[Float, Field(
        gt=0, le=1, description="Factor the learning rate is multiplied by at each milestone (multistep only).")] = 0.1
    label_smoothing: Annotated[Fraction, Field(description="Label smoothing of the cross-entropy loss; 0 = off.")] = 0.0
    grad_clip: Annotated[Float, Field(
        ge=0, le=1e6, description="Maximum global gradient norm (larger gradients are scaled down); 0 = off.")] = 0.0

    def __post_init__(self) -> None:
        _require(not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0")
        _require(self.warmup_from is None or self.warmup_from <= self.lr,
                 f"warmup_from must be in [0, lr], got {self.warmup_from}")
        _require(self.final_lr <= self.lr, f"final_lr must be in [0, lr], got {self.final_lr}")
        _require(all(a < b for a, b in itertools.pairwise(self.milestones)),
                 f"milestones must be strictly increasing positive epochs, got {self.milestones}")


@dataclass(config=SECTION)
class DataConfig:
    """How your own data is read (``dataset``: a folder or an .npz file; awsaa.data.own)."""

    channels: Annotated[Literal[1, 3] | None, Field(
        description="Colour channels of the images; null = 1 when every image is grey, else 3.")] = None
    test_fraction: Annotated[Float, Field(
        gt=0, lt=1, description="Fraction of the images held out as the test split when the data has none.")] = 0.2
    skip_bad_images: Annotated[Bool, Field(
        description="Skip (and count) images Pillow cannot read instead of stopping.")] = False
    max_memory_mb: Annotated[Int, Field(
        ge=1, le=2**30, description="Size limit of the decoded dataset (uint8), in MiB; larger is refused.")] = 4096


@dataclass(config=SECTION)
class TrainConfig:
    """One training recipe: the network, the data, the augmentation and the optimizer."""

    model: Annotated[Str, Field(
        description="The network: a name from the model registry (e.g. wrn28_10), or an architecture file "
                    "(awsaa.arch, .json).")]
    dataset: Annotated[Str, Field(
        description="A dataset of the registry (e.g. cifar10), the path of a folder (with train/<class>/ images) "
                    "or of an .npz file, or python:NAME for data handed in from Python.")]
    epochs: Annotated[Positive, Field(description="Length of training, in epochs.")]
    batch_size: Annotated[Positive, Field(
        description="Training batch size, in images drawn from the data (enlarged_batch copies each).")]
    optim: Annotated[OptimConfig, Field(
        description="The optimizer and its learning-rate schedule.")] = field(default_factory=OptimConfig)
    aug: Annotated[Str, Field(
        description="The augmentation: none | cutout | autoaugment | randaugment | randaugment_n<N>_m<M> | "
                    "trivialaugment | uniform | fa_* | a published policy's name | a policy .json file.")] = "none"
    cutout: Annotated[NonNegative, Field(
        description="Cutout length in pixels, applied after every aug but 'none'; 0 = off.")] = 16
    crop_padding: Annotated[NonNegative, Field(
        description="Padding in pixels of the random crop (in-memory datasets); 0 = no crop.")] = 4
    hflip: Annotated[Bool, Field(description="Random horizontal flip.")] = True
    fill: Annotated[FillValue | None, Field(
        description="Fill value (0-255) of the geometric ops; null = the dataset's (128 CIFAR, "
                    "0 Fashion-MNIST).")] = None
    train_size: Annotated[Positive | None, Field(
        description="Train on a stratified subset of this many images (seeded); null = all.")] = None
    val_size: Annotated[ValSize, Field(
        description="Stratified validation split held out of the training set: a count, or a fraction in (0, 1); "
                    "0 = none.")] = 0
    test_size: Annotated[Positive | None, Field(
        description="Evaluate on a stratified test subset of this many images (smoke tests); null = all.")] = None
    eval_every: Annotated[Positive, Field(description="Evaluate every N epochs; the last epoch always.")] = 1
    checkpoint_every: Annotated[Positive, Field(
        description="awsaa-train: a checkpoint every N epochs and after the last (a crash resumes from the last one); "
                    "more than 1 where an epoch takes less time than Tune's checkpoint.")] = 1
    ema_decay: Annotated[Fraction, Field(
        description="Decay of an EMA of the weights (torch.optim.swa_utils.AveragedModel); 0 = off.")] = 0.0
    drop_path: Annotated[Fraction, Field(
        description="Stochastic depth (drop-path) rate, where the architecture allows it; 0 = off.")] = 0.0
    enlarged_batch: Annotated[Positive, Field(
        description="Enlarged Batch: augmented copies per image (their pairs drawn without replacement); 1 = off.")] = 1
    image_size: Annotated[Annotated[Int, Field(ge=8, le=4096)] | None, Field(
        description="Own data: resize every image to this square size (null: the images' own, which must all agree); "
                    "ImageNet: the crop size (null: 224).")] = None
    data: Annotated[DataConfig, Field(
        description="How own data (a folder or an .npz file) is read.")] = field(default_factory=DataConfig)
    num_workers: Annotated[NonNegative, Field(
        description="DataLoader worker processes, ImageFolder datasets only; 0 = load in the main process.")] = 4
    eval_batch_size: Annotated[Positive, Field(description="Batch size of evaluation, in images.")] = 1024
    compile: Annotated[Bool, Field(description="torch.compile the model (CUDA).")] = False
    dataroot: Annotated[Str | None, Field(
        description="The folder the registry's datasets are read from (only there); null = the default places "
                    "($AWSAA_DATA or ./data; see awsaa.data).")] = None
    seed: Annotated[Seed, Field(
        description="Seed of the run's random numbers (initial weights, data order, augmentation draws).")] = 0

    def __post_init__(self) -> None:
        _check_names(self.model, self.dataset)
        try:
            check_aug(self.aug)
        except AWSAAError as e:
            raise ConfigError(f"aug: {e}") from None
        _require(self.optim.warmup_epochs < self.epochs,
                 f"optim.warmup_epochs ({self.optim.warmup_epochs}) must be < epochs ({self.epochs})")
        _require(all(self.optim.warmup_epochs < m < self.epochs for m in self.optim.milestones),
                 f"optim.milestones must lie between the warm-up and epochs ({self.epochs}), "
                 f"got {self.optim.milestones}")


def _check_names(model: str, dataset: str) -> None:
    if is_arch_file(model):
        try:
            Arch.load(model)
        except AWSAAError as e:
            raise ConfigError(f"model: {e}") from None
    else:
        names = models.list_models()
        _require(model in names, f"model {model!r} is unknown; choose from {', '.join(names)}, or give an "
                                 f"architecture .json file")
    _require(dataset in DATASETS or is_own(dataset) or is_handed_in(dataset),
             f"dataset {dataset!r} is unknown; choose from {', '.join(DATASETS)}, or give the path of a "
             f"folder (with train/<class>/ images) or of an .npz file, or python:NAME for data handed in "
             f"from Python")
