"""Typed configs, loaded from YAML and validated with one-line errors that name the key.

A config is a tree of dataclasses. :func:`from_dict` builds one from plain data (YAML,
JSON, command-line overrides): an unknown key, a value of the wrong type or an
impossible value raises :class:`ConfigError` naming the dotted key, e.g.
``config train.yaml: optim.lr must be > 0, got -0.1``.

YAML is read by :func:`parse_yaml`: PyYAML's safe loader (no tags that build objects), with
YAML 1.2's numbers (``5e-4`` is a float, not a string), duplicate keys refused (YAML leaves
them undefined; PyYAML would keep the last) and alias expansion bounded (a "billion laughs"
document is refused, not expanded).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from awsaa.errors import AWSAAError
from awsaa.fileio import read_text

T = TypeVar("T")


class ConfigError(AWSAAError):
    """A config that cannot be used; the message names the key."""


# ----------------------------------------------------------------------------- generic loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, prefix=key + ".")
    elif origin is list:
        if isinstance(value, list):
            return [_convert(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this loader does not know is a programming error
        raise TypeError(f"unsupported config field type {tp!r}")
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys, types and values."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    hints.update(getattr(cls, "_late_types", lambda: {})())
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown key {prefix}{key}{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {prefix}{name}")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"{prefix}{e}") from None
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def config_hash(obj: Any) -> str:
    """A stable hash of a config's content (sha256 of its canonical JSON), 16 hex digits."""
    data = obj if isinstance(obj, dict) else to_dict(obj)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


MAX_YAML_NODES = 100_000  # a config has ~100; far more is an alias bomb or not a config


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 floats and duplicate keys refused."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# PyYAML follows YAML 1.1, where a float needs a dot: "5e-4" would stay a string.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _count_nodes(data: Any, what: str) -> None:
    """Refuse data whose expanded tree (aliases counted at every use) exceeds MAX_YAML_NODES."""
    stack, n = [data], 0
    while stack:
        x = stack.pop()
        n += 1
        if n > MAX_YAML_NODES:
            raise ConfigError(f"{what} expands to more than {MAX_YAML_NODES:,} values (aliases that "
                              f"repeat themselves?); a config is far smaller")
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def parse_yaml(text: str, what: str) -> Any:
    """YAML text as plain data, every failure one line naming ``what`` and where."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{what} is not valid YAML{where}: {' '.join(str(problem).split())[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply to be read") from None
    _count_nodes(data, what)
    return data


def read_yaml(path: str | os.PathLike, max_bytes: int = 2**20) -> Any:
    path = Path(path)
    return parse_yaml(read_text(path, "config file", ConfigError, max_bytes=max_bytes), f"config file {path}")


def load(cls: type[T], path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> T:
    """Load ``cls`` from a YAML file, with dotted-key ``overrides`` applied on top."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        if not all(parents) or not leaf:
            raise ConfigError(f"override {dotted!r} is not a dotted key such as optim.lr")
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {'.'.join(parents[:i + 1])} is a value, not a section")
        node[leaf] = value
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"config {path}: {e}") from None


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


# ----------------------------------------------------------------------------- training


