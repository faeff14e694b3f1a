"""Typed configs, loaded from YAML and validated by pydantic, with one-line errors naming the key.

A config is a tree of pydantic dataclasses (``extra="forbid"``, strict scalar types: ``2.5``
is not an integer, ``"yes"`` is not a boolean, an integer is a number). Field constraints
(``Field(ge=1)``) and ``Literal`` choices say what each value may be; ``__post_init__`` holds
what relates two values and the names checked against the package's registries (models,
datasets, augmentations). :func:`from_dict` builds a config from plain data (YAML, JSON,
command-line overrides) and turns pydantic's first error into one line naming the dotted key
(``config train.yaml: optim.lr must be > 0, got -0.1``; an unknown key with a did-you-mean
hint). ``dataclasses.replace`` validates the new values too. :func:`json_schema` gives the
JSON schema editors validate a config file with (``configs/schema/``).

YAML is read by :func:`parse_yaml`: PyYAML's safe loader (no tags that build objects), with
YAML 1.2's numbers (``5e-4`` is a float, not a string), duplicate keys refused (YAML leaves
them undefined; PyYAML would keep the last) and alias expansion bounded (a "billion laughs"
document is refused, not expanded).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import re
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import annotated_types
import yaml
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from awsaa import models  # the model and dataset registries (named in the config contract)
from awsaa.data import DATASETS, fingerprint, is_handed_in, is_own
from awsaa.errors import AWSAAError
from awsaa.fileio import read_text

T = TypeVar("T")


class ConfigError(AWSAAError, ValueError):
    """A config that cannot be used; the message names the key. (A ValueError too: raised in a
    config's ``__post_init__``, pydantic reports it with the section's path.)"""


# ----------------------------------------------------------------------------- the types

# Strict scalars: YAML's ``2.5`` is not an integer, ``"yes"`` is not a boolean, ``"0.1"`` and
# ``true`` are not numbers; an integer is a number (``lr: 1``: pydantic's strict float takes it).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Positive = Annotated[Int, Field(ge=1)]
# Seeds: run seeds are mixed with loop and trajectory numbers (seed * 1_000_003 + ...) into
# torch generator seeds, which end at 2**64; below 2**32 (numpy's range) every mix fits.
SEED_END = 2**32
Seed = Annotated[Int, Field(ge=0, lt=SEED_END)]
# Ray schedules resources in steps of 0.0001: a smaller positive amount is no amount.
RESOURCE_STEP = 0.0001
NonNegative = Annotated[Int, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # in [0, 1)
FillValue = Annotated[Int, Field(ge=0, le=255)]

# Every config section: a pydantic dataclass that refuses unknown keys.
# Every number finite: YAML's .inf and .nan are refused like any impossible value.
SECTION = ConfigDict(extra="forbid", validate_default=False, allow_inf_nan=False)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


# ----------------------------------------------------------------------------- generic loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is Literal:
        return _choices(typing.get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _choices(values: tuple[Any, ...]) -> str:
    names = [str(v) for v in values]
    return " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)


def _field_at(cls: Any, loc: list[str]) -> tuple[Any, Any]:
    """(the dataclass that holds the field at ``loc``, that field's pydantic FieldInfo or None)."""
    owner, info = cls, None
    for part in loc:
        fields = getattr(owner, "__pydantic_fields__", None)
        if fields is None or part not in fields:
            return owner, info
        info = fields[part]
        inner = _unwrap(info.annotation)
        if dataclasses.is_dataclass(inner):
            owner = inner
    return owner, info


def _unwrap(tp: Any) -> Any:
    """The dataclass inside ``X | None`` / ``Annotated[X, ...]``, else ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(_unwrap(arg)):
                return _unwrap(arg)
    return tp


def _bounds(tp: Any, info: Any) -> dict[str, Any]:
    """Every numeric bound on a field (``ge``, ``gt``, ``le``, ``lt``), wherever it is declared."""
    out: dict[str, Any] = {}
    metadata = list(info.metadata) if info is not None else []
    stack = [tp]
    while stack:
        t = stack.pop()
        if typing.get_origin(t) is Annotated:
            stack.append(typing.get_args(t)[0])
            metadata += list(typing.get_args(t)[1:])
        elif typing.get_origin(t) in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(t))
    for m in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, name.capitalize())):
                out[name] = getattr(m, name)
        for sub in getattr(m, "metadata", []):  # a FieldInfo inside Annotated
            for name in ("ge", "gt", "le", "lt"):
                if isinstance(sub, getattr(annotated_types, name.capitalize())):
                    out[name] = getattr(sub, name)
    return out


def _range(b: dict[str, Any]) -> str:
    lo = f"[{b['ge']}" if "ge" in b else f"({b['gt']}" if "gt" in b else None
    hi = f"{b['le']}]" if "le" in b else f"{b['lt']})" if "lt" in b else None
    if lo and hi:
        return f"in {lo}, {hi}"
    if lo:
        return f">= {b['ge']}" if "ge" in b else f"> {b['gt']}"
    return f"<= {b['le']}" if "le" in b else f"< {b['lt']}"


def _explain(cls: Any, err: Any) -> str:
    """One line for pydantic's error ``err`` on config class ``cls``."""
    loc = [str(x) for x in err["loc"]]
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
        return ".".join([*loc, ""]) + str(ctx["error"])
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        owner, _ = _field_at(cls, loc[:-1])
        known = list(getattr(owner, "__pydantic_fields__", {}))
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {'.'.join([*loc[:-1], close[0]])}?)" if close else ""
        return f"unknown key {'.'.join(loc)}{hint}"
    if kind in ("missing", "missing_argument"):
        return f"missing required key {'.'.join(loc)}"
    index = ""
    while loc and loc[-1].isdigit():  # an item of a list: the list's field, the item's type
        index = f"[{loc.pop()}]" + index
    key = ".".join(loc) + index or "the config"
    owner, info = _field_at(cls, loc)
    tp = info.annotation if info is not None else cls
    if index:
        tp = typing.get_args(_unwrap(tp))[0]
        info = None
    if kind in ("dataclass_type", "dataclass_exact_type", "dict_type", "model_type"):
        return f"{key} must be a mapping, got {type(value).__name__}"
    if kind == "finite_number":
        return f"{key} must be a finite number, got {value}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{key} must be {_range(_bounds(tp, info))}, got {value}"
    if kind == "literal_error":
        return f"{key} must be {_type_name(tp)}, got {value!r}"
    if kind == "too_short" or kind == "too_long":
        return f"{key} must hold {ctx.get('min_length', ctx.get('max_length'))} values, got {value!r}"
    return f"{key} must be {_type_name(tp)}, got {value!r}"


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build config ``cls`` from plain data, checking keys, types and values (pydantic); the
    first problem is one :class:`ConfigError` line naming the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as e:
        raise ConfigError(prefix + _explain(cls, e.errors(include_url=False)[0])) from None


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(cls: Any) -> TypeAdapter:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def json_schema(cls: Any) -> dict[str, Any]:
    """The JSON schema of config ``cls`` (editors validate YAML against it)."""
    return _adapter(cls).json_schema(mode="validation")


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


