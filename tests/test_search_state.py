"""The search's two stages and its on-disk state, without Ray."""

import json
import math

import pytest
import torch
from helpers import tiny_run, tiny_search

from awsaa import AWSAAError, Policy
from awsaa.config import SearchConfig, from_dict
from awsaa.search.stages import FineTuner, finetune_reward, pretrain, stage1_hash
from awsaa.search.state import SearchState, policy_hash
from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

K = 36


def tiny_cfg(**kw) -> SearchConfig:
    return from_dict(SearchConfig, tiny_search(**kw))


def test_stage1_keeps_weights_optimizer_and_the_lr_where_it_stopped(tiny_shared):
    s = tiny_shared
    assert s["kind"] == "shared" and s["epoch"] == 2 and s["stage1_hash"] == stage1_hash(tiny_cfg())
    assert math.isclose(s["lr"], 0.1 * (1 + math.cos(math.pi * 2 / 3)) / 2, rel_tol=1e-6)  # cosine at 2/3
    assert s["optimizer"]["state"] and 0 < s["val_acc"] <= 100


def test_stage1_hash_ignores_what_does_not_change_the_shared_weights():
    assert stage1_hash(tiny_cfg()) == stage1_hash(tiny_cfg(loops=99, trajectories=5))
    assert stage1_hash(tiny_cfg()) != stage1_hash(tiny_cfg(val_size=100))


def test_finetune_reward_counts_and_restart_from_shared(tiny_shared, fmnist):
    cfg = tiny_cfg()
    tuner = FineTuner(cfg, tiny_shared, data=fmnist)
    a = tuner.run(Policy.uniform(), seed=1)
    assert a.counts.sum() == 2 * 384 and a.counts.shape == (K, K)  # 2 epochs x 6 batches of 64 (400 images)
    assert math.isclose(a.reward, sum(sorted(a.val_accs)[-2:]) / 2)
    b = tuner.run(Policy.uniform(), seed=1)  # every trajectory starts again from the shared state
    assert a.val_accs == b.val_accs and torch.equal(a.counts, b.counts)
    assert tuner.lr == tiny_shared["lr"]
    with pytest.raises(AWSAAError, match="different stage-1 config"):
        FineTuner(tiny_cfg(val_size=100), tiny_shared, data=fmnist)


@pytest.mark.parametrize("metric", ["accuracy", "neg_loss"])
def test_training_then_evaluating_each_snapshot_is_the_same_trajectory(tiny_shared, fmnist, metric):
    """workers.spread_eval: a fine-tune's training returns the weights after each epoch and
    its validation passes are separate calls, possibly on another worker (a second
    FineTuner here): the scores (accuracies, or negative losses), reward and pair counts are
    those of the whole trajectory in one call."""
    cfg = tiny_cfg(finetune={"metric": metric})
    whole = FineTuner(cfg, tiny_shared, data=fmnist).run(Policy.uniform(), seed=3, pair_seed=4)
    trainer, other = FineTuner(cfg, tiny_shared, data=fmnist), FineTuner(cfg, tiny_shared, data=fmnist)
    trained = trainer.train(Policy.uniform(), seed=3, pair_seed=4)
    assert len(trained.snapshots) == cfg.finetune.epochs and torch.equal(trained.counts, whole.counts)
    other.train(Policy.uniform(), seed=9)  # the evaluating worker's own weights must not matter
    accs = [other.evaluate(w) for w in trained.snapshots]
    assert accs == whole.val_accs and len(set(accs)) > 1  # the epochs really differ
    assert finetune_reward(accs, cfg.finetune.reward_top_k) == whole.reward
    assert trained.images == whole.images
    if metric == "neg_loss":  # the negative cross-entropy of the validation split, epoch by epoch
        t = trainer.trainer
        trainer._evaluated().load_state_dict(trained.snapshots[-1])
        assert accs[-1] == -t.evaluate(t.val_set)[1] and all(a < 0 for a in accs)


def traj(t, reward, seed=0):
    g = torch.Generator().manual_seed(seed + t)
    counts = torch.bincount(torch.randint(0, K * K, (500,), generator=g), minlength=K * K).view(K, K)
    return {"traj": t, "reward": reward, "counts": counts, "val_accs": [reward]}


def test_state_records_saves_and_reloads(tmp_path):
    cfg = tiny_cfg()
    state = tiny_run(tmp_path / "run", cfg)
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


