"""A whole search from Python, in this process (awsaa.search.run with the InProcess executor):
no Ray, no signal handlers, the result as objects."""

import signal
import sys

import pytest
from helpers import tiny_search

from awsaa import AWSAAError, Policy
from awsaa.config import SearchConfig, from_dict
from awsaa.search import InProcess, LoopRecord, SearchResult, run


def test_a_tiny_search_in_process_returns_its_policy_records_and_verdict(tmp_path):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # another test's Ray, or none
    cfg = from_dict(SearchConfig, tiny_search(loops=2, finetune={"epochs": 1, "reward_top_k": 1}))
    lines: list[str] = []
    result = run(cfg, storage=tmp_path, name="py", log=lines.append)
    assert isinstance(result, SearchResult) and result.run_dir == (tmp_path / "py").resolve()
    assert [r.loop for r in result.loops] == [1, 2] and all(isinstance(r, LoopRecord) for r in result.loops)
    assert all(len(r.rewards) == 2 and r.failed == [] and r.mean_reward is not None for r in result.loops)
    assert isinstance(result.policy, Policy) and result.policy == Policy.load(result.run_dir / "policy.json")
    assert result.rule == "best_loop" and result.agent == "ppo" and result.verdict.startswith("verdict: ")
    assert any(x.startswith("stage 1: epoch 2/2") for x in lines) and any(x.startswith("loop   2/2") for x in lines)
    assert ("ray" in sys.modules and sys.modules["ray"].is_initialized()) == ray_before  # nothing started a Ray
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # and no handler was changed

    # the run's lock is released at the end: it can be resumed (here: it is finished, and says so)
    with pytest.raises(AWSAAError, match="already finished all 2 loops"):
        run(resume=result.run_dir)
    with pytest.raises(AWSAAError, match=r"differs from the one run .* was started with"):
        run(from_dict(SearchConfig, tiny_search(loops=3)), resume=result.run_dir)  # a config is checked, not dropped
    with pytest.raises(AWSAAError, match="give a search config"):
        run()
    # stage 1 is cached under the storage: a second search with the same stage 1 reuses it
    one_loop = from_dict(SearchConfig, tiny_search(loops=1, finetune={"epochs": 1, "reward_top_k": 1}))
    again = run(one_loop, storage=tmp_path, name="py2", executor=InProcess(), log=lines.append)
    assert any("reusing the stage-1 weights" in x for x in lines) and len(again.loops) == 1
