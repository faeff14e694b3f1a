"""A search from Python: :func:`run` takes a config and returns a :class:`SearchResult`.

The algorithm, top to bottom: a run is new or resumed (:func:`new_run`, :func:`resume_run`:
its directory, its data checked, stage 1 from a checkpoint or its cache), stage 1 trains the
shared weights when needed (:meth:`Executor.stage1`), then each loop asks the agent for its
trajectories' sampling policies, runs them (:meth:`Session.run_loop`), and records their
rewards (the agent hears them, and the state is saved), until the last loop. No Ray here: an
:class:`Executor` says where the work runs. :class:`InProcess` (the default: a notebook, a
test, a laptop) runs it in this process, one trajectory after another; the Ray executor
(:class:`awsaa.distributed.search.RayExecutor`, what ``awsaa-search`` uses) runs stage 1 as a
task, the trajectories on worker actors, and keeps the state in a detached controller actor.

    from awsaa.search import run
    result = run("configs/search/demo_digits.yaml", storage="runs/search", name="mine")
    print(result.verdict)
    result.policy.save("mine.json")            # or train with it: awsaa-train --aug mine.json
    [r.mean_reward for r in result.loops]
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from awsaa.arch import Arch, is_arch_file
from awsaa.augment.space import SearchSpace
from awsaa.config import SearchConfig, config_hash, load
from awsaa.data import Dataset, content_hash, is_handed_in, is_own
from awsaa.data.datasets import ensure_dataset, facts
from awsaa.errors import AWSAAError
from awsaa.fileio import claim_dir, ensure_writable_dir, release_dir
from awsaa.latency import LatencyTable
from awsaa.policy import Policy, as_policy
from awsaa.search import report
from awsaa.search.arch_agent import ArchAgent
from awsaa.search.registry import check_agent
from awsaa.search.schedule import LoopSchedule, call_record, trajectory_result
from awsaa.search.stages import FineTuner, pretrain, stage1_hash
from awsaa.search.state import SearchState
from awsaa.signals import Interrupted, as_interrupted
from awsaa.train.checkpoint import load_checkpoint, save_checkpoint
from awsaa.train.trainer import check_split, data_options

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- the run


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
    latency: LatencyTable | None = None  # NAS + AWS: the latency table a new run copies (latency.json)
    fixed_policy: Policy | None = None  # NAS + AWS, nas.policy: the policy a new run copies (fixed_policy.json)


def stage1_cache(storage: Path, name: str) -> Path:
    """Where a search storage keeps the stage-1 checkpoint ``name``; its runs share the folder."""
    return storage / "pretrained" / name


def load_shared(path: Path, cfg: SearchConfig) -> dict[str, Any]:
    """A stage-1 checkpoint, refused (one line) unless it was made by this stage-1 config."""
    state = load_checkpoint(path, kind="shared")
    expected = stage1_hash(cfg)
    if state.get("stage1_hash") != expected:
        raise AWSAAError(f"pretrained checkpoint {path} was made by a different stage-1 config "
                         f"(hash {state.get('stage1_hash')}, this config's is {expected})")
    return state


def new_run(cfg: SearchConfig, storage: Path, name: str, pretrained: Path | None = None,
            check_data: bool = True, download: bool = False, log: Log = print,
            data: Dataset | None = None) -> SearchRun:
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
    if is_arch_file(cfg.model):  # and an architecture file by its own (a resume from elsewhere too)
        cfg = dataclasses.replace(cfg, model=str(Path(cfg.model).expanduser().resolve()))
    _check_handed_in(cfg, data)
    latency = None
    if cfg.nas is not None and cfg.nas.latency_table is not None:
        table = Path(cfg.nas.latency_table).expanduser().resolve()
        nas = dataclasses.replace(cfg.nas, latency_table=str(table))
        cfg = dataclasses.replace(cfg, nas=nas)
        latency = LatencyTable.load(table)
        ArchAgent(nas, latency=latency)  # refuses a budget that admits no architecture
    fixed = None
    if cfg.nas is not None and cfg.nas.policy is not None:  # policy then architecture
        source = Path(cfg.nas.policy).expanduser().resolve()
        cfg = dataclasses.replace(cfg, nas=dataclasses.replace(cfg.nas, policy=str(source)))
        fixed = as_policy(source, SearchSpace.default())
    recorded = None
    if data is not None:
        check_split(cfg, data)
        recorded = facts(data, cfg.fill)
    elif check_data:  # a missing dataset (or bad own data) fails here, before any work
        root, ds = ensure_dataset(cfg.dataset, cfg.dataroot, download, data_options(cfg), log=log)
        cfg = dataclasses.replace(cfg, dataroot=root)
        check_split(cfg, ds)
        recorded = facts(ds, cfg.fill)
    if latency is not None and recorded is not None:
        shape = (recorded["image_size"], recorded["channels"], recorded["num_classes"])
        if (latency.image_size, latency.channels, latency.num_classes) != shape:
            raise AWSAAError(f"latency table {table} was measured for {latency.shape()}; this "
                             f"data has {shape[0]}x{shape[0]}x{shape[1]} images, {shape[2]} classes: measure one "
                             f"with awsaa-latency --image-size {shape[0]} --channels {shape[1]} --classes {shape[2]}")
    # data handed in from Python is known by its content, not its name
    suffix = f"-{content_hash(data)}" if data is not None else ""
    cache = stage1_cache(storage, f"{stage1_hash(cfg)}{suffix}.pt")
    shared = None
    if pretrained is not None:
        cache = pretrained
        shared = load_shared(cache, cfg)
    elif cache.exists():
        shared = load_shared(cache, cfg)
        log(f"reusing the stage-1 weights of {cache} (same stage-1 config)")
    return SearchRun(cfg, run_dir, name, cache, shared, resume=False, data=recorded, dataset=data, latency=latency,
                     fixed_policy=fixed)


def resume_run(run_dir: Path, given: SearchConfig | None = None, given_name: str = "the config",
               log: Log = print, data: Dataset | None = None) -> SearchRun:
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
    recorded = Path(info["pretrained"])
    # a storage moved or copied elsewhere: its own stage-1 cache, under the same name; stage 1
    # trained again goes there too, not back to where the run once lived
    cache = recorded if recorded.exists() else stage1_cache(run_dir.parent, recorded.name)
    shared = load_shared(cache, cfg) if cache.exists() else None
    if shared is not None and cache != recorded:
        log(f"stage 1's weights: {cache} (run.json names {recorded}, which is not there)")
    log(f"resuming {run_dir} at loop {state.loops_done + 1} of {cfg.loops}")
    return SearchRun(cfg, run_dir, run_dir.name, cache, shared, resume=True, dataset=data)


def _check_handed_in(cfg: SearchConfig, data: Dataset | None) -> None:
    """Data handed in from Python goes with ``dataset: python:NAME``, and that name with it."""
    if is_handed_in(cfg.dataset) and data is None:
        raise AWSAAError(f"dataset {cfg.dataset} is data handed in from Python: pass it again as data=...")
    if data is not None and not is_handed_in(cfg.dataset):
        raise AWSAAError(f"data was handed in from Python, but the config names dataset {cfg.dataset!r}; "
                         f"set dataset: python:NAME")


# ----------------------------------------------------------------------------- where it runs


class Session(Protocol):
    """A run's loops on an executor: who holds the state, who runs the trajectories."""

    def loops_done(self) -> int: ...

    def ask(self, loop: int) -> list[dict[str, Any]]: ...

    def run_loop(self, loop: int, policies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                          list[dict[str, Any]]]: ...

    def record(self, loop: int, results: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]: ...

    def release_workers(self) -> None: ...

    def finish(self) -> dict[str, Any]: ...


