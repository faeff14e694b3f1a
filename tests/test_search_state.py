"""The search's two stages and its on-disk state, without Ray."""

import json
import math

import pytest
import torch

from awsaa import AWSAAError, Policy
from awsaa.config import SearchConfig, from_dict
from awsaa.search.stages import FineTuner, pretrain, stage1_hash
from awsaa.search.state import SearchState, policy_hash

K = 36


def tiny_cfg(**kw) -> SearchConfig:
    base = {"model": "wrn10_1", "dataset": "fashion_mnist", "train_size": 600, "val_size": 200, "loops": 3,
            "trajectories": 2, "cutout": 14, "eval_batch_size": 200,
            "pretrain": {"epochs": 3, "stop_epoch": 2, "batch_size": 64,
                         "optim": {"lr": 0.1, "warmup_epochs": 0, "final_lr": 0.0}},
            "finetune": {"epochs": 2, "batch_size": 64}, "workers": {"count": 2}}
    base.update(kw)
    return from_dict(SearchConfig, base)


@pytest.fixture(scope="module")
def shared(fmnist):
    return pretrain(tiny_cfg(), data=fmnist)


def test_stage1_keeps_weights_optimizer_and_the_lr_where_it_stopped(shared):
    assert shared["kind"] == "shared" and shared["epoch"] == 2 and shared["stage1_hash"] == stage1_hash(tiny_cfg())
    assert math.isclose(shared["lr"], 0.1 * (1 + math.cos(math.pi * 2 / 3)) / 2, rel_tol=1e-6)  # cosine at 2/3
    assert shared["optimizer"]["state"] and 0 < shared["val_acc"] <= 100


def test_stage1_hash_ignores_what_does_not_change_the_shared_weights():
    assert stage1_hash(tiny_cfg()) == stage1_hash(tiny_cfg(loops=99, trajectories=5))
    assert stage1_hash(tiny_cfg()) != stage1_hash(tiny_cfg(val_size=100))


def test_finetune_reward_counts_and_restart_from_shared(shared, fmnist):
    cfg = tiny_cfg()
    tuner = FineTuner(cfg, shared, data=fmnist)
    a = tuner.run(Policy.uniform(), seed=1)
    assert a.counts.sum() == 2 * 384 and a.counts.shape == (K, K)  # 2 epochs x 6 batches of 64 (400 images)
    assert math.isclose(a.reward, sum(sorted(a.val_accs)[-2:]) / 2)
    b = tuner.run(Policy.uniform(), seed=1)  # every trajectory starts again from the shared state
    assert a.val_accs == b.val_accs and torch.equal(a.counts, b.counts)
    assert tuner.lr == shared["lr"]
    with pytest.raises(AWSAAError, match="different stage-1 config"):
        FineTuner(tiny_cfg(val_size=100), shared, data=fmnist)


def traj(t, reward, seed=0):
    g = torch.Generator().manual_seed(seed + t)
    counts = torch.bincount(torch.randint(0, K * K, (500,), generator=g), minlength=K * K).view(K, K)
    return {"traj": t, "reward": reward, "counts": counts, "val_accs": [reward]}


def test_state_records_saves_and_reloads(tmp_path):
    cfg = tiny_cfg()
    state = SearchState.create(tmp_path / "run", cfg, {"name": "run", "pretrained": "x"})
    e1 = state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    used_in_loop_2 = state.policy()
    e2 = state.record(1, [traj(0, 90.0), traj(1, 91.0)], [], 1.0)
    assert e2["policy_hash"] == policy_hash(used_in_loop_2)
    assert state.record(1, [traj(0, 0.0)], [], 1.0) is e2  # a recorded loop is never counted twice
    assert state.loops_done == 2
    with pytest.raises(AWSAAError, match="out of order"):
        state.record(5, [traj(0, 1.0)], [], 1.0)

    # the result is the policy used in the best loop, before that loop's update
    best = Policy.load(tmp_path / "run" / "policy.json")
    assert best.meta["loop"] == 2 and policy_hash(best) == e2["policy_hash"]
    assert Policy.load(tmp_path / "run" / "policy_last.json") == state.agent.policy()
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["loop"] for x in lines] == [1, 2] and json.loads(lines[0])["rewards"] == [80.0, 82.0]
    assert e1["baseline"] == 81.0

    again = SearchState.load(tmp_path / "run")
    assert again.loops_done == 2 and again.history == state.history
    assert torch.equal(again.agent.first, state.agent.first) and again.agent.baseline == state.agent.baseline


def test_failed_and_non_finite_trajectories_never_reach_the_agent(tmp_path):
    state = SearchState.create(tmp_path / "run", tiny_cfg(), {"name": "run", "pretrained": "x"})
    e = state.record(0, [traj(0, float("nan")), traj(1, 80.0)], [{"traj": 2, "error": "loss became nan"}], 1.0)
    assert e["rewards"] == [80.0] and len(e["failed"]) == 2 and e["baseline"] == 80.0
    e = state.record(1, [], [{"traj": 0, "error": "x"}, {"traj": 1, "error": "y"}], 1.0)
    assert e["mean_reward"] is None and state.loops_done == 2 and state.agent.baseline == 80.0


def test_not_a_run_corrupt_state_and_changed_config(tmp_path):
    with pytest.raises(AWSAAError, match="does not exist"):
        SearchState.load(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(AWSAAError, match="is not an awsaa search run"):
        SearchState.load(tmp_path / "plain")
    SearchState.create(tmp_path / "run", tiny_cfg(), {"name": "run", "pretrained": "x"})
    (tmp_path / "run" / "state.pt").write_bytes(b"garbage")
    with pytest.raises(AWSAAError, match="corrupt or not a torch checkpoint"):
        SearchState.load(tmp_path / "run")
    cfg_file = tmp_path / "run" / "config.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("loops: 3", "loops: 4"))
    with pytest.raises(AWSAAError, match=r"config\.yaml was changed"):
        SearchState.load(tmp_path / "run")