# PyYAML follows YAML 1.1, where yes/no/on/off/y/n are booleans: "hflip: no" would pass for
# false and a run name "on" become True. As in YAML 1.2 only true/false are (in any case).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
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


# ----------------------------------------------------------------------------- training


@dataclass(config=SECTION)
class OptimConfig:
    """SGD with Nesterov momentum; linear warm-up, then cosine to ``final_lr`` or step decay
    (``multistep``: times ``gamma`` at each of ``milestones``, in epochs), stepped per batch."""

    lr: Annotated[Float, Field(gt=0, le=100)] = 0.1  # peak learning rate, reached at the end of the warm-up
    momentum: Fraction = 0.9
    nesterov: Bool = True
    weight_decay: Annotated[Float, Field(ge=0, le=1)] = 5e-4  # not applied to BatchNorm parameters and biases
    warmup_epochs: Annotated[Float, Field(ge=0, le=1e6)] = 0.0
    warmup_from: Annotated[Float, Field(ge=0)] | None = None  # learning rate at step 0 of the warm-up (default lr / 10)
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    final_lr: Annotated[Float, Field(ge=0)] = 0.0  # cosine only
    milestones: list[Positive] = field(default_factory=list)  # multistep only, in epochs
    gamma: Annotated[Float, Field(gt=0, le=1)] = 0.1  # multistep only
    label_smoothing: Fraction = 0.0
    grad_clip: Annotated[Float, Field(ge=0, le=1e6)] = 0.0  # max global grad norm; 0 = off

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

    channels: Literal[1, 3] | None = None  # null: 1 when every image is grey, else 3
    test_fraction: Annotated[Float, Field(gt=0, lt=1)] = 0.2  # held out of train when there is no test split
    skip_bad_images: Bool = False  # skip (and count) images Pillow cannot read instead of stopping
    max_memory_mb: Annotated[Int, Field(ge=1, le=2**30)] = 4096  # the decoded dataset (uint8) must fit in this