def test_removed_or_damaged_exports_are_rebuilt_from_the_state(tmp_path):
    """`--resume` of a finished run checks the files it names: a removed policy.json or a
    truncated history.jsonl is rebuilt from state.pt, an intact file is left alone."""
    state = tiny_run(tmp_path / "run", tiny_cfg())
    state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    run = tmp_path / "run"
    want = {n: (run / n).read_bytes() for n in ("policy.json", "policy_last.json", "history.jsonl")}
    assert SearchState.load(run).restore_exports() == []
    (run / "policy.json").unlink()
    (run / "history.jsonl").write_bytes(want["history.jsonl"][:10])
    last_mtime = (run / "policy_last.json").stat().st_mtime_ns
    assert SearchState.load(run).restore_exports() == ["history.jsonl", "policy.json"]
    assert {n: (run / n).read_bytes() for n in want} == want
    assert (run / "policy_last.json").stat().st_mtime_ns == last_mtime
    (run / "policy_last.json").write_text("{")
    assert SearchState.load(run).restore_exports() == ["policy_last.json"]
    assert (run / "policy_last.json").read_bytes() == want["policy_last.json"]


def test_failed_and_non_finite_trajectories_never_reach_the_agent(tmp_path):
    state = tiny_run(tmp_path / "run", tiny_cfg())
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
    tiny_run(tmp_path / "run", tiny_cfg())
    (tmp_path / "run" / "state.pt").write_bytes(b"garbage")
    with pytest.raises(AWSAAError, match="corrupt or not a torch checkpoint"):
        SearchState.load(tmp_path / "run")
    cfg_file = tmp_path / "run" / "config.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("loops: 3", "loops: 4"))
    with pytest.raises(AWSAAError, match=r"config\.yaml was changed"):
        SearchState.load(tmp_path / "run")


def es_cfg(**kw) -> SearchConfig:
    return tiny_cfg(agent="es", trajectories=4, **kw)


def test_sampling_policies_are_asked_once_saved_and_recorded(tmp_path):
    """ES hands each trajectory its own policy; asked once and saved before any trajectory
    runs, so a restarted controller or a resumed run hands out exactly the same ones, and the
    history records each trajectory's sampling policy."""
    state = tiny_run(tmp_path / "run", es_cfg())
    asked = state.ask(0)
    assert len(asked) == 4 and len({policy_hash(Policy.from_dict(p)) for p in asked}) == 4
    again = SearchState.load(tmp_path / "run")  # as a restarted controller would
    assert again.ask(0) == asked
    with pytest.raises(AWSAAError, match="policies asked for loop 3, but the next loop is 0"):
        again.ask(3)
    e = again.record(0, [traj(t, 80.0 + t) for t in range(4)], [], 1.0)
    assert [d["sampling_hash"] for d in e["details"]] == [policy_hash(Policy.from_dict(p)) for p in asked]
    assert all(len(d["sampling_op_mass"]) == K for d in e["details"])
    assert again.pending is None and SearchState.load(tmp_path / "run").ask(1) != asked  # the next loop's


def test_ppo_keeps_the_papers_result_and_es_averages_its_last_updates(tmp_path):
    ppo = tiny_run(tmp_path / "ppo", tiny_cfg())
    assert ppo.rule == "best_loop"
    es = tiny_run(tmp_path / "es", es_cfg(result_loops=2))
    assert es.rule == "average"
    after = []
    for loop, base in enumerate([80.0, 70.0, 75.0]):
        es.record(loop, [traj(t, base + t * (loop + 1)) for t in range(4)], [], 1.0)
        after.append(es.agent.params())
    result = Policy.load(tmp_path / "es" / "policy.json")
    expected = (after[1] + after[2]) / 2  # the mean of the parameters after the last 2 updates
    assert torch.allclose(result.params["first"], expected)
    assert result.meta["rule"] == "average" and es.best == {"loop": 1, "mean_reward": 81.5}
    again = SearchState.load(tmp_path / "es")
    assert torch.allclose(again.result_policy().params["first"], expected)


