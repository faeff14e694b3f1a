"""The fault suite (marker ``faults``): faults injected into small searches and trainings.

Each test counts what it injected into ``FAULTS`` and the loops or epochs a fault cost;
``tests/conftest.py`` prints the totals at the end of the run (RELIABILITY.md quotes them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from fault_accounting import count
from helpers import TINY_NAS, history, tiny_run, tiny_search

from awsaa import Policy, faultplan
from awsaa.cli.search import main as search_main
from awsaa.config import SearchConfig, from_dict
from awsaa.search.schedule import pass_record, training_record, trajectory_result
from awsaa.search.stages import FinetuneResult
from awsaa.search.state import SearchState, policy_hash

pytestmark = pytest.mark.faults

TINY = tiny_search(train_size=400, loops=10, pretrain={"epochs": 2, "stop_epoch": 1},
                   finetune={"epochs": 1, "reward_top_k": 1})
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def write_config(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def assert_every_loop_once(run: Path, loops: int, trajectories: int = 2) -> list[dict]:
    h = history(run)
    assert [e["loop"] for e in h] == list(range(1, loops + 1))
    for e in h:
        assert e["trajectories"] == trajectories and e["failed"] == []
        assert sorted(d["traj"] for d in e["details"]) == list(range(trajectories))  # none twice, none missing
        assert len(e["rewards"]) == trajectories
    return h


def resume_search(run: Path) -> subprocess.CompletedProcess:
    """``awsaa-search --resume RUN`` in a fresh process; it must finish (exit 0)."""
    r = subprocess.run([sys.executable, "-m", "awsaa.cli.search", "--resume", str(run)], env=ENV,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def kill_whole_tree_then_resume(run: Path, held: int, loops: int) -> None:
    """``awsaa-search --resume RUN`` SIGKILLed with the whole local Ray it started while loop
    index ``held`` is in flight (the plan holds a worker at its trajectory 0's start); a second
    ``--resume`` finishes it and the history is continuous (each loop once)."""
    proc = subprocess.Popen([sys.executable, "-m", "awsaa.cli.search", "--resume", str(run)], env=ENV,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: faultplan.fired(f"worker-{held}-0-start"), 600, proc, f"loop {held + 1}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = history(run)
    assert len(before) == held
    saved = policy_hash(Policy.load(run / "policy_last.json"))
    pending = SearchState.load(run).pending  # the held loop's sampling policies (ES), saved before it ran
    assert pending["loop"] == held
    asked = [policy_hash(Policy.from_dict(p)) for p in pending["policies"]]
    r = resume_search(run)
    assert f"resuming {run} at loop {held + 1} of {loops}" in r.stdout
    h = assert_every_loop_once(run, loops)
    assert h[:held] == before  # the finished loops are untouched
    assert h[held]["policy_hash"] == saved  # the agent continues exactly as saved
    assert [d["sampling_hash"] for d in h[held]["details"]] == asked  # and the loop reran with its own policies
    count("local Ray cluster killed (driver + all Ray processes)")


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}: {out[-2000:]}")
        time.sleep(0.2)


# (loop, trajectory, point): where a fine-tune worker SIGKILLs itself. Loop 1: a kill at the
# start of a trajectory; loop 2: both trajectories killed after their first training step;
# loop 3: trajectory 1 dies twice in a row (at its start, then its rerun after the first
# step); loop 4: a kill in trajectory 0's validation pass (workers.spread_eval: a call of
# its own, run again on another worker from the weights its training left).
WORKER_KILLS = [(0, 0, "start"), (1, 1, "mid"), (1, 0, "mid"), (2, 1, "start"), (2, 1, "mid"), (3, 0, "eval0")]


def test_fine_tune_workers_sigkilled_mid_trajectory(tmp_path, capsys, ray_local, fault_plan):
    """6 fine-tune workers are SIGKILLed (a real SIGKILL, sent by the worker to itself at a point
    the test names: the start of a trajectory, right after its first training step, or in its
    validation pass) in a 4-loop search: every loop once, each with exactly its 2 trajectory
    results, none counted twice, each killed call finished by another process (a killed
    validation pass without training again)."""
    fault_plan({"worker": [{"loop": loop, "traj": t, "at": at, "do": "kill"} for loop, t, at in WORKER_KILLS]})
    # ES: each trajectory has its own sampling policy; a rerun must get the one it was given
    # (the controller checks the hash each worker reports against the policies it asked for)
    rc = search_main(["-c", str(write_config(tmp_path, agent="es", loops=4)), "--storage", str(tmp_path / "runs"),
                      "--name", "k"])
    assert rc == 0
    hits = [faultplan.fired(faultplan.name("worker", loop=loop, traj=t, at=at)) for loop, t, at in WORKER_KILLS]
    assert all(hits), hits
    killed = {h["pid"] for h in hits}
    assert len(killed) == len(WORKER_KILLS)  # each kill took down a different worker process
    out = capsys.readouterr().out
    assert out.count("a fine-tune worker died") == len(WORKER_KILLS)
    h = assert_every_loop_once(tmp_path / "runs" / "k", 4)
    assert all(len({d["sampling_hash"] for d in e["details"]}) == 2 for e in h)  # the two halves of a pair
    for (loop, t, at), hit in zip(WORKER_KILLS, hits, strict=True):
        d = next(d for d in h[loop]["details"] if d["traj"] == t)
        assert [c["what"] for c in d["calls"]] == ["train", "eval"]  # the calls that counted, each once
        assert d["calls"][at.startswith("eval")]["pid"] != hit["pid"]  # the killed call finished elsewhere
    count("fine-tune worker SIGKILL", injected=len(WORKER_KILLS))


def test_controller_killed_mid_search(tmp_path, ray_local, fault_plan):
    """The detached controller SIGKILLs itself when the driver asks for loop 3's policy; Ray
    restarts it, it reloads its saved state, and loop 3 runs with exactly the agent it held
    when it died (the state saved after loop 2)."""
    fault_plan({"controller": [{"loop": 2, "do": "kill"}]})
    rc = search_main(["-c", str(write_config(tmp_path, loops=5)), "--storage", str(tmp_path / "runs"), "--name", "c"])
    assert rc == 0
    hit = faultplan.fired("controller-2")
    assert hit is not None, "the controller was not killed"
    h = assert_every_loop_once(tmp_path / "runs" / "c", 5)
    assert h[2]["policy_hash"] == hit["detail"]["policy_hash"]
    count("controller SIGKILL")


def test_a_joint_nas_search_survives_killed_workers_and_controller_with_the_same_rewards(tmp_path, ray_local,
                                                                                       fault_plan, capsys):
    """NAS + AWS on Ray: a worker SIGKILLed mid-trajectory in loop 1 and in a validation pass in
    loop 2, the controller SIGKILLed when loop 3 is asked for. The architectures ride in the
    sampling policies and the architecture distribution in the controller's state, so the
    search ends with exactly the rewards, architecture and policy of an unfaulted run in this
    process from the same stage 1. (The joint search's only run on Ray workers in CI: the fast
    suite runs it in process.)"""

    from awsaa.arch import Arch
    from awsaa.search import run as search_run
    from awsaa.search.stages import pretrain
    from awsaa.train.checkpoint import save_checkpoint

    cfg = {**TINY_NAS, "loops": 3}
    stage1 = tmp_path / "supernet.pt"
    save_checkpoint(stage1, pretrain(from_dict(SearchConfig, cfg)))
    kills = [(0, 2, "mid"), (1, 1, "eval0")]
    fault_plan({"worker": [{"loop": loop, "traj": t, "at": at, "do": "kill"} for loop, t, at in kills],
                "controller": [{"loop": 2, "do": "kill"}]})
    path = tmp_path / "nas.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "runs" / "n"
    assert search_main(["-c", str(path), "--storage", str(tmp_path / "runs"), "--name", "n", "--pretrained",
                        str(stage1)]) == 0
    out = capsys.readouterr().out
    assert "arch entropy" in out and "effects SD arch" in out and f"architecture: {run}/arch.json" in out
    assert f"--model {run}/arch.json --aug" in out  # how to train what it found
    assert all(faultplan.fired(faultplan.name("worker", loop=loop, traj=t, at=at)) for loop, t, at in kills)
    assert faultplan.fired("controller-2") is not None
    h = assert_every_loop_once(run, 3, trajectories=4)
    fault_plan({})
    here = search_run(from_dict(SearchConfig, cfg), storage=tmp_path, name="here", pretrained=stage1,
                      log=lambda line: None)
    assert [e["rewards"] for e in h] == [r.rewards for r in here.loops]
    assert [e["nas"]["archs"] for e in h] == [e["nas"]["archs"] for e in history(here.run_dir)]
    assert Arch.load(run / "arch.json") == here.arch
    count("fine-tune worker SIGKILL", injected=len(kills))
    count("controller SIGKILL")


def test_search_stopped_by_ctrl_c(tmp_path, fault_plan):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while loop 2 is in
    flight (a worker holds it): a clear message, exit 130, the run saved after loop 1. (SIGTERM
    and the resume after it: the process-group test below.)"""
    fault_plan({"worker": [{"loop": 1, "traj": 0, "at": "start", "do": "hang"}]})
    config = write_config(tmp_path, loops=3)
    run = tmp_path / "runs" / "s"
    proc = subprocess.Popen([sys.executable, "-m", "awsaa.cli.search", "-c", str(config), "--storage",
                             str(tmp_path / "runs"), "--name", "s"], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: faultplan.fired("worker-1-0-start"), 600, proc, "loop 2")
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    done = SearchState.load(run).loops_done  # what the saved state holds, after the tool has exited
    assert done == 1
    last = err.strip().splitlines()[-1]
    assert last == (f"awsaa-search: interrupted (SIGINT); the run is saved after loop {done} "
                    f"of 3; continue with: awsaa-search --resume {run}"), err[-2000:]
    assert "Traceback" not in err
    count("awsaa-search SIGINT")


def test_training_stopped_by_ctrl_c_then_resumed(tmp_path, fault_plan):
    """awsaa-train (Ray Tune): Ctrl-C after the first epoch's checkpoint (the trial holds there)
    stops the experiment at a clean point, exit 130; the same command with --resume finishes
    every trial with its epochs counted once. (SIGTERM: the process-group test below.)"""
    fault_plan({"train": [{"epoch": 1, "do": "hang"}]})
    cmd = _tool(tmp_path, "train")
    trial = tmp_path / "train" / "t"
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: faultplan.fired("train-1"), 600, proc, "the first checkpoint")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("awsaa-train: interrupted (SIGINT); experiment ")
    assert "continue with the same command and --resume" in last
    count("awsaa-train SIGINT")
    r = subprocess.run([*cmd, "--resume"], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # Tune's own INFO line from the restored trial's process ("Restored on <ip> from checkpoint:
    # Checkpoint(filesystem=local, path=...)") is not forwarded to the terminal
    assert "Restored on" not in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((trial / "summary.json").read_text())
    assert [s["epochs_done"] for s in summary] == [3] and summary[0]["status"] == "done"
    epochs = [json.loads(x)["epoch"] for x in next(trial.glob("*/result.json")).read_text().splitlines()]
    assert epochs == [1, 2, 3]  # each epoch once: the resumed trial starts after its last checkpoint


def _tree(pid: int) -> dict[int, int]:
    """{pid: start time} of every process below ``pid``: the tool's local Ray and its reaper."""
    from awsaa.distributed.reaper import _processes, descendants

    return descendants(pid, _processes())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(bytes(1), b" ").decode(errors="replace")
    except OSError:
        return ""


def _survivors(tree: dict[int, int]) -> list[str]:
    """The processes of ``tree`` alive once its reaper has done its work. The reaper (one of the
    tree) exits only after it has killed what the driver left, so this waits for it (a hang
    detector: it takes a second or two) and then looks once, with no timing in the verdict."""
    from awsaa.distributed.reaper import _stat

    def alive(pid: int, start: int) -> bool:
        return (_stat(pid) or (0, None))[1] == start

    reapers = [pid for pid in tree if "awsaa/distributed/reaper.py" in _cmdline(pid)]
    assert len(reapers) == 1, "the tool started no reaper for its local Ray"
    deadline = time.time() + 120
    while alive(reapers[0], tree[reapers[0]]) and time.time() < deadline:
        time.sleep(0.2)
    return [f"{pid}: {_cmdline(pid)[:100]}" for pid, start in tree.items() if alive(pid, start)]


def _tool(tmp_path: Path, tool: str) -> list[str]:
    if tool == "train":
        return [sys.executable, "-m", "awsaa.cli.train", "-c", "configs/train/quick_fmnist.yaml", "--epochs", "3",
                "--set", "train_size=512", "test_size=200", "--storage", str(tmp_path / "train"), "--name", "t"]
    return [sys.executable, "-m", "awsaa.cli.search", "-c", str(write_config(tmp_path, loops=4, agent="es")),
            "--storage", str(tmp_path / "runs"), "--name", "g"]


MID_EPOCH = {"train": ({"train_step": [{"epoch": 2, "do": "hang"}]}, "train_step-2"),
             "search": ({"worker": [{"loop": 1, "traj": 0, "at": "mid", "do": "hang"},  # the SIGTERM
                                    {"loop": 2, "traj": 0, "at": "start", "do": "hang"}]},  # the whole-tree kill
                        "worker-1-0-mid")}


@pytest.mark.parametrize("tool", ["train", "search"])
def test_one_sigterm_to_the_process_group_stops_a_tool_mid_epoch(tmp_path, tool, fault_plan):
    """What `timeout` and service managers send: one SIGTERM to the command's whole process
    group, while a trial (awsaa-train) or a fine-tune (awsaa-search) is in the middle of an epoch
    that never ends (it hangs there). The local Ray's processes block SIGTERM, so only the driver
    hears it: it stops at a clean point and exits 143 naming where the run stands, and no process
    of its Ray survives it. (Before: the signal killed the GCS too, the driver waited 60 s for
    it, then aborted without the message.) The search is then resumed, SIGKILLed with its whole
    local Ray while loop 3 is in flight, and resumed to its end (:func:`kill_whole_tree_then_resume`).
    (A SIGTERM to the driver alone is the same path: Ray's processes ignore it here.)"""
    plan, marker = MID_EPOCH[tool]
    fault_plan(plan)
    proc = subprocess.Popen(_tool(tmp_path, tool), env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: faultplan.fired(marker), 600, proc, "the middle of an epoch")
        tree = _tree(proc.pid)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=300)  # a hang detector; it takes seconds
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, out[-2000:] + err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"awsaa-{tool}: interrupted (SIGTERM); "), last
    assert "--resume" in last
    assert faultplan.fired(marker)["pid"] in tree  # the hung trial was one of the tool's processes
    assert _survivors(tree) == []
    count(f"awsaa-{tool} SIGTERM to the process group, mid-epoch")
    if tool == "search":  # the run is saved after loop 1; then the whole-tree kill, and the end
        run = tmp_path / "runs" / "g"
        assert last == (f"awsaa-search: interrupted (SIGTERM); the run is saved after loop 1 of 4; "
                        f"continue with: awsaa-search --resume {run}"), err[-2000:]
        kill_whole_tree_then_resume(run, held=2, loops=4)


