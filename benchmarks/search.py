"""Search throughput for a search config (default: the quick Fashion-MNIST one), on a local Ray.

For 1 and for 2 fine-tune workers it runs a few loops (stage 1 is computed once, outside the
measurement) and reports loops per minute, seconds per loop, and where the workers' time
went (workers x the time from the run's start to their release, in all), from the start and
end time and the fine-tune clock of every worker call the trajectories record:

* fine-tuning: inside the fine-tune clock (training, and the validation passes that are the
  reward: calls of their own with ``workers.spread_eval``);
* start-up: from the start of the run to each worker's first call (actor start, data and
  network built, the shared state received, the first call dispatched);
* hand-off: between two calls of one worker in one loop, and a call's own bookkeeping
  outside the fine-tune clock (weights saved or loaded, result back, next call out);
* waiting: a worker done with its share of a loop while another still fine-tunes;
* update: from a loop's last call to a worker's first of the next (the controller's record
  and save, the agent's update, the next loop's policies asked and saved);
* tail: from the last loop's last call to the workers' release (before the controller's
  last save and plots, which hold no worker).

    .venv/bin/python benchmarks/search.py [-c configs/search/quick_fmnist.yaml] [--loops 3] [--busy-core 0.3]

Results go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", default="configs/search/quick_fmnist.yaml")
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pretrained", help="stage-1 checkpoint of the same config (skips stage 1)")
    ap.add_argument("--busy-core", type=float, default=0.0, metavar="FRACTION",
                    help="a straggler: pin the first two fine-tune workers to cores 0 and 1 and keep core 1 "
                         "busy this fraction of the time with another process (Linux)")
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
        from awsaa.search.runs import load_shared

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
            with busy_core(args.busy_core):
                summary = run_loops(c, run_dir, run_dir.name, shared_ref, log=lambda line: None)
            end = time.time()
            released = summary["workers_released"]  # the workers' time ends when they are given back
            history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
        parts = breakdown(history, start, released, n)
        images = sum(d["images"] for h in history for d in h["details"])
        rows.append((n, end - start, released - start, sum(h["wall_seconds"] for h in history) / len(history),
                     60 * len(history) / (end - start), parts, images / (end - start)))
    ray.shutdown()
    reward = (f"{cfg.finetune.epochs} fine-tune epochs" if cfg.reward == "finetune"
              else f"the density reward, {cfg.density.draws} passes")
    print(f"config {args.config}: {cfg.trajectories} trajectories/loop, {reward}, "
          f"{args.loops} loops per measurement, {os.cpu_count()} CPU cores, num_cpus {cfg.workers.num_cpus}/worker")
    print("worker time: workers x (their release - the run's start); the parts below are shares of it")
    print(f"{'workers':>7} {'total s':>8} {'held s':>7} {'s/loop':>7} {'loops/min':>9} {'img/s':>6}  "
          + " ".join(f"{k:>11}" for k in PARTS))
    for n, total, held, per_loop, lpm, parts, rate in rows:
        print(f"{n:>7} {total:>8.1f} {held:>7.1f} {per_loop:>7.1f} {lpm:>9.2f} {rate:>6.0f}  "
              + " ".join(f"{parts[k] / (n * held):>11.1%}" for k in PARTS))
    if len(rows) >= 2:
        print(f"speed-up of {rows[-1][0]} workers over {rows[0][0]}: {rows[-1][4] / rows[0][4]:.2f}x loops/min")
    for n, _, held, *_, parts, _ in rows:
        steady = parts["fine-tuning"] / (n * held - parts["start-up"] - parts["tail"])
        print(f"{n} worker{'s' if n > 1 else ''}: fine-tuning {steady:.1%} of worker time between the first "
              f"call and the last (start-up and tail are paid once a search)")


@contextlib.contextmanager
def busy_core(fraction: float):
    """While the block runs: once two fine-tune worker processes exist, pin one to core 0 and
    the other to core 1 (every thread), and run a process on core 1 that is busy
    ``fraction`` of every 100 ms, so that one worker runs on a slower core."""
    if fraction <= 0:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", f"""
import os, time
os.sched_setaffinity(0, {{1}})
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < {0.1 * fraction}: pass
    time.sleep({0.1 * (1 - fraction)})
"""])
    done = threading.Event()

    def pin() -> None:
        while not done.is_set():
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and _is_worker(p))
            if len(pids) >= 2:
                for core, pid in zip((0, 1), pids[:2], strict=True):
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        with contextlib.suppress(OSError):
                            os.sched_setaffinity(int(tid), {core})
                return
            time.sleep(0.2)

    threading.Thread(target=pin, daemon=True).start()
    try:
        yield
    finally:
        done.set()
        hog.kill()
        hog.wait()


def _is_worker(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"ray::_Worker")
    except OSError:
        return False


PARTS = ("fine-tuning", "start-up", "hand-off", "waiting", "update", "tail")


def breakdown(history: list[dict], start: float, end: float, workers: int) -> dict[str, float]:
    """Worker seconds by part (``PARTS``) from the calls each trajectory records (``calls``:
    ``started``, ``ended``, ``busy`` (inside the fine-tune clock), ``pid``); they add up to
    ``workers x (end - start)``, ``end`` being when the workers were released. A worker that
    never ran a call counts as start-up for the whole run."""
    parts = dict.fromkeys(PARTS, 0.0)
    by_pid: dict[int, list[tuple[int, dict]]] = {}
    for h in history:
        for d in h["details"]:
            for c in d["calls"]:
                by_pid.setdefault(c["pid"], []).append((h["loop"], c))
    loop_end = {h["loop"]: max(c["ended"] for d in h["details"] for c in d["calls"]) for h in history}
    for runs in by_pid.values():
        runs.sort(key=lambda r: r[1]["started"])
        parts["start-up"] += runs[0][1]["started"] - start
        for i, (loop, c) in enumerate(runs):
            parts["fine-tuning"] += c["busy"]
            parts["hand-off"] += c["ended"] - c["started"] - c["busy"]
            nxt = runs[i + 1] if i + 1 < len(runs) else None
            if nxt is not None and nxt[0] == loop:
                parts["hand-off"] += nxt[1]["started"] - c["ended"]
            else:
                parts["waiting"] += loop_end[loop] - c["ended"]
                if nxt is not None:
                    parts["update"] += nxt[1]["started"] - loop_end[loop]
                else:
                    parts["tail"] += end - loop_end[loop]
    parts["start-up"] += (workers - len(by_pid)) * (end - start)
    return parts


if __name__ == "__main__":
    main()
