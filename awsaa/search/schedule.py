"""One loop's trajectories as worker calls: a state machine, with no Ray in it.

A loop's M trajectories become calls: ``run`` (whole trajectories: one per call with the
fine-tune reward, several with ``workers.per_call`` or the density reward), or, with
``workers.spread_eval``, one ``train`` per trajectory and then one ``eval`` per epoch, which
any free worker may take. Whoever runs the calls (the Ray scheduler in
:mod:`awsaa.distributed.search`, or a test) asks :meth:`LoopSchedule.next_call` for the next
one while it has a free worker, and reports each call's outcome:

* :meth:`~LoopSchedule.done`: its result (``run``: the trajectories' results; ``train``: its
  record and one weights handle per epoch; ``eval``: ``{"acc", "call"}``);
* :meth:`~LoopSchedule.worker_died`: the call runs again as it was (not the trajectories'
  fault: a dead process or node);
* :meth:`~LoopSchedule.weights_lost`: an ``eval`` whose weights died with their node; its
  trajectory trains again, without counting that against its rerun;
* :meth:`~LoopSchedule.failed`: the call raised (a non-finite loss, ...): each trajectory of it
  runs once more on its own, and after ``max_attempts`` in all is recorded as failed.

A trajectory is never counted twice, and the outcome of a call that belongs to a training
since redone is dropped. Each outcome returns the line to log, if any. The loop is over when
:attr:`~LoopSchedule.finished`; :meth:`~LoopSchedule.outcome` gives the results in
trajectory order and the failures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from awsaa.policy import Policy
from awsaa.search.stages import finetune_reward
from awsaa.search.state import policy_hash

CallKind = Literal["run", "train", "eval"]


# ----------------------------------------------------------------------------- what a call returns
# One place for the records a worker's call returns (the workers, the in-process executor and
# the tests' fake workers build them here): a call's own record, a whole trajectory's result,
# a training's record, a validation pass's record.


def call_record(what: CallKind, started: float, ended: float, busy: float, pid: int, node: str) -> dict[str, Any]:
    """What one call did, for the trajectory's history: ``run``, ``train`` or ``eval``, when,
    how long inside the fine-tune clock, and where."""
    return {"what": what, "started": started, "ended": ended, "busy": busy, "pid": pid, "node": node}


def trajectory_result(loop: int, traj: int, policy: Policy, r: Any, call: dict[str, Any]) -> dict[str, Any]:
    """A whole trajectory's result as the state records it: ``r`` a
    :class:`~awsaa.search.stages.FinetuneResult`, ``call`` its :func:`call_record`."""
    return {"traj": traj, "loop": loop, "reward": r.reward, "val_accs": r.val_accs, "counts": r.counts,
            "sampling_hash": policy_hash(policy), "finetune_seconds": r.seconds, "images": r.images,
            **{k: call[k] for k in ("started", "ended", "pid", "node")}, "calls": [call]}


def training_record(loop: int, traj: int, policy: Policy, counts: Any, images: int,
                    call: dict[str, Any]) -> dict[str, Any]:
    """A fine-tune's training (``workers.spread_eval``), before its validation passes."""
    return {"traj": traj, "loop": loop, "counts": counts, "sampling_hash": policy_hash(policy), "images": images,
            "call": call}


def pass_record(acc: float, call: dict[str, Any]) -> dict[str, Any]:
    """One validation pass: its accuracy and its call."""
    return {"acc": acc, "call": call}


@dataclass(frozen=True)
class Call:
    """One worker call: ``kind``, the trajectories it runs, its attempt (from 1), and for an
    ``eval`` the epoch (from 0), the weights handle and the training it belongs to."""

    kind: CallKind
    trajs: tuple[int, ...]
    attempt: int = 1
    epoch: int = 0
    weights: Any = None
    generation: int = 0


