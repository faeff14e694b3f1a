"""``awsaa-train``: train networks with a policy, one Ray Tune trial per (config, seed).

    awsaa-train -c configs/train/wrn40_2_cifar10.yaml --aug fa_reduced_cifar10 --seeds 0 1 2
    awsaa-train -c configs/train/quick_fmnist.yaml --aug runs/search/x/policy.json
    awsaa-train -c ... --resume                      # continue an interrupted experiment
    awsaa-train -c ... --only-eval --save CKPT       # evaluate a checkpoint on the test set

Without ``--address`` it starts a local Ray. Prints a line per trial and epoch, then the
final-epoch test error of every trial and where checkpoints and metrics are.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from awsaa import config as C
from awsaa.arch import is_arch_file
from awsaa.cli.common import (
    Parser,
    add_print_options,
    float_range,
    int_range,
    print_configs,
    print_schema,
    run_name,
    tool_main,
)
from awsaa.config import SEED_END, TrainConfig, parse_yaml
from awsaa.data import is_own
from awsaa.data.datasets import ensure_dataset
from awsaa.distributed.raycluster import (
    check_local_resources,
    default_storage,
    init_ray,
    joining_a_cluster,
    leave_job_working_dir,
    storage_line,
)
from awsaa.distributed.train_tune import Experiment, TrialSpec, check_experiment, run_experiment, slug
from awsaa.errors import AWSAAError
from awsaa.fileio import check_tree, claim_dir, ensure_writable_dir
from awsaa.terminal import shown
from awsaa.train import Trainer
from awsaa.train.trainer import check_split, data_options

PROG = "awsaa-train"


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AWSAAError(f"--set expects KEY=VALUE, got {item[:100]!r}")
        key = key.strip()
        if key in out:
            raise AWSAAError(f"--set gives {key} twice")
        out[key] = parse_yaml(value, f"--set {key}")
    return out


def load_train_configs(args: argparse.Namespace):
    """The configs of the command line, overrides applied, names and data checked."""
    if not args.config:
        raise AWSAAError("give one or more training configs with -c (see configs/train/)")

    overrides = _parse_set(args.set or [])
    for key in ("model", "dataset", "epochs", "dataroot"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    configs = []
    for path in args.config:
        for aug in args.aug or [None]:
            extra = {"aug": aug} if aug is not None else {}
            cfg = C.load(C.TrainConfig, path, {**overrides, **extra})  # checks names and policy files too
            if Path(cfg.aug).is_file():  # a policy file: by absolute path from here on
                cfg = dataclasses.replace(cfg, aug=str(Path(cfg.aug).resolve()))
            if is_arch_file(cfg.model):  # an architecture file too
                cfg = dataclasses.replace(cfg, model=str(Path(cfg.model).resolve()))
            configs.append((Path(path), cfg))
    _check_repeats(args, configs)
    return configs


def _check_data(configs, local: bool, download: bool = False):
    """Fail before any work if a dataset is missing (only where this machine holds the data);
    with ``download``, fetch it first. Returns the configs, pointed at where the data is."""
    if not local:
        return configs

    roots: dict[tuple, str | None] = {}
    datasets: dict[tuple, Any] = {}
    out = []
    for path, cfg in configs:
        if is_own(cfg.dataset):  # trials run elsewhere: the data by its absolute path
            cfg = dataclasses.replace(cfg, dataset=str(Path(cfg.dataset).expanduser().resolve()))
        key = (cfg.dataset, cfg.dataroot, cfg.image_size, str(cfg.data))
        if key not in roots:
            roots[key], datasets[key] = ensure_dataset(
                cfg.dataset, cfg.dataroot, download, data_options(cfg),
                log=lambda line: print(f"{PROG}: {shown(line, 1000)}", flush=True))
        check_split(cfg, datasets[key])
        out.append((path, dataclasses.replace(cfg, dataroot=roots[key])))
    return out


def dataset_label(dataset: str) -> str:
    """A dataset's name in trial and experiment names: own data by its file or folder name."""
    return Path(dataset).stem if is_own(dataset) else dataset


def aug_labels(augs: list[str]) -> dict[str, str]:
    """A distinct label for each aug: its name, or a policy file's stem; where two policy files
    share a stem (``runA/policy.json``, ``runB/policy.json``), as many parent directories as
    tell them apart (``runA-policy``, ``runB-policy``)."""
    files = [a for a in dict.fromkeys(augs) if a.endswith(".json")]
    labels = {a: a for a in augs if not a.endswith(".json")}
    depth = 1
    while files:
        parts = {f: Path(f).with_suffix("").parts[-depth:] for f in files}
        cand = {f: "-".join(p) for f, p in parts.items()}
        taken = list(cand.values()) + list(labels.values())
        done = [f for f in files if taken.count(cand[f]) == 1 or len(parts[f]) < depth]
        for f in done:
            labels[f] = cand[f]
        files = [f for f in files if f not in done]
        depth += 1
    return labels


