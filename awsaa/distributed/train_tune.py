"""Final training as a Ray Tune experiment: one trial per (config, seed).

Each trial is a plain function (:func:`train_trial`) that builds a :class:`Trainer`,
restores from ``tune.get_checkpoint()`` when Tune restarts it, and reports every epoch
with a checkpoint. ``FailureConfig`` retries a failed trial from its last epoch; an
interrupted experiment resumes with ``Tuner.restore``. With more than one GPU per trial,
the trial starts a ``TorchTrainer`` (data-parallel, NCCL on GPUs, gloo on CPUs) and
reports its result (Tune can no longer wrap a TorchTrainer itself in Ray 2.60).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from awsaa import faultplan
from awsaa.config import TrainConfig, from_dict, to_dict
from awsaa.distributed.raycluster import cluster_cpus, cluster_gpus, has_real_gpus
from awsaa.errors import AWSAAError
from awsaa.fileio import OWN_FILES, atomic_write_json, atomic_write_text, parse_json, read_text
from awsaa.signals import Interrupted, ask_tune_to_stop, graceful_section
from awsaa.train import Trainer

# Ray is imported inside the functions that use it (and here only there): the command-line
# tools import this module to check their arguments, and `--help` or a bad argument should
# not wait for Ray's import.

TRAINER_FILE = "trainer.pt"
EXPERIMENT_FILE = "awsaa-experiment.json"


def _quiet() -> None:
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(max(1, int(n)))


# ----------------------------------------------------------------------------- trainables


def _checkpoint_due(trainer: Trainer, cfg: TrainConfig) -> bool:
    """A checkpoint after every ``checkpoint_every`` epochs, and after the last."""
    return trainer.epoch % cfg.checkpoint_every == 0 or trainer.epoch == cfg.epochs


def train_trial(config: dict[str, Any]) -> None:
    """Tune trainable: train one (config, seed), an epoch per report, a checkpoint every
    ``checkpoint_every`` epochs and after the last."""
    from ray import tune

    _quiet()
    spec = config["trial"]
    _set_threads(spec.get("threads"))
    cfg = from_dict(TrainConfig, spec["train"])
    trainer = Trainer(cfg)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load(Path(d) / TRAINER_FILE)
    while trainer.epoch < cfg.epochs:
        def mid_epoch(step: int, epoch: int = trainer.epoch + 1) -> None:
            if step == 0:  # the fault suite's hook in the middle of an epoch; a no-op without a plan
                faultplan.point("train_step", epoch=epoch)

        stats = trainer.run_epoch(on_batch=mid_epoch)
        metrics = {**stats.as_dict(), "epochs": cfg.epochs, "pid": os.getpid()}
        if not _checkpoint_due(trainer, cfg):
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            trainer.save(Path(d) / TRAINER_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        faultplan.point("train", epoch=trainer.epoch)  # the fault suite's hook; a no-op without $AWSAA_FAULT_PLAN


def _ddp_worker(config: dict[str, Any]) -> None:
    """Ray Train worker loop: one rank of a data-parallel training."""
    import ray.train

    _quiet()
    spec = config["trial"]
    _set_threads(spec.get("threads"))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = torch.device(f"cuda:{ctx.get_local_rank() % max(torch.cuda.device_count(), 1)}"
                          if torch.cuda.is_available() else "cpu")
    cfg = from_dict(TrainConfig, spec["train"])
    trainer = Trainer(cfg, device=device, rank=rank, world_size=world)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load(Path(d) / TRAINER_FILE)
    while trainer.epoch < cfg.epochs:
        stats = trainer.run_epoch()
        metrics = {**stats.as_dict(), "epochs": cfg.epochs, "world_size": world}
        if rank == 0 and _checkpoint_due(trainer, cfg):
            with tempfile.TemporaryDirectory() as d:
                trainer.save(Path(d) / TRAINER_FILE)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)


def train_trial_ddp(config: dict[str, Any]) -> None:
    """Tune trainable for one (config, seed) trained data-parallel on several GPUs (or CPU
    workers with gloo, where the GPUs are logical): starts a ``TorchTrainer`` whose reports
    reach Tune through ``TuneReportCallback``, an epoch at a time."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    _quiet()
    spec = config["trial"]
    real_gpus = bool(spec["real_gpus"])
    # On logical GPUs (a CPU machine) the workers are plain CPU processes talking gloo.
    # Each worker asks for its threads less a hundredth, which the waiting trial holds.
    cpus = max(0.5, float(spec.get("threads") or 1) - 0.01)
    resources = {"CPU": cpus, **({"GPU": 1.0} if real_gpus else {})}
    trainer = TorchTrainer(
        _ddp_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if real_gpus else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=int(spec["workers"]), use_gpu=real_gpus,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # Ray's annotations lag its runtime here: RunConfig takes logging_config and any Tune
            # callback (tested by test_train_tune's DDP trial)
            name="ddp", storage_path=spec["trial_storage"], callbacks=[TuneReportCallback()],  # type: ignore[list-item]
            failure_config=ray.train.FailureConfig(max_failures=int(spec.get("max_failures", 0))),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            logging_config=ray.train.LoggingConfig(log_level="WARNING")),  # type: ignore[call-arg]
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error