class LoopSchedule:
    """The calls of one loop and what each outcome does (module docstring)."""

    def __init__(self, loop: int, trajectories: int, per_call: int = 1, spread: bool = False, epochs: int = 1,
                 top_k: int = 1, max_attempts: int = 2) -> None:
        self.loop, self.epochs, self.top_k, self.max_attempts = loop, epochs, top_k, max_attempts
        order = list(range(trajectories))
        kind: CallKind = "train" if spread else "run"
        self.queue: deque[Call] = deque(Call(kind, tuple(order[i:i + per_call]))
                                        for i in range(0, trajectories, per_call))
        self.in_flight = 0
        self.results: dict[int, dict[str, Any]] = {}
        self.failures: list[dict[str, Any]] = []
        self.trained: dict[int, dict[str, Any]] = {}  # a trained trajectory's record, accuracies, calls
        self.generation = dict.fromkeys(order, 0)

    # ------------------------------------------------------------------ what runs next
    def next_call(self) -> Call | None:
        """The next call to start (the caller has a free worker), or None for now."""
        while self.queue:
            call = self.queue.popleft()
            if not self._stale(call):  # an eval whose training is being redone is dropped
                self.in_flight += 1
                return call
        return None

    @property
    def finished(self) -> bool:
        """Every call has come back and nothing is left to start."""
        return self.in_flight == 0 and not any(not self._stale(c) for c in self.queue)

    def outcome(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the results in trajectory order, the failures)."""
        return [self.results[t] for t in sorted(self.results)], list(self.failures)

    # ------------------------------------------------------------------ outcomes
    def done(self, call: Call, out: Any, weights: Sequence[Any] = ()) -> None:
        """``call`` returned ``out``; a ``train`` also its ``weights`` handles, one per epoch."""
        self._back(call)
        if self._stale(call):
            return
        if call.kind == "run":
            for r in out:
                self.results.setdefault(r["traj"], r)  # never count a trajectory twice
        elif call.kind == "train":
            traj = call.trajs[0]
            self.trained[traj] = {"meta": out, "accs": {}, "calls": [out["call"]]}
            self.queue.extend(Call("eval", call.trajs, call.attempt, epoch, w, self.generation[traj])
                              for epoch, w in enumerate(weights))
        else:
            traj = call.trajs[0]
            t = self.trained[traj]
            t["accs"][call.epoch] = out["acc"]
            t["calls"].append(out["call"])
            if len(t["accs"]) == self.epochs and traj not in self.results:
                self.results[traj] = self._assemble(self.trained.pop(traj))

    def worker_died(self, call: Call) -> str | None:
        """``call``'s worker process or node died: the call runs again (on a new worker)."""
        self._back(call)
        if self._stale(call):
            return None
        self.queue.appendleft(call)
        part = f"'s validation pass {call.epoch + 1}" if call.kind == "eval" else ""
        return (f"loop {self.loop + 1}: a fine-tune worker died; {_what(call.trajs)}{part} "
                f"{'runs' if len(call.trajs) == 1 else 'run'} again on a new worker")

    def weights_lost(self, call: Call) -> str | None:
        """An eval's weights died with their node: its trajectory trains again."""
        self._back(call)
        if self._stale(call):
            return None
        self._retrain(call.trajs[0], call.attempt)
        return f"loop {self.loop + 1}: {_what(call.trajs)}'s weights were lost with their node; it runs again"

    def failed(self, call: Call, error: str) -> str | None:
        """``call`` raised ``error``: its trajectories run once more, each on its own, or count
        as failed after ``max_attempts``."""
        self._back(call)
        if self._stale(call):
            return None
        trajs = call.trajs
        if call.attempt < self.max_attempts:
            if call.kind == "run":
                self.queue.extend(Call("run", (traj,), call.attempt + 1) for traj in trajs)
            else:
                self._retrain(trajs[0], call.attempt + 1)
            return (f"loop {self.loop + 1}: {_what(trajs)} failed ({error}); running "
                    f"{'it' if len(trajs) == 1 else 'each on its own'} once more")
        if call.kind != "run":  # its remaining calls are dropped
            self.generation[trajs[0]] += 1
            self.trained.pop(trajs[0], None)
        self.failures += [{"traj": traj, "error": error} for traj in trajs]
        return (f"loop {self.loop + 1}: {_what(trajs)} failed "
                f"{'twice' if call.attempt == 2 else f'{call.attempt} times'}; "
                f"the loop records {'it' if len(trajs) == 1 else 'them'} as failed")

    # ------------------------------------------------------------------ inside
    def _back(self, call: Call) -> None:
        if self.in_flight < 1:
            raise ValueError(f"an outcome for {call} that was never started")
        self.in_flight -= 1

    def _stale(self, call: Call) -> bool:
        return call.kind == "eval" and call.generation != self.generation[call.trajs[0]]

    def _retrain(self, traj: int, attempt: int) -> None:
        """A spread trajectory starts again from its training."""
        self.generation[traj] += 1
        self.trained.pop(traj, None)
        self.queue.appendleft(Call("train", (traj,), attempt))

    def _assemble(self, t: dict[str, Any]) -> dict[str, Any]:
        """A spread trajectory's result, in the form a whole trajectory's has: its training's
        record (where and when it trained), the accuracies of its validation passes in epoch
        order, the reward from them, and every call it took."""
        accs = [t["accs"][e] for e in range(self.epochs)]
        train, calls = t["calls"][0], t["calls"]
        return {**{k: v for k, v in t["meta"].items() if k != "call"},
                "reward": finetune_reward(accs, self.top_k), "val_accs": accs,
                "finetune_seconds": sum(c["busy"] for c in calls), "started": train["started"],
                "ended": max(c["ended"] for c in calls), "pid": train["pid"], "node": train["node"],
                "calls": calls}


def _what(trajs: tuple[int, ...]) -> str:
    return f"trajectory {trajs[0]}" if len(trajs) == 1 else f"trajectories {', '.join(map(str, trajs))}"
