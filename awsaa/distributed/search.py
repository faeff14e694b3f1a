"""Stage 2 on Ray: a controller actor that owns the agent, fine-tune worker actors, a driver loop.

* The **controller** is a named, detached actor (pinned to the head node when the cluster
  offers the ``awsaa_head`` resource). It holds a :class:`~awsaa.search.state.SearchState`
  and saves it atomically after every loop; a restart reruns ``__init__``, which reloads
  that state. It exports the loop, mean reward, baseline and entropy as Ray metrics (with
  ``nas``, also the architecture distribution's entropy and the found architecture's size).
* Each **fine-tune worker** gets the shared stage-1 state once, through the object store,
  builds its data and network once, and runs one trajectory per call.
* The **driver** (:func:`run_search`) owns a run's life: a new run or a resumed one
  (:func:`new_run`, :func:`resume_run`), the stage-1 cache, the hand-off of the shared
  weights through the object store, the loops (:func:`run_loops`: a scheduler that hands
  each loop's M trajectories to free workers, collects them with ``ray.wait``, runs again on
  a fresh worker any call whose worker died, reruns once a trajectory that failed, and never
  counts a trajectory twice; the controller records the results), and the controller's end.
  ``awsaa-search`` parses, calls these and reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

import torch

from awsaa import faultplan
from awsaa.config import SearchConfig, from_dict, to_dict
from awsaa.distributed.raycluster import has_real_gpus
from awsaa.errors import AWSAAError
from awsaa.policy import Policy
from awsaa.search.registry import AGENTS, BUILT_IN_AGENTS, register_agent
from awsaa.search.runs import SearchRun, execute, stage1_line, trajectory_seeds
from awsaa.search.runs import run_loops as _loops
from awsaa.search.schedule import (
    Call,
    CallKind,
    LoopSchedule,
    call_record,
    pass_record,
    training_record,
    trajectory_result,
)
from awsaa.search.stages import FineTuner, pretrain
from awsaa.search.state import SearchState, policy_hash

# Ray is imported inside the functions that use it (``import ray``, ``from ray.x import y``),
# as everywhere in awsaa.distributed: the command-line tools import this module, and ``--help``
# or a bad argument should not wait for Ray's import.

NAMESPACE = "awsaa"
HEAD_RESOURCE = "awsaa_head"


# ----------------------------------------------------------------------------- actors


def controller_name(run: str) -> str:
    """The Ray actor name of run ``run``'s controller (namespace :data:`NAMESPACE`)."""
    return f"awsaa-controller:{run}"


def worker_name(run: str, index: int) -> str:
    """The Ray actor name of run ``run``'s ``index``-th fine-tune worker (a replacement gets a new index)."""
    return f"awsaa-worker:{run}:{index}"