def _check_repeats(args: argparse.Namespace, configs) -> None:
    seeds = [s for s in args.seeds if args.seeds.count(s) > 1]
    if seeds:
        raise AWSAAError(f"--seeds repeats seed {seeds[0]}: identical trials would pass for independent seeds")
    seen: dict[tuple, str] = {}
    for path, cfg in configs:
        key = (str(path.resolve()), cfg.aug)
        if key in seen:
            raise AWSAAError(f"{path} with aug {_short(cfg.aug)} is given twice: "
                             "identical trials would pass for independent ones")
        seen[key] = cfg.aug


def _short(aug: str) -> str:
    return aug if len(aug) < 80 else "..." + aug[-77:]


def only_eval(args: argparse.Namespace) -> int:
    if not args.save:
        raise AWSAAError("--only-eval needs --save CKPT, the checkpoint to evaluate")
    (_, cfg), *_ = load_train_configs(args)
    torch.set_num_threads(args.cpus_per_trial or torch.get_num_threads())
    trainer = Trainer(cfg)
    trainer.load(args.save, weights_only=True)
    acc, loss = trainer.evaluate(trainer.test_set)
    print(f"{shown(args.save, 1000)}: {cfg.model} on {cfg.dataset} test set: top-1 error {100 - acc:.2f}% "
          f"(accuracy {acc:.2f}%, loss {loss:.4f}, {len(trainer.test_set)} images)")
    return 0


def print_summary(summary: list[dict[str, Any]], exp_path: Path, legend: dict[str, str] | None = None) -> None:
    width = max(len(s["label"]) for s in summary) + 2
    print(f"\n{'trial':<{width}}{'status':<8}{'epochs':>9}  {'final test error':>16}")
    for s in summary:
        err = f"{s['final_test_error']:.2f}%" if s["final_test_error"] is not None else "-"
        print(f"{s['label']:<{width}}{s['status']:<8}{s['epochs_done']:>4}/{s['epochs']:<4}  {err:>16}")
    groups: dict[str, list[float]] = {}
    for s in summary:
        if s["status"] == "done" and s["final_test_error"] is not None:
            groups.setdefault(s["label"].rsplit("-seed", 1)[0], []).append(s["final_test_error"])
    for name, errs in groups.items():
        if len(errs) > 1:
            print(f"{name}: final test error {statistics.mean(errs):.2f}% ± {statistics.stdev(errs):.2f} "
                  f"(mean ± std over {len(errs)} seeds; min {min(errs):.2f}, max {max(errs):.2f})")
    line = ranking(groups)
    if line:
        print(line)
    for aug, label in (legend or {}).items():
        if aug != label:
            print(f"{label}: the policy {shown(aug, 1000)}")
    print(f"\nexperiment: {shown(exp_path, 1000)}")
    print("checkpoints (last epoch, trainer.pt; evaluate with --only-eval --save PATH):")
    for s in summary:
        print(f"  {shown(s['checkpoint'] or '-', 1000)}")
    where = shown(exp_path, 1000)
    print(f"metrics: {where}/<trial>/result.json (one JSON line per epoch), {where}/summary.json")
    print(f"TensorBoard: tensorboard --logdir {where}")
    for s in summary:
        if s["error"]:
            print(f"{PROG}: error: trial {s['label']} failed: {shown(s['error'], 1000)}", file=sys.stderr)


def _default_seeds(args: argparse.Namespace) -> None:
    # not argparse's default: an "extend" option appends what is given to its default list
    if args.seeds is None:
        args.seeds = [0]


def run(args: argparse.Namespace) -> int:
    _default_seeds(args)
    if args.print_schema:
        return print_schema(TrainConfig)
    if args.print_config:
        return print_configs([cfg for _, cfg in load_train_configs(args)])
    if args.only_eval:
        return only_eval(args)
    _check_save(args)

    configs = load_train_configs(args)
    configs = _check_data(configs, local=not joining_a_cluster(args.address), download=args.download)
    labels = aug_labels([c.aug for _, c in configs])
    trials = []
    for path, cfg in configs:
        for seed in args.seeds:
            label = f"{path.stem}-{dataset_label(cfg.dataset)}-{labels[cfg.aug]}-seed{seed}"
            trials.append(TrialSpec(label, _with_seed(cfg, seed)))
    for aug, label in labels.items():
        if aug != label:
            print(f"{PROG}: trials labelled {label} train with the policy {shown(aug, 1000)}", flush=True)
    first = configs[0][1]
    stems = "+".join(dict.fromkeys(p.stem for p, _ in configs))
    augs = "+".join(dict.fromkeys(labels[c.aug] for _, c in configs))
    name = args.name or slug(f"{stems}-{dataset_label(first.dataset)}-{augs}")
    storage = Path(args.storage or default_storage("train")).expanduser().resolve()
    note = storage_line(PROG, "train", args.storage)
    if note:
        print(note, flush=True)
    exp = Experiment(name=name, storage=storage, trials=trials, gpus_per_trial=args.gpus_per_trial,
                     cpus_per_trial=args.cpus_per_trial,
                     max_failures=args.max_failures)
    if args.resume and exp.path.is_dir():  # a link or special file planted in it is named before anything reads it
        check_tree(exp.path, "experiment")
    check_experiment(exp, args.resume)
    ensure_writable_dir(exp.storage, "storage")
    check_local_resources(args.address, {"--gpus-per-trial": args.gpus_per_trial,
                                         "--cpus-per-trial": args.cpus_per_trial or 0}, args.num_gpus)
    init_ray(args.address, num_gpus=args.num_gpus, stop_signals=True)  # fails here when unreachable, before any work
    leave_job_working_dir(exp.storage)
    claim_dir(exp.path, "experiment", new=not args.resume)  # one writer per experiment
    print(f"{PROG}: experiment {shown(exp.path, 1000)}: {len(trials)} trial(s), {len(configs)} config(s)/aug(s) "
          f"x seeds {args.seeds}"
          + (" (resuming)" if args.resume else ""), flush=True)
    summary = run_experiment(exp, resume=args.resume)
    print_summary(summary, exp.path, labels)
    return 0 if all(s["status"] == "done" for s in summary) else 1