class Executor(Protocol):
    """Where a search's work runs: stage 1, and the loops of a run (:class:`Session`, whose
    ``release_workers`` frees the workers once the last loop's trajectories are in). ``stop``
    ends what would go on writing the run after the driver stops (a detached controller)."""

    def stage1(self, run: SearchRun, log: Log) -> dict[str, Any]: ...

    def open(self, run: SearchRun, shared: dict[str, Any], log: Log) -> Session: ...

    def stop(self, run: SearchRun) -> None: ...

    def where(self, cfg: SearchConfig) -> str: ...


def trajectory_seeds(cfg: SearchConfig, loop: int, traj: int) -> tuple[int, int | None]:
    """(seed of data order, crops, flips, Cutout and signs; seed of the pair draws or None
    when they come from the first). With common random numbers every trajectory of a loop
    shares the first and only the pair draws differ."""
    own = cfg.seed * 1_000_003 + loop * 1009 + traj
    if cfg.finetune.common_random_numbers:
        return cfg.seed * 1_000_003 + loop * 1009 + 997, own
    return own, None


def stage1_line(epoch: int, total: int, loss: float, val_acc: float, seconds: float) -> str:
    return f"stage 1: epoch {epoch}/{total}  loss {loss:.4f}  val acc {val_acc:.2f}%  ({seconds:.1f} s)"


