"""The search config (``awsaa-search``): :class:`SearchConfig`, its stages, workers, agent and reward."""

from __future__ import annotations

import typing
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from awsaa.arch import min_block_params
from awsaa.config.errors import _require, to_dict
from awsaa.config.fields import (
    RESOURCE_STEP,
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
)
from awsaa.config.train import DataConfig, OptimConfig, _check_names
from awsaa.data import fingerprint, is_own


def _pretrain_optim() -> OptimConfig:
    # docs/design.md section 1, stage 1: LR 0.05 -> 0.2 over 1 epoch, cosine to 0.001, wd 1e-4,
    # label smoothing 0.05, grad-norm clip 3.0
    return OptimConfig(lr=0.2, warmup_epochs=1.0, warmup_from=0.05, final_lr=0.001, weight_decay=1e-4,
                       label_smoothing=0.05, grad_clip=3.0)


@dataclass(config=SECTION)
class PretrainConfig:
    """Stage 1: the proxy network trained under the shared (uniform) policy."""

    epochs: Annotated[Positive, Field(description="Length of stage 1's schedule, in epochs.")] = 200
    stop_epoch: Annotated[Positive | None, Field(
        description="Cut the schedule at this epoch (\"most of a schedule\"); null = at the end.")] = None
    batch_size: Annotated[Positive, Field(
        description="Stage 1's training batch size, in images drawn from the data.")] = 256
    optim: Annotated[OptimConfig, Field(
        description="Stage 1's optimizer and learning-rate schedule.")] = field(default_factory=_pretrain_optim)
    ema_decay: Annotated[Fraction, Field(
        description="Decay of an EMA of the shared weights, which the fine-tunes then start from; 0 = off.")] = 0.0
    enlarged_batch: Annotated[Positive, Field(
        description="Enlarged Batch in stage 1: augmented copies per image; 1 = off.")] = 1

    def __post_init__(self) -> None:
        _require(self.stop_epoch is None or self.stop_epoch <= self.epochs,
                 f"stop_epoch must be in [1, epochs], got {self.stop_epoch}")
        _require(self.optim.warmup_epochs < self.epochs,
                 f"optim.warmup_epochs ({self.optim.warmup_epochs}) must be < epochs ({self.epochs})")


@dataclass(config=SECTION)
class FinetuneConfig:
    """Stage 2, one trajectory: fine-tune a copy of the shared weights under the current policy."""

    epochs: Annotated[Positive, Field(description="Length of one fine-tune, in epochs.")] = 10
    lr: Annotated[Annotated[Float, Field(gt=0, le=100)] | None, Field(
        description="The fine-tunes' constant learning rate; null = the learning rate where stage 1 stopped.")] = None
    batch_size: Annotated[Positive, Field(description="A fine-tune's batch size, in images drawn from the data.")] = 256
    reward_top_k: Annotated[Positive, Field(
        description="The reward is the mean of the k best validation scores of the fine-tune's epochs.")] = 2
    metric: Annotated[Literal["accuracy", "neg_loss"], Field(
        description="An epoch's validation score: top-1 accuracy (%, the paper's) or the negative loss (for a "
                    "validation split so small, or so easy, that its accuracy sits at the ceiling).")] = "accuracy"
    enlarged_batch: Annotated[Positive, Field(
        description="Enlarged Batch in the fine-tunes: augmented copies per image; 1 = off.")] = 1
    common_random_numbers: Annotated[Bool, Field(
        description="Common random numbers: the trajectories of a loop share the seed of data order, crops, flips, "
                    "Cutout and signs; only the pair draws differ (each from its own generator).")] = False

    def __post_init__(self) -> None:
        _require(self.reward_top_k <= self.epochs,
                 f"reward_top_k must be in [1, epochs ({self.epochs})], got {self.reward_top_k}")