# ----------------------------------------------------------------------------- experiments


def format_epoch(m: dict[str, Any]) -> str:
    val = f"  val acc {m['val_acc']:6.2f}%" if m.get("val_acc") is not None else ""
    test = f"  test err {m['test_error']:6.2f}%" if m.get("test_error") is not None else ""
    return (f"epoch {m['epoch']:>3}/{m['epochs']}  lr {m['lr']:.4g}  loss {m['train_loss']:.4f}  "
            f"train acc {m['train_acc']:6.2f}%{val}{test}  {m['images_per_sec']:.0f} img/s")


@dataclass
class TrialSpec:
    label: str
    train: TrainConfig

    def as_param(self, threads: int | None, workers: int, real_gpus: bool, max_failures: int,
                 exp_path: Path) -> dict[str, Any]:
        return {"label": self.label, "train": to_dict(self.train), "threads": threads, "workers": workers,
                "real_gpus": real_gpus, "max_failures": max_failures,
                "trial_storage": str(exp_path.resolve() / slug(self.label))}


@dataclass
class Experiment:
    name: str
    storage: Path
    trials: list[TrialSpec]
    gpus_per_trial: float = 0.0
    cpus_per_trial: int | None = None
    max_failures: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.storage / self.name

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "trials": [{"label": t.label, "train": to_dict(t.train)} for t in self.trials]}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")


