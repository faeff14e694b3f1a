"""The two stages of the AWS search as plain torch, built on :class:`awsaa.train.Trainer`.

Stage 1 (:func:`pretrain`) trains the proxy network under the shared (uniform) policy for
``pretrain.stop_epoch`` epochs of a ``pretrain.epochs`` schedule and keeps the weights and
the optimizer state. Stage 2's unit of work (:class:`FineTuner`) reloads both, fine-tunes
under the current policy at a constant learning rate (by default the one where stage 1
stopped) while drawing a pair per image and counting the pairs, and returns the reward:
the mean of the ``reward_top_k`` best validation top-1 accuracies. With ``reward: density``
it fine-tunes nothing: the reward is the accuracy of the unchanged network on the validation
split augmented by the trajectory's policy (:meth:`FineTuner.density`). Neither stage looks
at the test set.

NAS + AWS (``nas``; docs/design.md, section 3b): stage 1 trains the supernet, one path per
batch (uniform, or after a warm-up drawn from logits learned by gradient: ``nas.method:
gradient``); a trajectory's sampling policy names its architecture, whose path the fine-tune
sets and whose batch-norm statistics it recomputes before training.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from awsaa.arch import OPS, Arch, slots
from awsaa.augment.space import SearchSpace
from awsaa.config import SearchConfig, TrainConfig, config_hash
from awsaa.errors import AWSAAError
from awsaa.models.choice import SuperNet
from awsaa.policy import Policy
from awsaa.train.pipeline import PolicyAugment
from awsaa.train.trainer import Trainer


def stage1_hash(cfg: SearchConfig) -> str:
    return config_hash(cfg.stage1_key())


def train_config(cfg: SearchConfig, stage: str, lr: float | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of stage ``"pretrain"`` or ``"finetune"`` (at learning rate ``lr``)."""
    aug = cfg.stage1_aug() if stage == "pretrain" else "uniform"
    common: dict[str, Any] = {"model": cfg.model, "dataset": cfg.dataset, "aug": aug, "cutout": cfg.cutout,
              "crop_padding": cfg.crop_padding, "hflip": cfg.hflip, "fill": cfg.fill, "train_size": cfg.train_size,
              "val_size": cfg.val_size, "eval_batch_size": cfg.eval_batch_size, "dataroot": cfg.dataroot,
              "image_size": cfg.image_size, "data": cfg.data, "seed": cfg.seed}
    if stage == "pretrain":
        p = cfg.pretrain
        return TrainConfig(epochs=p.epochs, batch_size=p.batch_size, optim=p.optim, ema_decay=p.ema_decay,
                           enlarged_batch=p.enlarged_batch, **common)
    f = cfg.finetune
    optim = dataclasses.replace(cfg.pretrain.optim, lr=lr or 1.0, schedule="constant", warmup_epochs=0.0,
                                warmup_from=None, final_lr=0.0, milestones=[])
    return TrainConfig(epochs=f.epochs, batch_size=f.batch_size, optim=optim, enlarged_batch=f.enlarged_batch,
                       **common)