class _Controller:
    """The search controller (wrapped as a Ray actor by :func:`controller_actor`)."""

    def __init__(self, run_dir: str, agents: dict[str, Any] | None = None) -> None:
        for name, cls in (agents or {}).items():  # the driver's own agents (register_agent), by value
            if name not in AGENTS:
                register_agent(name)(cls)
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
                "arch_entropy": Gauge("awsaa_search_arch_entropy", "NAS + AWS: entropy of the architecture "
                                      "distribution (nats)", tag_keys=tags),
                "arch_block_params": Gauge("awsaa_search_arch_block_params", "NAS + AWS: block parameters of "
                                           "the architecture found so far", tag_keys=tags),
            }
        except Exception:  # metrics are a convenience; never fail the search for them
            self.gauges = {}
        self._publish()

    def _publish(self) -> None:
        h = self.state.history[-1] if self.state.history else None
        values = {"loop": self.state.loops_done, "entropy": self.state.policy().entropy()}
        if h is not None:
            values.update(mean_reward=h["mean_reward"], baseline=h["baseline"])
        if h is not None and "nas" in h:
            values.update(arch_entropy=h["nas"]["arch_entropy"], arch_block_params=h["nas"]["result_block_params"])
        for key, value in values.items():
            if key in self.gauges and value is not None:
                self.gauges[key].set(float(value), tags={"run": self.run})

    def ask(self, loop: int) -> list[dict[str, Any]]:
        """Loop ``loop``'s sampling policies, one per trajectory (saved before they are handed out)."""
        faultplan.point("controller", {"policy_hash": policy_hash(self.state.policy())}, loop=loop)
        return self.state.ask(loop)

    def loops_done(self) -> int:
        return self.state.loops_done

    def record(self, loop: int, trajectories: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]:
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

    def __init__(self, cfg: dict[str, Any], shared: dict[str, Any], threads: int, data: Any = None) -> None:
        torch.set_num_threads(max(1, threads))
        self.tuner = FineTuner(from_dict(SearchConfig, cfg), shared, data=data)

    def _mid(self, loop: int, traj: int) -> Callable[[int], None]:
        def mid(step: int) -> None:  # the fault suite's hooks; no-ops without a plan
            if step == 0:
                faultplan.point("worker", loop=loop, traj=traj, at="mid")

        return mid

    def _record(self, what: CallKind, started: float, busy: float) -> dict[str, Any]:
        import ray

        return call_record(what, started, time.time(), busy, os.getpid(), ray.get_runtime_context().get_node_id()[:8])

    def run(self, loop: int, traj: int, policy: dict[str, Any], seed: int,
            pair_seed: int | None = None) -> dict[str, Any]:
        """One whole trajectory, its reward included."""
        started = time.time()
        pol = Policy.from_dict(policy)
        faultplan.point("worker", loop=loop, traj=traj, at="start")
        r = self.tuner.run(pol, seed, pair_seed=pair_seed, on_batch=self._mid(loop, traj))
        return trajectory_result(loop, traj, pol, r, self._record("run", started, r.seconds))

    def run_many(self, loop: int, items: list[tuple[int, dict[str, Any], int, int | None]]) -> list[dict[str, Any]]:
        """Several trajectories of one loop in one call (``workers.per_call``): for a reward as
        cheap as the density reward, one call per trajectory would be mostly Ray overhead."""
        return [self.run(loop, traj, policy, seed, pair_seed) for traj, policy, seed, pair_seed in items]

    def train(self, loop: int, traj: int, policy: dict[str, Any], seed: int,
              pair_seed: int | None = None) -> tuple[Any, ...]:
        """A fine-tune's training (``workers.spread_eval``): its record, then the weights after
        each epoch as separate return values (so the driver can hand them to any worker's
        :meth:`evaluate` without fetching them)."""
        started = time.time()
        pol = Policy.from_dict(policy)
        faultplan.point("worker", loop=loop, traj=traj, at="start")
        r = self.tuner.train(pol, seed, pair_seed=pair_seed, on_batch=self._mid(loop, traj))
        meta = training_record(loop, traj, pol, r.counts, r.images, self._record("train", started, r.seconds))
        return (meta, *r.snapshots)

    def evaluate(self, loop: int, traj: int, epoch: int, weights: dict[str, Any]) -> dict[str, Any]:
        """One validation pass of trajectory ``traj``'s weights after epoch ``epoch`` (from 0)."""
        started = time.time()
        faultplan.point("worker", loop=loop, traj=traj, at=f"eval{epoch}")
        t0 = time.perf_counter()
        acc = self.tuner.evaluate(weights)
        return pass_record(acc, self._record("eval", started, time.perf_counter() - t0))

    def pid(self) -> int:
        return os.getpid()


def controller_actor(run_dir: Path, name: str):
    """Get or create the run's named, detached controller."""
    import ray

    options: dict[str, Any] = {"name": controller_name(name), "namespace": NAMESPACE, "lifetime": "detached",
                               "get_if_exists": True, "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0}
    if ray.cluster_resources().get(HEAD_RESOURCE):
        options["resources"] = {HEAD_RESOURCE: 0.001}
    own = {n: c for n, c in AGENTS.items() if n not in BUILT_IN_AGENTS}  # registered in this process only
    return ray.remote(_Controller).options(**options).remote(str(run_dir), own)


def worker_actor(cfg: SearchConfig, shared_ref: Any, index: int, name: str, data_ref: Any = None):
    """A fine-tune worker; ``data_ref``: the dataset handed in from Python (else it loads ``cfg.dataset``)."""
    import ray

    w = cfg.workers
    return ray.remote(_Worker).options(
        num_gpus=w.num_gpus, num_cpus=w.num_cpus, name=worker_name(name, index), namespace=NAMESPACE,
    ).remote(to_dict(cfg), shared_ref, max(1, round(w.num_cpus)), data_ref)


def stage1_remote(cfg: SearchConfig, progress: Any = None, data_ref: Any = None):
    """Stage 1 as a Ray task on a worker node (a GPU when the cluster has one); its result is
    the shared state. Its epoch lines go to ``progress`` (a ``ray.util.queue.Queue``) when
    given, else to its stdout (which Ray forwards to the driver, in its own time)."""
    import ray

    gpus = 1 if has_real_gpus() else 0
    if gpus:
        cpus = max(1, round(cfg.workers.num_cpus))
    else:  # a CPU cluster: the largest node, all of it
        cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]] + [1])

    def stage1(cfg_dict: dict[str, Any], threads: int, progress: Any, data: Any) -> dict[str, Any]:
        torch.set_num_threads(threads)
        c = from_dict(SearchConfig, cfg_dict)

        def line(epoch, total, loss, val_acc, seconds):
            text = stage1_line(epoch, total, loss, val_acc, seconds)
            if progress is not None:
                progress.put(text)  # returns once the line is in the queue: before the task's result
            else:
                print(text, flush=True)
            faultplan.point("stage1", epoch=epoch)  # the fault suite's hook; a no-op without a plan

        return pretrain(c, data=data, on_epoch=line)

    return ray.remote(stage1).options(num_gpus=gpus, num_cpus=cpus, max_retries=2).remote(to_dict(cfg), cpus, progress,
                                                                                         data_ref)


