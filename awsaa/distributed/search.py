"""Stage 2 on Ray: a controller actor that owns the agent, fine-tune worker actors, a driver loop.

* The **controller** is a named, detached actor (pinned to the head node when the cluster
  offers the ``awsaa_head`` resource). It holds a :class:`~awsaa.search.state.SearchState`
  and saves it atomically after every loop; a restart reruns ``__init__``, which reloads
  that state. It exports the loop, mean reward, baseline and entropy as Ray metrics.
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
import dataclasses
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import torch

from awsaa import faultplan
from awsaa.config import SearchConfig, config_hash, from_dict, to_dict
from awsaa.data import Dataset, content_hash, is_handed_in, is_own
from awsaa.data.datasets import ensure_dataset, facts
from awsaa.distributed.raycluster import has_real_gpus
from awsaa.errors import AWSAAError
from awsaa.fileio import claim_dir
from awsaa.policy import Policy
from awsaa.search.agents import AGENTS, BUILT_IN_AGENTS, check_agent, register_agent
from awsaa.search.schedule import Call, LoopSchedule
from awsaa.search.stages import FineTuner, pretrain, stage1_hash
from awsaa.search.state import SearchState, policy_hash
from awsaa.signals import Interrupted, as_interrupted
from awsaa.train.checkpoint import load_checkpoint, save_checkpoint
from awsaa.train.trainer import check_split, data_options

NAMESPACE = "awsaa"
HEAD_RESOURCE = "awsaa_head"


def _ray():
    """Ray, imported on first use (as are the ``ray.*`` submodules below): the command-line
    tools import this module, and ``--help`` or a bad argument should not wait for Ray."""
    import ray

    return ray


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

    def _record(self, what: str, started: float, busy: float) -> dict[str, Any]:
        """What one call did, for the trajectory's history: ``run``, ``train`` or ``eval``,
        when, how long inside the fine-tune clock, and where."""
        return {"what": what, "started": started, "ended": time.time(), "busy": busy, "pid": os.getpid(),
                "node": _ray().get_runtime_context().get_node_id()[:8]}

    def run(self, loop: int, traj: int, policy: dict[str, Any], seed: int,
            pair_seed: int | None = None) -> dict[str, Any]:
        """One whole trajectory, its reward included."""
        started = time.time()
        pol = Policy.from_dict(policy)
        faultplan.point("worker", loop=loop, traj=traj, at="start")
        r = self.tuner.run(pol, seed, pair_seed=pair_seed, on_batch=self._mid(loop, traj))
        call = self._record("run", started, r.seconds)
        return {"traj": traj, "loop": loop, "reward": r.reward, "val_accs": r.val_accs, "counts": r.counts,
                "sampling_hash": policy_hash(pol), "finetune_seconds": r.seconds, "images": r.images,
                **{k: call[k] for k in ("started", "ended", "pid", "node")}, "calls": [call]}

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
        meta = {"traj": traj, "loop": loop, "counts": r.counts, "sampling_hash": policy_hash(pol),
                "images": r.images, "call": self._record("train", started, r.seconds)}
        return (meta, *r.snapshots)

    def evaluate(self, loop: int, traj: int, epoch: int, weights: dict[str, Any]) -> dict[str, Any]:
        """One validation pass of trajectory ``traj``'s weights after epoch ``epoch`` (from 0)."""
        started = time.time()
        faultplan.point("worker", loop=loop, traj=traj, at=f"eval{epoch}")
        t0 = time.perf_counter()
        acc = self.tuner.evaluate(weights)
        return {"acc": acc, "call": self._record("eval", started, time.perf_counter() - t0)}

    def pid(self) -> int:
        return os.getpid()