@pytest.mark.parametrize("control", ["shuffle", "noise"])
def test_a_null_control_changes_what_the_agent_hears_not_what_is_recorded(tmp_path, control):
    state = tiny_run(tmp_path / "run", es_cfg(control=control, control_noise_sd=0.3))
    real = [80.0, 81.0, 82.0, 90.0]
    e = state.record(0, [traj(t, r) for t, r in enumerate(real)], [], 1.0)
    assert e["rewards"] == real and e["mean_reward"] == sum(real) / 4
    heard = e["agent_rewards"]
    assert heard != real
    if control == "shuffle":
        assert sorted(heard) == sorted(real)
    else:
        assert all(abs(h - sum(real) / 4) < 5 * 0.3 for h in heard)


def test_common_random_numbers_share_everything_but_the_pairs(tiny_shared, fmnist):
    """With the same data seed, two trajectories under the same policy differ only through
    their pair draws; with the same pair seed too, they are identical."""
    cfg = tiny_cfg(finetune={"epochs": 2, "batch_size": 64, "common_random_numbers": True})
    tuner = FineTuner(cfg, tiny_shared, data=fmnist)
    a = tuner.run(Policy.uniform(), seed=5, pair_seed=1)
    b = tuner.run(Policy.uniform(), seed=5, pair_seed=2)
    c = tuner.run(Policy.uniform(), seed=5, pair_seed=1)
    assert not torch.equal(a.counts, b.counts) and torch.equal(a.counts, c.counts) and a.val_accs == c.val_accs


def test_the_pair_generator_leaves_the_batch_stream_alone(gray_images):
    """Pairs drawn from their own generator do not consume the batch's: crops, flips, signs
    and Cutout come out the same whatever the pair draws were."""
    from awsaa.train.pipeline import Pipeline, PolicyAugment

    space = Policy.uniform().space
    probs = torch.zeros(K, K)
    probs[space.index("Brightness_3"), space.index("Color_3")] = 1.0  # any pair generator draws this pair
    labels = torch.zeros(len(gray_images), dtype=torch.long)
    outs = []
    for pair_seed in (1, 2):
        pipe = Pipeline(PolicyAugment(Policy(space, probs), 0, pair_generator=torch.Generator().manual_seed(pair_seed)),
                        cutout=8)
        outs.append(pipe(gray_images, labels, torch.Generator().manual_seed(7))[0])
    assert torch.equal(outs[0], outs[1])
    pipe = Pipeline(PolicyAugment(Policy.uniform(), 0, pair_generator=torch.Generator().manual_seed(1)), cutout=8)
    x = pipe(gray_images, labels, torch.Generator().manual_seed(7))[0]
    assert not torch.equal(x, outs[0])  # other pairs, other images


def test_a_trajectory_that_ran_with_another_policy_is_refused(tmp_path):
    state = tiny_run(tmp_path / "run", es_cfg())
    asked = state.ask(0)
    trajs = [dict(traj(t, 80.0), sampling_hash=policy_hash(Policy.from_dict(asked[t]))) for t in range(4)]
    trajs[2]["sampling_hash"] = policy_hash(Policy.from_dict(asked[3]))  # a driver that mixed them up
    with pytest.raises(AWSAAError, match="trajectory 2 ran with sampling policy"):
        state.record(0, trajs, [], 1.0)
    assert state.loops_done == 0