class InProcess:
    """Everything in this process, one trajectory after another: stage 1, the fine-tunes
    (each call of the loop's schedule run as it comes; a trajectory that raises runs once more,
    then counts as failed) and the state. For a notebook, a test, a laptop without a cluster.
    A fine-tune runs with a Ray worker's thread count, so the rewards, and the policy found,
    are those the Ray executor gets from the same stage 1 (tests/test_search_cli.py)."""

    def stage1(self, run: SearchRun, log: Log) -> dict[str, Any]:
        return pretrain(run.cfg, data=run.dataset, on_epoch=lambda *a: log(stage1_line(*a)))

    def open(self, run: SearchRun, shared: dict[str, Any], log: Log) -> Session:
        return _InProcessSession(run, shared, log)

    def stop(self, run: SearchRun) -> None:
        """Nothing goes on after this process stops."""

    def where(self, cfg: SearchConfig) -> str:
        return "one trajectory at a time in this process"


class _InProcessSession:
    def __init__(self, run: SearchRun, shared: dict[str, Any], log: Log) -> None:
        self.state = SearchState.load(run.run_dir)
        self.cfg, self.log = run.cfg, log
        self.tuner = FineTuner(run.cfg, shared, data=run.dataset)

    def loops_done(self) -> int:
        return self.state.loops_done

    def ask(self, loop: int) -> list[dict[str, Any]]:
        return self.state.ask(loop)

    def run_loop(self, loop: int, policies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                          list[dict[str, Any]]]:
        # a Ray worker's torch threads (workers.num_cpus): a CPU's sums depend on the thread
        # count, and with the same count a trajectory here computes exactly what it would there
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, round(self.cfg.workers.num_cpus)))
        try:
            return self._run_loop(loop, policies)
        finally:
            torch.set_num_threads(threads)

    def _run_loop(self, loop: int, policies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                            list[dict[str, Any]]]:
        plan = LoopSchedule(loop, self.cfg.trajectories, per_call=1)
        while (call := plan.next_call()) is not None:
            traj = call.trajs[0]
            pol = Policy.from_dict(policies[traj])
            started = time.time()
            try:
                r = self.tuner.run(pol, *trajectory_seeds(self.cfg, loop, traj))
            except Exception as e:  # as a worker's call that raised (on Ray: a RayTaskError)
                line = plan.failed(call, str(e).splitlines()[0][:300] if str(e) else type(e).__name__)
                if line is not None:
                    self.log(line)
                continue
            done = call_record("run", started, time.time(), r.seconds, os.getpid(), "local")
            plan.done(call, [trajectory_result(loop, traj, pol, r, done)])
        return plan.outcome()

    def record(self, loop: int, results: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]:
        return self.state.record(loop, results, failed, wall_seconds)

    def release_workers(self) -> None:
        """No workers to release."""

    def finish(self) -> dict[str, Any]:
        self.state.plots()
        return {"loops_done": self.state.loops_done, "best": self.state.best, "rule": self.state.rule}


# ----------------------------------------------------------------------------- the search