@dataclass(config=SECTION)
class WorkersConfig:
    """The fine-tune worker actors."""

    count: Annotated[Positive | None, Field(description="Number of worker actors; null = one per trajectory.")] = None
    num_gpus: Annotated[Float, Field(
        ge=0, le=1024, description="GPUs per worker (0.5: two workers per GPU; above 1, a whole number); "
                                   "0 = CPU only.")] = 0.0
    num_cpus: Annotated[Float, Field(
        ge=RESOURCE_STEP, le=1024, description="CPUs per worker; on CPU, the worker's torch threads.")] = 1.0
    per_call: Annotated[Positive | None, Field(
        description="Trajectories a worker runs per call; null = 1 with the fine-tune reward, and with the density "
                    "reward a loop's trajectories split evenly across the workers (one call each).")] = None
    spread_eval: Annotated[Bool, Field(
        description="Fine-tune reward: a fine-tune's validation passes are calls of their own that any free worker "
                    "takes, so a loop waits for its slowest worker by one pass, not one trajectory (the weights go "
                    "through Ray's object store); false: a worker validates its own.")] = True

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

    normalization: Annotated[Literal["sigmoid", "softmax"], Field(
        description="How the controller's logits become op probabilities: sigmoid (the official release's) or "
                    "softmax.")] = "sigmoid"
    # Every step size is bounded: an update that still goes non-finite is refused (the agent
    # keeps its last state), but a value this far out could only ever produce such updates.
    lr: Annotated[Float, Field(gt=0, le=10, description="Adam learning rate after the warm-up.")] = 0.1
    warmup_lr: Annotated[Float, Field(
        gt=0, le=10, description="Adam learning rate at the first loop, rising linearly to lr.")] = 0.0125
    warmup_loops: Annotated[NonNegative, Field(description="Loops of the learning-rate warm-up; 0 or 1 = none.")] = 10
    betas: Annotated[list[Fraction], Field(
        min_length=2, max_length=2, description="Adam's (beta1, beta2).")] = field(default_factory=lambda: [0.5, 0.999])
    baseline_momentum: Annotated[Fraction, Field(
        description="Momentum of the reward baseline, a moving average of the loops' mean rewards.")] = 0.9
    advantage_scale: Annotated[Float, Field(
        gt=0, le=100, description="Factor on the advantage (reward minus the baseline).")] = 0.5
    clip: Annotated[Float, Field(
        gt=0, lt=1, description="PPO only: the clipping range (epsilon) of the probability ratio.")] = 0.2
    max_inner_steps: Annotated[Positive, Field(description="PPO only: the most gradient steps per loop.")] = 5
    kl_stop: Annotated[Float, Field(
        gt=0, le=10, description="PPO only: a loop's updates stop once the KL divergence from the loop's policy "
                                 "exceeds this.")] = 0.002
    entropy_bonus: Annotated[Float, Field(
        ge=0, le=100, description="Weight of the policy's entropy added to the objective; 0 = off.")] = 0.0
    # ES only (see ESAgent)
    sigma: Annotated[Float, Field(gt=0, le=20, description="ES only: SD of the logit perturbations.")] = 2.0
    es_lr: Annotated[Float, Field(
        gt=0, le=10, description="ES only: step size on the normalized gradient estimate.")] = 0.2
    tie: Annotated[Bool, Field(
        description="ES only: one logit vector for both ops of a pair (K numbers) instead of K + K*K.")] = True
    scale_momentum: Annotated[Fraction, Field(
        description="ES only: momentum of the running RMS of the antithetic reward differences.")] = 0.9


