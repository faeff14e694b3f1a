"""Search throughput for a search config (default: the quick Fashion-MNIST one), on a local Ray.

For 1 and for 2 fine-tune workers it runs a few loops (stage 1 is computed once, outside the
measurement) and reports:

* loop throughput (loops per minute) and seconds per loop;
* the share of the workers' time spent fine-tuning (the FineTuner's own clock) against the
  orchestration around it: actor start-up and data loading, receiving the shared state,
  task dispatch and result transfer, and waiting for the slowest trajectory of a loop.

    .venv/bin/python benchmarks/search.py [-c configs/search/quick_fmnist.yaml] [--loops 3]

Results go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", default="configs/search/quick_fmnist.yaml")
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pretrained", help="stage-1 checkpoint of the same config (skips stage 1)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import dataclasses

    import ray

    from awsaa import config as C
    from awsaa.distributed.search import run_loops
    from awsaa.search.stages import pretrain
    from awsaa.search.state import SearchState

    cfg = C.load(C.SearchConfig, args.config)
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.time()
    if args.pretrained:
        from awsaa.cli.search import load_shared

        shared = load_shared(Path(args.pretrained), cfg)
    else:
        shared = pretrain(cfg)
    print(f"stage 1 ({cfg.pretrain.stop_epoch or cfg.pretrain.epochs} epochs, in-process, not measured below): "
          f"{time.time() - t0:.0f} s")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
             object_store_memory=256 * 1024**2)
    shared_ref = ray.put(shared)
    rows = []
    for n in args.workers:
        c = dataclasses.replace(cfg, loops=args.loops, workers=dataclasses.replace(cfg.workers, count=n))
        with tempfile.TemporaryDirectory() as d:
            run_dir = Path(d) / f"bench{n}"
            SearchState.create(run_dir, c, {"name": run_dir.name, "pretrained": "-"})
            start = time.time()
            run_loops(c, run_dir, run_dir.name, shared_ref, log=lambda line: None)
            total = time.time() - start
            history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
        loop_wall = sum(h["wall_seconds"] for h in history)
        finetune = sum(d["finetune_seconds"] for h in history for d in h["details"])
        images = sum(d["images"] for h in history for d in h["details"])
        worker_time = n * total  # every worker exists for the whole run
        rows.append((n, total, loop_wall / len(history), 60 * len(history) / total, finetune / worker_time,
                     images / total))
    ray.shutdown()
    print(f"config {args.config}: {cfg.trajectories} trajectories/loop, {cfg.finetune.epochs} fine-tune epochs, "
          f"{args.loops} loops per measurement, {os.cpu_count()} CPU cores, num_cpus {cfg.workers.num_cpus}/worker")
    print(f"{'workers':>7} {'total s':>8} {'s/loop':>7} {'loops/min':>9} {'fine-tuning':>11} {'orchestration':>13} "
          f"{'img/s':>7}")
    for n, total, per_loop, lpm, share, rate in rows:
        print(f"{n:>7} {total:>8.1f} {per_loop:>7.1f} {lpm:>9.2f} {share:>10.1%} {1 - share:>13.1%} {rate:>7.0f}")
    if len(rows) >= 2:
        print(f"speed-up of {rows[-1][0]} workers over {rows[0][0]}: {rows[-1][3] / rows[0][3]:.2f}x loops/min")


if __name__ == "__main__":
    main()