def execute(run: SearchRun, executor: Executor, log: Log = print) -> dict[str, Any]:
    """Run ``run`` to its last loop on ``executor``; returns the state's summary. Creates the
    run's state (a new run), trains and caches stage 1 when needed, then the loops. A stop
    signal stops the executor (nothing writes the run after it) and raises
    :class:`~awsaa.signals.Interrupted` saying where the run stands."""
    cfg = run.cfg
    try:
        if not run.resume:
            SearchState.create(run.run_dir, cfg, {"name": run.name, "stage1_hash": stage1_hash(cfg),
                                                  "pretrained": str(run.cache.resolve()), "created": time.time(),
                                                  "data": run.data}, latency=run.latency,
                               fixed_policy=run.fixed_policy)
            log(f"run {run.run_dir}: {cfg.loops} loops x {cfg.trajectories} trajectories, "
                f"{executor.where(cfg)}, {cfg.model} on {cfg.dataset}")
        shared = run.shared
        if shared is None:
            how = ("under the uniform policy" if cfg.stage1_aug() == "uniform"
                   else "on crop + flip only (the density reward's clean network)")
            log(f"stage 1: training the shared weights {how} "
                f"({cfg.pretrain.stop_epoch or cfg.pretrain.epochs} of {cfg.pretrain.epochs} epochs)")
            shared = executor.stage1(run, log)
            log(f"stage 1 done: val acc {shared['val_acc']:.2f}%, fine-tune LR {shared['lr']:.5g}; "
                + cache_stage1(run.cache, shared))
            if "op_counts" in shared:
                log(op_count_line(shared["op_counts"]))
        if "arch_logits" in shared:
            start_from_stage1(run.run_dir, shared, log)
        return run_loops(cfg, executor.open(run, shared, log), log)
    except BaseException as e:
        stop = as_interrupted(e)
        if stop is None:
            raise
        executor.stop(run)
        raise Interrupted(stop.signum, where_it_stands(run.run_dir, cfg)) from None


def run_loops(cfg: SearchConfig, session: Session, log: Log = print) -> dict[str, Any]:
    """The remaining loops: each loop's sampling policies asked, its trajectories run, their
    results recorded (the agent hears them; the state is saved); a line per loop."""
    loop_seconds: deque[float] = deque(maxlen=5)
    released = None
    for loop in range(session.loops_done(), cfg.loops):
        t0 = time.time()
        results, failed = session.run_loop(loop, session.ask(loop))
        wall = time.time() - t0
        if loop == cfg.loops - 1:  # the workers' part is done: give their resources back now,
            session.release_workers()  # not after the last save and plots
            released = time.time()
        entry = session.record(loop, results, failed, wall)
        loop_seconds.append(wall)
        eta = (cfg.loops - loop - 1) * sum(loop_seconds) / len(loop_seconds)
        log(_loop_line(cfg, loop, entry, wall, eta))
    return {**session.finish(), "workers_released": released}


def start_from_stage1(run_dir: Path, shared: dict[str, Any], log: Log) -> None:
    """Gradient-based NAS + AWS: the architecture distribution starts from the logits stage 1
    learned (once, before the first loop; saved before any executor reads the state)."""
    state = SearchState.load(run_dir)
    agent = state.arch_agent
    if agent is None or agent.from_stage1:
        return
    agent.start_from(shared["arch_logits"])
    state.save()
    best = agent.best()
    log(f"stage 1 learned the architecture logits ({shared.get('arch_steps', 0)} steps on validation batches): "
        f"most probable {best.describe()} ({best.ops.count('zero')} zero blocks, {best.block_params:,} block "
        f"parameters); stage 2 starts its distribution there")


def op_count_line(counts: dict[str, list[int]]) -> str:
    """Stage 1 of NAS + AWS: how often each op was trained (the fewest and most over the
    blocks that take it)."""
    parts = []
    for op, per_block in counts.items():
        taken = [c for c in per_block if c] or [0]
        parts.append(f"{op} {min(taken)}-{max(taken)}")
    return "stage 1 trained each op (batches per block, fewest-most): " + ", ".join(parts)


def _loop_line(cfg: SearchConfig, loop: int, entry: dict[str, Any], wall: float, eta: float) -> str:
    mean = f"{entry['mean_reward']:.2f}" if entry["mean_reward"] is not None else "  -  "
    spread = ""
    if len(entry["rewards"]) > 1:
        spread = f" ({min(entry['rewards']):.2f}-{max(entry['rewards']):.2f})"
    return (f"loop {loop + 1:>3}/{cfg.loops}  mean reward {mean}{spread}  baseline {entry['baseline']:.2f}  "
            f"entropy {entry['entropy']:.3f}  from uniform {entry['kl_uniform']:.3f}  KL {entry['kl']:.4f}  "
            f"steps {entry['inner_steps']}  {wall:.1f} s  ETA {_fmt_eta(eta)}" + _nas_part(entry, cfg))