@dataclass(config=SECTION)
class NasConfig:
    """NAS + AWS: the network searched with its augmentation (docs/design.md, section 3b). Stage 1
    trains the supernet (``model: supernet``) under the uniform policy with one path per batch,
    drawn uniformly (``method: sample``, ProxylessNAS + AWS) or, after a warm-up, from logits it
    learns by gradient (``method: gradient``); each loop is a grid of ``archs`` architectures x
    ``trajectories / archs`` sampling policies, every cell a fine-tune of that path from the
    shared weights under that policy."""

    archs: Annotated[Positive, Field(
        description="Architectures per loop, drawn from the architecture distribution; trajectories must be a "
                    "multiple of it (each architecture runs with every policy of the loop).")] = 2
    learn: Annotated[Literal["both", "arch", "policy"], Field(
        description="What the rewards update: both (joint), the architecture distribution only (the policies "
                    "stay the agent's current one, unperturbed), or the policy only (the architectures stay "
                    "drawn uniformly).")] = "both"
    policy: Annotated[str | None, Field(
        description="learn: arch only: the policy every fine-tune runs under, a policy file (a policy-only "
                    "search's policy.json, say): the sequential search, policy then architecture. The run keeps "
                    "a copy as fixed_policy.json, and its policy.json is that policy; null = the agent's "
                    "initial policy (uniform).")] = None
    lr: Annotated[Float, Field(gt=0, le=10, description="Adam learning rate of the architecture logits.")] = 0.1
    baseline_momentum: Annotated[Fraction, Field(
        description="Momentum of the architecture reward's baseline, a moving average of the loops' means. 0 "
                    "(the default): each loop's own mean, so an architecture is judged only against the others "
                    "of its loop, which ran with the same policies and common random numbers (RESULTS.md 7.6: "
                    "with 0.9, what the loops share swamps the architectures' differences). Needs archs >= 2."
    )] = 0.0
    max_block_params: Annotated[Positive | None, Field(
        description="Hard budget: no architecture whose choice blocks hold more parameters is ever drawn or "
                    "returned (the stem and head, the same for all, are not counted); null = none.")] = None
    latency_table: Annotated[str | None, Field(
        description="A latency table of the space measured on the target device (awsaa-latency -o FILE): the "
                    "run keeps a copy as latency.json, and arch.json gives the found network's predicted "
                    "latency; null = none.")] = None
    max_latency_ms: Annotated[Annotated[Float, Field(gt=0, le=1e7)] | None, Field(
        description="Hard budget: no architecture whose latency, predicted by latency_table (the stem and head "
                    "included), exceeds this many milliseconds is ever drawn or returned; null = none. Not with "
                    "max_block_params.")] = None
    bn_batches: Annotated[NonNegative, Field(
        description="Training batches that recompute a path's batch-norm statistics before its fine-tune "
                    "(the supernet's are a mixture over paths); 0 = keep the supernet's.")] = 8
    max_zero_blocks: Annotated[NonNegative | None, Field(
        description="Hard cap on the zero blocks of any architecture drawn or returned (a guard against the "
                    "collapse onto the parameter-free op); null = none.")] = None
    method: Annotated[Literal["sample", "gradient"], Field(
        description="How stage 1 treats the architecture: sample (ProxylessNAS + AWS: a uniform path per batch; "
                    "the distribution learns from the rewards only) or gradient (gradient-based NAS + AWS: after "
                    "the warm-up, paths are drawn by Gumbel-max from per-block logits learned by gradient on "
                    "validation batches, and those logits start the distribution of stage 2).")] = "sample"
    grad_lr: Annotated[Float, Field(
        gt=0, le=10, description="method gradient: Adam learning rate of the architecture logits in stage 1.")] = 1e-3
    warmup_fraction: Annotated[Fraction, Field(
        description="method gradient: the fraction of stage 1 (of its stop epoch) that trains the weights on "
                    "uniform paths before the logits learn (a guard against collapse onto the ops that learn "
                    "fastest, the parameter-free zero first).")] = 0.5

    def __post_init__(self) -> None:
        _require(self.archs > 1 or self.baseline_momentum > 0 or self.learn == "policy",
                 "nas.archs 1 with nas.baseline_momentum 0 learns no architecture (the loop's mean is its one "
                 "reward): draw nas.archs >= 2 a loop, or set a baseline_momentum above 0")
        _require(self.policy is None or self.learn == "arch",
                 f"nas.policy fixes the policy, so it needs nas.learn arch (got {self.learn!r})")
        _require(self.max_latency_ms is None or self.latency_table is not None,
                 "nas.max_latency_ms needs nas.latency_table, a table measured on the target device "
                 "(awsaa-latency -o FILE)")
        _require(self.max_latency_ms is None or self.max_block_params is None,
                 "choose one budget: nas.max_block_params or nas.max_latency_ms, not both")
        low = min_block_params(self.max_zero_blocks)
        _require(self.max_block_params is None or self.max_block_params >= low,
                 f"max_block_params {self.max_block_params} admits no architecture: the smallest holds "
                 f"{low:,} block parameters" + ("" if self.max_zero_blocks is None else
                                                f" with at most {self.max_zero_blocks} zero blocks"))


