"""Stage 2 on Ray: a controller actor that owns the agent, fine-tune worker actors, a driver loop.

* The **controller** is a named, detached actor (pinned to the head node when the cluster
  offers the ``awsaa_head`` resource). It holds a :class:`~awsaa.search.state.SearchState`
  and saves it atomically after every loop; a restart reruns ``__init__``, which reloads
  that state. It exports the loop, mean reward, baseline and entropy as Ray metrics.
* Each **fine-tune worker** gets the shared stage-1 state once, through the object store,
  builds its data and network once, and runs one trajectory per call.
* The **driver** hands each loop's M trajectories to free workers, collects them with
  ``ray.wait``, runs again on a fresh worker any trajectory whose worker died, reruns once a
  trajectory that failed (e.g. a non-finite loss), and never counts a trajectory twice.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from awsaa import faultplan
from awsaa.config import SearchConfig, from_dict, to_dict

NAMESPACE = "awsaa"
HEAD_RESOURCE = "awsaa_head"


def _ray():
    import ray

    return ray


# ----------------------------------------------------------------------------- actors


class _Controller:
    """The search controller (wrapped as a Ray actor by :func:`controller_actor`)."""

    def __init__(self, run_dir: str) -> None:
        from awsaa.search.state import SearchState

        self.state = SearchState.load(Path(run_dir))
        self.run = Path(run_dir).name
        try:
            from ray.util.metrics import Gauge

            tags = ("run",)
            self.gauges = {
                "loop": Gauge("awsaa_search_loop", "loops done", tag_keys=tags),
                "mean_reward": Gauge("awsaa_search_mean_reward", "mean reward of the last loop", tag_keys=tags),
                "baseline": Gauge("awsaa_search_baseline", "the agent's reward baseline", tag_keys=tags),
                "entropy": Gauge("awsaa_search_entropy", "entropy of the policy (nats)", tag_keys=tags),
            }
        except Exception:  # metrics are a convenience; never fail the search for them
            self.gauges = {}
        self._publish()

    def _publish(self) -> None:
        h = self.state.history[-1] if self.state.history else None
        values = {"loop": self.state.loops_done, "entropy": self.state.policy().entropy()}
        if h is not None:
            values.update(mean_reward=h["mean_reward"], baseline=h["baseline"])
        for key, value in values.items():
            if key in self.gauges and value is not None:
                self.gauges[key].set(float(value), tags={"run": self.run})

    def ask(self, loop: int) -> list[dict[str, Any]]:
        """Loop ``loop``'s sampling policies, one per trajectory (saved before they are handed out)."""
        from awsaa.search.state import policy_hash

        faultplan.point("controller", {"policy_hash": policy_hash(self.state.policy())}, loop=loop)
        return self.state.ask(loop)

    def loops_done(self) -> int:
        return self.state.loops_done

    def record(self, loop: int, trajectories: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]:
        from awsaa.errors import AWSAAError
        from awsaa.search.state import SearchState

        try:
            entry = self.state.record(loop, trajectories, failed, wall_seconds)
        except OSError as e:  # disk full, storage gone: the files still hold the last good loop
            run_dir = self.state.run_dir
            self.state = SearchState.load(run_dir)  # forget the unsaved update too
            raise AWSAAError(f"cannot save the search state in {run_dir}: {e.strerror or e}; the run is saved "
                             f"after loop {self.state.loops_done}, continue with --resume once that is fixed") from None
        self._publish()
        return entry

    def finish(self) -> dict[str, Any]:
        self.state.plots()
        return {"loops_done": self.state.loops_done, "best": self.state.best, "rule": self.state.rule}

    def pid(self) -> int:
        return os.getpid()


class _Worker:
    """A fine-tune worker (wrapped as a Ray actor by :func:`worker_actor`)."""

    def __init__(self, cfg: dict[str, Any], shared: dict[str, Any], threads: int) -> None:
        import torch

        from awsaa.search.stages import FineTuner

        torch.set_num_threads(max(1, threads))
        self.tuner = FineTuner(from_dict(SearchConfig, cfg), shared)

    def run(self, loop: int, traj: int, policy: dict[str, Any], seed: int,
            pair_seed: int | None = None) -> dict[str, Any]:
        from awsaa.policy import Policy
        from awsaa.search.state import policy_hash

        started = time.time()
        pol = Policy.from_dict(policy)
        faultplan.point("worker", loop=loop, traj=traj, at="start")
        def mid(step: int) -> None:  # the fault suite's hooks; no-ops without a plan
            if step == 0:
                faultplan.point("worker", loop=loop, traj=traj, at="mid")

        r = self.tuner.run(pol, seed, pair_seed=pair_seed, on_batch=mid)
        return {"traj": traj, "loop": loop, "reward": r.reward, "val_accs": r.val_accs, "counts": r.counts,
                "sampling_hash": policy_hash(pol),
                "finetune_seconds": r.seconds, "images": r.images, "started": started, "ended": time.time(),
                "pid": os.getpid(), "node": _ray().get_runtime_context().get_node_id()[:8]}

    def pid(self) -> int:
        return os.getpid()


