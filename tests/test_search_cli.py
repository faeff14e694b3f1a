"""awsaa-search on a local Ray: a whole search, its outputs and cache, metrics, bad input (faults: test_faults)."""

import pytest
import yaml
from helpers import history, tiny_search

from awsaa import Policy
from awsaa.cli.search import main
from awsaa.search.state import policy_hash

# 400 training images and one fine-tune epoch: no check here depends on how well it learns
TINY = tiny_search(train_size=400, finetune={"epochs": 1, "reward_top_k": 1})


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_a_whole_search_its_outputs_and_the_stage1_cache(tmp_path, tiny_config, capsys, ray_local):
    storage = tmp_path / "runs"
    assert main(["-c", str(tiny_config), "--storage", str(storage), "--name", "a"]) == 0
    out = capsys.readouterr().out
    run = storage / "a"
    h = history(run)
    assert [e["loop"] for e in h] == [1, 2, 3] and all(e["trajectories"] == 2 for e in h)
    for e in h:
        assert len(e["rewards"]) == 2 and {d["traj"] for d in e["details"]} == {0, 1}
        assert e["inner_steps"] >= 1 and e["entropy"] > 0 and e["wall_seconds"] > 0 and e["top_pairs"]
    for n in (1, 2, 3):
        assert f"loop   {n}/3  mean reward" in out
    lines = out.splitlines()
    epochs = [i for i, x in enumerate(lines) if x.startswith("stage 1: epoch ")]
    done = [i for i, x in enumerate(lines) if x.startswith("awsaa-search: stage 1 done")]
    assert len(epochs) == TINY["pretrain"]["stop_epoch"] and len(done) == 1 and max(epochs) < done[0]
    assert "\x1b[" not in out  # no colour codes when the output is not a terminal
    assert "ETA" in out and f"policy:  {run / 'policy.json'}" in out
    assert "result (best_loop): the policy of loop" in out and "moved from uniform: KL" in out
    assert "op families, mass relative to uniform: destructive" in out and "verdict: the policy" in out
    best = max(h, key=lambda e: e["mean_reward"])
    pol = Policy.load(run / "policy.json")
    assert pol.meta["loop"] == best["loop"] and policy_hash(pol) == best["policy_hash"]
    assert (run / "policy_heatmap.png").stat().st_size > 10_000 and (run / "reward_curve.png").exists()
    assert (run / "policy_last.json").exists() and (run / "state.pt").exists()
    cached = list((storage / "pretrained").glob("*.pt"))
    assert len(cached) == 1

    # the same search in this process (awsaa.search.run, from the cached stage 1): the same
    # rewards, loop by loop, and the same result: the executor decides where, not what
    from awsaa.search import run as search

    here = search(tiny_config, storage=storage, name="here", log=lambda line: None)
    assert [r.rewards for r in here.loops] == [e["rewards"] for e in h]
    assert here.policy == pol and [r.policy_hash for r in here.loops] == [e["policy_hash"] for e in h]

    # a second search with the same stage-1 config reuses the shared weights: ES, each
    # trajectory with its own sampling policy, common random numbers
    assert main(["-c", str(tiny_config), "--storage", str(storage), "--name", "b", "--loops", "1", "--set",
                 "agent=es", "trajectories=4", "finetune.common_random_numbers=true", "workers.count=1"]) == 0
    out = capsys.readouterr().out
    assert "reusing the stage-1 weights" in out and "result (average): the mean of the parameters" in out
    h = history(storage / "b")
    assert all(len({d["sampling_hash"] for d in e["details"]}) == 4 for e in h)
    assert Policy.load(storage / "b" / "policy.json").meta["rule"] == "average"
    # a finished run cannot be resumed; a run name cannot be reused
    assert main(["--resume", str(run), "--storage", str(storage)]) == 2
    assert "already finished all 3 loops" in capsys.readouterr().err
    assert main(["-c", str(tiny_config), "--storage", str(storage), "--name", "a"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["-c", "nope.yaml"], "config file nope.yaml does not exist"),
    (["-c", "configs/search/quick_fmnist.yaml", "--set", "trajectoriez=3"], "unknown key trajectoriez"),
    (["-c", "configs/search/quick_fmnist.yaml", "--set", "loops=0"], "loops must be >= 1"),
    (["-c", "configs/search/quick_fmnist.yaml", "--set", "agent=a2c"], "agent must be one of ppo, reinforce, es"),
    (["--resume", "configs"], "is not an awsaa search run"),
    ([], "give a search config with -c"),
    (["-c", "configs/search/quick_fmnist.yaml", "--pretrained", "/nonexistent.pt"], "does not exist"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, args, message):
    assert main([*args, "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_corrupt_state_mismatched_pretrained_and_unreachable_address(tmp_path, tiny_config, capsys, ray_local):
    from awsaa.config import SearchConfig, from_dict
    from awsaa.search.state import SearchState
    from awsaa.train.checkpoint import save_checkpoint

    cfg = from_dict(SearchConfig, TINY)
    run = tmp_path / "runs" / "c"
    SearchState.create(run, cfg, {"name": "c", "pretrained": str(tmp_path / "p.pt")})
    (run / "state.pt").write_bytes(b"\x00" * 64)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["--resume", str(run)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing overwritten

    save_checkpoint(tmp_path / "other.pt", {"kind": "shared", "stage1_hash": "0123456789abcdef"})
    assert main(["-c", str(tiny_config), "--pretrained", str(tmp_path / "other.pt"),
                 "--storage", str(tmp_path / "s")]) == 2
    assert "was made by a different stage-1 config" in capsys.readouterr().err

    # refused where this process already holds a connection (the tests' local Ray): it used to run there
    assert main(["-c", str(tiny_config), "--address", "127.0.0.1:1", "--storage", str(tmp_path / "s2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in err
    assert not (tmp_path / "s2").exists()


def test_set_given_twice_keeps_both(capsys):
    """--set a=1 --set b=2 kept only b=2 (argparse's default for a repeated option)."""
    from awsaa.cli.search import main

    assert main(["-c", "configs/search/quick_fmnist.yaml", "--print-config", "--set", "seed=3",
                 "--set", "loops=7"]) == 0
    out = capsys.readouterr().out
    assert "\nseed: 3\n" in out and "\nloops: 7\n" in out


def test_aug_and_seeds_given_twice_add_up():
    """awsaa-train's --aug, --seeds and --set, each given twice, add up (argparse kept only
    the last), and its defaults are replaced, not extended."""
    from awsaa.cli.train import build_parser

    args = build_parser().parse_args(["-c", "x.yaml", "--aug", "none", "--aug", "uniform", "--seeds", "0",
                                      "--seeds", "1", "2", "--set", "epochs=2", "--set", "seed=3"])
    assert args.aug == ["none", "uniform"] and args.seeds == [0, 1, 2]
    assert args.set == ["epochs=2", "seed=3"]
    defaults = build_parser().parse_args(["-c", "x.yaml", "--aug", "uniform"])
    assert defaults.aug == ["uniform"]


def test_an_agent_of_your_own_runs_a_search_on_ray(tmp_path, own_agent, ray_local, tiny_pretrained):
    """The agent is registered in the driver only (its class defined in a fixture, as in a
    notebook); the controller actor, another process, gets it from the driver."""
    from awsaa.config import SearchConfig, from_dict
    from awsaa.distributed.search import run_search
    from awsaa.search.runs import new_run

    cfg = from_dict(SearchConfig, tiny_search(agent="still", loops=2, workers={"count": 1},
                                              finetune={"epochs": 1, "reward_top_k": 1}))
    run = new_run(cfg, tmp_path, "own", pretrained=tiny_pretrained, log=lambda line: None)
    summary = run_search(run, log=lambda line: None)
    assert summary["loops_done"] == 2
    h = history(tmp_path / "own")
    assert [e["loop"] for e in h] == [1, 2] and all(e["entropy"] > 0 for e in h)
    assert Policy.load(tmp_path / "own" / "policy.json").kl_from(Policy.uniform()) == pytest.approx(0, abs=1e-9)