def controller_actor(run_dir: Path, name: str):
    """Get or create the run's named, detached controller."""
    ray = _ray()
    options: dict[str, Any] = {"name": controller_name(name), "namespace": NAMESPACE, "lifetime": "detached",
                               "get_if_exists": True, "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0}
    if ray.cluster_resources().get(HEAD_RESOURCE):
        options["resources"] = {HEAD_RESOURCE: 0.001}
    own = {n: c for n, c in AGENTS.items() if n not in BUILT_IN_AGENTS}  # registered in this process only
    return ray.remote(_Controller).options(**options).remote(str(run_dir), own)


def worker_actor(cfg: SearchConfig, shared_ref: Any, index: int, name: str, data_ref: Any = None):
    """A fine-tune worker; ``data_ref``: the dataset handed in from Python (else it loads ``cfg.dataset``)."""
    ray = _ray()
    w = cfg.workers
    return ray.remote(_Worker).options(
        num_gpus=w.num_gpus, num_cpus=w.num_cpus, name=worker_name(name, index), namespace=NAMESPACE,
    ).remote(to_dict(cfg), shared_ref, max(1, round(w.num_cpus)), data_ref)


def stage1_remote(cfg: SearchConfig, progress: Any = None, data_ref: Any = None):
    """Stage 1 as a Ray task on a worker node (a GPU when the cluster has one); its result is
    the shared state. Its epoch lines go to ``progress`` (a ``ray.util.queue.Queue``) when
    given, else to its stdout (which Ray forwards to the driver, in its own time)."""
    ray = _ray()
    gpus = 1 if has_real_gpus() else 0
    if gpus:
        cpus = max(1, round(cfg.workers.num_cpus))
    else:  # a CPU cluster: the largest node, all of it
        cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]] + [1])

    def stage1(cfg_dict: dict[str, Any], threads: int, progress: Any, data: Any) -> dict[str, Any]:
        torch.set_num_threads(threads)
        c = from_dict(SearchConfig, cfg_dict)

        def line(epoch, total, loss, val_acc, seconds):
            text = f"stage 1: epoch {epoch}/{total}  loss {loss:.4f}  val acc {val_acc:.2f}%  ({seconds:.1f} s)"
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
        ray = _ray()
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
        for w in self.workers:
            _ray().kill(w)
        self.workers = []


def run_loops(cfg: SearchConfig, run_dir: Path, name: str, shared_ref: Any,
              log: Callable[[str], None] = print, max_attempts: int = 2, data_ref: Any = None) -> dict[str, Any]:
    """Run the remaining loops of the search in ``run_dir``: each loop's sampling policies from
    the controller, its trajectories through the :class:`_Scheduler`, its results recorded by
    the controller (which tells the agent and saves); returns the controller's summary."""
    from ray.exceptions import RayTaskError

    controller = controller_actor(run_dir, name)
    scheduler = _Scheduler(cfg, name, shared_ref, log, max_attempts, data_ref)
    start = wait_get(controller.loops_done.remote())
    loop_seconds: deque[float] = deque(maxlen=5)
    released = None
    for loop in range(start, cfg.loops):
        t0 = time.time()
        results, failed = scheduler.run_loop(loop, wait_get(controller.ask.remote(loop)))
        wall = time.time() - t0
        if loop == cfg.loops - 1:  # the workers' part is done: give their resources back now,
            scheduler.close()      # not after the controller's last save and plots
            released = time.time()
        try:
            entry = wait_get(controller.record.remote(loop, results, failed, wall))
        except RayTaskError as e:
            raise AWSAAError(_last_line(e)) from None
        loop_seconds.append(wall)
        eta = (cfg.loops - loop - 1) * sum(loop_seconds) / len(loop_seconds)
        log(_loop_line(cfg, loop, entry, wall, eta))
    summary = wait_get(controller.finish.remote())
    scheduler.close()
    _ray().kill(controller)
    return {**summary, "workers_released": released}


def _loop_line(cfg: SearchConfig, loop: int, entry: dict[str, Any], wall: float, eta: float) -> str:
    mean = f"{entry['mean_reward']:.2f}" if entry["mean_reward"] is not None else "  -  "
    spread = ""
    if len(entry["rewards"]) > 1:
        spread = f" ({min(entry['rewards']):.2f}-{max(entry['rewards']):.2f})"
    return (f"loop {loop + 1:>3}/{cfg.loops}  mean reward {mean}{spread}  baseline {entry['baseline']:.2f}  "
            f"entropy {entry['entropy']:.3f}  from uniform {entry['kl_uniform']:.3f}  KL {entry['kl']:.4f}  "
            f"steps {entry['inner_steps']}  {wall:.1f} s  ETA {_fmt_eta(eta)}")


def _last_line(err: BaseException) -> str:
    """The error itself, without Ray's traceback or the exception's module-qualified class name."""
    err = getattr(err, "cause", None) or err
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[-1] if lines else type(err).__name__
    return re.sub(r"^(?:[A-Za-z_][\w.]*\.)?AWSAAError: ", "", line)[:300]


# ----------------------------------------------------------------------------- the driver