class EpochLines:
    """A Tune callback that prints one line per trial and epoch, and trial failures."""

    def __new__(cls, max_failures: int):  # built lazily so importing this module does not import Ray
        from ray import tune

        exp_max_failures = max_failures

        class _EpochLines(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                if "train_loss" in result and "lr" in result:
                    print(f"{trial.config['trial']['label']}  {format_epoch(result)}", flush=True)

            def on_trial_recover(self, iteration, trials, trial, **info):
                print(f"{trial.config['trial']['label']}  failed; Tune restarts it from its last checkpoint "
                      f"(retry {trial.num_failures} of {exp_max_failures})", flush=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                print(f"{trial.config['trial']['label']}  failed {trial.num_failures} times; no retries left",
                      flush=True)

        return _EpochLines()


def check_experiment(exp: Experiment, resume: bool) -> None:
    """Refuse, before any work, to overwrite an experiment or to resume one that differs."""
    path = exp.path
    record_file = path / EXPERIMENT_FILE
    if resume:
        if not record_file.exists():
            raise AWSAAError(f"nothing to resume: {path} holds no awsaa training experiment")
        saved = parse_json(read_text(record_file, "experiment record"), f"experiment record {record_file}")
        if saved != exp.record():
            raise AWSAAError(f"the configs or seeds differ from those experiment {path} was started with; "
                             f"give the same ones to --resume, or start a new experiment with --name")
    elif path.exists() and any(p.name not in OWN_FILES for p in path.iterdir()):  # claimed by this command: empty
        raise AWSAAError(f"experiment {path} already exists; pass --resume to continue it, or --name for a new one")


# A trial's process imports this module when it loads its trainable (train_trial is pickled by
# reference), before Tune restores the trial from its checkpoint. Tune then logs "Restored on
# <ip> from checkpoint: Checkpoint(filesystem=local, path=...)" at INFO there, before any of our
# code runs, and Ray forwarded it to the terminal raw, after our summary; our own lines say which
# trials resumed. Only that logger is quieted: Ray's own set-up of the worker is left alone.
RESTORE_LOGGER = "ray.tune.trainable.trainable"
logging.getLogger(RESTORE_LOGGER).setLevel(logging.WARNING)


def quiet_tune() -> None:
    """Our own progress lines replace Tune's console output and snapshot warnings. On a stop
    signal Tune's own warnings ("Stop signal received", "Resume experiment with:
    Tuner.restore(...)") would point a user of awsaa-train at the wrong command; our last line
    says how to continue. When a stop comes before some trials have started, Tune's results
    warn "Failed to fetch metrics" for each with its path, raw (a storage path is the user's
    text); those trials simply start on ``--resume``, which our last line names."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_experiment(exp: Experiment, resume: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) ``exp`` on the Ray cluster this process is connected to; returns one
    summary per trial: label, status, epochs done, final test error, trial and checkpoint paths."""
    quiet_tune()
    from ray import tune

    path = exp.path
    record_file = path / EXPERIMENT_FILE
    check_experiment(exp, resume)

    gpus = exp.gpus_per_trial if exp.gpus_per_trial else (1.0 if cluster_gpus() >= 1 else 0.0)
    real = has_real_gpus()
    if exp.cpus_per_trial:
        cpus = exp.cpus_per_trial
    elif gpus:
        cpus = max(1, int(cluster_cpus() // max(cluster_gpus(), 1)))
    else:
        cpus = max(1, int(cluster_cpus()))  # on a CPU machine: one trial at a time, all cores
    ddp = gpus > 1
    if ddp and gpus != int(gpus):
        raise AWSAAError(f"--gpus-per-trial above 1 must be a whole number, got {gpus}")
    workers = int(gpus) if ddp else 1
    threads = max(1, cpus // workers) if ddp else cpus
    if ddp:
        # The trial only waits for its TorchTrainer, whose workers hold the CPUs and GPUs.
        trainable = tune.with_resources(train_trial_ddp, {"cpu": 0.01})
    else:
        trainable = tune.with_resources(train_trial, {"cpu": cpus, "gpu": gpus})
    run_config = tune.RunConfig(
        name=exp.name, storage_path=str(exp.storage.resolve()), verbose=0, callbacks=[EpochLines(exp.max_failures)],  # type: ignore[list-item]
        failure_config=tune.FailureConfig(max_failures=exp.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    trials = exp.trials if resume else _with_policies_inside(exp, path)
    params = [t.as_param(threads, workers, real, exp.max_failures, path) for t in trials]
    if resume:
        tuner = tune.Tuner.restore(str(path.resolve()), trainable=trainable, resume_errored=True)
    else:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record_file, exp.record())
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(params)}, run_config=run_config,
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: slug(t.config["trial"]["label"]),
                                        trial_name_creator=lambda t: t.config["trial"]["label"]),
        )
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours (install_stop_signals) asks Tune to stop
    with graceful_section(ask_tune_to_stop) as g:
        results = tuner.fit()
    if g.signum is not None:
        raise Interrupted(g.signum, f"experiment {path} is saved at its trials' last finished epochs; "
                                    f"continue with the same command and --resume")
    summary = []
    for i in range(len(results)):  # ResultGrid is indexable; its annotations do not declare iteration
        r = results[i]
        m = r.metrics or {}
        ckpt = r.checkpoint.path if r.checkpoint is not None else m.get("checkpoint_path")
        summary.append({
            "label": r.config["trial"]["label"] if r.config else "?",
            "status": "error" if r.error is not None else "done",
            "error": _one_line(r.error) if r.error is not None else None,
            "epochs_done": m.get("epoch", 0),
            "epochs": m.get("epochs", r.config["trial"]["train"]["epochs"] if r.config else None),
            "final_test_error": m.get("test_error"),
            "path": r.path,
            "checkpoint": str(Path(ckpt) / TRAINER_FILE) if ckpt else None,
        })
    summary.sort(key=lambda s: s["label"])
    atomic_write_json(path / "summary.json", summary)

    return summary


def _with_policies_inside(exp: Experiment, path: Path) -> list[TrialSpec]:
    """Copy every policy file the trials use into ``<experiment>/policies/`` and point the
    trials there: the experiment holds what it was trained with, and trials on other nodes
    read it from the experiment's (shared) storage rather than from this machine."""
    copies: dict[str, str] = {}
    out = []
    for t in exp.trials:
        aug = t.train.aug
        if aug.endswith(".json") or Path(aug).is_file():
            if aug not in copies:
                target = path / "policies" / f"{len(copies)}-{Path(aug).name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                # the policy file as read and checked (Policy.load), written atomically: a copy
                # never opens, follows or truncates anything already at the target
                atomic_write_text(target, read_text(aug, "policy file"))
                copies[aug] = str(target.resolve())
            t = TrialSpec(t.label, dataclasses.replace(t.train, aug=copies[aug]))
        out.append(t)
    return out


def _one_line(err: BaseException) -> str:
    """Tune wraps the trial's exception with its traceback: keep the last line, the error itself."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[-1] if lines else type(err).__name__
    return text[:300]