def pretrain(cfg: SearchConfig, device: Any = None, data: Any = None,
             on_epoch: Callable[[int, int, float, float, float], None] | None = None) -> dict[str, Any]:
    """Stage 1. Returns the shared state: weights (the EMA's when ``ema_decay``), optimizer
    state, the learning rate where the schedule was cut, and the stage-1 config hash. With
    ``nas`` (``model: supernet``), also how often each op was trained (``op_counts``), and with
    ``nas.method: gradient`` the architecture logits learned (:class:`LogitLearner`)."""
    trainer = Trainer(train_config(cfg, "pretrain"), device=device, data=data)
    if isinstance(trainer.model, SuperNet):  # NAS + AWS: one uniformly drawn path per batch
        trainer.model.seed_paths(cfg.seed)
    stop = cfg.pretrain.stop_epoch or cfg.pretrain.epochs
    learner, start, net = None, 0, trainer.model
    if cfg.nas is not None and cfg.nas.method == "gradient" and isinstance(net, SuperNet):
        learner = LogitLearner(trainer, cfg.nas.grad_lr)
        start = round(stop * cfg.nas.warmup_fraction)
    val_acc = float("nan")
    while trainer.epoch < stop:
        on_batch = None
        if learner is not None and isinstance(net, SuperNet) and trainer.epoch >= start:
            net.arch_logits = learner.logits  # after the warm-up, paths come from the logits
            on_batch = learner.step
        loss, _, seconds, _ = trainer.train_epoch(on_batch=on_batch)
        val_acc = trainer.evaluate(trainer.val_set)[0]
        if on_epoch is not None:
            on_epoch(trainer.epoch, stop, loss, val_acc, seconds)
    weights = trainer.ema.module.state_dict() if trainer.ema is not None else trainer.model.state_dict()
    extra: dict[str, Any] = {}
    if isinstance(trainer.model, SuperNet):
        extra["op_counts"] = op_counts(trainer.model)
    if learner is not None:
        extra["arch_logits"] = [g.detach().clone() for g in learner.logits]
        extra["arch_steps"] = learner.steps
    return {**extra,
        "kind": "shared",
        "stage1_hash": stage1_hash(cfg),
        "model_name": cfg.model,
        "model": {k: v.detach().cpu() for k, v in weights.items()},
        "optimizer": trainer.optimizer.state_dict(),
        "epoch": trainer.epoch,
        "lr": float(trainer.optimizer.param_groups[0]["lr"]),
        "val_acc": float(val_acc),
    }


class LogitLearner:
    """Gradient-based NAS + AWS, stage 1: the supernet's architecture logits (one tensor per
    block over its ops), one Adam step (betas 0.5 / 0.999) on a validation batch after each
    training step, DARTS's first-order alternation: the weights learn on training batches
    under the uniform policy, the logits on clean validation batches, through the
    straight-through gates of a Gumbel-max path (:class:`SuperNet`). Only the logits get the
    validation gradient; the validation batches do pass through the path's batch norms in
    training mode (batch statistics, as the weights' steps see them)."""

    def __init__(self, trainer: Trainer, lr: float) -> None:
        self.trainer = trainer
        self.logits = [torch.zeros(len(s.choices), requires_grad=True) for s in slots()]
        self.optimizer = torch.optim.Adam(self.logits, lr=lr, betas=(0.5, 0.999))
        self.steps = 0
        self._batches = iter(())

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trainer
        if t.val_set is None:
            raise AWSAAError("nas.method gradient learns the architecture on the validation split: set val_size")
        for _ in range(2):
            try:
                return next(self._batches)
            except StopIteration:
                self._batches = iter(t.eval_batches(t.val_set))
        raise AWSAAError("the validation split has no images")

    def step(self, _: int = 0) -> None:
        images, labels = self._next_batch()
        t = self.trainer
        net = t.model
        assert isinstance(net, SuperNet)
        net.counting = False  # op_counts count the batches that train weights
        try:
            loss = torch.nn.functional.cross_entropy(net(t.normalize(images)).float(), labels)
        finally:
            net.counting = True
        grads = torch.autograd.grad(loss, self.logits)
        self.optimizer.zero_grad()
        for g, d in zip(self.logits, grads, strict=True):
            g.grad = d
        self.optimizer.step()
        self.steps += 1


def op_counts(model: SuperNet) -> dict[str, list[int]]:
    """How often stage 1 trained each op, per block (``zero``: how often a block was skipped)."""
    counts = model.op_counts.tolist()
    return {op: [row[i] for row in counts] for i, op in enumerate(OPS)}


def trajectory_arch(policy: Policy) -> Arch | None:
    """The architecture a NAS + AWS trajectory fine-tunes: its sampling policy carries it (in
    its ``meta``, ``arch``), so every executor hands it to the worker with the policy."""
    ops = policy.meta.get("arch")
    return Arch(tuple(ops)) if ops is not None else None


@dataclass
class FinetuneResult:
    reward: float
    val_accs: list[float]
    counts: torch.Tensor  # (K, K) pair usage
    seconds: float
    images: int