@dataclass
class OptimConfig:
    """SGD with Nesterov momentum; linear warm-up, then cosine to ``final_lr`` or step decay
    (``multistep``: times ``gamma`` at each of ``milestones``, in epochs), stepped per batch."""

    lr: float = 0.1  # peak learning rate, reached at the end of the warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # not applied to BatchNorm parameters and biases
    warmup_epochs: float = 0.0
    warmup_from: float | None = None  # learning rate at step 0 of the warm-up (default lr / 10)
    schedule: str = "cosine"  # cosine | multistep | constant
    final_lr: float = 0.0  # cosine only
    milestones: list[int] = field(default_factory=list)  # multistep only, in epochs
    gamma: float = 0.1  # multistep only
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 = off

    def check(self) -> None:
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _require(self.warmup_from is None or 0 <= self.warmup_from <= self.lr,
                 f"warmup_from must be in [0, lr], got {self.warmup_from}")
        _require(self.schedule in ("cosine", "multistep", "constant"),
                 f"schedule must be cosine, multistep or constant, got {self.schedule!r}")
        _require(0 <= self.final_lr <= self.lr, f"final_lr must be in [0, lr], got {self.final_lr}")
        _require(all(m > 0 for m in self.milestones) and self.milestones == sorted(self.milestones),
                 f"milestones must be increasing positive epochs, got {self.milestones}")
        _require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        _require(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")


@dataclass
class TrainConfig:
    """One training recipe: the network, the data, the augmentation and the optimizer."""

    model: str
    dataset: str
    epochs: int
    batch_size: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    aug: str = "none"  # none | cutout | autoaugment | randaugment | trivialaugment | uniform | fa_* | policy.json
    cutout: int = 16  # Cutout length applied after every aug but 'none'; 0 = off
    crop_padding: int = 4  # random crop with this padding (in-memory datasets); 0 = off
    hflip: bool = True
    fill: int | None = None  # fill of the geometric ops; default: the dataset's (128 CIFAR, 0 F-MNIST)
    train_size: int | None = None  # train on a stratified subset of this size (seeded); null = all
    val_size: int = 0  # hold out a stratified validation split of this size; 0 = none
    test_size: int | None = None  # evaluate on a stratified test subset (smoke tests); null = all
    eval_every: int = 1  # evaluate every N epochs; the last epoch always
    ema_decay: float = 0.0  # EMA of the weights (torch.optim.swa_utils.AveragedModel); 0 = off
    drop_path: float = 0.0  # stochastic depth, where the architecture allows it
    enlarged_batch: int = 1  # Enlarged Batch: augmented copies per image (pairs drawn without replacement)
    image_size: int = 224  # crop size for ImageFolder datasets (ImageNet)
    num_workers: int = 4  # DataLoader workers, ImageFolder datasets only
    eval_batch_size: int = 1024
    compile: bool = False  # torch.compile the model (CUDA)
    dataroot: str | None = None
    seed: int = 0

    def check(self) -> None:
        from awsaa import models
        from awsaa.data import DATASETS
        from awsaa.train.pipeline import check_aug

        _require(self.model in models.list_models(),
                 f"model {self.model!r} is unknown; choose from {', '.join(models.list_models())}")
        _require(self.dataset in DATASETS, f"dataset {self.dataset!r} is unknown; choose from {', '.join(DATASETS)}")
        try:
            check_aug(self.aug)
        except AWSAAError as e:
            raise ConfigError(f"aug: {e}") from None
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.cutout >= 0, f"cutout must be >= 0, got {self.cutout}")
        _require(self.crop_padding >= 0, f"crop_padding must be >= 0, got {self.crop_padding}")
        _require(self.fill is None or 0 <= self.fill <= 255, f"fill must be in [0, 255], got {self.fill}")
        _require(self.train_size is None or self.train_size >= 1, f"train_size must be >= 1, got {self.train_size}")
        _require(self.val_size >= 0, f"val_size must be >= 0, got {self.val_size}")
        _require(self.test_size is None or self.test_size >= 1, f"test_size must be >= 1, got {self.test_size}")
        _require(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        _require(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _require(0 <= self.drop_path < 1, f"drop_path must be in [0, 1), got {self.drop_path}")
        _require(self.enlarged_batch >= 1, f"enlarged_batch must be >= 1, got {self.enlarged_batch}")
        _require(self.image_size >= 8, f"image_size must be >= 8, got {self.image_size}")
        _require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        _require(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        _require(self.optim.warmup_epochs < self.epochs,
                 f"optim.warmup_epochs ({self.optim.warmup_epochs}) must be < epochs ({self.epochs})")
        _require(all(self.optim.warmup_epochs < m < self.epochs for m in self.optim.milestones),
                 f"optim.milestones must lie between the warm-up and epochs ({self.epochs}), "
                 f"got {self.optim.milestones}")


# ----------------------------------------------------------------------------- search


def _pretrain_optim() -> OptimConfig:
    # docs/design.md section 1, stage 1: LR 0.05 -> 0.2 over 1 epoch, cosine to 0.001, wd 1e-4,
    # label smoothing 0.05, grad-norm clip 3.0
    return OptimConfig(lr=0.2, warmup_epochs=1.0, warmup_from=0.05, final_lr=0.001, weight_decay=1e-4,
                       label_smoothing=0.05, grad_clip=3.0)


@dataclass
class PretrainConfig:
    """Stage 1: the proxy network trained under the shared (uniform) policy."""

    epochs: int = 200  # length of the schedule
    stop_epoch: int | None = None  # cut the schedule here ("most of a schedule"); null = at the end
    batch_size: int = 256
    optim: OptimConfig = field(default_factory=_pretrain_optim)
    ema_decay: float = 0.0  # EMA of the shared weights; the fine-tunes start from the average
    enlarged_batch: int = 1

    def check(self) -> None:
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.stop_epoch is None or 1 <= self.stop_epoch <= self.epochs,
                 f"stop_epoch must be in [1, epochs], got {self.stop_epoch}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _require(self.enlarged_batch >= 1, f"enlarged_batch must be >= 1, got {self.enlarged_batch}")
        _require(self.optim.warmup_epochs < self.epochs,
                 f"optim.warmup_epochs ({self.optim.warmup_epochs}) must be < epochs ({self.epochs})")


@dataclass
class FinetuneConfig:
    """Stage 2, one trajectory: fine-tune a copy of the shared weights under the current policy."""

    epochs: int = 10
    lr: float | None = None  # constant; null = the learning rate where stage 1 stopped
    batch_size: int = 256
    reward_top_k: int = 2  # reward = mean of the k best validation top-1 accuracies
    enlarged_batch: int = 1
    # Common random numbers: the trajectories of a loop share the seed of data order, crops,
    # flips, Cutout and signs; only the pair draws differ (each from its own generator).
    common_random_numbers: bool = False

    def check(self) -> None:
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(1 <= self.reward_top_k <= self.epochs,
                 f"reward_top_k must be in [1, epochs ({self.epochs})], got {self.reward_top_k}")
        _require(self.enlarged_batch >= 1, f"enlarged_batch must be >= 1, got {self.enlarged_batch}")


@dataclass
class WorkersConfig:
    """The fine-tune worker actors."""

    count: int | None = None  # null = one per trajectory
    num_gpus: float = 0.0  # per worker; fractions share a GPU (0.5: two workers per GPU)
    num_cpus: float = 1.0  # per worker; the worker's torch threads on CPU

    def check(self) -> None:
        _require(self.count is None or self.count >= 1, f"count must be >= 1, got {self.count}")
        _require(self.num_gpus >= 0, f"num_gpus must be >= 0, got {self.num_gpus}")
        _require(self.num_gpus <= 1 or self.num_gpus == int(self.num_gpus),
                 f"num_gpus above 1 must be a whole number, got {self.num_gpus}")
        _require(self.num_cpus > 0, f"num_cpus must be > 0, got {self.num_cpus}")


def _agent_config():
    from awsaa.search.agents import AgentConfig

    return AgentConfig()


@dataclass
class DensityConfig:
    """The density-matching reward (``reward: density``): Fast AutoAugment's score on AWS's
    weights. A trajectory's reward is the top-1 accuracy (or the negative loss) of a fixed
    network on the validation split augmented by the trajectory's sampling policy, a pair drawn
    per image and counted as a fine-tune counts them. No training, so no training noise: what
    is left is which pairs and signs were drawn, which ``draws`` passes average out."""

    source: str = "shared"  # shared: stage 1's weights | clean: a network trained on crop + flip only
    draws: int = 2  # augmented passes over the validation split per trajectory; the reward is their mean
    metric: str = "accuracy"  # accuracy | neg_loss

    def check(self) -> None:
        _require(self.source in ("shared", "clean"), f"source must be shared or clean, got {self.source!r}")
        _require(self.draws >= 1, f"draws must be >= 1, got {self.draws}")
        _require(self.metric in ("accuracy", "neg_loss"), f"metric must be accuracy or neg_loss, got {self.metric!r}")


@dataclass
class SearchConfig:
    """An AWS search: the proxy network and data, stage 1, stage 2 and the agent."""

    model: str = "wrn28_10"
    dataset: str = "cifar100"
    val_size: int = 10_000  # stratified validation split carved from the training set (seed 0)
    train_size: int | None = None  # search on a stratified subset of the training set; null = all
    fill: int | None = None  # fill of the geometric ops; default: the dataset's
    cutout: int = 16
    crop_padding: int = 4
    hflip: bool = True
    loops: int = 350
    trajectories: int = 8  # M per loop
    agent: str = "ppo"  # ppo | reinforce | es (awsaa.search.agents.AGENTS)
    agent_config: Any = field(default_factory=_agent_config)  # awsaa.search.agents.AgentConfig
    # The search's result (awsaa.search.result): auto = best_loop (the paper's) for ppo and
    # reinforce, average (of the last `result_loops` updates' parameters) for es.
    result: str = "auto"  # auto | best_loop | average | final
    result_loops: int = 5
    # A null control: the agent hears the loop's rewards shuffled across its trajectories, or
    # pure Gaussian noise of SD `control_noise_sd` around the loop's mean (the real rewards
    # are still recorded). A search that moves no further than its null run found nothing.
    control: str = "none"  # none | shuffle | noise
    control_noise_sd: float = 0.5
    # The reward of a trajectory: finetune (the paper's: validation accuracy after fine-tuning
    # the shared weights under its policy) or density (no training: DensityConfig).
    reward: str = "finetune"  # finetune | density
    density: DensityConfig = field(default_factory=DensityConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    eval_batch_size: int = 1024
    dataroot: str | None = None
    seed: int = 0

    def check(self) -> None:
        from awsaa import models
        from awsaa.data import DATASETS

        _require(self.model in models.list_models(),
                 f"model {self.model!r} is unknown; choose from {', '.join(models.list_models())}")
        _require(self.dataset in DATASETS, f"dataset {self.dataset!r} is unknown; choose from {', '.join(DATASETS)}")
        _require(self.val_size >= 1, f"val_size must be >= 1 (the reward is a validation accuracy), "
                                     f"got {self.val_size}")
        _require(self.train_size is None or self.train_size > self.val_size,
                 f"train_size ({self.train_size}) must exceed val_size ({self.val_size})")
        _require(self.fill is None or 0 <= self.fill <= 255, f"fill must be in [0, 255], got {self.fill}")
        _require(self.cutout >= 0, f"cutout must be >= 0, got {self.cutout}")
        _require(self.loops >= 1, f"loops must be >= 1, got {self.loops}")
        _require(self.trajectories >= 1, f"trajectories must be >= 1, got {self.trajectories}")
        from awsaa.search.agents import AGENTS
        from awsaa.search.result import RULES

        _require(self.agent in AGENTS, f"agent must be one of {', '.join(AGENTS)}, got {self.agent!r}")
        _require(self.agent != "es" or self.trajectories % 2 == 0,
                 f"the es agent needs an even number of trajectories (antithetic pairs), got {self.trajectories}")
        _require(self.result in RULES, f"result must be one of {', '.join(RULES)}, got {self.result!r}")
        _require(self.result_loops >= 1, f"result_loops must be >= 1, got {self.result_loops}")
        _require(self.control in ("none", "shuffle", "noise"),
                 f"control must be none, shuffle or noise, got {self.control!r}")
        _require(self.control_noise_sd > 0, f"control_noise_sd must be > 0, got {self.control_noise_sd}")
        _require(self.reward in ("finetune", "density"), f"reward must be finetune or density, got {self.reward!r}")
        _require(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        p = self.pretrain
        at_end = p.stop_epoch is None or p.stop_epoch == p.epochs
        _require(self.finetune.lr is not None or not (at_end and p.optim.schedule == "cosine"
                                                      and p.optim.final_lr == 0),
                 "stage 1 runs to the end of a cosine schedule with final_lr 0, so every fine-tune would run "
                 "at learning rate 0 (every reward the same): set pretrain.stop_epoch before pretrain.epochs, "
                 "pretrain.optim.final_lr > 0, or finetune.lr")

    @staticmethod
    def _late_types() -> dict[str, Any]:
        from awsaa.search.agents import AgentConfig  # imported late: the agents import this module's users

        return {"agent_config": AgentConfig}

    def stage1_aug(self) -> str:
        """Stage 1's augmentation: the uniform policy (AWS), or crop + flip only for the density
        reward's clean network (Fast AutoAugment's setting)."""
        return "none" if self.reward == "density" and self.density.source == "clean" else "uniform"

    def stage1_key(self) -> dict[str, Any]:
        """What determines the shared weights (the hash of this names a stage-1 checkpoint)."""
        d = to_dict(self)
        keep = ("model", "dataset", "val_size", "train_size", "fill", "cutout", "crop_padding", "hflip",
                "pretrain", "seed")
        key = {k: d[k] for k in keep}
        if self.stage1_aug() != "uniform":  # the uniform policy's key stays as it was (cached files)
            key["aug"] = self.stage1_aug()
        return key