def controller_actor(run_dir: Path, name: str):
    """Get or create the run's named, detached controller."""
    ray = _ray()
    options: dict[str, Any] = {"name": f"awsaa-controller:{name}", "namespace": NAMESPACE, "lifetime": "detached",
                               "get_if_exists": True, "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0}
    if ray.cluster_resources().get(HEAD_RESOURCE):
        options["resources"] = {HEAD_RESOURCE: 0.001}
    return ray.remote(_Controller).options(**options).remote(str(run_dir))


def worker_actor(cfg: SearchConfig, shared_ref: Any, index: int, name: str):
    ray = _ray()
    w = cfg.workers
    return ray.remote(_Worker).options(
        num_gpus=w.num_gpus, num_cpus=w.num_cpus, name=f"awsaa-worker:{name}:{index}", namespace=NAMESPACE,
    ).remote(to_dict(cfg), shared_ref, max(1, round(w.num_cpus)))


def stage1_remote(cfg: SearchConfig, progress: Any = None):
    """Stage 1 as a Ray task on a worker node (a GPU when the cluster has one); its result is
    the shared state. Its epoch lines go to ``progress`` (a ``ray.util.queue.Queue``) when
    given, else to its stdout (which Ray forwards to the driver, in its own time)."""
    ray = _ray()
    from awsaa.distributed.raycluster import has_real_gpus

    gpus = 1 if has_real_gpus() else 0
    if gpus:
        cpus = max(1, round(cfg.workers.num_cpus))
    else:  # a CPU cluster: the largest node, all of it
        cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]] + [1])

    def stage1(cfg_dict: dict[str, Any], threads: int, progress: Any) -> dict[str, Any]:
        import torch

        from awsaa.search.stages import pretrain

        torch.set_num_threads(threads)
        c = from_dict(SearchConfig, cfg_dict)

        def line(epoch, total, loss, val_acc, seconds):
            text = f"stage 1: epoch {epoch}/{total}  loss {loss:.4f}  val acc {val_acc:.2f}%  ({seconds:.1f} s)"
            if progress is not None:
                progress.put(text)  # returns once the line is in the queue: before the task's result
            else:
                print(text, flush=True)
            faultplan.point("stage1", epoch=epoch)  # the fault suite's hook; a no-op without a plan

        return pretrain(c, on_epoch=line)

    return ray.remote(stage1).options(num_gpus=gpus, num_cpus=cpus, max_retries=2).remote(to_dict(cfg), cpus, progress)