@dataclass
class TrainedTrajectory:
    """A fine-tune's training without its validation passes (:meth:`FineTuner.train`)."""

    snapshots: list[dict[str, torch.Tensor]]  # the evaluated network's weights after each epoch
    counts: torch.Tensor  # (K, K) pair usage
    seconds: float
    images: int


def finetune_reward(val_accs: list[float], top_k: int) -> float:
    """The fine-tune reward: the mean of the ``top_k`` best validation accuracies."""
    top = sorted(val_accs)[-top_k:]
    return sum(top) / len(top)


class FineTuner:
    """Stage 2's unit of work; build once per worker, :meth:`run` once per trajectory (or
    :meth:`train` once and :meth:`evaluate` once per epoch, where the validation passes are
    spread over the workers)."""

    def __init__(self, cfg: SearchConfig, shared: dict[str, Any], device: Any = None, data: Any = None) -> None:
        if shared.get("stage1_hash") != stage1_hash(cfg):
            raise AWSAAError("the shared weights were made by a different stage-1 config")
        self.cfg = cfg
        self.shared = shared
        self.lr = cfg.finetune.lr if cfg.finetune.lr is not None else float(shared["lr"])
        self.trainer = Trainer(train_config(cfg, "finetune", self.lr), device=device, data=data,
                               policy_override=None)
        fill = cfg.fill if cfg.fill is not None else self.trainer.info.fill
        self.fill = fill

    def _fine_tune(self, policy: Policy, seed: int, pair_seed: int | None,
                   on_batch: Callable[[int], None] | None,
                   after_epoch: Callable[[], None]) -> tuple[torch.Tensor, int, float]:
        """The trainer back at the shared state, seeded, sampling from ``policy``, trained
        ``finetune.epochs`` epochs, ``after_epoch()`` after each; returns the (K, K) pair
        counts, the images trained on and the seconds it took (``after_epoch`` included)."""
        t = self.trainer
        torch.manual_seed(seed)
        t.generator.manual_seed(seed)
        t.model.load_state_dict(self.shared["model"])
        # A deep copy: Optimizer.load_state_dict may keep the given momentum buffers and update
        # them in place, which would carry one trajectory into the next.
        t.optimizer.load_state_dict(copy.deepcopy(self.shared["optimizer"]))
        for group in t.optimizer.param_groups:
            group["lr"] = self.lr
        pairs = torch.Generator().manual_seed(pair_seed) if pair_seed is not None else None
        t.set_policy(PolicyAugment(policy, self.fill, pair_generator=pairs))
        self._set_path(trajectory_arch(policy))
        k = policy.space.num_ops
        counts = torch.zeros(k, k, dtype=torch.long)
        images, start = 0, time.perf_counter()
        for _ in range(self.cfg.finetune.epochs):
            images += t.train_epoch(pair_counts=counts, on_batch=on_batch)[3]
            after_epoch()
        return counts, images, time.perf_counter() - start

    def _set_path(self, arch: Arch | None) -> None:
        """NAS + AWS: the supernet (loaded with the shared weights) runs ``arch`` from now on,
        its batch-norm statistics recomputed over ``nas.bn_batches`` training batches."""
        model = self.trainer.model
        if not isinstance(model, SuperNet):
            if arch is not None:
                raise AWSAAError(f"a trajectory names architecture {arch.describe()}, but the search trains "
                                 f"{self.cfg.model}, not the supernet")
            return
        if arch is None:
            raise AWSAAError("a NAS + AWS trajectory names no architecture")
        model.set_path(arch)
        n = self.cfg.nas.bn_batches if self.cfg.nas is not None else 0
        if n:
            model.recalibrate(arch, self.trainer.input_batches(n))

    def one_shot(self, arch: Arch, seed: int, policy: Policy | None = None) -> float:
        """The one-shot score of ``arch``: the shared weights' path, its batch-norm statistics
        recomputed (under ``policy``, default uniform), evaluated without any fine-tune."""
        t = self.trainer
        torch.manual_seed(seed)
        t.generator.manual_seed(seed)
        t.model.load_state_dict(self.shared["model"])
        t.set_policy(PolicyAugment(policy or Policy.uniform(), self.fill))
        self._set_path(arch)
        return self._score(*t.evaluate(t.val_set))

    def _evaluated(self) -> torch.nn.Module:
        """The network that :meth:`Trainer.evaluate` evaluates (the EMA's when there is one)."""
        t = self.trainer
        return t.ema.module if t.ema is not None else t.model

    def run(self, policy: Policy, seed: int, pair_seed: int | None = None,
            on_batch: Callable[[int], None] | None = None) -> FinetuneResult:
        """One trajectory. ``seed`` seeds data order, crops, flips, Cutout and signs, and the
        pair draws too unless ``pair_seed`` gives them their own generator (common random
        numbers across a loop). ``on_batch(step)`` is called after each training step."""
        if self.cfg.reward == "density":
            return self.density(policy, seed, pair_seed)
        t, accs = self.trainer, []
        counts, images, seconds = self._fine_tune(policy, seed, pair_seed, on_batch,
                                                  lambda: accs.append(self._score(*t.evaluate(t.val_set))))
        return FinetuneResult(finetune_reward(accs, self.cfg.finetune.reward_top_k), accs, counts, seconds, images)

    def train(self, policy: Policy, seed: int, pair_seed: int | None = None,
              on_batch: Callable[[int], None] | None = None) -> TrainedTrajectory:
        """A trajectory's training, as :meth:`run` trains, with the weights after each epoch
        instead of their validation accuracies: :meth:`evaluate` of each gives what
        :meth:`run` would have measured (evaluation changes neither the weights nor the
        random streams)."""
        snapshots: list[dict[str, torch.Tensor]] = []

        def snapshot() -> None:
            net = self._evaluated()  # a supernet's: only its path's weights (all an evaluation reads)
            state = net.path_state_dict() if isinstance(net, SuperNet) else net.state_dict()
            snapshots.append({k: v.detach().to("cpu", copy=True) for k, v in state.items()})

        counts, images, seconds = self._fine_tune(policy, seed, pair_seed, on_batch, snapshot)
        return TrainedTrajectory(snapshots, counts, seconds, images)

    def evaluate(self, weights: dict[str, torch.Tensor]) -> float:
        """The validation score of the network with ``weights`` (one of :meth:`train`'s
        snapshots, from this worker or another): top-1 accuracy (%), or the negative loss."""
        net = self._evaluated()
        if isinstance(net, SuperNet):
            net.load_path_state_dict(weights)
        else:
            net.load_state_dict(weights)
        return self._score(*self.trainer.evaluate(self.trainer.val_set))

    def _score(self, acc: float, loss: float) -> float:
        """An epoch's validation score (``finetune.metric``): the accuracy (%), the paper's, or
        the negative loss, which keeps telling policies apart where the accuracy of a small
        validation split sits at its ceiling."""
        return acc if self.cfg.finetune.metric == "accuracy" else -loss

    def density(self, policy: Policy | None, seed: int, pair_seed: int | None = None) -> FinetuneResult:
        """The density-matching reward of ``policy`` (docs/design.md, section 3): the shared (or
        clean) network, unchanged, evaluated on ``density.draws`` augmented passes over the
        validation split; ``policy=None`` evaluates the clean split once."""
        t, d = self.trainer, self.cfg.density
        t.model.load_state_dict(self.shared["model"])
        k = (policy.space if policy is not None else SearchSpace.default()).num_ops
        counts = torch.zeros(k, k, dtype=torch.long)
        start = time.perf_counter()
        if policy is None:
            acc, loss = t.evaluate(t.val_set)
            scores = [acc if d.metric == "accuracy" else -loss]
        else:
            g = torch.Generator(device=t.device).manual_seed(seed)  # the ops' signs
            pairs = torch.Generator().manual_seed(pair_seed) if pair_seed is not None else None
            augment = PolicyAugment(policy, self.fill, pair_generator=pairs)
            scores = []
            for _ in range(d.draws):
                acc, loss = t.evaluate(t.val_set, augment=augment, generator=g, pair_counts=counts)
                scores.append(acc if d.metric == "accuracy" else -loss)
        images = len(t.val_set) * len(scores)
        return FinetuneResult(sum(scores) / len(scores), scores, counts, time.perf_counter() - start, images)
