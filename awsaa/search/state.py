"""A search run on disk: the controller's state, saved after every loop, and its exports.

Run directory::
    run.json              what this is (format, version, name, config and stage-1 hashes)
    config.yaml           the resolved search config
    state.pt              the source of truth: agent state, loops done, history, the result
                          tracker, and the sampling policies of the loop in flight
    history.jsonl         one JSON line per loop (rewards, baseline, entropy, KL, inner steps,
                          top pairs, each trajectory's sampling policy, wall time), exported
                          from state.pt
    policy.json           the search's result under the config's ``result`` rule
                          (awsaa.search.result): the paper's best loop for PPO, the average
                          of the last updates for ES
    policy_last.json      the policy after the last update
    arch.json             NAS + AWS (``nas``): the architecture found (awsaa.arch), the most
                          probable one within the budget after the last update
    policy_heatmap.png    the result's 36 x 36 probabilities
    reward_curve.png      mean reward and baseline per loop

Every file is written atomically, ``state.pt`` first; the exports are rebuilt from it, so a
crash between two writes leaves a consistent run that ``--resume`` continues.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from awsaa.arch import Arch
from awsaa.augment.space import SearchSpace
from awsaa.config import SearchConfig, config_hash, from_dict, parse_yaml, to_dict
from awsaa.errors import AWSAAError
from awsaa.fileio import atomic_write_json, atomic_write_text, parse_json, read_text, same_version
from awsaa.latency import LatencyTable
from awsaa.plots import plot_policy, plot_rewards
from awsaa.policy import Policy, as_policy
from awsaa.search.agents import UpdateRefused
from awsaa.search.arch_agent import ArchAgent
from awsaa.search.registry import make_agent
from awsaa.search.report import op_mass
from awsaa.search.result import ResultTracker, resolve
from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

RUN_FORMAT = "awsaa.search-run"
RUN_VERSION = 2  # 2: ask/tell agents, per-trajectory sampling policies, result rules
FIXED_POLICY = "fixed_policy.json"  # nas.policy: the run's own copy of the policy it fixes


def policy_hash(policy: Policy) -> str:
    """Identifies a policy's exact parameters (or probabilities): equal hashes, equal agents."""
    h = hashlib.sha256()
    parts = [policy.params["first"], policy.params["second"]] if policy.params else [policy.probs()]
    for t in parts:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _top_pairs(policy: Policy, k: int = 5) -> list[dict[str, Any]]:
    return [{"pair": [policy.space.names[i], policy.space.names[j]], "p": round(p, 6)} for i, j, p in policy.top(k)]


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (a diverged trajectory's accuracy, say) as None, so
    history.jsonl is strict JSON (no NaN or Infinity tokens, which JSON does not have)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _identity(info: dict[str, Any], cfg: SearchConfig) -> dict[str, Any]:
    """What names one run: its name, creation time and config hash (from run.json) and seed."""
    return {"name": info.get("name"), "created": info.get("created"), "config_hash": info.get("config_hash"),
            "seed": cfg.seed}


def _check_identity(path: Path, saved: Any, expected: dict[str, Any]) -> None:
    """Refuse, naming what differs, a state.pt that was not saved by this run."""
    if not isinstance(saved, dict):
        raise AWSAAError(f"controller state {path} carries no run identity (saved by an older awsaa, or not by "
                         f"this run); start a new run")
    if saved.get("name") != expected["name"] or saved.get("created") != expected["created"]:
        raise AWSAAError(f"controller state {path} belongs to run {saved.get('name')!r} (created "
                         f"{_when(saved.get('created'))}), not to this run {expected['name']!r} (created "
                         f"{_when(expected['created'])}): was it copied from another run?")
    if saved.get("config_hash") != expected["config_hash"]:
        raise AWSAAError(f"the run's config was changed after the run started: {path} was saved under config hash "
                         f"{saved.get('config_hash')}, run.json and config.yaml now give {expected['config_hash']}")
    if saved.get("seed") != expected["seed"]:
        raise AWSAAError(f"config.yaml was changed after the run started: {path} was saved with seed "
                         f"{saved.get('seed')!r}, config.yaml now says {expected['seed']!r}")


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if isinstance(t, int | float) else "at an unknown time"


class SearchState:
    """The agent, the history and the best loop of one search; persisted in ``run_dir``."""

    def __init__(self, run_dir: Path, cfg: SearchConfig, latency: LatencyTable | None = None,
                 fixed_policy: Policy | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.space = SearchSpace.default()
        self.agent = make_agent(cfg.agent, self.space, cfg.agent_config, seed=cfg.seed)
        # NAS + AWS: the architecture distribution, learned from the same rewards; a latency
        # table is the run's own copy (latency.json, written when the run was created)
        if cfg.nas is not None and cfg.nas.latency_table is not None and latency is None:
            latency = LatencyTable.load(self.run_dir / "latency.json")
        self.arch_agent = ArchAgent(cfg.nas, seed=cfg.seed, latency=latency) if cfg.nas is not None else None
        # nas.policy (policy then architecture): every fine-tune runs under this policy, the run's
        # own copy (fixed_policy.json); policy() hands it out with a meta of its own
        if cfg.nas is not None and cfg.nas.policy is not None and fixed_policy is None:
            fixed_policy = as_policy(self.run_dir / FIXED_POLICY, self.space)
        self.fixed_policy = fixed_policy
        self.rule = resolve(cfg.result, cfg.agent)
        self.result = ResultTracker(self.rule, cfg.result_loops)
        self.history: list[dict[str, Any]] = []
        # The sampling policies handed out for the loop in flight: asked once, saved, so a
        # rerun trajectory (lost worker, restarted controller, --resume) gets the same one.
        self.pending: dict[str, Any] | None = None
        # What ties state.pt to this run (set from run.json by create and load): a state.pt
        # copied from another run, or a run.json / config.yaml edited under it, is refused.
        self.identity: dict[str, Any] = {}
        self.data: dict[str, Any] | None = None  # the data's facts (run.json), carried into each policy's meta

    @property
    def best(self) -> dict[str, Any] | None:
        """The loop with the highest mean reward (``loop``, ``mean_reward``), whatever the rule."""
        b = self.result.best
        return None if b is None else {"loop": b["loop"], "mean_reward": b["mean_reward"]}

    # ------------------------------------------------------------------ creation / loading
    @classmethod
    def create(cls, run_dir: Path, cfg: SearchConfig, info: dict[str, Any],
               latency: LatencyTable | None = None, fixed_policy: Policy | None = None) -> SearchState:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if latency is not None:
            latency.save(run_dir / "latency.json")
        if fixed_policy is not None:
            fixed_policy.save(run_dir / FIXED_POLICY)
            info = {**info, "fixed_policy_hash": policy_hash(fixed_policy)}
        state = cls(run_dir, cfg, latency, fixed_policy)
        record = {"format": RUN_FORMAT, "version": RUN_VERSION, "config_hash": config_hash(cfg), **info}
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        atomic_write_json(run_dir / "run.json", record)
        state.identity = _identity(record, cfg)
        state.data = info.get("data")
        state.save()
        return state

    @staticmethod
    def read_run(run_dir: Path) -> tuple[dict[str, Any], SearchConfig]:
        """``run.json`` and the config of an existing run, or a one-line error."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise AWSAAError(f"run directory {run_dir} does not exist")
        try:
            text = read_text(run_dir / "run.json", "run record")
        except AWSAAError:
            raise AWSAAError(f"{run_dir} is not an awsaa search run (no readable run.json)") from None
        info = parse_json(text, f"{run_dir / 'run.json'}")
        if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
            raise AWSAAError(f"{run_dir} is not an awsaa search run (run.json has no \"format\": \"{RUN_FORMAT}\")")
        if not same_version(info.get("version"), RUN_VERSION):
            raise AWSAAError(f"search run {run_dir} has version {info.get('version')!r}; "
                             f"this awsaa reads {RUN_VERSION}")
        try:
            data = parse_yaml(read_text(run_dir / "config.yaml", "config"), "config.yaml")
        except AWSAAError as e:
            raise AWSAAError(f"search run {run_dir}: config.yaml is unreadable: {e}") from None
        # The hash of the file's content as written, not of the config with today's defaults:
        # a newer awsaa that adds a config key (with a default) still resumes an older run.
        if config_hash(data if isinstance(data, dict) else {}) != info.get("config_hash"):
            raise AWSAAError(f"search run {run_dir}: config.yaml was changed after the run started")
        return info, from_dict(SearchConfig, data)

    @classmethod
    def load(cls, run_dir: Path) -> SearchState:
        info, cfg = cls.read_run(run_dir)
        state = cls(run_dir, cfg)
        path = Path(run_dir) / "state.pt"
        if state.fixed_policy is not None and policy_hash(state.fixed_policy) != info.get("fixed_policy_hash"):
            raise AWSAAError(f"{Path(run_dir) / FIXED_POLICY} is not the policy the run started with "
                             f"(hash {policy_hash(state.fixed_policy)}, run.json records "
                             f"{info.get('fixed_policy_hash')}): was it edited?")
        raw = load_checkpoint(path, kind="search-state")
        state.identity = _identity(info, cfg)
        state.data = info.get("data")
        _check_identity(path, raw.get("identity"), state.identity)
        try:
            state.agent.load_state_dict(raw["agent"])
            state.history = list(raw["history"])
            state.result.load_state_dict(raw["result"])
            state.pending = raw["pending"]
            if state.arch_agent is not None:
                state.arch_agent.load_state_dict(raw["arch_agent"])
                if state.arch_agent.loops_done != state.agent.loops_done:
                    raise ValueError(f"the architecture agent has {state.arch_agent.loops_done} loops, the policy "
                                     f"agent {state.agent.loops_done}")
            if len(state.history) != state.agent.loops_done:
                raise ValueError(f"{len(state.history)} history entries for {state.agent.loops_done} loops")
        except (KeyError, TypeError, ValueError, RuntimeError, AWSAAError) as e:
            raise AWSAAError(f"controller state {path} is corrupt: {' '.join(str(e).split())[:200]}") from None
        return state

    # ------------------------------------------------------------------ the loop
    @property
    def loops_done(self) -> int:
        return self.agent.loops_done

    def policy(self, meta: dict[str, Any] | None = None) -> Policy:
        """The agent's current policy (with ``nas.policy``, the fixed one)."""
        meta = {"loop": self.loops_done + 1} if meta is None else meta
        if self.fixed_policy is not None:
            return Policy(self.space, self.fixed_policy.probs(), self.fixed_policy.params, meta)
        return self.agent.policy(meta)

    def ask(self, loop: int) -> list[dict[str, Any]]:
        """The sampling policies (as dicts) of loop ``loop``'s trajectories, in trajectory order.
        Asked from the agent once and saved before any trajectory runs."""
        if loop != self.loops_done:
            raise AWSAAError(f"policies asked for loop {loop}, but the next loop is {self.loops_done}")
        if self.pending is None or self.pending["loop"] != loop:
            if self.arch_agent is None:
                policies = self.agent.ask(self.cfg.trajectories)
                self.pending = {"loop": loop, "policies": [p.to_dict() for p in policies]}
            else:
                self.pending = self._ask_grid(loop)
            self.save()
        return self.pending["policies"]

    def _ask_grid(self, loop: int) -> dict[str, Any]:
        """NAS + AWS: ``nas.archs`` architectures x P sampling policies, trajectory ``a * P + p``
        the fine-tune of architecture ``a`` under policy ``p`` (each policy carries its
        trajectory's architecture in its meta). With ``nas.learn: arch`` the P policies are the
        agent's current one, unperturbed."""
        assert self.arch_agent is not None and self.cfg.nas is not None
        per = self.cfg.policies_per_loop()
        policies = self.agent.ask(per) if self.cfg.nas.learn != "arch" else [self.policy({})] * per
        archs = self.arch_agent.ask(self.cfg.nas.archs)
        grid = []
        for arch in archs:
            for pol in policies:
                d = pol.to_dict()
                d["meta"] = {**d.get("meta", {}), "arch": list(arch.ops)}
                grid.append(d)
        return {"loop": loop, "policies": grid, "archs": [list(a.ops) for a in archs], "per_arch": per}

    def _control(self, loop: int, rewards: list[float], stream: int = 0) -> list[float]:
        """What an agent hears under the config's null control (``stream`` 1: the architecture
        agent's, shuffled or noised apart from the policy agent's)."""
        if self.cfg.control == "none" or not rewards:
            return rewards
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + loop + 17 + 7919 * stream)
        if self.cfg.control == "shuffle":
            return [rewards[i] for i in torch.randperm(len(rewards), generator=g).tolist()]
        mean = sum(rewards) / len(rewards)
        return [mean + self.cfg.control_noise_sd * float(torch.randn((), generator=g)) for _ in rewards]

    def record(self, loop: int, trajectories: list[dict[str, Any]], failed: list[dict[str, Any]],
               wall_seconds: float) -> dict[str, Any]:
        """Tell the agent loop ``loop``'s trajectories (each: ``traj``, ``reward``, ``counts``
        (K, K), ``val_accs``, ...), save, and return the history entry. A loop that is already
        recorded returns its entry unchanged: a reward is never counted twice."""
        if loop < self.loops_done:
            return self.history[loop]
        if loop != self.loops_done:
            raise AWSAAError(f"loop {loop} recorded out of order (next is {self.loops_done})")
        sampling = self.ask(loop)
        good = sorted((t for t in trajectories if math.isfinite(float(t["reward"]))), key=lambda t: t["traj"])
        bad = failed + [{"traj": t["traj"], "error": f"non-finite reward {t['reward']}"}
                        for t in trajectories if not math.isfinite(float(t["reward"]))]
        used = self.policy()
        before = self.agent.params()
        rewards = [float(t["reward"]) for t in good]
        details = []
        for t in good:
            pol = Policy.from_dict(sampling[t["traj"]])
            asked = policy_hash(pol)
            if t.get("sampling_hash", asked) != asked:  # a worker reports what it sampled from
                raise AWSAAError(f"loop {loop + 1}, trajectory {t['traj']} ran with sampling policy "
                                 f"{t['sampling_hash']}, not the {asked} it was given")
            details.append({**{k: v for k, v in t.items() if k != "counts"}, "sampling_hash": asked,
                            "sampling_op_mass": [round(float(x), 6) for x in op_mass(pol)]})
            if "arch" in pol.meta:
                details[-1]["arch"] = pol.meta["arch"]
        entry: dict[str, Any] = {"loop": loop + 1, "trajectories": len(good), "failed": bad, "rewards": rewards,
                                 "entropy_before": used.entropy(), "policy_hash": policy_hash(used),
                                 "top_pairs": _top_pairs(used), "wall_seconds": wall_seconds, "time": time.time(),
                                 "details": details}
        told = self._told(good)
        refused, stats, heard = None, None, None
        if good and told is not None:
            heard = self._control(loop, told[0])
            try:
                stats = self.agent.tell(heard, told[1], told[2])
            except UpdateRefused as e:  # the agent is as it was; the loop is recorded as failed
                refused = str(e)
        if good and refused is None:
            mean = sum(rewards) / len(rewards)
            if stats is not None:
                entry.update(mean_reward=mean, baseline=stats.baseline, advantages=stats.advantages,
                             kl=stats.kl, inner_steps=stats.inner_steps, entropy=stats.entropy, lr=stats.lr)
                if told is not None and heard is not told[0]:
                    entry["agent_rewards"] = heard
                self.result.observe(loop + 1, before, self.agent.params(), mean)
            else:  # nas.learn: arch: the policy hears nothing and stays as it is
                self.agent.skip()
                base = self.agent.baseline if self.agent.baseline is not None else mean
                entry.update(mean_reward=mean, baseline=base, advantages=[], kl=0.0, inner_steps=0,
                             entropy=used.entropy(), lr=None)
                self.result.observe(loop + 1, before, before, mean)
        else:  # every trajectory failed, or the update was refused: the agent is unchanged, the loop counts
            self.agent.skip()
            entry.update(mean_reward=None, baseline=self.agent.baseline, advantages=[], kl=0.0, inner_steps=0,
                         entropy=used.entropy(), lr=None)
            if refused is not None:
                entry["update_refused"] = refused
            self.result.observe(loop + 1, before, before, None)
        if self.arch_agent is not None:
            entry["nas"] = self._tell_arch(loop, good if refused is None else [])
        entry["kl_uniform"] = max(0.0, math.log(self.space.num_pairs) - entry["entropy"])
        self.pending = None
        entry = _finite(entry)
        self.history.append(entry)
        self.save()
        if refused is not None:
            raise AWSAAError(f"loop {loop + 1}: {refused}; the loop is recorded as failed and the run saved "
                             f"after it: fix the cause, then continue with --resume")
        return entry

    def _grid(self, good: list[dict[str, Any]]) -> tuple[dict[tuple[int, int], dict[str, Any]],
                                                        list[float | None], list[float | None]]:
        """NAS + AWS: the loop's results by (architecture, policy), and each architecture's and
        each policy's mean reward (its main effect in the grid; None where none came back)."""
        assert self.pending is not None
        per, n_arch = int(self.pending["per_arch"]), len(self.pending["archs"])
        cells = {(t["traj"] // per, t["traj"] % per): t for t in good}

        def mean(ts: list[dict[str, Any]]) -> float | None:
            return sum(float(t["reward"]) for t in ts) / len(ts) if ts else None

        rows = [mean([cells[a, p] for p in range(per) if (a, p) in cells]) for a in range(n_arch)]
        cols = [mean([cells[a, p] for a in range(n_arch) if (a, p) in cells]) for p in range(per)]
        return cells, rows, cols

    def _told(self, good: list[dict[str, Any]]) -> tuple[list[float], list[Any], list[int]] | None:
        """What the policy agent hears: (rewards, pair counts, which of the asked policies).
        Without ``nas``, every trajectory's. With it, each policy's reward is its mean over the
        loop's architectures (the policy's main effect in the grid; the counts are summed);
        None when ``nas.learn: arch`` (the policy learns nothing)."""
        if self.arch_agent is None:
            return [float(t["reward"]) for t in good], [t["counts"] for t in good], [t["traj"] for t in good]
        assert self.cfg.nas is not None and self.pending is not None
        if self.cfg.nas.learn == "arch":
            return None
        cells, _, cols = self._grid(good)
        which = [p for p, c in enumerate(cols) if c is not None]
        counts = [sum(t["counts"] for (_, q), t in cells.items() if q == p) for p in which]
        return [c for c in cols if c is not None], counts, which

    def _tell_arch(self, loop: int, good: list[dict[str, Any]]) -> dict[str, Any]:
        """NAS + AWS: tell the architecture agent each architecture's mean reward over the loop's
        policies (its main effect in the grid), unless ``nas.learn: policy``; returns the
        history's ``nas`` entry: the architectures, both sets of main effects, and their spread
        beside the interaction's (a complete grid: reward = mean + architecture + policy +
        residual)."""
        assert self.arch_agent is not None and self.cfg.nas is not None and self.pending is not None
        cells, rows, cols = self._grid(good)
        n_arch, per = len(rows), len(cols)
        archs = [Arch(tuple(a)) for a in self.pending["archs"]]
        present = [a for a in range(n_arch) if rows[a] is not None]
        out: dict[str, Any] = {"archs": [a.describe() for a in archs], "block_params": [a.block_params for a in archs],
                               "arch_rewards": rows, "policy_rewards": cols, "effects": None}
        if len(cells) == n_arch * per:
            grand = sum(float(t["reward"]) for t in cells.values()) / len(cells)
            resid = [float(cells[a, p]["reward"]) - (rows[a] or 0.0) - (cols[p] or 0.0) + grand
                     for a in range(n_arch) for p in range(per)]
            rms = lambda xs: math.sqrt(sum(x * x for x in xs) / len(xs))  # noqa: E731
            out["effects"] = {"arch_sd": rms([(r or 0.0) - grand for r in rows]),
                              "policy_sd": rms([(c or 0.0) - grand for c in cols]), "residual_sd": rms(resid)}
        if present and self.cfg.nas.learn != "policy":
            heard = self._control(loop, [float(rows[a] or 0.0) for a in present], stream=1)
            stats = self.arch_agent.tell(heard, [archs[a] for a in present])
            out.update(arch_baseline=stats["baseline"], arch_kl=stats["kl"])
            if self.cfg.control != "none":
                out["arch_agent_rewards"] = heard
        else:
            self.arch_agent.skip()
        best = self.arch_agent.best()
        out.update(arch_entropy=self.arch_agent.entropy(), result_arch=best.describe(),
                   result_block_params=best.block_params)
        if self.arch_agent.latency is not None:
            out["result_latency_ms"] = round(self.arch_agent.latency.predict(best), 4)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        save_checkpoint(self.run_dir / "state.pt", {"kind": "search-state", "identity": self.identity,
                                                    "agent": self.agent.state_dict(),
                                                    "history": self.history, "result": self.result.state_dict(),
                                                    "pending": self.pending,
                                                    **({"arch_agent": self.arch_agent.state_dict()}
                                                       if self.arch_agent is not None else {})})
        self.export()

    def result_policy(self) -> Policy | None:
        """The search's result under its rule (None before any loop produced a reward)."""
        b = self.result.best
        if self.rule == "best_loop":
            if b is None:
                return None
            meta = {"run": self.run_dir.name, "rule": self.rule, "loop": b["loop"], "mean_reward": b["mean_reward"],
                    "note": "the policy used in the loop with the highest mean reward (before its update)"}
        else:
            if not self.result.recent:
                return None
            n = len(self.result.recent)
            meta = {"run": self.run_dir.name, "rule": self.rule, "after_loop": self.loops_done,
                    "note": "the policy after the last update" if self.rule == "final" else
                    f"the mean of the parameters after the last {n} updates"}
        if self.fixed_policy is not None:
            return self.policy({**meta, "note": f"the fixed policy every fine-tune ran under (nas.policy, a copy in "
                                                f"{FIXED_POLICY})", **self._provenance()})
        return self.result.policy(self.agent, {**meta, **self._provenance()})

    def _provenance(self) -> dict[str, Any]:
        """What a policy file carries about where it came from: the run's config hash and seed,
        and its data's facts (classes, statistics, fill), which awsaa-train reuses."""
        out: dict[str, Any] = {"config_hash": self.identity.get("config_hash"), "seed": self.cfg.seed,
                               "dataset": self.cfg.dataset}
        if self.data is not None:
            out["data"] = self.data
        return out

    def export(self, only: list[str] | None = None) -> None:
        """Write history.jsonl, policy_last.json and policy.json from the state (``only``: those)."""
        d = self.run_dir
        if only is None or "history.jsonl" in only:
            atomic_write_text(d / "history.jsonl", "".join(json.dumps(h, allow_nan=False) + "\n"
                                                           for h in self.history))
        if only is None or "policy_last.json" in only:
            self.policy({"run": d.name, "after_loop": self.loops_done, **self._provenance()}).save(
                d / "policy_last.json")
        if only is None or "policy.json" in only:
            result = self.result_policy()
            if result is not None:
                result.save(d / "policy.json")
        if only is None or "arch.json" in only:
            arch = self.result_arch()
            if arch is not None:
                arch.save(d / "arch.json")

    def result_arch(self) -> Arch | None:
        """NAS + AWS: the architecture found, the most probable one within the budget after the
        last update (None without ``nas``, before the first loop, or when only the policy learns)."""
        a = self.arch_agent
        if a is None or self.loops_done == 0 or a.cfg.learn == "policy":
            return None
        best = a.best()
        meta: dict[str, Any] = {"run": self.run_dir.name, "after_loop": self.loops_done,
                                "block_params": best.block_params, "max_block_params": a.cfg.max_block_params,
                                "note": "the most probable architecture within the budget after the last update",
                                **self._provenance()}
        if a.latency is not None:
            meta.update(latency_ms=round(a.latency.predict(best), 4), max_latency_ms=a.cfg.max_latency_ms,
                        latency_table={"device": a.latency.device, "batch_size": a.latency.batch_size,
                                       "error": a.latency.error})
        if self.data is not None:
            meta["params"] = best.param_count(self.data["num_classes"], self.data["channels"])
        return Arch(best.ops, meta)

    def restore_exports(self) -> list[str]:
        """Rebuild, from state.pt, the exported files that are missing or unreadable (a removed
        policy.json, say); the others are left as they are. Returns the names rebuilt."""
        bad = self.missing_exports()
        if bad:
            self.export(only=bad)
        return bad

    def missing_exports(self) -> list[str]:
        """The exported files that are missing, unreadable or not what state.pt holds."""
        bad = []
        names = ["history.jsonl", "policy_last.json", "policy.json"]
        if self.result_arch() is not None:
            names.append("arch.json")
        for name in names:
            f = self.run_dir / name
            try:
                if name == "arch.json":
                    Arch.load(f)
                elif name.endswith(".json"):
                    Policy.load(f)
                else:
                    lines = read_text(f, "history").splitlines()
                    if [json.loads(x) for x in lines] != json.loads(json.dumps(self.history)):
                        raise ValueError("history.jsonl is not the state's history")
            except (AWSAAError, ValueError):
                bad.append(name)
        return bad

    def plots(self) -> None:
        """The heatmap of the result and the reward curve (matplotlib; called at the end)."""
        result = self.result_policy()
        if result is not None:
            plot_policy(result, self.run_dir / "policy_heatmap.png", title=f"{self.run_dir.name}: {self.rule} result")
        if self.history:
            plot_rewards(self.history, self.run_dir / "reward_curve.png", title=self.run_dir.name)