def _nas_part(entry: dict[str, Any], cfg: SearchConfig) -> str:
    nas = entry.get("nas")
    if nas is None or cfg.nas is None:
        return ""
    eff = nas["effects"]
    spread = (f"  effects SD arch {eff['arch_sd']:.3g} policy {eff['policy_sd']:.3g} residual "
              f"{eff['residual_sd']:.3g}") if eff else ""
    if cfg.nas.learn == "policy":  # the architectures stay uniform: no mode to show
        return f"{spread}  architectures drawn uniformly (nas.learn policy)"
    return f"  arch entropy {nas['arch_entropy']:.2f}{spread}  arch {nas['result_arch']}"


def _fmt_eta(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cache_stage1(cache: Path, shared: dict[str, Any]) -> str:
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


def where_it_stands(run_dir: Path, cfg: SearchConfig) -> str:
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


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class LoopRecord:
    """One loop as its history entry records it (``history.jsonl`` has every detail)."""

    loop: int
    mean_reward: float | None
    rewards: list[float]
    baseline: float
    entropy: float
    kl: float
    kl_uniform: float
    inner_steps: int
    wall_seconds: float
    failed: list[dict[str, Any]]
    policy_hash: str

    @classmethod
    def of(cls, entry: dict[str, Any]) -> LoopRecord:
        return cls(**{f.name: entry[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class SearchResult:
    """What a search found: the result ``policy`` (None when no loop produced a reward), each
    loop's record, the agent, the rule that chose the result and the best loop it saw, the
    verdict against a null run, and the run directory (``policy.json``, ``history.jsonl``, the
    plots); with ``nas``, the architecture found (``arch.json``)."""

    policy: Policy | None
    loops: list[LoopRecord]
    agent: str
    rule: str
    best: dict[str, Any] | None
    verdict: str
    run_dir: Path
    arch: Arch | None = None  # NAS + AWS (``nas``): the architecture found (arch.json)


def result_of(run_dir: Path) -> SearchResult:
    """The :class:`SearchResult` of run ``run_dir`` as its saved state has it."""
    state = SearchState.load(run_dir)
    pol = state.result_policy() if (run_dir / "policy.json").exists() else None
    verdict = report.verdict(state, report.kl_from_uniform(pol)) if pol is not None else (
        "verdict: none (no loop produced a reward)")
    arch = Arch.load(run_dir / "arch.json") if (run_dir / "arch.json").exists() else None
    return SearchResult(pol, [LoopRecord.of(e) for e in state.history], state.cfg.agent, state.rule, state.best,
                        verdict, run_dir, arch)


def run(config: SearchConfig | str | os.PathLike | None = None, storage: str | os.PathLike = "runs/search",
        name: str | None = None, *, resume: str | os.PathLike | None = None, data: Dataset | None = None,
        pretrained: str | os.PathLike | None = None, executor: Executor | None = None,
        log: Log = print) -> SearchResult:
    """Search a policy: ``config`` (a :class:`~awsaa.config.SearchConfig` or a YAML path) in
    a new run ``storage/name`` (default: the config's name and the time), or continue the run
    ``resume`` (a config given with it must be the run's); ``data``: a dataset handed in from
    Python (``dataset: python:NAME``). The work
    runs on ``executor`` (default :class:`InProcess`; pass
    :class:`awsaa.distributed.search.RayExecutor` after ``awsaa.distributed.init_ray()`` for a
    cluster). This process holds the run's lock while it runs. Nothing else is changed: no
    signal handlers, no Ray."""
    executor = executor or InProcess()
    given = config if isinstance(config, SearchConfig) or config is None else load(SearchConfig, config)
    if resume is not None:
        run_ = resume_run(Path(resume).expanduser().resolve(), given, str(config), log=log, data=data)
        ensure_writable_dir(run_.run_dir, "run directory")
        claim_dir(run_.run_dir, "run directory", new=False)
    else:
        if given is None:
            raise AWSAAError("give a search config, or a run to continue with resume=")
        stem = Path(config).stem if not isinstance(config, SearchConfig) and config is not None else "search"
        root = Path(storage).expanduser().resolve()
        run_ = new_run(given, root, name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}",
                       Path(pretrained) if pretrained is not None else None, log=log, data=data)
        ensure_writable_dir(root, "storage")
        claim_dir(run_.run_dir, "run directory", new=True)
    try:
        execute(run_, executor, log)
    finally:
        release_dir(run_.run_dir)
    return result_of(run_.run_dir)
