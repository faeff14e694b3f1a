"""The loop scheduler's decisions (awsaa.search.schedule), without Ray: each retry scenario of
the fault suite as a sequence of calls and outcomes. The fault suite keeps the real kills and
the Ray shell around this (tests/test_faults.py)."""

import pytest

from awsaa.search.schedule import Call, LoopSchedule


def result(traj, reward=50.0):
    return {"traj": traj, "reward": reward}


def train_record(traj):
    call = {"what": "train", "started": 1.0, "ended": 2.0, "busy": 1.0, "pid": 7, "node": "n"}
    return {"traj": traj, "loop": 0, "counts": f"counts-{traj}", "images": 10, "call": call}


def eval_record(acc, pid=8):
    return {"acc": acc, "call": {"what": "eval", "started": 2.0, "ended": 3.0, "busy": 0.5, "pid": pid, "node": "n"}}


def drain(plan):
    calls = []
    while (c := plan.next_call()) is not None:
        calls.append(c)
    return calls


def test_whole_trajectories_one_per_call_each_counted_once():
    plan = LoopSchedule(0, 3)
    calls = drain(plan)
    assert [c.trajs for c in calls] == [(0,), (1,), (2,)] and not plan.finished
    for c in calls:
        plan.done(c, [result(c.trajs[0], 50.0 + c.trajs[0])])
    assert plan.finished
    assert plan.outcome() == ([result(0, 50.0), result(1, 51.0), result(2, 52.0)], [])


def test_a_call_of_several_that_raises_reruns_each_alone_and_a_second_failure_is_recorded():
    plan = LoopSchedule(1, 2, per_call=2)
    (c,) = drain(plan)
    assert c.trajs == (0, 1)
    line = plan.failed(c, "training loss became nan")
    assert line == ("loop 2: trajectories 0, 1 failed (training loss became nan); running each on its own "
                    "once more")
    a, b = drain(plan)
    assert (a.trajs, a.attempt, b.trajs, b.attempt) == ((0,), 2, (1,), 2)
    plan.done(a, [result(0)])
    assert plan.failed(b, "nan again") == "loop 2: trajectory 1 failed twice; the loop records it as failed"
    assert plan.finished and plan.outcome() == ([result(0)], [{"traj": 1, "error": "nan again"}])


def test_a_dead_worker_s_call_runs_again_as_it_was_without_using_up_its_rerun():
    plan = LoopSchedule(0, 2, max_attempts=2)
    a, b = drain(plan)
    assert plan.worker_died(a) == "loop 1: a fine-tune worker died; trajectory 0 runs again on a new worker"
    (again,) = drain(plan)
    assert again == a  # the same call, its attempt unchanged
    assert plan.worker_died(again) is not None  # and again: dead workers never count against it
    (third,) = drain(plan)
    assert third.attempt == 1
    plan.done(third, [result(0)])
    plan.done(b, [result(1)])
    assert plan.outcome() == ([result(0), result(1)], [])


def test_spread_a_training_then_one_validation_pass_per_epoch_taken_by_anyone():
    plan = LoopSchedule(0, 2, spread=True, epochs=3, top_k=2)
    t0, t1 = drain(plan)
    assert (t0.kind, t1.kind) == ("train", "train")
    plan.done(t0, train_record(0), weights=["w0", "w1", "w2"])
    evals = drain(plan)
    assert [(c.kind, c.epoch, c.weights) for c in evals] == [("eval", 0, "w0"), ("eval", 1, "w1"), ("eval", 2, "w2")]
    for c, acc in zip(evals, (60.0, 70.0, 65.0), strict=True):
        plan.done(c, eval_record(acc))
    assert not plan.finished  # trajectory 1 still trains
    (r0,), _ = plan.outcome()
    assert r0["reward"] == 67.5 and r0["val_accs"] == [60.0, 70.0, 65.0]  # the mean of the 2 best epochs
    assert r0["counts"] == "counts-0" and "call" not in r0 and [c["what"] for c in r0["calls"]] == ["train"] + 3 * [
        "eval"]
    assert r0["finetune_seconds"] == 2.5 and r0["started"] == 1.0 and r0["ended"] == 3.0 and r0["pid"] == 7
    plan.done(t1, train_record(1), weights=["v0", "v1", "v2"])
    for c in drain(plan):
        plan.done(c, eval_record(50.0))
    assert plan.finished and [r["traj"] for r in plan.outcome()[0]] == [0, 1]