def load_shared(path: Path, cfg: SearchConfig) -> dict[str, Any]:
    """A stage-1 checkpoint, refused (one line) unless it was made by this stage-1 config."""
    state = load_checkpoint(path, kind="shared")
    expected = stage1_hash(cfg)
    if state.get("stage1_hash") != expected:
        raise AWSAAError(f"pretrained checkpoint {path} was made by a different stage-1 config "
                         f"(hash {state.get('stage1_hash')}, this config's is {expected})")
    return state


@dataclass
class SearchRun:
    """A search ready to run: its config and directory, and where stage 1 comes from."""

    cfg: SearchConfig
    run_dir: Path
    name: str
    cache: Path  # stage 1's checkpoint: read when ``shared`` is set, else written after stage 1
    shared: dict[str, Any] | None
    resume: bool
    data: dict[str, Any] | None = None  # the data's facts (awsaa.data.datasets.facts), recorded with the run
    dataset: Dataset | None = None  # the data itself, when handed in from Python (``dataset: python:NAME``)


def new_run(cfg: SearchConfig, storage: Path, name: str, pretrained: Path | None = None,
            check_data: bool = True, download: bool = False,
            log: Callable[[str], None] = print, data: Dataset | None = None) -> SearchRun:
    """A new run ``storage/name``: refused when it exists; the dataset checked (or fetched with
    ``download``) unless ``check_data`` is off (a cluster's data lives on the cluster); stage 1
    from ``pretrained``, else from the cache ``storage/pretrained/<stage-1 hash>.pt`` when a
    search with the same stage-1 config made it, else to be trained."""
    check_agent(cfg)
    run_dir = storage / name
    if run_dir.exists():
        raise AWSAAError(f"run directory {run_dir} already exists; choose another --name or --resume it")
    if is_own(cfg.dataset):  # workers run elsewhere: the data by its absolute path
        cfg = dataclasses.replace(cfg, dataset=str(Path(cfg.dataset).expanduser().resolve()))
    _check_handed_in(cfg, data)
    recorded = None
    if data is not None:
        check_split(cfg, data)
        recorded = facts(data, cfg.fill)
    elif check_data:  # a missing dataset (or bad own data) fails here, before any work
        root, ds = ensure_dataset(cfg.dataset, cfg.dataroot, download, data_options(cfg), log=log)
        cfg = dataclasses.replace(cfg, dataroot=root)
        check_split(cfg, ds)
        recorded = facts(ds, cfg.fill)
    # data handed in from Python is known by its content, not its name
    suffix = f"-{content_hash(data)}" if data is not None else ""
    cache = storage / "pretrained" / f"{stage1_hash(cfg)}{suffix}.pt"
    shared = None
    if pretrained is not None:
        cache = pretrained
        shared = load_shared(cache, cfg)
    elif cache.exists():
        shared = load_shared(cache, cfg)
        log(f"reusing the stage-1 weights of {cache} (same stage-1 config)")
    return SearchRun(cfg, run_dir, name, cache, shared, resume=False, data=recorded, dataset=data)


def resume_run(run_dir: Path, given: SearchConfig | None = None, given_name: str = "the config",
               log: Callable[[str], None] = print, data: Dataset | None = None) -> SearchRun:
    """The interrupted run ``run_dir``, at its last finished loop: refused when ``given`` (a
    config named on the command line) differs from the run's, when its state cannot be read,
    or when every loop is done (its exports rebuilt from state.pt if they were lost)."""
    info, cfg = SearchState.read_run(run_dir)
    _check_handed_in(cfg, data)
    if given is not None and config_hash(given) != config_hash(cfg):
        raise AWSAAError(f"config {given_name} differs from the one run {run_dir} was started with; "
                         f"resume without -c, or start a new run")
    state = SearchState.load(run_dir)  # refuses a corrupt state before any work
    if state.loops_done >= cfg.loops:
        rebuilt = state.missing_exports()
        if rebuilt:  # rebuilt from state.pt, as this run's one writer
            try:
                claim_dir(run_dir, "run directory", new=False)
                state.export(only=rebuilt)
            except OSError as e:  # a read-only mount, a full disk: the run is done, only its copies are not
                raise AWSAAError(f"run {run_dir} already finished all {cfg.loops} loops, but {', '.join(rebuilt)} "
                                 f"could not be rebuilt from state.pt there: {e.strerror or e}") from None
        raise AWSAAError(f"run {run_dir} already finished all {cfg.loops} loops; its result is "
                         f"{run_dir / 'policy.json'}"
                         + (f" (rebuilt {', '.join(rebuilt)} from state.pt)" if rebuilt else ""))
    cache = Path(info["pretrained"])
    shared = load_shared(cache, cfg) if cache.exists() else None
    log(f"resuming {run_dir} at loop {state.loops_done + 1} of {cfg.loops}")
    return SearchRun(cfg, run_dir, run_dir.name, cache, shared, resume=True, dataset=data)


