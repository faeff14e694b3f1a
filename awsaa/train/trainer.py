"""The trainer: one network, one recipe, epoch by epoch. Plain torch, no Ray.

Recipe (docs/design.md section 1): SGD with Nesterov momentum, weight decay not on
BatchNorm parameters and biases, linear warm-up then cosine (``torch.optim.lr_scheduler``,
stepped per batch), label smoothing through ``F.cross_entropy``, grad-norm clipping,
optional EMA of the weights (``AveragedModel``), optional stochastic depth, optional
Enlarged Batch. On CUDA: bf16 autocast and channels_last. In-memory datasets stay on the
device as uint8 and are augmented there, batch by batch, with the batched tensor ops; an
ImageFolder dataset is read by a DataLoader that crops and flips, and the policy runs on
the collated batch.

The result of a training is the **final-epoch** test error. The trainer never looks at
test accuracy to choose anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2

from awsaa import models
from awsaa.augment.fast_autoaugment import PILPolicy
from awsaa.augs import AUG_NAMES, FAA_AUGS, PUBLISHED, check_aug, policy_file, randaugment_nm
from awsaa.config import TrainConfig, to_dict
from awsaa.data import DataOptions, Dataset, ImageTensors, load_dataset, stratified_split, stratified_subset
from awsaa.errors import AWSAAError
from awsaa.policy import Policy
from awsaa.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from awsaa.train.pipeline import BatchAugment, Pipeline


@dataclass
class EpochStats:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float | None  # None on epochs without evaluation (eval_every)
    test_acc: float | None
    val_acc: float | None
    seconds: float
    images_per_sec: float

    @property
    def test_error(self) -> float | None:
        return None if self.test_acc is None else 100.0 - self.test_acc

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["test_error"] = self.test_error
        return d


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only: not on BatchNorm parameters nor biases."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))
            (no_decay if is_norm or name == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _count_pairs(pair_counts: Tensor, pairs: Tensor) -> None:
    """Add the (N, 2) op pairs drawn to the (K, K) usage counts, in place."""
    k = pair_counts.shape[0]
    pair_counts += torch.bincount(pairs[:, 0] * k + pairs[:, 1], minlength=k * k).view(k, k).to(pair_counts.dtype)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up from ``warmup_from`` to ``lr``, then the main schedule, stepped per batch."""
    sched = torch.optim.lr_scheduler
    o = cfg.optim
    total = cfg.epochs * steps_per_epoch
    warmup = round(o.warmup_epochs * steps_per_epoch)
    main: sched.LRScheduler
    if o.schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1), eta_min=o.final_lr)
    elif o.schedule == "multistep":  # milestones in absolute epochs
        main = sched.MultiStepLR(optimizer, [m * steps_per_epoch - warmup for m in o.milestones], gamma=o.gamma)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    start = (o.warmup_from if o.warmup_from is not None else o.lr / 10) / o.lr
    linear = sched.LinearLR(optimizer, start_factor=max(start, 1e-8), end_factor=1.0, total_iters=warmup)
    return sched.SequentialLR(optimizer, [linear, main], milestones=[warmup])


def policy_data(aug: str) -> dict[str, Any] | None:
    """The data facts a policy file's meta carries (``meta.data``, written by the search), when
    ``aug`` is a policy file that has them and they are well formed."""
    if (aug in AUG_NAMES and aug not in PUBLISHED) or randaugment_nm(aug) is not None:
        return None
    data = Policy.load(policy_file(aug)).meta.get("data")
    if not isinstance(data, dict):
        return None
    c = data.get("channels")
    ok = (isinstance(c, int) and isinstance(data.get("fill"), int) and 0 <= data["fill"] <= 255
          and _numbers(data.get("mean"), c) and _numbers(data.get("std"), c) and min(data["std"]) > 0)
    return data if ok else None