# A validation split: a number of images, or a fraction of the training set in (0, 1).
ValSize = NonNegative | Annotated[Float, Field(gt=0, lt=1)]


@dataclass(config=SECTION)
class TrainConfig:
    """One training recipe: the network, the data, the augmentation and the optimizer."""

    model: Str
    dataset: Str
    epochs: Positive
    batch_size: Positive
    optim: OptimConfig = field(default_factory=OptimConfig)
    aug: Str = "none"  # none | cutout | autoaugment | randaugment | trivialaugment | uniform | fa_* | policy.json
    cutout: NonNegative = 16  # Cutout length applied after every aug but 'none'; 0 = off
    crop_padding: NonNegative = 4  # random crop with this padding (in-memory datasets); 0 = off
    hflip: Bool = True
    fill: FillValue | None = None  # fill of the geometric ops; default: the dataset's (128 CIFAR, 0 F-MNIST)
    train_size: Positive | None = None  # train on a stratified subset of this size (seeded); null = all
    val_size: ValSize = 0  # hold out a stratified validation split: a count, or a fraction in (0, 1); 0 = none
    test_size: Positive | None = None  # evaluate on a stratified test subset (smoke tests); null = all
    eval_every: Positive = 1  # evaluate every N epochs; the last epoch always
    # awsaa-train: a checkpoint every N epochs and after the last (a crash resumes from the last
    # one); more than 1 where epochs take a fraction of a second and Tune's checkpoint does not
    checkpoint_every: Positive = 1
    ema_decay: Fraction = 0.0  # EMA of the weights (torch.optim.swa_utils.AveragedModel); 0 = off
    drop_path: Fraction = 0.0  # stochastic depth, where the architecture allows it
    enlarged_batch: Positive = 1  # Enlarged Batch: augmented copies per image (pairs drawn without replacement)
    # own data: resize every image to this square size (null: the images' own, which must all
    # agree); ImageNet: the crop size (null: 224)
    image_size: Annotated[Int, Field(ge=8, le=4096)] | None = None
    data: DataConfig = field(default_factory=DataConfig)
    num_workers: NonNegative = 4  # DataLoader workers, ImageFolder datasets only
    eval_batch_size: Positive = 1024
    compile: Bool = False  # torch.compile the model (CUDA)
    dataroot: Str | None = None
    seed: Seed = 0

    def __post_init__(self) -> None:
        _check_names(self.model, self.dataset)
        # The augmentation registry, imported here: awsaa.train's package imports the trainer,
        # which imports this module (the config contract in pyproject.toml names this import).
        from awsaa.train.pipeline import check_aug

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
    names = models.list_models()
    _require(model in names, f"model {model!r} is unknown; choose from {', '.join(names)}")
    _require(dataset in DATASETS or is_own(dataset) or is_handed_in(dataset),
             f"dataset {dataset!r} is unknown; choose from {', '.join(DATASETS)}, or give the path of a "
             f"folder (with train/<class>/ images) or of an .npz file, or python:NAME for data handed in "
             f"from Python")


# ----------------------------------------------------------------------------- search


def _pretrain_optim() -> OptimConfig:
    # docs/design.md section 1, stage 1: LR 0.05 -> 0.2 over 1 epoch, cosine to 0.001, wd 1e-4,
    # label smoothing 0.05, grad-norm clip 3.0
    return OptimConfig(lr=0.2, warmup_epochs=1.0, warmup_from=0.05, final_lr=0.001, weight_decay=1e-4,
                       label_smoothing=0.05, grad_clip=3.0)


@dataclass(config=SECTION)
class PretrainConfig:
    """Stage 1: the proxy network trained under the shared (uniform) policy."""

    epochs: Positive = 200  # length of the schedule
    stop_epoch: Positive | None = None  # cut the schedule here ("most of a schedule"); null = at the end
    batch_size: Positive = 256
    optim: OptimConfig = field(default_factory=_pretrain_optim)
    ema_decay: Fraction = 0.0  # EMA of the shared weights; the fine-tunes start from the average
    enlarged_batch: Positive = 1

    def __post_init__(self) -> None:
        _require(self.stop_epoch is None or self.stop_epoch <= self.epochs,
                 f"stop_epoch must be in [1, epochs], got {self.stop_epoch}")
        _require(self.optim.warmup_epochs < self.epochs,
                 f"optim.warmup_epochs ({self.optim.warmup_epochs}) must be < epochs ({self.epochs})")