def test_lost_weights_train_again_without_using_up_the_rerun_and_stale_passes_are_dropped():
    """A validation pass whose weights died with their node: the trajectory trains again (its
    attempt unchanged), the old training's other passes are dropped whether queued or already
    running, and a non-finite loss in the new training still gets its rerun."""
    plan = LoopSchedule(0, 1, spread=True, epochs=2)
    (t,) = drain(plan)
    plan.done(t, train_record(0), weights=["a0", "a1"])
    e0 = plan.next_call()  # e1 stays queued
    assert plan.weights_lost(e0) == "loop 1: trajectory 0's weights were lost with their node; it runs again"
    (retrain,) = drain(plan)  # the queued pass of the old training is dropped, not started
    assert (retrain.kind, retrain.attempt) == ("train", 1)
    assert plan.failed(retrain, "loss became nan") is not None  # the rerun it still has
    (last,) = drain(plan)
    assert (last.kind, last.attempt) == ("train", 2)
    plan.done(last, train_record(0), weights=["c0", "c1"])
    for c in drain(plan):
        plan.done(c, eval_record(55.0))
    assert plan.finished
    results, failed = plan.outcome()
    assert failed == [] and len(results) == 1 and results[0]["val_accs"] == [55.0, 55.0]


def test_a_pass_running_when_its_training_is_redone_is_dropped_when_it_comes_back():
    plan = LoopSchedule(0, 1, spread=True, epochs=2)
    (t,) = drain(plan)
    plan.done(t, train_record(0), weights=["a0", "a1"])
    e0, e1 = drain(plan)  # both running on two workers
    plan.weights_lost(e0)
    assert plan.worker_died(e1) is None  # stale: no line, not run again
    (retrain,) = drain(plan)
    assert retrain.kind == "train" and plan.failures == []
    plan.done(retrain, train_record(0), weights=["b0", "b1"])
    passes = drain(plan)
    plan.done(passes[0], eval_record(40.0))
    plan.done(passes[1], eval_record(42.0))
    assert plan.finished and plan.outcome()[0][0]["val_accs"] == [40.0, 42.0]


def test_a_spread_trajectory_that_fails_twice_drops_its_remaining_passes():
    plan = LoopSchedule(0, 1, spread=True, epochs=2, max_attempts=2)
    (t,) = drain(plan)
    plan.done(t, train_record(0), weights=["a0", "a1"])
    e0, e1 = drain(plan)
    assert "once more" in plan.failed(e0, "boom")  # an eval that raised retrains its trajectory
    (again,) = drain(plan)
    plan.done(again, train_record(0), weights=["b0", "b1"])
    f0, f1 = drain(plan)
    assert plan.failed(f0, "boom") == "loop 1: trajectory 0 failed twice; the loop records it as failed"
    plan.done(f1, eval_record(1.0))  # its other pass comes back: dropped
    plan.done(e1, eval_record(1.0))  # and the first training's, long stale
    assert plan.finished and plan.outcome() == ([], [{"traj": 0, "error": "boom"}])


def test_a_result_is_never_counted_twice_and_an_outcome_needs_a_started_call():
    plan = LoopSchedule(0, 2, per_call=2)
    (c,) = drain(plan)
    plan.failed(c, "x")
    a, b = drain(plan)
    plan.done(a, [result(0, 1.0)])
    plan.done(b, [result(1, 2.0), result(0, 99.0)])  # a worker that reports trajectory 0 again
    assert [r["reward"] for r in plan.outcome()[0]] == [1.0, 2.0]
    with pytest.raises(ValueError, match="never started"):
        plan.done(Call("run", (0,)), [result(0)])