def ranking(groups: dict[str, list[float]]) -> str | None:
    """One line comparing several augmentations trained with several seeds each: their mean
    final test errors, best first, and whether the best beats the runner-up by more than twice
    the standard error of the difference (the bar a result must clear: RESULTS.md)."""
    means = {k: statistics.mean(v) for k, v in groups.items() if len(v) > 1}
    if len(means) < 2:
        return None
    order = sorted(means, key=means.get)  # type: ignore[arg-type]
    best, second = order[0], order[1]
    gap = means[second] - means[best]
    se = math.sqrt(sum(statistics.variance(groups[k]) / len(groups[k]) for k in (best, second)))
    verdict = (f"beats {second} by {gap:.2f} points, {gap / se:.1f}x the standard error of the difference"
               if se > 0 and gap > 2 * se else
               f"is within twice the standard error ({se:.2f}) of {second}: not a difference")
    return "ranking: " + " < ".join(f"{k} {means[k]:.2f}%" for k in order) + f"; {best} {verdict}"


def _with_seed(cfg, seed: int):
    return dataclasses.replace(cfg, seed=seed)


def check_locally(args: argparse.Namespace) -> None:
    """Before submitting a job: the configs and policy files must load (the data lives on the cluster)."""
    _default_seeds(args)
    _check_save(args)
    load_train_configs(args)


def _check_save(args: argparse.Namespace) -> None:
    if args.save and not args.only_eval:
        raise AWSAAError("--save names the checkpoint that --only-eval evaluates; a training writes its "
                         "checkpoints into the experiment (listed at the end), so add --only-eval or drop --save")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Train networks with an augmentation policy on Ray Tune.")
    p.add_argument("-c", "--config", nargs="+", help="training config YAML file(s) (required)")
    p.add_argument("--model", help="override the config's network: a name (wrn28_10), or an architecture .json "
                                   "file (awsaa.arch)")
    p.add_argument("--dataset", help="override the config's dataset: a name, or your own data (a folder with "
                                     "train/<class>/ images, or an .npz file)")
    p.add_argument("--aug", nargs="+", action="extend",
                   help="none, cutout, autoaugment, randaugment (randaugment_n2_m9: N and M), trivialaugment, "
                        "uniform, fa_reduced_cifar10, fa_reduced_imagenet, a published policy (aws_digits) or a "
                        "policy .json file; several: one trial per aug")
    p.add_argument("--epochs", type=int_range(1), help="override the config's epochs")
    p.add_argument("--dataroot", help="where the dataset lives")
    p.add_argument("--download", action="store_true",
                   help="fetch a missing dataset (into --dataroot, or $AWSAA_DATA or ./data) before training")
    p.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                   help="override any config key, e.g. optim.lr=0.05 (may be given more than once)")
    p.add_argument("--seeds", type=int_range(0, SEED_END - 1), nargs="+", action="extend",
                   help="one trial per seed (default: 0)")
    p.add_argument("--name", type=run_name, help="experiment name (default: from the configs, dataset and aug)")
    p.add_argument("--storage", help="where experiments live (default: runs/train; $AWSAA_STORAGE/train when set)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment of this name")
    p.add_argument("--max-failures", type=int_range(0), default=3, help="retries of a failed trial (default 3)")
    p.add_argument("--gpus-per-trial", type=float_range(0.0), default=0.0,
                   help="GPUs per trial (default: 1 when the cluster has GPUs); > 1 trains data-parallel")
    p.add_argument("--cpus-per-trial", type=int_range(1), default=None)
    p.add_argument("--num-gpus", type=int_range(0), default=None, help=argparse.SUPPRESS)  # logical GPUs, local tests
    p.add_argument("--address", help="Ray cluster: HOST:PORT to run from here, or the dashboard URL "
                                     "http://HEAD:8265 to submit as a Ray job (default: a local Ray)")
    p.add_argument("--no-wait", action="store_true", help="with a job address: submit and return at once")
    p.add_argument("--only-eval", action="store_true", help="only evaluate the checkpoint given by --save")
    p.add_argument("--save", help="with --only-eval: the checkpoint (trainer.pt) to evaluate")
    add_print_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return tool_main(PROG, build_parser(), argv, run, check_locally)


if __name__ == "__main__":
    sys.exit(main())