def _check_handed_in(cfg: SearchConfig, data: Dataset | None) -> None:
    """Data handed in from Python goes with ``dataset: python:NAME``, and that name with it."""
    if is_handed_in(cfg.dataset) and data is None:
        raise AWSAAError(f"dataset {cfg.dataset} is data handed in from Python: pass it again as data=...")
    if data is not None and not is_handed_in(cfg.dataset):
        raise AWSAAError(f"data was handed in from Python, but the config names dataset {cfg.dataset!r}; "
                         f"set dataset: python:NAME")


def run_search(run: SearchRun, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``run`` on the connected Ray cluster to its last loop; returns the controller's
    summary. Creates the run's state (a new run), trains and caches stage 1 when needed, puts
    the shared weights in the object store (by the driver: they outlive the node that trained
    them), runs the loops, and ends the controller. A stop signal stops the controller, so
    nothing writes the run after it, and raises :class:`~awsaa.signals.Interrupted` saying
    where the run stands."""
    cfg = run.cfg
    try:
        if not run.resume:
            SearchState.create(run.run_dir, cfg, {"name": run.name, "stage1_hash": stage1_hash(cfg),
                                                  "pretrained": str(run.cache.resolve()), "created": time.time(),
                                                  "data": run.data})
            log(f"run {run.run_dir}: {cfg.loops} loops x {cfg.trajectories} trajectories, "
                f"{cfg.workers.count or cfg.trajectories} fine-tune workers, {cfg.model} on {cfg.dataset}")
        shared = run.shared
        data_ref = _ray().put(run.dataset) if run.dataset is not None else None
        if shared is None:
            how = ("under the uniform policy" if cfg.stage1_aug() == "uniform"
                   else "on crop + flip only (the density reward's clean network)")
            log(f"stage 1: training the shared weights {how} "
                f"({cfg.pretrain.stop_epoch or cfg.pretrain.epochs} of {cfg.pretrain.epochs} epochs)")
            shared = run_stage1(cfg, log=log, data_ref=data_ref)
            log(f"stage 1 done: val acc {shared['val_acc']:.2f}%, fine-tune LR {shared['lr']:.5g}; "
                + _cache_stage1(run.cache, shared))
        return run_loops(cfg, run.run_dir, run.name, _ray().put(shared), log=log, data_ref=data_ref)
    except BaseException as e:
        stop = as_interrupted(e)
        if stop is None:
            raise
        stop_controller(run.name)
        raise Interrupted(stop.signum, _where_it_stands(run.run_dir, cfg)) from None


def _cache_stage1(cache: Path, shared: dict[str, Any]) -> str:
    """Save stage 1 to its cache; when the storage refuses (full, read-only, no permission:
    torch reports a full disk as a RuntimeError), the search goes on with the weights in
    memory instead of losing stage 1's work to a traceback. Says which happened."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(cache, shared)
    except (OSError, RuntimeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:200]
        return (f"NOT cached ({why}): the search goes on with the weights in memory; "
                f"a --resume of it trains stage 1 again")
    return f"saved {cache}"


def stop_controller(name: str) -> None:
    """Stop run ``name``'s detached controller; ``--resume`` starts a new one from the saved state."""
    ray = _ray()
    with contextlib.suppress(Exception):
        ray.kill(ray.get_actor(controller_name(name), namespace=NAMESPACE), no_restart=True)


def _where_it_stands(run_dir: Path, cfg: SearchConfig) -> str:
    if not (run_dir / "state.pt").exists():
        return "the run had not started; nothing to continue"
    try:
        done = SearchState.load(run_dir).loops_done  # state.pt is the source of truth
    except AWSAAError:
        return f"the run's state could not be read back; check {run_dir / 'state.pt'}"
    if done >= cfg.loops:  # stopped after its last loop: nothing to continue
        return (f"the run had finished all {cfg.loops} loops; its result is {run_dir / 'policy.json'} "
                f"(awsaa-search --resume {run_dir} rebuilds an export that is missing)")
    return f"the run is saved after loop {done} of {cfg.loops}; continue with: awsaa-search --resume {run_dir}"
