"""Search throughput for a search config (default: the quick Fashion-MNIST one), on a local Ray.

For 1 and for 2 fine-tune workers it runs a few loops (stage 1 is computed once, outside the
measurement) and reports loops per minute, seconds per loop, and where the workers' time
went (workers x wall time in all), from the start and end time and the fine-tune clock each
trajectory reports:

* fine-tuning: inside ``FineTuner.run`` (training and the validation pass that is the reward);
* start-up: from the start of the run to each worker's first trajectory (actor start, data
  and network built, the shared state received, the first call dispatched);
* hand-off: between two trajectories of one worker in one loop, and a trajectory's own
  bookkeeping outside the fine-tune clock (result back to the driver, next call out);
* waiting: a worker done with its share of a loop while another still fine-tunes;
* update: from a loop's last trajectory to a worker's first of the next (the controller's
  record and save, the agent's update, the next loop's policies asked and saved);
* tail: after the last loop (the controller's summary, the run's end).

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
        from awsaa.distributed.search import load_shared

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
            end = time.time()
            history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
        parts = breakdown(history, start, end, n)
        images = sum(d["images"] for h in history for d in h["details"])
        rows.append((n, end - start, sum(h["wall_seconds"] for h in history) / len(history),
                     60 * len(history) / (end - start), parts, images / (end - start)))
    ray.shutdown()
    print(f"config {args.config}: {cfg.trajectories} trajectories/loop, {cfg.finetune.epochs} fine-tune epochs, "
          f"{args.loops} loops per measurement, {os.cpu_count()} CPU cores, num_cpus {cfg.workers.num_cpus}/worker")
    print(f"{'workers':>7} {'total s':>8} {'s/loop':>7} {'loops/min':>9} {'img/s':>6}  "
          + " ".join(f"{k:>11}" for k in PARTS))
    for n, total, per_loop, lpm, parts, rate in rows:
        worker_time = n * total
        print(f"{n:>7} {total:>8.1f} {per_loop:>7.1f} {lpm:>9.2f} {rate:>6.0f}  "
              + " ".join(f"{parts[k] / worker_time:>11.1%}" for k in PARTS))
    if len(rows) >= 2:
        print(f"speed-up of {rows[-1][0]} workers over {rows[0][0]}: {rows[-1][3] / rows[0][3]:.2f}x loops/min")
    for n, total, *_, parts, _ in rows:
        steady = parts["fine-tuning"] / (n * total - parts["start-up"] - parts["tail"])
        print(f"{n} worker{'s' if n > 1 else ''}: fine-tuning {steady:.1%} of worker time between the first "
              f"trajectory and the last (start-up and tail are paid once a search)")


PARTS = ("fine-tuning", "start-up", "hand-off", "waiting", "update", "tail")


def breakdown(history: list[dict], start: float, end: float, workers: int) -> dict[str, float]:
    """Worker seconds by part (``PARTS``) from each trajectory's ``started``, ``ended``,
    ``finetune_seconds`` and ``pid``; they add up to ``workers x (end - start)``. A worker that
    never ran a trajectory counts as start-up for the whole run."""
    parts = dict.fromkeys(PARTS, 0.0)
    by_pid: dict[int, list[tuple[int, dict]]] = {}
    for h in history:
        for d in h["details"]:
            by_pid.setdefault(d["pid"], []).append((h["loop"], d))
    loop_end = {h["loop"]: max(d["ended"] for d in h["details"]) for h in history}
    for runs in by_pid.values():
        runs.sort(key=lambda r: r[1]["started"])
        parts["start-up"] += runs[0][1]["started"] - start
        for i, (loop, d) in enumerate(runs):
            parts["fine-tuning"] += d["finetune_seconds"]
            parts["hand-off"] += d["ended"] - d["started"] - d["finetune_seconds"]
            nxt = runs[i + 1] if i + 1 < len(runs) else None
            if nxt is not None and nxt[0] == loop:
                parts["hand-off"] += nxt[1]["started"] - d["ended"]
            else:
                parts["waiting"] += loop_end[loop] - d["ended"]
                if nxt is not None:
                    parts["update"] += nxt[1]["started"] - loop_end[loop]
                else:
                    parts["tail"] += end - loop_end[loop]
    parts["start-up"] += (workers - len(by_pid)) * (end - start)
    return parts


if __name__ == "__main__":
    main()