def run_stage1(cfg: SearchConfig, log: Callable[[str], None] = print, data_ref: Any = None) -> dict[str, Any]:
    """Stage 1 on the cluster, its epoch lines printed by the driver as they come and all of
    them before this returns (forwarded worker output could arrive after the driver's own
    "stage 1 done")."""
    from ray.util.queue import Queue

    progress = Queue(actor_options={"num_cpus": 0})

    def drain() -> None:
        while True:
            try:
                log(progress.get_nowait())
            except Empty:
                return

    try:
        shared = wait_get(stage1_remote(cfg, progress, data_ref), every=drain)
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
    import ray

    while not ray.wait([ref], timeout=1.0)[0]:
        if every is not None:
            every()
    return ray.get(ref)


class _Scheduler:
    """Which trajectory runs where: the worker actors of a run, each loop's calls
    (:class:`~awsaa.search.schedule.LoopSchedule`, which decides what runs next and what an
    outcome does) handed to free workers, and a dead worker replaced.

    With the fine-tune reward and ``workers.spread_eval`` (the default) a trajectory is a
    ``train`` call and one ``eval`` call per epoch, each taken by whichever worker is free
    (trainings first): a loop then waits for its slowest worker by at most one validation
    pass instead of one trajectory. Otherwise a call runs ``workers.per_call`` whole
    trajectories (one with the fine-tune reward; with the density reward a loop's
    trajectories split evenly across the workers)."""

    def __init__(self, cfg: SearchConfig, name: str, shared_ref: Any, log: Callable[[str], None],
                 max_attempts: int, data_ref: Any = None) -> None:
        self.cfg, self.name, self.shared_ref, self.log, self.max_attempts = cfg, name, shared_ref, log, max_attempts
        self.data_ref = data_ref
        n = cfg.workers.count or cfg.trajectories
        self.workers = [worker_actor(cfg, shared_ref, i, name, data_ref) for i in range(n)]
        self.spawned = n
        self.spread = cfg.reward == "finetune" and cfg.workers.spread_eval
        self.per_call = 1 if self.spread else (
            cfg.workers.per_call or (1 if cfg.reward == "finetune" else -(-cfg.trajectories // n)))

    def _start(self, w: int, loop: int, call: Call, policies: list[dict[str, Any]]) -> list[Any]:
        """Start ``call`` on worker ``w``; its refs, the one to wait on first (a training's
        record; the others are each epoch's weights)."""
        worker, cfg = self.workers[w], self.cfg
        if call.kind == "eval":
            return [worker.evaluate.remote(loop, call.trajs[0], call.epoch, call.weights)]
        items = [(traj, policies[traj], *trajectory_seeds(cfg, loop, traj)) for traj in call.trajs]
        if call.kind == "train":
            return worker.train.options(num_returns=1 + cfg.finetune.epochs).remote(loop, *items[0])
        return [worker.run_many.remote(loop, items)]

    def run_loop(self, loop: int, policies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Run loop ``loop``'s trajectories with their sampling ``policies``; returns (results
        in trajectory order, failures)."""
        import ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

        cfg = self.cfg
        plan = LoopSchedule(loop, cfg.trajectories, self.per_call, self.spread, cfg.finetune.epochs,
                            cfg.finetune.reward_top_k, self.max_attempts)
        free = list(range(len(self.workers)))
        pending: dict[Any, tuple[Call, int, list[Any]]] = {}  # ref waited on -> (call, worker, all its refs)
        while not plan.finished:
            while free and (call := plan.next_call()) is not None:
                w = free.pop(0)
                refs = self._start(w, loop, call, policies)
                pending[refs[0]] = (call, w, refs)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # 1 s steps: signals get through
            for ref in ready:
                call, w, refs = pending.pop(ref)
                free.append(w)
                try:
                    out = ray.get(ref)
                except RayActorError as e:
                    if e.actor_init_failed:  # our __init__ raised (bad data, config): it would every time
                        raise AWSAAError(f"a fine-tune worker could not start: {_last_line(e)}") from None
                    # the worker process or its node died: not the trajectories' fault
                    self.workers[w] = worker_actor(cfg, self.shared_ref, self.spawned, self.name, self.data_ref)
                    self.spawned += 1
                    self._say(plan.worker_died(call))
                except ObjectLostError:  # an eval's weights died with their node
                    self._say(plan.weights_lost(call))
                except RayTaskError as e:  # our code raised (e.g. a non-finite loss)
                    self._say(plan.failed(call, _last_line(e)))
                else:
                    plan.done(call, out, refs[1:])
        return plan.outcome()

    def _say(self, line: str | None) -> None:
        if line is not None:
            self.log(line)

    def close(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w)
        self.workers = []


def _last_line(err: BaseException) -> str:
    """The error itself, without Ray's traceback or the exception's module-qualified class name."""
    err = getattr(err, "cause", None) or err
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[-1] if lines else type(err).__name__
    return re.sub(r"^(?:[A-Za-z_][\w.]*\.)?AWSAAError: ", "", line)[:300]


# ----------------------------------------------------------------------------- the driver


def stop_controller(name: str) -> None:
    """Stop run ``name``'s detached controller; ``--resume`` starts a new one from the saved state."""
    import ray

    with contextlib.suppress(Exception):
        ray.kill(ray.get_actor(controller_name(name), namespace=NAMESPACE), no_restart=True)


class RayExecutor:
    """A search's work on the connected Ray cluster (:class:`awsaa.search.runs.Executor`):
    stage 1 as a task (its epoch lines relayed to the driver), the run's state in its detached
    controller actor, the trajectories on fine-tune worker actors (:class:`_Scheduler`). The
    data handed in from Python and the shared weights go to the object store once, put by the
    driver, so they outlive the node that used them. Connect first
    (:func:`awsaa.distributed.raycluster.init_ray`)."""

    def __init__(self, max_attempts: int = 2) -> None:
        self.max_attempts = max_attempts
        self._put: tuple[Any, Any] = (None, None)  # (the dataset handed in, its object ref): put once

    def _data_ref(self, run: SearchRun) -> Any:
        if run.dataset is not None and self._put[0] is not run.dataset:
            import ray

            self._put = (run.dataset, ray.put(run.dataset))
        return self._put[1] if run.dataset is not None else None

    def stage1(self, run: SearchRun, log: Callable[[str], None]) -> dict[str, Any]:
        return run_stage1(run.cfg, log=log, data_ref=self._data_ref(run))

    def open(self, run: SearchRun, shared: dict[str, Any], log: Callable[[str], None]) -> _RaySession:
        import ray

        return _RaySession(run.cfg, run.run_dir, run.name, ray.put(shared), log, self.max_attempts,
                           self._data_ref(run))

    def stop(self, run: SearchRun) -> None:
        stop_controller(run.name)

    def where(self, cfg: SearchConfig) -> str:
        return f"{cfg.workers.count or cfg.trajectories} fine-tune workers"


class _RaySession:
    """One run's loops on Ray: the controller's calls (waited on in 1 s steps, so a stop signal
    gets through) and the scheduler's workers."""

    def __init__(self, cfg: SearchConfig, run_dir: Path, name: str, shared_ref: Any, log: Callable[[str], None],
                 max_attempts: int = 2, data_ref: Any = None) -> None:
        self.controller = controller_actor(run_dir, name)
        self.scheduler = _Scheduler(cfg, name, shared_ref, log, max_attempts, data_ref)

    def loops_done(self) -> int:
        return int(wait_get(self.controller.loops_done.remote()))

    def ask(self, loop: int) -> list[dict[str, Any]]:
        return wait_get(self.controller.ask.remote(loop))

    def run_loop(self, loop: int, policies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                          list[dict[str, Any]]]:
        return self.scheduler.run_loop(loop, policies)

    def record(self, loop: int, results: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]:
        from ray.exceptions import RayTaskError

        try:
            return wait_get(self.controller.record.remote(loop, results, failed, wall_seconds))
        except RayTaskError as e:
            raise AWSAAError(_last_line(e)) from None

    def release_workers(self) -> None:
        self.scheduler.close()

    def finish(self) -> dict[str, Any]:
        import ray

        summary = wait_get(self.controller.finish.remote())
        self.scheduler.close()
        ray.kill(self.controller)
        return summary


def run_loops(cfg: SearchConfig, run_dir: Path, name: str, shared_ref: Any, log: Callable[[str], None] = print,
              max_attempts: int = 2, data_ref: Any = None) -> dict[str, Any]:
    """The remaining loops of the run in ``run_dir`` on Ray, from weights already in the
    object store (the fault suite's fake workers and the search benchmark start here)."""
    return _loops(cfg, _RaySession(cfg, run_dir, name, shared_ref, log, max_attempts, data_ref), log)


def run_search(run: SearchRun, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``run`` to its last loop on the connected Ray cluster (:func:`awsaa.search.runs.execute`
    with a :class:`RayExecutor`); returns the state's summary."""
    return execute(run, RayExecutor(), log)