def _numbers(values: Any, n: int) -> bool:
    """``values`` is a list of ``n`` finite numbers."""
    return (isinstance(values, list) and len(values) == n
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def check_split(cfg: Any, ds: Dataset) -> None:
    """Refuse, before any work, a ``train_size`` or ``val_size`` the dataset cannot give (the
    trainer would refuse it later, inside a Ray task)."""
    n = len(ds.train)
    if cfg.train_size is not None and cfg.train_size > n:
        raise AWSAAError(f"train_size {cfg.train_size} exceeds the {n} training images of {cfg.dataset}")
    n = cfg.train_size or n
    if ds.val is None and cfg.val_size and isinstance(cfg.val_size, int) and cfg.val_size >= n:
        raise AWSAAError(f"val_size {cfg.val_size} leaves no training images (of {n}); set val_size to a count "
                         f"below {n} or a fraction such as 0.2")


def data_options(cfg: Any) -> DataOptions:
    """How a config reads its own data (a folder or an .npz file): ``image_size`` and ``data``."""
    return DataOptions(image_size=cfg.image_size, **to_dict(cfg.data))


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Trainer:
    """Trains ``cfg.model`` on ``cfg.dataset`` with ``cfg.aug``; see the module docstring."""

    def __init__(self, cfg: TrainConfig, device: torch.device | str | None = None, data: Dataset | None = None,
                 policy_override: BatchAugment | None = None, rank: int = 0, world_size: int = 1) -> None:
        if policy_override is None:
            check_aug(cfg.aug)
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else default_device()
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        ds = data if data is not None else load_dataset(cfg.dataset, cfg.dataroot, options=data_options(cfg))
        self.info = ds.info
        self.in_memory = isinstance(ds.train, ImageTensors)
        self.train_set, self.val_set = self._split(ds.train, ds.val)
        self.test_set = ds.test
        if cfg.test_size is not None:
            labels = ds.test.labels if isinstance(ds.test, ImageTensors) else torch.tensor(ds.test.targets)
            keep = stratified_subset(labels, min(cfg.test_size, len(labels)), seed=0)
            self.test_set = (ds.test.subset(keep) if isinstance(ds.test, ImageTensors)
                             else torch.utils.data.Subset(ds.test, keep.tolist()))
        if self.in_memory:
            self.train_set = self.train_set.to(self.device)
            self.test_set = self.test_set.to(self.device)
            self.val_set = self.val_set.to(self.device) if self.val_set is not None else None

        kwargs = {"drop_path": cfg.drop_path} if cfg.drop_path else {}
        self.model = models.create(cfg.model, num_classes=ds.info.num_classes, in_channels=ds.info.channels, **kwargs)
        # channels_last: faster convolutions on GPUs, and about 1.3x on this project's CPU too
        self.model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stubs
        # Data-parallel (rank of world_size): every rank draws the same permutation and takes
        # its share of each global batch; DDP averages the gradients.
        self.rank, self.world_size = rank, world_size
        self.forward_model: Callable[..., Tensor] = self.model
        if world_size > 1:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile and self.device.type == "cuda":
            self.forward_model = torch.compile(self.forward_model)
        self.optimizer = torch.optim.SGD(param_groups(self.model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                         momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov)
        self.steps_per_epoch = max(1, len(self.train_set) // cfg.batch_size)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
                    if cfg.ema_decay else None)

        # A policy found by a search carries its data's facts: trained on the same kind of data
        # (same channels), the fill and statistics the policy was searched with are reused.
        searched = policy_data(cfg.aug) if policy_override is None else None
        if searched is not None and searched.get("channels") != ds.info.channels:
            searched = None
        fill = cfg.fill if cfg.fill is not None else int(searched["fill"]) if searched else ds.info.fill
        mean, std = (tuple(searched["mean"]), tuple(searched["std"])) if searched else (ds.info.mean, ds.info.std)
        mean_fill = tuple(round(m * 255) for m in mean)
        self.pipeline = Pipeline.from_config(cfg.aug, fill, cfg.cutout, mean_fill, cfg.crop_padding, cfg.hflip,
                                             cfg.enlarged_batch, cfg.dataset)
        if policy_override is not None:
            self.set_policy(policy_override)
        # ImageFolder data: Fast AutoAugment's policy runs per image in the loader, before the
        # random-resized crop, as FAA does; every other policy runs on the cropped batch.
        self._loader_policy = None
        if not self.in_memory and cfg.aug in FAA_AUGS:
            self._loader_policy = PILPolicy(cfg.aug)
            self.set_policy(None)
        shape = (1, ds.info.channels, 1, 1)
        self.mean = torch.tensor(mean, device=self.device).view(shape) * 255
        self.std = torch.tensor(std, device=self.device).view(shape) * 255
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._loader: torch.utils.data.DataLoader | None = None

    # ------------------------------------------------------------------ data
    def _split(self, train: Any, own_val: Any = None) -> tuple[Any, Any]:
        """(training set, validation set): ``train_size`` of the training images (stratified,
        seed 0), then ``val_size`` of those held out; a dataset's own validation split
        (``own_val``, e.g. a folder's val/) is used as it is instead."""
        cfg = self.cfg
        labels = train.labels if isinstance(train, ImageTensors) else torch.tensor(train.targets)
        index = torch.arange(len(labels))
        if cfg.train_size is not None:
            if cfg.train_size > len(labels):
                raise AWSAAError(f"train_size {cfg.train_size} exceeds the {len(labels)} training images "
                                 f"of {cfg.dataset}")
            index = stratified_subset(labels, cfg.train_size, seed=0)  # the same subset for every seed
        val = None
        if own_val is not None and cfg.val_size:
            return (train.subset(index) if isinstance(train, ImageTensors)
                    else torch.utils.data.Subset(train, index.tolist())), own_val
        if cfg.val_size:
            n_val = cfg.val_size if isinstance(cfg.val_size, int) else max(1, round(cfg.val_size * len(index)))
            if n_val >= len(index):
                raise AWSAAError(f"val_size {cfg.val_size} leaves no training images (of {len(index)}); set val_size "
                                 f"to a count below {len(index)} or a fraction such as 0.2")
            tr, va = stratified_split(labels[index], n_val, seed=0)
            index, val = index[tr], index[va]
        if isinstance(train, ImageTensors):
            return train.subset(index), (train.subset(val) if val is not None else None)
        subset = torch.utils.data.Subset
        return subset(train, index.tolist()), (subset(train, val.tolist()) if val is not None else None)

    def _image_loader(self, dataset: Any, train: bool) -> torch.utils.data.DataLoader:
        size = self.cfg.image_size or 224
        if train:
            steps = [self._loader_policy] if self._loader_policy is not None else []
            tf = v2.Compose([*steps, v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                             v2.PILToTensor()])
        else:
            tf = v2.Compose([v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size),
                             v2.PILToTensor()])
        wrapped = _Transformed(dataset, tf)
        sampler: torch.utils.data.Sampler | None = None
        if train and self.world_size > 1:
            sampler = torch.utils.data.DistributedSampler(wrapped, self.world_size, self.rank, shuffle=True,
                                                          seed=self.cfg.seed, drop_last=True)
        batch = (self.cfg.batch_size // self.world_size) if train else self.cfg.eval_batch_size
        return torch.utils.data.DataLoader(
            wrapped, batch_size=batch, shuffle=train and sampler is None, sampler=sampler,
            drop_last=train, num_workers=self.cfg.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.num_workers > 0, generator=self.generator if train else None)

    def _train_batches(self):
        if self.in_memory:
            n, b = len(self.train_set), self.cfg.batch_size
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            for step in range(self.steps_per_epoch):
                idx = perm[step * b:(step + 1) * b][self.rank::self.world_size]
                yield self.train_set.images[idx], self.train_set.labels[idx], True
        else:
            if self._loader is None:
                self._loader = self._image_loader(self.train_set, train=True)
            if isinstance(self._loader.sampler, torch.utils.data.DistributedSampler):
                self._loader.sampler.set_epoch(self.epoch)
            for x, y in self._loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), False

    def eval_batches(self, dataset: Any):
        """``dataset``'s (images, labels) batches as evaluation reads them: uint8 images, not
        augmented, not normalized (:meth:`normalize`)."""
        if isinstance(dataset, ImageTensors):
            b = self.cfg.eval_batch_size
            for i in range(0, len(dataset), b):
                yield dataset.images[i:i + b], dataset.labels[i:i + b]
        else:
            for x, y in self._image_loader(dataset, train=False):
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def normalize(self, images: Tensor) -> Tensor:
        x = (images.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def input_batches(self, n: int):
        """``n`` training batches as the network sees them (augmented by the pipeline,
        normalized), epoch after epoch as needed, without training: what recomputes a
        supernet path's batch-norm statistics. Draws from the trainer's random streams."""
        done = 0
        while done < n:
            before = done
            for images, labels, needs_crop in self._train_batches():
                images, _, _ = self.pipeline(images, labels, self.generator, crop=needs_crop)
                yield self.normalize(images)
                done += 1
                if done == n:
                    return
            if done == before:  # an epoch of no batches (fewer images than a batch)
                return

    def set_policy(self, policy: BatchAugment | None) -> None:
        """Replace the policy step of the training pipeline (the search's fine-tunes give each
        trajectory its own); ``None``: crop, flip and Cutout only."""
        self.pipeline.policy = policy

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    # ------------------------------------------------------------------ training
    def train_epoch(self, pair_counts: Tensor | None = None,
                    on_batch: Callable[[int], None] | None = None) -> tuple[float, float, float, int]:
        """One epoch; returns (mean loss, accuracy %, seconds, images seen). Adds the pairs drawn
        to ``pair_counts`` (K, K) when given; calls ``on_batch(step)`` after each step."""
        self.model.train()
        cfg = self.cfg
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        start = time.perf_counter()
        for step, (images, labels, needs_crop) in enumerate(self._train_batches()):
            images, labels, pairs = self.pipeline(images, labels, self.generator, crop=needs_crop)
            if pair_counts is not None and pairs is not None:
                _count_pairs(pair_counts, pairs)
            x = self.normalize(images)
            with self._autocast():
                logits = self.forward_model(x)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.optim.label_smoothing)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at epoch {self.epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            loss_sum += loss.detach() * labels.shape[0]
            correct += (logits.argmax(1) == labels).sum()
            seen += labels.shape[0]
            if on_batch is not None:
                on_batch(step)
        seconds = time.perf_counter() - start
        self.epoch += 1
        return loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1), seconds, seen

    @torch.no_grad()
    def evaluate(self, dataset: Any, augment: BatchAugment | None = None, generator: torch.Generator | None = None,
                 pair_counts: Tensor | None = None) -> tuple[float, float]:
        """(top-1 accuracy %, mean loss) of the EMA model when EMA is on, else of the model.
        ``augment`` augments each batch first, its pairs (when it draws AWS pairs) added to
        ``pair_counts`` when given (the density reward)."""
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        loss_sum = torch.zeros((), device=self.device)
        n = 0
        for images, labels in self.eval_batches(dataset):
            if augment is not None:
                images, pairs = augment(images, 1, generator)
                if pair_counts is not None and pairs is not None:
                    _count_pairs(pair_counts, pairs)
            with self._autocast():
                logits = model(self.normalize(images)).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
            n += labels.shape[0]
        return 100.0 * correct.item() / max(n, 1), loss_sum.item() / max(n, 1)

    def run_epoch(self, on_batch: Callable[[int], None] | None = None) -> EpochStats:
        lr = self.optimizer.param_groups[0]["lr"]
        loss, acc, seconds, seen = self.train_epoch(on_batch=on_batch)
        due = self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs
        val_acc = self.evaluate(self.val_set)[0] if self.val_set is not None and due else None
        test_acc, test_loss = self.evaluate(self.test_set) if due else (None, None)
        stats = EpochStats(self.epoch, lr, loss, acc, test_loss, test_acc, val_acc, seconds, seen / seconds)
        self.history.append(stats.as_dict())
        return stats

    def fit(self, on_epoch: Callable[[EpochStats], None] | None = None) -> EpochStats:
        """Train the remaining epochs; returns the final epoch's stats."""
        stats = None
        while self.epoch < self.cfg.epochs:
            stats = self.run_epoch()
            if on_epoch is not None:
                on_epoch(stats)
        if stats is None:
            raise AWSAAError(f"nothing to train: already at epoch {self.epoch} of {self.cfg.epochs}")
        return stats

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "train",
            "model_name": self.cfg.model,
            "config": to_dict(self.cfg),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }

    def save(self, path) -> None:
        save_checkpoint(path, self.state_dict())

    def load(self, path, weights_only: bool = False) -> None:
        """Resume from a checkpoint written by :meth:`save` (or, ``weights_only``, take its weights)."""
        state = load_checkpoint(path, kind="train")
        load_model_state(self.model, state["model"], path, self.cfg.model, state.get("model_name"))
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:
            self.ema.module.load_state_dict(state["model"])
        if weights_only:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, base: Any, transform: Callable) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, y = self.base[i]
        return self.transform(img.convert("RGB") if hasattr(img, "convert") else img), y