def test_resume_of_a_finished_run_names_a_result_that_exists(tmp_path, capsys):
    from awsaa.cli.search import main as search_main

    state = tiny_run(tmp_path / "run", tiny_cfg(loops=1))
    state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    (tmp_path / "run" / "policy.json").unlink()
    assert search_main(["--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "already finished" in err and "rebuilt policy.json from state.pt" in err
    assert Policy.load(tmp_path / "run" / "policy.json").meta["rule"] == "best_loop"


def test_a_moved_storage_resumes_on_its_own_stage1_and_writes_nothing_where_it_was(tmp_path, tiny_shared):
    """run.json names stage 1's checkpoint by absolute path. A storage copied elsewhere (a
    committed record on a new machine) resumes on the copy's checkpoint of that name; with none
    there, stage 1 trained again is cached in the copy, not at the old path (whose folder is
    gone)."""
    import shutil

    from awsaa.search.runs import resume_run

    old = tmp_path / "old"
    cache = old / "pretrained" / f"{stage1_hash(tiny_cfg())}.pt"
    cache.parent.mkdir(parents=True)
    save_checkpoint(cache, tiny_shared)
    state = SearchState.create(old / "run", tiny_cfg(loops=3), {"name": "run", "pretrained": str(cache)})
    state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    assert resume_run(old / "run", log=lambda s: None).cache == cache  # where it was: as recorded
    shutil.copytree(old, tmp_path / "new")
    shutil.rmtree(old)
    said: list[str] = []
    run = resume_run(tmp_path / "new" / "run", log=said.append)
    assert run.cache == tmp_path / "new" / "pretrained" / cache.name and run.shared is not None
    assert all(torch.equal(run.shared["model"][k], v) for k, v in tiny_shared["model"].items())
    assert said[0].startswith(f"stage 1's weights: {run.cache} (run.json names {cache}") and "loop 2 of 3" in said[1]
    (tmp_path / "new" / "pretrained" / cache.name).unlink()
    run = resume_run(tmp_path / "new" / "run", log=said.append)
    assert run.shared is None and run.cache == tmp_path / "new" / "pretrained" / cache.name  # stage 1 goes here
    assert not old.exists()


def test_a_run_in_use_is_not_resumed_by_a_second_command(tmp_path, capsys):
    """Two commands on one run directory: the second is refused with the holder named."""
    import subprocess
    import sys

    from awsaa.cli.search import main as search_main

    run = tmp_path / "run"
    state = SearchState.create(run, tiny_cfg(loops=3), {"name": "run", "pretrained": "x"})
    state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    holder = subprocess.Popen([sys.executable, "-c", "import time; from awsaa.fileio import claim_dir; "
                               f"claim_dir({str(run)!r}, 'run directory', new=False); print('held', flush=True); "
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert search_main(["--resume", str(run), "--storage", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- the density reward


def _one_pair(a: str, b: str) -> Policy:
    space = Policy.uniform().space
    probs = torch.zeros(K, K)
    probs[space.names.index(a), space.names.index(b)] = 1.0
    return Policy(space, probs)


def test_density_reward_without_augmentation_is_the_clean_validation_accuracy(tiny_shared, fmnist):
    cfg = tiny_cfg(reward="density")
    tuner = FineTuner(cfg, tiny_shared, data=fmnist)
    clean = tuner.density(None, seed=0)
    tuner.trainer.model.load_state_dict(tiny_shared["model"])
    assert clean.reward == tuner.trainer.evaluate(tuner.trainer.val_set)[0]
    assert clean.counts.sum() == 0 and clean.images == 200


@pytest.fixture(scope="module")
def density_cfg_and_shared(fmnist):
    """A stage 1 that recognizes something (38% on 500 validation images after 3 epochs on
    2,000 images under the uniform policy; the module's tiny one is at chance)."""
    cfg = tiny_cfg(train_size=2500, val_size=500, eval_batch_size=500, reward="density", density={"draws": 3},
                   pretrain={"epochs": 4, "stop_epoch": 3, "batch_size": 64,
                             "optim": {"lr": 0.05, "warmup_epochs": 0, "final_lr": 0.0}})
    return cfg, pretrain(cfg, data=fmnist)


def test_density_reward_ranks_destructive_below_mild_and_counts_its_pairs(density_cfg_and_shared, fmnist):
    """On real Fashion-MNIST and stage 1's weights: Invert then Rotate(30 degrees) keeps little
    of a garment recognizable (seen 20.7%), Posterize(6 bits) then Brightness(1±0.3) nearly all
    of it (37.2%, clean 38.2%); the same seed gives the same reward; every image's pair is
    counted once per draw. (Invert then a strong Solarize is no test: it inverts back.)"""
    cfg, shared = density_cfg_and_shared
    tuner = FineTuner(cfg, shared, data=fmnist)
    clean = tuner.density(None, seed=0).reward
    mild = tuner.run(_one_pair("Posterize_3", "Brightness_3"), seed=1)
    harsh = tuner.run(_one_pair("Invert", "Rotate_9"), seed=1)
    assert harsh.reward < mild.reward - 8 and mild.reward > clean - 5, (harsh.reward, mild.reward, clean)
    assert tuner.run(_one_pair("Invert", "Rotate_9"), seed=1).reward == harsh.reward
    assert harsh.counts.sum() == 3 * 500 and len(harsh.val_accs) == 3
    uniform = tuner.run(Policy.uniform(), seed=2, pair_seed=5)
    assert uniform.counts.sum() == 1500 and (uniform.counts > 0).sum() > 500


def test_the_clean_source_trains_stage_1_without_the_searched_augmentation():
    from awsaa.search.stages import train_config

    shared_cfg, clean_cfg = tiny_cfg(reward="density"), tiny_cfg(reward="density", density={"source": "clean"})
    assert train_config(shared_cfg, "pretrain").aug == "uniform" and train_config(clean_cfg, "pretrain").aug == "none"
    assert stage1_hash(shared_cfg) == stage1_hash(tiny_cfg())  # the uniform stage 1 keeps its cache
    assert stage1_hash(clean_cfg) != stage1_hash(tiny_cfg())
    with pytest.raises(AWSAAError, match="reward must be finetune or density"):
        tiny_cfg(reward="fast")
    with pytest.raises(AWSAAError, match="draws must be >= 1"):
        tiny_cfg(reward="density", density={"draws": 0})


def test_a_run_made_before_a_config_key_existed_still_loads(tmp_path):
    """A newer awsaa adds config keys with defaults; a run whose config.yaml lacks them (an
    older awsaa wrote it) resumes, and a changed value is still refused."""
    import yaml

    from awsaa.config import config_hash

    run = tmp_path / "run"
    SearchState.create(run, tiny_cfg(), {"name": "run", "pretrained": "x"})
    data = yaml.safe_load((run / "config.yaml").read_text())
    del data["reward"], data["density"]  # keys this run's awsaa did not have yet
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    info = json.loads((run / "run.json").read_text())
    info["config_hash"] = config_hash(data)  # what that awsaa recorded
    (run / "run.json").write_text(json.dumps(info))
    raw = load_checkpoint(run / "state.pt")  # and in the state it saved
    raw["identity"]["config_hash"] = info["config_hash"]
    save_checkpoint(run / "state.pt", {k: v for k, v in raw.items() if k not in ("format", "version")})
    assert SearchState.load(run).cfg.reward == "finetune"
    data["loops"] = 7
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(AWSAAError, match=r"config\.yaml was changed"):
        SearchState.load(run)


def _strict_json_lines(path) -> list:
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_refused_update_is_a_failed_loop_the_agent_kept_and_resume_goes_on(tmp_path):
    """Rewards no update can use: the loop is recorded as failed (saying why), the agent's state
    is the last good one, the error is one line pointing at --resume, and the next loop runs."""
    run = tmp_path / "run"
    state = SearchState.create(run, tiny_cfg(loops=3, agent="es", trajectories=2), {"name": "run", "pretrained": "x"})
    counts = torch.ones(36, 36)

    def traj(i, reward, accs=None):
        return {"traj": i, "reward": reward, "val_accs": accs or [reward], "counts": counts}

    state.ask(0)
    state.record(0, [traj(0, 80.0, [float("nan"), 80.0]), traj(1, 82.0)], [], 1.0)  # a NaN accuracy on the way
    good = SearchState.load(run).agent.state_dict()
    state.ask(1)
    with pytest.raises(AWSAAError, match=r"^loop 2: reward 1e\+13 is out of range .*continue with --resume$"):
        state.record(1, [traj(0, 1e13), traj(1, -1e13)], [], 1.0)
    loaded = SearchState.load(run)
    assert loaded.loops_done == 2 and "out of range" in loaded.history[1]["update_refused"]
    assert loaded.history[1]["mean_reward"] is None
    assert torch.equal(loaded.agent.state_dict()["theta"], good["theta"]) and loaded.agent.scale == good["rms"]
    lines = _strict_json_lines(run / "history.jsonl")  # no NaN or Infinity tokens
    assert lines[0]["details"][0]["val_accs"] == [None, 80.0] and len(lines) == 2
    loaded.ask(2)
    loaded.record(2, [traj(0, 81.0), traj(1, 79.0)], [], 1.0)
    assert SearchState.load(run).loops_done == 3


def test_an_interrupted_run_that_had_finished_is_not_told_to_continue(tmp_path):
    """Stopped after its last loop (before the tool's end): the message names its result
    instead of "continue with --resume", which would only answer that every loop is done."""
    from awsaa.search.runs import where_it_stands as _where_it_stands

    cfg = tiny_cfg(loops=1)
    state = tiny_run(tmp_path / "run", cfg)
    assert "saved after loop 0 of 1; continue with" in _where_it_stands(tmp_path / "run", cfg)
    state.record(0, [traj(0, 80.0), traj(1, 82.0)], [], 1.0)
    said = _where_it_stands(tmp_path / "run", cfg)
    assert "finished all 1 loops" in said and "policy.json" in said and "continue with" not in said
