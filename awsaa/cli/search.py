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
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from awsaa.cli.common import (
    Interrupted,
    Parser,
    as_interrupted,
    install_stop_signals,
    int_range,
    parse_args,
    run_main,
    run_name,
)
from awsaa.cli.train import _parse_set
from awsaa.errors import AWSAAError
from awsaa.fileio import claim_dir, ensure_writable_dir

PROG = "awsaa-search"


def load_search_config(args: argparse.Namespace):
    from awsaa import config as C

    overrides = _parse_set(args.set or [])
    for key in ("loops", "dataroot"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return C.load(C.SearchConfig, args.config, overrides)


def load_shared(path: Path, cfg) -> dict[str, Any]:
    """A stage-1 checkpoint, refused (one line) unless it was made by this stage-1 config."""
    from awsaa.search.stages import stage1_hash
    from awsaa.train.checkpoint import load_checkpoint

    state = load_checkpoint(path, kind="shared")
    expected = stage1_hash(cfg)
    if state.get("stage1_hash") != expected:
        raise AWSAAError(f"pretrained checkpoint {path} was made by a different stage-1 config "
                         f"(hash {state.get('stage1_hash')}, this config's is {expected})")
    return state


def print_summary(run_dir: Path, loops_done: int, best: dict[str, Any] | None, rule: str = "best_loop") -> None:
    """What the search found: its rule, how far the result moved from uniform (KL, each op
    family's mass), the top sub-policies, and a verdict against a simulated null run."""
    from awsaa.search import report
    from awsaa.search.state import SearchState

    if not (run_dir / "policy.json").exists():
        print(f"\n{PROG}: no loop produced a reward; no policy.json (see {run_dir / 'history.jsonl'})")
        return
    state = SearchState.load(run_dir)
    pol = state.result_policy()
    space = pol.space
    kl = report.kl_from_uniform(pol)
    if rule == "best_loop" and best is not None:
        how = f"the policy of loop {best['loop']} (best mean reward {best['mean_reward']:.2f}%, before its update)"
    else:
        how = pol.meta.get("note", rule)
    print(f"\nsearch {run_dir.name}: {loops_done} loops of {state.cfg.agent}; result ({rule}): {how}")
    print(f"moved from uniform: KL {kl:.4f} nats (entropy {pol.entropy():.4f} of {math.log(space.num_pairs):.4f})")
    fams = report.family_masses(pol)
    print("op families, mass relative to uniform: " + ", ".join(f"{k} {v:.2f}x" for k, v in fams.items()))
    print("top sub-policies:")
    for rank, (i, j, p) in enumerate(pol.top(10), 1):
        print(f"  {rank:>2}. {p:.5f} ({p * space.num_pairs:5.2f}x uniform)  {space.pair_label(i, j)}")
    print(verdict(state, kl))
    print(f"\npolicy:  {run_dir / 'policy.json'}")
    print(f"history: {run_dir / 'history.jsonl'}   heatmap: {run_dir / 'policy_heatmap.png'}   "
          f"rewards: {run_dir / 'reward_curve.png'}")
    print(f"train with it: awsaa-train -c configs/train/<recipe>.yaml --aug {run_dir / 'policy.json'}")


def verdict(state, kl: float) -> str:
    """One line: did the search move more than it would on rewards that carry no signal?

    ES: the sign-flip test of its steps (:func:`awsaa.search.report.sign_flip_p`, exact at any
    noise level). PPO and REINFORCE (whose loops all sample one policy, so there is no pair to
    flip): did the result move further from uniform than the same agent, budget and rule move
    on pure-noise rewards of this run's own within-loop spread (simulated)? The within-loop
    spread includes whatever the policy changes within a loop (ES), so the null is, if
    anything, generous; the simulation draws at most 8,000 pairs a trajectory and runs 10-40
    searches (fewer for long searches: about 20,000 simulated trajectories in all)."""
    from awsaa.search import report

    cfg = state.cfg
    if cfg.agent == "es":
        p, n = report.es_sign_flip(state.history, cfg.agent_config, cfg.seed)
        where = (f"p = {p:.3g} that its {n} steps would line up this well with random signs (sign-flip test, "
                 f"docs/design.md section 3)")
        if n < 2 or p >= 0.05:
            return f"verdict: the policy did NOT move more than a null run would: {where}"
        return f"verdict: the policy moved further than a null run would, its steps kept pointing one way: {where}"
    sd = report.within_loop_sd(state.history)
    if sd is None or sd == 0:
        return "verdict: no null comparison (fewer than 2 rewards per loop)"
    images = [d["images"] for h in state.history for d in h["details"] if d.get("images")]
    runs = max(10, min(40, 20_000 // max(1, state.loops_done * cfg.trajectories)))
    per_traj = min(8000, round(sum(images) / len(images))) if images else 8000
    null = report.null_kl(cfg.agent, cfg.agent_config, state.loops_done, cfg.trajectories, sd, state.rule,
                          cfg.result_loops, images=per_traj, runs=runs)
    q95 = report.quantile(null, 0.95)
    where = (f"KL {kl:.4f} vs {q95:.4f}, the 95th percentile of {runs} simulated null runs (same agent, "
             f"{state.loops_done} loops x {cfg.trajectories}, pure-noise rewards of SD {sd:.2f})")
    if kl <= q95:
        return f"verdict: the policy did NOT move more than a null run would: {where}"
    return f"verdict: the policy moved further than a null run would: {where}"


def run(args: argparse.Namespace) -> int:
    from awsaa.config import config_hash
    from awsaa.distributed.raycluster import (
        default_storage,
        init_ray,
        joining_a_cluster,
        leave_job_working_dir,
        storage_line,
    )
    from awsaa.search.stages import stage1_hash
    from awsaa.search.state import SearchState

    storage = Path(args.storage or default_storage("search")).expanduser().resolve()
    note = storage_line(PROG, "search", args.storage if not args.resume else "resume")
    if note:
        print(note, flush=True)
    shared: dict[str, Any] | None = None
    if args.resume:
        run_dir = Path(args.resume)
        info, cfg = SearchState.read_run(run_dir)
        if args.config:
            given = load_search_config(args)
            if config_hash(given) != config_hash(cfg):
                raise AWSAAError(f"config {args.config} differs from the one run {run_dir} was started with; "
                                 f"resume without -c, or start a new run")
        state = SearchState.load(run_dir)  # refuses a corrupt state before any work
        if state.loops_done >= cfg.loops:
            rebuilt = state.restore_exports()
            raise AWSAAError(f"run {run_dir} already finished all {cfg.loops} loops; its result is "
                             f"{run_dir / 'policy.json'}"
                             + (f" (rebuilt {', '.join(rebuilt)} from state.pt)" if rebuilt else ""))
        cache = Path(info["pretrained"])
        if cache.exists():
            shared = load_shared(cache, cfg)
        name = run_dir.name
        print(f"{PROG}: resuming {run_dir} at loop {state.loops_done + 1} of {cfg.loops}", flush=True)
    else:
        if not args.config:
            raise AWSAAError("give a search config with -c, or a run to continue with --resume")
        cfg = load_search_config(args)
        name = args.name or f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = storage / name
        if run_dir.exists():
            raise AWSAAError(f"run directory {run_dir} already exists; choose another --name or --resume it")
        if not joining_a_cluster(args.address):
            from awsaa.data.datasets import ensure_dataset

            # a missing dataset fails here, before any work (or is fetched with --download)
            cfg = dataclasses.replace(cfg, dataroot=ensure_dataset(cfg.dataset, cfg.dataroot, args.download))
        cache = storage / "pretrained" / f"{stage1_hash(cfg)}.pt"
        if args.pretrained:
            cache = Path(args.pretrained)
            shared = load_shared(cache, cfg)
        elif cache.exists():
            shared = load_shared(cache, cfg)
            print(f"{PROG}: reusing the stage-1 weights of {cache} (same stage-1 config)", flush=True)

    ensure_writable_dir(run_dir if args.resume else storage, "run directory" if args.resume else "storage")
    if args.resume:
        claim_dir(run_dir, "run directory", new=False)  # one writer per run
    init_ray(args.address)  # an unreachable cluster fails here, before anything is created
    leave_job_working_dir(storage)
    if not args.resume:
        claim_dir(run_dir, "run directory", new=True)
    install_stop_signals()
    try:
        return _search(args, cfg, run_dir, name, cache, shared)
    except BaseException as e:
        stop = as_interrupted(e)
        if stop is None:
            raise
        _stop_controller(name)
        raise Interrupted(stop.signum, _where_it_stands(run_dir, cfg)) from None


def _stop_controller(name: str) -> None:
    """Stop the run's detached controller, so that nothing writes the run after the message
    below; ``--resume`` starts a new one from the saved state."""
    import contextlib

    import ray

    from awsaa.distributed.search import NAMESPACE

    with contextlib.suppress(Exception):
        ray.kill(ray.get_actor(f"awsaa-controller:{name}", namespace=NAMESPACE), no_restart=True)


def _where_it_stands(run_dir: Path, cfg) -> str:
    from awsaa.search.state import SearchState

    if not (run_dir / "state.pt").exists():
        return "the run had not started; nothing to continue"
    try:
        done = SearchState.load(run_dir).loops_done  # state.pt is the source of truth
    except AWSAAError:
        return f"the run's state could not be read back; check {run_dir / 'state.pt'}"
    return f"the run is saved after loop {done} of {cfg.loops}; continue with: awsaa-search --resume {run_dir}"


def _search(args: argparse.Namespace, cfg, run_dir: Path, name: str, cache: Path,
            shared: dict[str, Any] | None) -> int:
    import ray

    from awsaa.search.stages import stage1_hash
    from awsaa.search.state import SearchState
    from awsaa.train.checkpoint import save_checkpoint

    if not args.resume:
        SearchState.create(run_dir, cfg, {"name": name, "stage1_hash": stage1_hash(cfg),
                                          "pretrained": str(cache.resolve()), "created": time.time()})
        print(f"{PROG}: run {run_dir}: {cfg.loops} loops x {cfg.trajectories} trajectories, "
              f"{cfg.workers.count or cfg.trajectories} fine-tune workers, {cfg.model} on {cfg.dataset}", flush=True)
    if shared is None:
        from awsaa.distributed.search import run_stage1

        print(f"{PROG}: stage 1: training the shared weights under the uniform policy "
              f"({cfg.pretrain.stop_epoch or cfg.pretrain.epochs} of {cfg.pretrain.epochs} epochs)", flush=True)
        shared = run_stage1(cfg, log=lambda line: print(line, flush=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(cache, shared)
        print(f"{PROG}: stage 1 done: val acc {shared['val_acc']:.2f}%, fine-tune LR {shared['lr']:.5g}; "
              f"saved {cache}", flush=True)
    # Put by the driver: the shared state then outlives the worker node that computed it.
    shared_ref = ray.put(shared)

    from awsaa.distributed.search import run_loops

    summary = run_loops(cfg, run_dir, name, shared_ref, log=lambda line: print(line, flush=True))
    print_summary(run_dir, summary["loops_done"], summary["best"], summary["rule"])
    return 0


def check_locally(args: argparse.Namespace) -> None:
    """Before submitting a job: the config must load (the data lives on the cluster)."""
    if args.config:
        load_search_config(args)
    elif not args.resume:
        raise AWSAAError("give a search config with -c, or a run to continue with --resume")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Search an augmentation policy with AWS (Tian et al., 2020).")
    p.add_argument("-c", "--config", help="search config YAML (see configs/search/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search from its last finished loop")
    p.add_argument("--pretrained", metavar="CKPT", help="stage-1 checkpoint to use (made by the same stage-1 config)")
    p.add_argument("--name", type=run_name, help="run name (default: config name and time)")
    p.add_argument("--storage", help="where runs and stage-1 weights live "
                                     "(default: runs/search; $AWSAA_STORAGE/search when set)")
    p.add_argument("--loops", type=int_range(1), help="override the config's number of loops")
    p.add_argument("--dataroot", help="where the dataset lives")
    p.add_argument("--download", action="store_true",
                   help="fetch a missing dataset (into --dataroot, or $AWSAA_DATA or ./data) before the search")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override any config key, e.g. finetune.epochs=3")
    p.add_argument("--address", help="Ray cluster: HOST:PORT to run from here, or the dashboard URL "
                                     "http://HEAD:8265 to submit as a Ray job (default: a local Ray)")
    p.add_argument("--no-wait", action="store_true", help="with a job address: submit and return at once")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    return run_main(lambda: dispatch(args, argv), PROG)


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    """``--address http://...``: check what can be checked here, then submit as a Ray job."""
    from awsaa.distributed.jobs import is_job_address, submit

    if is_job_address(args.address):
        check_locally(args)
        return submit(PROG, argv, args.address, wait=not args.no_wait)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