@dataclass(config=SECTION)
class FinetuneConfig:
    """Stage 2, one trajectory: fine-tune a copy of the shared weights under the current policy."""

    epochs: Positive = 10
    lr: Annotated[Float, Field(gt=0, le=100)] | None = None  # constant; null = the learning rate where stage 1 stopped
    batch_size: Positive = 256
    reward_top_k: Positive = 2  # reward = mean of the k best validation scores of the epochs
    # an epoch's validation score: top-1 accuracy (%, the paper's) or the negative loss (for a
    # validation split so small, or so easy, that its accuracy sits at the ceiling)
    metric: Literal["accuracy", "neg_loss"] = "accuracy"
    enlarged_batch: Positive = 1
    # Common random numbers: the trajectories of a loop share the seed of data order, crops,
    # flips, Cutout and signs; only the pair draws differ (each from its own generator).
    common_random_numbers: Bool = False

    def __post_init__(self) -> None:
        _require(self.reward_top_k <= self.epochs,
                 f"reward_top_k must be in [1, epochs ({self.epochs})], got {self.reward_top_k}")


@dataclass(config=SECTION)
class WorkersConfig:
    """The fine-tune worker actors."""

    count: Positive | None = None  # null = one per trajectory
    num_gpus: Annotated[Float, Field(ge=0, le=1024)] = 0.0  # per worker; 0.5: two workers per GPU
    num_cpus: Annotated[Float, Field(ge=RESOURCE_STEP, le=1024)] = 1.0  # per worker; the worker's torch threads on CPU
    # trajectories a worker runs per call; null = 1 with the fine-tune reward, and with the
    # density reward a loop's trajectories split evenly across the workers (one call each)
    per_call: Positive | None = None
    # fine-tune reward: a fine-tune's validation passes are calls of their own that any free
    # worker takes, so a loop waits for its slowest worker by one pass, not one trajectory
    # (the weights go through Ray's object store); false: a worker validates its own
    spread_eval: Bool = True

    def __post_init__(self) -> None:
        _require(self.num_gpus == 0 or self.num_gpus >= RESOURCE_STEP,
                 f"num_gpus must be 0 or at least {RESOURCE_STEP} (Ray's step), got {self.num_gpus}")
        _require(self.num_gpus <= 1 or self.num_gpus == int(self.num_gpus),
                 f"num_gpus above 1 must be a whole number, got {self.num_gpus}")


# The result rules the config accepts (awsaa.search.result is built from these). The agent's
# name is checked against the registry of agents where one is built (awsaa.search.check_agent:
# the tools check it on load; a registered agent of a user's own lives in the driver only).
ResultRule = Literal["auto", "best_loop", "average", "final"]
RESULT_RULES: tuple[str, ...] = typing.get_args(ResultRule)


@dataclass(config=SECTION)
class AgentConfig:
    """Every knob of the agents, with the paper's / official release's defaults."""

    normalization: Literal["sigmoid", "softmax"] = "sigmoid"
    # Every step size is bounded: an update that still goes non-finite is refused (the agent
    # keeps its last state), but a value this far out could only ever produce such updates.
    lr: Annotated[Float, Field(gt=0, le=10)] = 0.1  # Adam learning rate after the warm-up
    warmup_lr: Annotated[Float, Field(gt=0, le=10)] = 0.0125  # at the first loop
    warmup_loops: NonNegative = 10
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = field(default_factory=lambda: [0.5, 0.999])
    baseline_momentum: Fraction = 0.9
    advantage_scale: Annotated[Float, Field(gt=0, le=100)] = 0.5
    clip: Annotated[Float, Field(gt=0, lt=1)] = 0.2  # PPO only
    max_inner_steps: Positive = 5  # PPO only
    kl_stop: Annotated[Float, Field(gt=0, le=10)] = 0.002  # PPO only
    entropy_bonus: Annotated[Float, Field(ge=0, le=100)] = 0.0
    # ES only (see ESAgent)
    sigma: Annotated[Float, Field(gt=0, le=20)] = 2.0  # SD of the logit perturbations
    es_lr: Annotated[Float, Field(gt=0, le=10)] = 0.2  # step size on the normalized gradient estimate
    tie: Bool = True  # one logit vector for both ops of a pair (K numbers) instead of K + K*K
    scale_momentum: Fraction = 0.9  # running RMS of the antithetic reward differences