def test_a_driver_killed_outright_leaves_no_process_of_its_ray(tmp_path, fault_plan):
    """SIGKILL to awsaa-train alone while its trial is in the middle of an epoch: the GCS, the
    raylet, Ray's agents and the trial's worker all go (Ray ties only the GCS and the raylet to
    the driver; the reaper takes the rest). Before, ray::DashboardAgent and ray::RuntimeEnvAgent
    kept running for good."""
    plan, marker = MID_EPOCH["train"]
    fault_plan(plan)
    proc = subprocess.Popen(_tool(tmp_path, "train"), env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: faultplan.fired(marker), 600, proc, "the middle of an epoch")
        tree = _tree(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert faultplan.fired(marker)["pid"] in tree and len(tree) >= 4  # GCS, raylet, agents, the trial
    assert _survivors(tree) == []
    count("awsaa-train driver SIGKILLed mid-epoch")


def _by_value() -> None:
    """The fake workers are Ray actors in other processes, which cannot import this module:
    what they use of it (:func:`_call`) travels with them, by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _call(what: str, started: float | None = None) -> dict:
    """A fake worker's call record, built by awsaa's own record builder."""
    import os as _os
    import time as _t

    from awsaa.search.schedule import call_record

    now = _t.time()
    return call_record(what, now if started is None else started, now, 0.0, _os.getpid(), "fake")


def _fake_workers(monkeypatch, marker_dir: Path, plan: dict):
    """Replace the fine-tune workers by actors that fail as ``plan`` says:
    ``{(loop, traj): times}`` raise a non-finite-loss error that many times, then succeed."""
    import ray

    import awsaa.distributed.search as S

    _by_value()

    @ray.remote(num_cpus=0)
    class Fake:
        def run(self, loop, traj, policy, seed, pair_seed=None):
            import math
            from pathlib import Path as _P

            n = plan.get((loop, traj), 0)
            f = _P(marker_dir) / f"{loop}-{traj}"
            seen = int(f.read_text()) if f.exists() else 0
            f.write_text(str(seen + 1))
            if seen < n:
                raise FloatingPointError(f"training loss became nan at epoch 1 (loop {loop}, traj {traj})")
            # loop 4, trajectory 0: a non-finite reward that slipped through never reaches the agent
            reward = math.nan if (loop, traj) == (3, 0) else 50.0 + 10 * traj + loop
            counts = torch.zeros(36, 36, dtype=torch.long)
            counts[traj, loop % 36] = 100
            return trajectory_result(loop, traj, Policy.from_dict(policy),
                                     FinetuneResult(reward, [reward], counts, 0.0, 100), _call("run"))

        def run_many(self, loop, items):
            return [self.run(loop, *item) for item in items]

        def train(self, loop, traj, policy, seed, pair_seed=None):  # workers.spread_eval: one epoch
            r = self.run(loop, traj, policy, seed, pair_seed)
            meta = training_record(loop, traj, Policy.from_dict(policy), r["counts"], r["images"], _call("train"))
            return meta, {"reward": r["reward"]}  # the "weights" carry the reward

        def evaluate(self, loop, traj, epoch, weights):
            return pass_record(weights["reward"], _call("eval"))

    monkeypatch.setattr(S, "worker_actor", lambda cfg, shared_ref, index, name, data_ref=None: Fake.remote())


def test_a_non_finite_loss_runs_again_once_then_counts_as_failed(tmp_path, monkeypatch, ray_local):
    """Loop 1: trajectory 0 fails once (NaN loss) and succeeds on its rerun. Loop 2: trajectory 1
    fails twice and is recorded as failed. Loop 3: both fail twice, the agent is untouched.
    Loop 4: a NaN reward is dropped. The agent never sees a non-finite reward."""
    import awsaa.distributed.search as S

    cfg = from_dict(SearchConfig, {**TINY, "loops": 4})
    run = tmp_path / "run"
    tiny_run(run, cfg)
    markers = tmp_path / "markers"
    markers.mkdir()
    _fake_workers(monkeypatch, markers, {(0, 0): 1, (1, 1): 2, (2, 0): 2, (2, 1): 2})
    lines: list[str] = []
    S.run_loops(cfg, run, "n", None, log=lines.append)
    h = history(run)
    assert [e["loop"] for e in h] == [1, 2, 3, 4]
    assert h[0]["trajectories"] == 2 and h[0]["failed"] == []
    assert any("trajectory 0 failed (training loss became nan" in x and "running it once more" in x for x in lines)
    assert h[1]["trajectories"] == 1 and [f["traj"] for f in h[1]["failed"]] == [1]
    assert "training loss became nan" in h[1]["failed"][0]["error"]
    assert h[2]["trajectories"] == 0 and h[2]["mean_reward"] is None and h[2]["inner_steps"] == 0
    assert h[3]["trajectories"] == 1 and "non-finite reward" in h[3]["failed"][0]["error"]
    # loop 3 left the agent as loop 2 made it: loop 4 ran with the same policy
    assert h[3]["policy_hash"] == h[2]["policy_hash"]
    assert all(x == x and abs(x) != float("inf") for e in h for x in e["rewards"])
    attempts = {p.name: int(p.read_text()) for p in markers.iterdir()}
    assert attempts["0-0"] == 2 and attempts["1-1"] == 2 and attempts["2-0"] == 2 and attempts["1-0"] == 1
    count("non-finite loss / reward in a fine-tune", injected=6)


def test_a_validation_pass_goes_to_whichever_worker_is_free(tmp_path, monkeypatch, ray_local):
    """workers.spread_eval: 2 workers, 4 one-epoch trajectories. Trajectory 2's training waits
    until trajectories 0 and 1 have been validated, and it runs on one of the two workers that
    trained them: the loop can only finish if that worker's validation pass is taken by the
    other worker (as the default spreads it), not queued behind its own next training."""
    import ray

    import awsaa.distributed.search as S

    _by_value()

    @ray.remote(num_cpus=0)
    class Fake:
        def train(self, loop, traj, policy, seed, pair_seed=None):
            import time as _t
            from pathlib import Path as _P

            started = _t.time()
            if traj == 2:  # bounded: a scheduler that does not spread fails the test, never hangs it
                while not all((_P(tmp_path) / f"validated-{t}").exists() for t in (0, 1)):
                    if _t.time() - started > 300:
                        raise TimeoutError("trajectories 0 and 1 were never validated")
                    _t.sleep(0.05)
            counts = torch.zeros(36, 36, dtype=torch.long)
            counts[traj, 0] = 100
            return training_record(loop, traj, Policy.from_dict(policy), counts, 100, _call("train", started)), traj

        def evaluate(self, loop, traj, epoch, weights):
            from pathlib import Path as _P

            (_P(tmp_path) / f"validated-{weights}").touch()
            return pass_record(50.0 + weights, _call("eval"))

    monkeypatch.setattr(S, "worker_actor", lambda cfg, shared_ref, index, name, data_ref=None: Fake.remote())
    cfg = from_dict(SearchConfig, {**TINY, "loops": 1, "trajectories": 4, "workers": {"count": 2, "num_cpus": 1}})
    run = tmp_path / "run"
    tiny_run(run, cfg)
    S.run_loops(cfg, run, "v", None, log=lambda line: None)
    (e,) = history(run)
    assert e["failed"] == [] and e["rewards"] == [50.0, 51.0, 52.0, 53.0]
    calls = {d["traj"]: {c["what"]: c["pid"] for c in d["calls"]} for d in e["details"]}
    blocked = calls[2]["train"]
    (mine,) = [t for t in (0, 1) if calls[t]["train"] == blocked]  # trained by the worker that then waited
    assert calls[mine]["eval"] != blocked  # its validation pass ran on the other worker
    count("a worker held up mid-loop: its validation pass taken by another")


def test_a_validation_pass_whose_weights_were_lost_trains_again(tmp_path, monkeypatch, ray_local):
    """A validation pass that cannot get its weights (Ray's ObjectLostError: they were on a
    node that died) trains its trajectory again, without counting that against its one rerun:
    here trajectory 0's first pass fails so and its second training raises a non-finite loss,
    and it still counts (a third training), while nothing is counted twice."""
    import ray

    import awsaa.distributed.search as S

    _by_value()

    @ray.remote(num_cpus=0)
    class Fake:
        def _seen(self, what, traj):
            from pathlib import Path as _P

            f = _P(tmp_path) / f"{what}-{traj}"
            n = int(f.read_text()) if f.exists() else 0
            f.write_text(str(n + 1))
            return n

        def train(self, loop, traj, policy, seed, pair_seed=None):
            n = self._seen("train", traj)
            if traj == 0 and n == 1:
                raise FloatingPointError("training loss became nan at epoch 1")
            counts = torch.zeros(36, 36, dtype=torch.long)
            counts[traj, 0] = 100
            return training_record(loop, traj, Policy.from_dict(policy), counts, 100, _call("train")), traj

        def evaluate(self, loop, traj, epoch, weights):
            from ray.exceptions import ObjectLostError

            if self._seen("eval", traj) == 0 and traj == 0:
                raise ObjectLostError("00" * 28, None, "a test")
            return pass_record(50.0 + weights, _call("eval"))

    monkeypatch.setattr(S, "worker_actor", lambda cfg, shared_ref, index, name, data_ref=None: Fake.remote())
    cfg = from_dict(SearchConfig, {**TINY, "loops": 1})
    run = tmp_path / "run"
    tiny_run(run, cfg)
    lines: list[str] = []
    S.run_loops(cfg, run, "w", None, log=lines.append)
    (e,) = history(run)
    assert e["failed"] == [] and e["rewards"] == [50.0, 51.0]
    assert any("trajectory 0's weights were lost with their node; it runs again" in x for x in lines)
    assert any("trajectory 0 failed (training loss became nan" in x for x in lines)
    assert (tmp_path / "train-0").read_text() == "3" and (tmp_path / "train-1").read_text() == "1"
    count("a validation pass's weights lost (simulated ObjectLostError)")


def test_an_unwritable_storage_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    rc = search_main(["-c", str(write_config(tmp_path)), "--storage", str(blocker / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"cannot write to the storage {blocker / 'runs'}: {blocker} is not a directory" in err
    assert blocker.read_text() == "not a directory"
    count("unwritable storage")


def test_a_write_that_fails_half_way_leaves_the_last_good_state(tmp_path, monkeypatch):
    """The disk fills while the state is being saved: state.pt, history.jsonl and the policy
    files keep their last good bytes, no temporary file is left, the error says what happened."""
    import awsaa.train.checkpoint as ckpt
    from awsaa.distributed.search import _Controller

    cfg = from_dict(SearchConfig, {**TINY, "loops": 3})
    run = tmp_path / "run"
    tiny_run(run, cfg)
    c = _Controller(str(run))
    counts = torch.zeros(36, 36, dtype=torch.long)
    counts[0, 0] = 10
    traj = [{"traj": 0, "loop": 0, "reward": 60.0, "val_accs": [60.0], "counts": counts}]
    c.record(0, traj, [], 1.0)
    good = {p.name: p.read_bytes() for p in run.iterdir()}

    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)  # half the file is on disk ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(Exception, match=r"cannot save the search state in .*: No space left on device; the run is "
                                        r"saved after loop 1"):
        c.record(1, [dict(traj[0], loop=1)], [], 1.0)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == good
    assert c.loops_done() == 1  # the controller forgot the unsaved update too
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert c.record(1, [dict(traj[0], loop=1)], [], 1.0)["loop"] == 2  # and goes on once the disk has room
    count("write failing half-way (disk full)")


def test_sigterm_during_stage_1_stops_promptly(tmp_path, fault_plan):
    """The driver waits on Ray in 1 s steps, so a SIGTERM in the middle of stage 1 is honoured
    at once, not after stage 1: here stage 1 hangs after epoch 2, so a driver blocked in a
    plain ray.get would never exit."""
    fault_plan({"stage1": [{"epoch": 2, "do": "hang"}]})
    config = write_config(tmp_path, pretrain={"epochs": 40, "stop_epoch": 40, "batch_size": 64})
    proc = subprocess.Popen([sys.executable, "-m", "awsaa.cli.search", "-c", str(config), "--storage",
                             str(tmp_path / "runs"), "--name", "p"], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: faultplan.fired("stage1-2"), 600, proc, "stage 1 under way")
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=300)  # a bound for a loaded machine; without the 1 s steps it would never exit
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    assert proc.returncode == 143, "".join(lines)[-2000:]
    assert not any("stage 1: epoch 40/40" in x for x in lines)  # stopped in stage 1, not after it
    assert any("interrupted (SIGTERM); the run is saved after loop 0 of 10" in x for x in lines)
    assert not any("Unhandled error" in x for x in lines), "".join(lines)[-2000:]  # the abandoned task's, from Ray
    count("awsaa-search SIGTERM during stage 1")


@pytest.mark.parametrize("where,signame", [("ray_start", "sigterm"), ("ray_start", "sigint"), ("ray_init", "sigterm")])
def test_a_stop_signal_while_the_local_ray_starts(tmp_path, fault_plan, where, signame):
    """A signal that lands while the local Ray starts is held until Ray is up and the tools'
    handlers are in place: one line, 128 + its number, and nothing of that Ray left behind.
    (Before: SIGTERM there aborted with Ray's C++ stack and no awsaa line, and SIGINT or SIGTERM
    left ray::DashboardAgent and ray::RuntimeEnvAgent alive; then, with SIGTERM inside
    ``ray.init`` itself, Ray's own handler still ran there and its core aborted at exit, 134.)
    The fault plan sends the signal from inside the window (``ray_start``: once Ray is up;
    ``ray_init``: inside ``ray.init``, before its first process), so the test does not race
    Ray's start."""
    fault_plan({where: [{"do": signame}], **({"ray_start": [{"do": "mark"}]} if where == "ray_init" else {})})
    proc = subprocess.Popen(_tool(tmp_path, "search"), env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    signum = signal.SIGTERM if signame == "sigterm" else signal.SIGINT
    sent = faultplan.fired(where)
    assert sent is not None and sent["pid"] == proc.pid, err[-2000:]
    fired = faultplan.fired("ray_start")  # the tree, recorded once Ray is up
    assert fired is not None and fired["pid"] == proc.pid, err[-2000:]
    assert proc.returncode == 128 + signum, out[-2000:] + err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"awsaa-search: interrupted ({signal.Signals(signum).name})")
    assert "Traceback" not in err and "logging.cc" not in err
    tree = {int(pid): start for pid, start in fired["detail"].items()}
    assert _survivors(tree) == []
    count(f"awsaa-search {signal.Signals(signum).name} while its local Ray starts ({where})")
