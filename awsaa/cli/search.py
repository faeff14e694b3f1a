"""``awsaa-search``: find an augmentation policy with Augmentation-Wise Weight Sharing.

    awsaa-search -c configs/search/quick_fmnist.yaml            # stage 1, then stage 2
    awsaa-search -c configs/search/X.yaml --pretrained CKPT     # reuse shared weights from elsewhere
    awsaa-search --resume runs/search/RUN                       # continue after an interruption
    awsaa-search -c ... --address HEAD:6379                     # on a running Ray cluster

Stage 1's shared weights are cached under ``<storage>/pretrained/<stage-1 hash>.pt`` and
reused by any later search with the same stage-1 config. Prints a line per loop, then
the top sub-policies and the path of ``policy.json``, which ``awsaa-train --aug`` takes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from awsaa import config as C
from awsaa.cli.common import (
    Parser,
    add_print_options,
    int_range,
    print_configs,
    print_schema,
    run_name,
    tool_main,
)
from awsaa.cli.train import _parse_set
from awsaa.config import SearchConfig
from awsaa.distributed.raycluster import (
    check_local_resources,
    default_storage,
    init_ray,
    joining_a_cluster,
    leave_job_working_dir,
    storage_line,
)
from awsaa.distributed.search import RayExecutor
from awsaa.errors import AWSAAError
from awsaa.fileio import check_tree, claim_dir, ensure_writable_dir
from awsaa.search import check_agent, report
from awsaa.search.runs import SearchResult, execute, new_run, result_of, resume_run
from awsaa.search.state import SearchState
from awsaa.terminal import shown

PROG = "awsaa-search"


def load_search_config(args: argparse.Namespace):
    overrides = _parse_set(args.set or [])
    for key in ("loops", "dataset", "dataroot"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return check_agent(C.load(C.SearchConfig, args.config, overrides))


def print_summary(result: SearchResult) -> None:
    """What the search found: its rule, how far the result moved from uniform (KL, each op
    family's mass), the top sub-policies, and a verdict against a simulated null run."""
    run_dir, pol, rule, best = result.run_dir, result.policy, result.rule, result.best
    if pol is None:
        print(f"\n{PROG}: no loop produced a reward; no policy.json (see {shown(run_dir / 'history.jsonl', 1000)})")
        return
    space = pol.space
    kl = report.kl_from_uniform(pol)
    if rule == "best_loop" and best is not None:
        how = f"the policy of loop {best['loop']} (best mean reward {best['mean_reward']:.2f}%, before its update)"
    else:
        how = pol.meta.get("note", rule)
    print(f"\nsearch {shown(run_dir.name)}: {len(result.loops)} loops of {result.agent}; result ({rule}): {how}")
    print(f"moved from uniform: KL {kl:.4f} nats (entropy {pol.entropy():.4f} of {math.log(space.num_pairs):.4f})")
    fams = report.family_masses(pol)
    print("op families, mass relative to uniform: " + ", ".join(f"{k} {v:.2f}x" for k, v in fams.items()))
    print("top sub-policies:")
    for rank, (i, j, p) in enumerate(pol.top(10), 1):
        print(f"  {rank:>2}. {p:.5f} ({p * space.num_pairs:5.2f}x uniform)  {space.pair_label(i, j)}")
    print(result.verdict)
    where = shown(run_dir, 1000)  # the storage path is the user's: shown escaped, as every path
    print(f"\npolicy:  {where}/policy.json")
    model = ""
    if result.arch is not None:
        a = result.arch
        size = f"{a.meta['params']:,} parameters" if "params" in a.meta else f"{a.block_params:,} block parameters"
        if isinstance(a.meta.get("latency_ms"), int | float):
            size += f", {a.meta['latency_ms']:.3f} ms predicted"
        print(f"architecture: {where}/arch.json  ({a.describe()}; {size})")
        model = f" --model {where}/arch.json"
    print(f"history: {where}/history.jsonl   heatmap: {where}/policy_heatmap.png   rewards: {where}/reward_curve.png")
    print(f"train with it: awsaa-train -c configs/train/<recipe>.yaml{model} --aug {where}/policy.json")


def run(args: argparse.Namespace) -> int:
    """Resolve the run from the arguments, join (or start) Ray, and run it to its end."""
    if args.print_schema:
        return print_schema(SearchConfig)
    if args.print_config:
        if args.resume:
            _refuse_with_resume(args)
            config = _run_config(Path(args.resume))
            _check_storage(args, Path(args.resume).expanduser().resolve())
            return print_configs([config])
        _need_config(args)
        return print_configs([load_search_config(args)])

    def log(line: str) -> None:
        print(line, flush=True)

    def say(line: str) -> None:  # the driver's own lines carry the tool's name; loop lines do not
        log(line if line.startswith(("loop ", "stage 1: epoch")) else f"{PROG}: {line}")

    storage = Path(args.storage or default_storage("search")).expanduser().resolve()
    note = storage_line(PROG, "search", args.storage if not args.resume else "resume")
    if note:
        print(note, flush=True)
    if args.resume:
        _refuse_with_resume(args)
        given = load_search_config(args) if args.config else None
        run_dir = Path(args.resume).expanduser().resolve()
        if run_dir.is_dir():  # a link or special file planted in the run is named before anything reads it
            check_tree(run_dir, "run directory")
        run_ = resume_run(run_dir, given, str(args.config), log=say)
        _check_storage(args, run_dir)
        ensure_writable_dir(run_dir, "run directory")
        claim_dir(run_dir, "run directory", new=False)  # one writer per run
    else:
        _need_config(args)
        name = args.name or f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_ = new_run(load_search_config(args), storage, name,
                       Path(args.pretrained) if args.pretrained else None,
                       check_data=not joining_a_cluster(args.address), download=args.download,
                       log=say)
    if not args.resume:
        ensure_writable_dir(storage, "storage")
    check_local_resources(args.address, {"workers.num_gpus": run_.cfg.workers.num_gpus,
                                         "workers.num_cpus": run_.cfg.workers.num_cpus})
    init_ray(args.address, stop_signals=True)  # an unreachable cluster fails here, before anything is created
    leave_job_working_dir(storage)
    if not args.resume:
        claim_dir(run_.run_dir, "run directory", new=True)
    execute(run_, RayExecutor(), log=say)
    print_summary(result_of(run_.run_dir))
    return 0


# What --resume cannot honour: a run continues as it was started (its config.yaml, its
# storage, its name, its stage 1). With -c, --set, --loops and --dataset shape the config that
# is checked against the run's, so they are taken there.
_FIXED_BY_THE_RUN = {"pretrained": "--pretrained", "name": "--name", "dataroot": "--dataroot",
                     "download": "--download"}
_SHAPE_THE_CONFIG = {"loops": "--loops", "set": "--set", "dataset": "--dataset"}


def _refuse_with_resume(args: argparse.Namespace) -> None:
    given = [flag for key, flag in _FIXED_BY_THE_RUN.items() if getattr(args, key)]
    if not args.config:
        given += [flag for key, flag in _SHAPE_THE_CONFIG.items() if getattr(args, key)]
    if given:
        raise AWSAAError(f"{', '.join(given)} cannot be used with --resume: a run continues as it was started "
                         f"(its config.yaml, name, storage and stage 1); start a new run to change "
                         f"{'them' if len(given) > 1 else 'it'}")


def _check_storage(args: argparse.Namespace, run_dir: Path) -> None:
    """--storage with --resume: only the storage the run lies in (checked once the run is known)."""
    if args.storage and Path(args.storage).expanduser().resolve() != run_dir.parent:
        raise AWSAAError(f"--storage {shown(args.storage, 200)} is not where the run lies "
                         f"({shown(run_dir.parent, 200)}): a resumed run stays in its storage; leave --storage out")


def _need_config(args: argparse.Namespace) -> None:
    if not args.config:
        raise AWSAAError("give a search config with -c, or a run to continue with --resume")


def _run_config(run_dir: Path):
    """The config a run was started with (its config.yaml)."""
    return SearchState.read_run(run_dir)[1]


def check_locally(args: argparse.Namespace) -> None:
    """Before submitting a job: the config must load (the data lives on the cluster)."""
    if args.config:
        load_search_config(args)
    elif not args.resume:
        _need_config(args)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Search an augmentation policy with AWS (Tian et al., 2020).")
    p.add_argument("-c", "--config", help="search config YAML (see configs/search/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search from its last finished loop")
    p.add_argument("--pretrained", metavar="CKPT", help="stage-1 checkpoint to use (made by the same stage-1 config)")
    p.add_argument("--name", type=run_name, help="run name (default: config name and time)")
    p.add_argument("--storage", help="where runs and stage-1 weights live "
                                     "(default: runs/search; $AWSAA_STORAGE/search when set)")
    p.add_argument("--loops", type=int_range(1), help="override the config's number of loops")
    p.add_argument("--dataset", help="override the config's dataset: a name, or your own data (a folder with "
                                     "train/<class>/ images, or an .npz file)")
    p.add_argument("--dataroot", help="where the dataset lives")
    p.add_argument("--download", action="store_true",
                   help="fetch a missing dataset (into --dataroot, or $AWSAA_DATA or ./data) before the search")
    p.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                   help="override any config key, e.g. finetune.epochs=3 (may be given more than once)")
    p.add_argument("--address", help="Ray cluster: HOST:PORT to run from here, or the dashboard URL "
                                     "http://HEAD:8265 to submit as a Ray job (default: a local Ray)")
    p.add_argument("--no-wait", action="store_true", help="with a job address: submit and return at once")
    add_print_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return tool_main(PROG, build_parser(), argv, run, check_locally)


if __name__ == "__main__":
    sys.exit(main())