@dataclass(config=SECTION)
class DensityConfig:
    """The density-matching reward (``reward: density``): Fast AutoAugment's score on AWS's
    weights. A trajectory's reward is the top-1 accuracy (or the negative loss) of a fixed
    network on the validation split augmented by the trajectory's sampling policy, a pair drawn
    per image and counted as a fine-tune counts them. No training, so no training noise: what
    is left is which pairs and signs were drawn, which ``draws`` passes average out."""

    source: Literal["shared", "clean"] = "shared"  # shared: stage 1's weights | clean: crop + flip only
    draws: Positive = 2  # augmented passes over the validation split per trajectory; the reward is their mean
    metric: Literal["accuracy", "neg_loss"] = "accuracy"


@dataclass(config=SECTION)
class SearchConfig:
    """An AWS search: the proxy network and data, stage 1, stage 2 and the agent."""

    model: Str = "wrn28_10"
    dataset: Str = "cifar100"
    # stratified validation split carved from the training set (seed 0): a count, or a fraction
    # in (0, 1); own data with a val/ split of its own uses that instead. The reward is a
    # validation accuracy.
    val_size: Annotated[Int, Field(ge=1)] | Annotated[Float, Field(gt=0, lt=1)] = 10_000
    train_size: Positive | None = None  # search on a stratified subset of the training set; null = all
    fill: FillValue | None = None  # fill of the geometric ops; default: the dataset's
    cutout: NonNegative = 16
    crop_padding: NonNegative = 4
    hflip: Bool = True
    image_size: Annotated[Int, Field(ge=8, le=4096)] | None = None  # own data: resize to this square size
    data: DataConfig = field(default_factory=DataConfig)  # own data: how it is read
    loops: Positive = 350
    trajectories: Positive = 8  # M per loop
    agent: Str = "ppo"  # ppo | reinforce | es, or one registered with awsaa.search.register_agent
    agent_config: AgentConfig = field(default_factory=AgentConfig)
    # The search's result (awsaa.search.result): auto = best_loop (the paper's) for ppo and
    # reinforce, average (of the last `result_loops` updates' parameters) for es.
    result: ResultRule = "auto"
    result_loops: Positive = 5
    # A null control: the agent hears the loop's rewards shuffled across its trajectories, or
    # pure Gaussian noise of SD `control_noise_sd` around the loop's mean (the real rewards
    # are still recorded). A search that moves no further than its null run found nothing.
    control: Literal["none", "shuffle", "noise"] = "none"
    control_noise_sd: Annotated[Float, Field(gt=0, le=100)] = 0.5  # in reward units (points of accuracy)
    # The reward of a trajectory: finetune (the paper's: validation accuracy after fine-tuning
    # the shared weights under its policy) or density (no training: DensityConfig).
    reward: Literal["finetune", "density"] = "finetune"
    density: DensityConfig = field(default_factory=DensityConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    eval_batch_size: Positive = 1024
    dataroot: Str | None = None
    seed: Seed = 0

    def __post_init__(self) -> None:
        _check_names(self.model, self.dataset)
        _require(self.train_size is None or isinstance(self.val_size, float) or self.train_size > self.val_size,
                 f"train_size ({self.train_size}) must exceed val_size ({self.val_size})")
        _require(self.reward != "finetune" or not self.workers.spread_eval or (self.workers.per_call or 1) == 1,
                 f"workers.per_call {self.workers.per_call} runs several fine-tunes per call, but "
                 "workers.spread_eval makes each its own calls: set workers.spread_eval: false for per_call")
        _require(self.agent != "es" or self.trajectories % 2 == 0,
                 f"the es agent needs an even number of trajectories (antithetic pairs), got {self.trajectories}")
        p = self.pretrain
        at_end = p.stop_epoch is None or p.stop_epoch == p.epochs
        _require(self.finetune.lr is not None or not (at_end and p.optim.schedule == "cosine"
                                                      and p.optim.final_lr == 0),
                 "stage 1 runs to the end of a cosine schedule with final_lr 0, so every fine-tune would run "
                 "at learning rate 0 (every reward the same): set pretrain.stop_epoch before pretrain.epochs, "
                 "pretrain.optim.final_lr > 0, or finetune.lr")

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
        if is_own(self.dataset):  # what is read, and what was there to read (editing the data retrains)
            key.update(image_size=self.image_size, data=d["data"], data_fingerprint=fingerprint(self.dataset))
        if self.stage1_aug() != "uniform":  # the uniform policy's key stays as it was (cached files)
            key["aug"] = self.stage1_aug()
        return key