@dataclass(config=SECTION)
class DensityConfig:
    """The density-matching reward (``reward: density``): Fast AutoAugment's score on AWS's
    weights. A trajectory's reward is the top-1 accuracy (or the negative loss) of a fixed
    network on the validation split augmented by the trajectory's sampling policy, a pair drawn
    per image and counted as a fine-tune counts them. No training, so no training noise: what
    is left is which pairs and signs were drawn, which ``draws`` passes average out."""

    source: Annotated[Literal["shared", "clean"], Field(
        description="The fixed network: shared = stage 1's weights; clean = stage 1 trained with crop + flip "
                    "only.")] = "shared"
    draws: Annotated[Positive, Field(
        description="Augmented passes over the validation split per trajectory; the reward is their mean.")] = 2
    metric: Annotated[Literal["accuracy", "neg_loss"], Field(
        description="A pass's score: top-1 accuracy (%) or the negative loss.")] = "accuracy"


@dataclass(config=SECTION)
class SearchConfig:
    """An AWS search: the proxy network and data, stage 1, stage 2 and the agent."""

    model: Annotated[Str, Field(description="The proxy network: a name from the model registry.")] = "wrn28_10"
    dataset: Annotated[Str, Field(
        description="A dataset of the registry, the path of a folder (with train/<class>/ images) or of an .npz file, "
                    "or python:NAME for data handed in from Python.")] = "cifar100"
    val_size: Annotated[Annotated[Int, Field(ge=1)] | Annotated[Float, Field(gt=0, lt=1)], Field(
        description="Stratified validation split carved from the training set (seed 0): a count, or a fraction in "
                    "(0, 1); own data with a val/ split of its own uses that instead. The reward is a validation "
                    "accuracy.")] = 10_000
    train_size: Annotated[Positive | None, Field(
        description="Search on a stratified subset of the training set of this many images; null = all.")] = None
    fill: Annotated[FillValue | None, Field(
        description="Fill value (0-255) of the geometric ops; null = the dataset's.")] = None
    cutout: Annotated[NonNegative, Field(description="Cutout length in pixels, in both stages; 0 = off.")] = 16
    crop_padding: Annotated[NonNegative, Field(
        description="Padding in pixels of the random crop, in both stages; 0 = no crop.")] = 4
    hflip: Annotated[Bool, Field(description="Random horizontal flip, in both stages.")] = True
    image_size: Annotated[Annotated[Int, Field(ge=8, le=4096)] | None, Field(
        description="Own data: resize every image to this square size; null = the images' own.")] = None
    data: Annotated[DataConfig, Field(description="Own data: how it is read.")] = field(default_factory=DataConfig)
    loops: Annotated[Positive, Field(
        description="Loops of stage 2: each samples the trajectories and updates the agent.")] = 350
    trajectories: Annotated[Positive, Field(description="Trajectories per loop (M), each earning one reward.")] = 8
    agent: Annotated[Str, Field(
        description="The agent: ppo | reinforce | es, or one registered with awsaa.search.register_agent.")] = "ppo"
    agent_config: Annotated[AgentConfig, Field(
        description="The agents' settings.")] = field(default_factory=AgentConfig)
    result: Annotated[ResultRule, Field(
        description="The search's result (awsaa.search.result): auto = best_loop (the paper's) for ppo and reinforce, "
                    "average (of the last result_loops updates' parameters) for es.")] = "auto"
    result_loops: Annotated[Positive, Field(
        description="The average result rule: how many of the last updates' parameters it averages.")] = 5
    control: Annotated[Literal["none", "shuffle", "noise"], Field(
        description="A null control: the agent hears the loop's rewards shuffled across its trajectories, or pure "
                    "Gaussian noise of SD control_noise_sd around the loop's mean (the real rewards are still "
                    "recorded); none = a real search.")] = "none"
    control_noise_sd: Annotated[Float, Field(
        gt=0, le=100, description="SD of the noise control, in reward units (points of accuracy).")] = 0.5
    reward: Annotated[Literal["finetune", "density"], Field(
        description="The reward of a trajectory: finetune (the paper's: validation accuracy after fine-tuning the "
                    "shared weights under its policy) or density (no training: see density).")] = "finetune"
    density: Annotated[DensityConfig, Field(
        description="The density reward's settings (reward: density).")] = field(default_factory=DensityConfig)
    nas: Annotated[NasConfig | None, Field(
        description="Search the network with the policy (NAS + AWS; model: supernet); null = the policy only.")] = None
    pretrain: Annotated[PretrainConfig, Field(
        description="Stage 1: the shared weights.")] = field(default_factory=PretrainConfig)
    finetune: Annotated[FinetuneConfig, Field(
        description="Stage 2: one trajectory's fine-tune (reward: finetune).")] = field(default_factory=FinetuneConfig)
    workers: Annotated[WorkersConfig, Field(
        description="The fine-tune workers: how many, and what each holds.")] = field(default_factory=WorkersConfig)
    eval_batch_size: Annotated[Positive, Field(description="Batch size of evaluation, in images.")] = 1024
    dataroot: Annotated[Str | None, Field(
        description="The folder the registry's datasets are read from (only there); null = the default places "
                    "($AWSAA_DATA or ./data; see awsaa.data).")] = None
    seed: Annotated[Seed, Field(description="Seed of the search's random numbers (weights, data order, draws).")] = 0

    def __post_init__(self) -> None:
        _check_names(self.model, self.dataset)
        _require(self.train_size is None or isinstance(self.val_size, float) or self.train_size > self.val_size,
                 f"train_size ({self.train_size}) must exceed val_size ({self.val_size})")
        _require(self.reward != "finetune" or not self.workers.spread_eval or (self.workers.per_call or 1) == 1,
                 f"workers.per_call {self.workers.per_call} runs several fine-tunes per call, but "
                 "workers.spread_eval makes each its own calls: set workers.spread_eval: false for per_call")
        _require(self.agent != "es" or self.nas is not None or self.trajectories % 2 == 0,
                 f"the es agent needs an even number of trajectories (antithetic pairs), got {self.trajectories}")
        self._check_nas()
        p = self.pretrain
        at_end = p.stop_epoch is None or p.stop_epoch == p.epochs
        _require(self.finetune.lr is not None or not (at_end and p.optim.schedule == "cosine"
                                                      and p.optim.final_lr == 0),
                 "stage 1 runs to the end of a cosine schedule with final_lr 0, so every fine-tune would run "
                 "at learning rate 0 (every reward the same): set pretrain.stop_epoch before pretrain.epochs, "
                 "pretrain.optim.final_lr > 0, or finetune.lr")

    def _check_nas(self) -> None:
        n = self.nas
        if n is None:
            _require(self.model != "supernet", "model: supernet is the supernet of a NAS + AWS search: add a nas: "
                                               "section, or search the policy for a network of its own")
            return
        _require(self.model == "supernet", f"a nas: search trains the supernet: set model: supernet, not "
                                           f"{self.model!r}")
        _require(self.reward == "finetune", "nas: needs reward: finetune (each architecture is fine-tuned)")
        _require(not self.pretrain.ema_decay, "nas: the supernet's stage 1 takes no EMA (pretrain.ema_decay: 0)")
        _require(self.trajectories % n.archs == 0,
                 f"trajectories ({self.trajectories}) must be a multiple of nas.archs ({n.archs}): each "
                 f"architecture runs with every policy of the loop")
        per = self.trajectories // n.archs
        _require(self.agent != "es" or n.learn == "arch" or per % 2 == 0,
                 f"the es agent needs an even number of policies per loop (antithetic pairs): trajectories / "
                 f"nas.archs is {per}")

    def policies_per_loop(self) -> int:
        """The sampling policies a loop asks the agent for: every trajectory's, or with ``nas``
        one per column of the grid."""
        return self.trajectories // self.nas.archs if self.nas is not None else self.trajectories

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
        if self.nas is not None and self.nas.method == "gradient":  # the logits learn in stage 1
            n = d["nas"]
            key["nas_gradient"] = {k: n[k] for k in ("grad_lr", "warmup_fraction")}
        if is_own(self.dataset):  # what is read, and what was there to read (editing the data retrains)
            key.update(image_size=self.image_size, data=d["data"], data_fingerprint=fingerprint(self.dataset))
        if self.stage1_aug() != "uniform":  # the uniform policy's key stays as it was (cached files)
            key["aug"] = self.stage1_aug()
        return key