def run_stage1(cfg: SearchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Stage 1 on the cluster, its epoch lines printed by the driver as they come and all of
    them before this returns (forwarded worker output could arrive after the driver's own
    "stage 1 done")."""
    from queue import Empty

    from ray.util.queue import Queue

    progress = Queue(actor_options={"num_cpus": 0})

    def drain() -> None:
        while True:
            try:
                log(progress.get_nowait())
            except Empty:
                return

    try:
        shared = wait_get(stage1_remote(cfg, progress), every=drain)
        drain()
        return shared
    finally:
        progress.shutdown()


# ----------------------------------------------------------------------------- the loop


def wait_get(ref: Any, every: Callable[[], None] | None = None) -> Any:
    """``ray.get(ref)``, but waiting in 1 s steps: Python runs its signal handlers between
    them, so SIGTERM / Ctrl-C stop the driver promptly even while stage 1 or a long
    controller call is running (a plain ``ray.get`` can hold them off until it returns).
    ``every`` is called after each step."""
    ray = _ray()
    while not ray.wait([ref], timeout=1.0)[0]:
        if every is not None:
            every()
    return ray.get(ref)


def trajectory_seeds(cfg: SearchConfig, loop: int, traj: int) -> tuple[int, int | None]:
    """(seed of data order, crops, flips, Cutout and signs; seed of the pair draws or None
    when they come from the first). With common random numbers every trajectory of a loop
    shares the first and only the pair draws differ."""
    own = cfg.seed * 1_000_003 + loop * 1009 + traj
    if cfg.finetune.common_random_numbers:
        return cfg.seed * 1_000_003 + loop * 1009 + 997, own
    return own, None


def _fmt_eta(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_loops(cfg: SearchConfig, run_dir: Path, name: str, shared_ref: Any,
              log: Callable[[str], None] = print, max_attempts: int = 2) -> dict[str, Any]:
    """Run the remaining loops of the search in ``run_dir``; returns the controller's summary."""
    ray = _ray()
    from ray.exceptions import RayActorError, RayTaskError

    from awsaa.errors import AWSAAError

    controller = controller_actor(run_dir, name)
    n_workers = cfg.workers.count or cfg.trajectories
    workers = [worker_actor(cfg, shared_ref, i, name) for i in range(n_workers)]
    spawned = n_workers
    start = wait_get(controller.loops_done.remote())
    loop_seconds: deque[float] = deque(maxlen=5)
    for loop in range(start, cfg.loops):
        t0 = time.time()
        policies = wait_get(controller.ask.remote(loop))
        queue = deque((traj, 1) for traj in range(cfg.trajectories))
        free = list(range(len(workers)))
        pending: dict[Any, tuple[int, int, int]] = {}
        results: dict[int, dict[str, Any]] = {}
        failed: list[dict[str, Any]] = []
        while queue or pending:
            while queue and free:
                traj, attempt = queue.popleft()
                w = free.pop(0)
                seed, pair_seed = trajectory_seeds(cfg, loop, traj)
                ref = workers[w].run.remote(loop, traj, policies[traj], seed, pair_seed)
                pending[ref] = (traj, attempt, w)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # 1 s steps: signals get through
            for ref in ready:
                traj, attempt, w = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except RayActorError as e:
                    if e.actor_init_failed:  # our __init__ raised (bad data, config): it would every time
                        raise AWSAAError(f"a fine-tune worker could not start: {_last_line(e)}") from None
                    # the worker process or its node died: not the trajectory's fault
                    workers[w] = worker_actor(cfg, shared_ref, spawned, name)
                    spawned += 1
                    queue.appendleft((traj, attempt))
                    log(f"loop {loop + 1}: a fine-tune worker died; trajectory {traj} runs again on a new worker")
                except RayTaskError as e:  # our code raised (e.g. a non-finite loss): rerun once
                    if attempt < max_attempts:
                        queue.append((traj, attempt + 1))
                        log(f"loop {loop + 1}: trajectory {traj} failed ({_last_line(e)}); running it once more")
                    else:
                        failed.append({"traj": traj, "error": _last_line(e)})
                        log(f"loop {loop + 1}: trajectory {traj} failed twice; the loop records it as failed")
                else:
                    if traj not in results:  # never count a trajectory twice
                        results[traj] = out
                free.append(w)
        wall = time.time() - t0
        try:
            entry = wait_get(controller.record.remote(loop, [results[t] for t in sorted(results)], failed, wall))
        except RayTaskError as e:
            raise AWSAAError(_last_line(e)) from None
        loop_seconds.append(wall)
        eta = (cfg.loops - loop - 1) * sum(loop_seconds) / len(loop_seconds)
        mean = f"{entry['mean_reward']:.2f}" if entry["mean_reward"] is not None else "  -  "
        spread = ""
        if len(entry["rewards"]) > 1:
            spread = f" ({min(entry['rewards']):.2f}-{max(entry['rewards']):.2f})"
        log(f"loop {loop + 1:>3}/{cfg.loops}  mean reward {mean}{spread}  baseline {entry['baseline']:.2f}  "
            f"entropy {entry['entropy']:.3f}  from uniform {entry['kl_uniform']:.3f}  KL {entry['kl']:.4f}  "
            f"steps {entry['inner_steps']}  {wall:.1f} s  ETA {_fmt_eta(eta)}")
    summary = wait_get(controller.finish.remote())
    for w in workers:
        ray.kill(w)
    ray.kill(controller)
    return summary


def _last_line(err: BaseException) -> str:
    """The error itself, without Ray's traceback or the exception's module-qualified class name."""
    err = getattr(err, "cause", None) or err
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[-1] if lines else type(err).__name__
    return re.sub(r"^(?:[A-Za-z_][\w.]*\.)?AWSAAError: ", "", line)[:300]
