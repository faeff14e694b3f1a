"""NAS + AWS (ProxylessNAS + AWS, and gradient-based NAS + AWS): the supernet's stage 1, the
architecture distribution and its hard constraints, a path's batch-norm statistics, a whole
joint search in this process and on Ray (the same rewards), resumed at loop granularity, the
gradient method's logits and its collapse guards, and the experiments' own code."""

import itertools
import json
import math
import random
import re
import signal

import numpy as np
import pytest
import torch
from helpers import TINY_NAS, history, synthetic_latency, tiny_search

from awsaa.arch import Arch, block_params, min_block_params, op_params, slots
from awsaa.config import NasConfig, SearchConfig, from_dict
from awsaa.models import ChoiceNet, SuperNet
from awsaa.models.choice import op_parameter_counts
from awsaa.search import run
from awsaa.search.arch_agent import ArchAgent
from awsaa.signals import Interrupted


def test_parameters_are_counted_without_building_a_network():
    for slot, built in zip(slots(), op_parameter_counts(), strict=True):
        assert {op: op_params(op, slot) for op in slot.choices} == built
    for arch in [Arch.sample(random.Random(i)) for i in range(5)]:
        net = ChoiceNet(arch, num_classes=7, in_channels=3)
        assert arch.param_count(7, 3) == sum(p.numel() for p in net.parameters())
    assert min_block_params() == block_params(["zero" if "zero" in s.choices else "mb3_e3" for s in slots()])


def test_the_supernet_draws_a_path_per_training_batch_and_counts_it():
    net = SuperNet(num_classes=10, in_channels=1)
    net.seed_paths(0)
    x = torch.randn(2, 1, 16, 16)
    net.train()
    for _ in range(30):
        net(x)
    assert net.op_counts.sum(1).tolist() == [30] * len(slots())  # one op per block per batch
    assert (net.op_counts[:, :5] > 0).all()  # every convolutional op drawn in every block,
    assert [bool(net.op_counts[i, 5]) for i in range(9)] == ["zero" in s.choices for s in slots()]  # zero where taken
    net.eval()
    net(x)
    net.train()
    arch = Arch.uniform_op("mb3_e6")
    net.set_path(arch)
    net(x)
    assert net.op_counts.sum(1).tolist() == [30] * len(slots())  # evaluation and a set path count nothing
    # the path travels with the weights: a snapshot loaded elsewhere runs the same path
    other = SuperNet(num_classes=10, in_channels=1)
    other.load_state_dict(net.state_dict())
    assert other.active_path() == arch
    other.eval()
    net.eval()
    assert torch.equal(other(x), net(x))


def test_a_path_s_snapshot_holds_only_what_its_forward_reads_and_evaluates_the_same_elsewhere():
    """A fine-tune's per-epoch snapshot of the supernet is its path's state (what a spread
    evaluation ships through Ray's object store): on a supernet whose other ops hold other
    weights it gives the same outputs, and a state of another shape is refused."""
    torch.manual_seed(0)
    a, b = SuperNet(10, 1), SuperNet(10, 1)  # different weights everywhere
    arch = Arch(("mb3_e3", "zero", "wrn", "mb5_e6", "zero", "mb3_e6", "wrn", "mb5_e3", "zero"))
    a.set_path(arch)
    a.eval()
    with torch.no_grad():
        for m in a.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)  # statistics of its own, not the defaults
    state = a.path_state_dict()
    full = sum(v.numel() for v in a.state_dict().values())
    assert sum(v.numel() for v in state.values()) < full / 3
    assert not any(k.startswith(("choices.1.", "choices.4.", "choices.8.")) for k in state)  # zero blocks
    assert not any(".mb5_e6." in k for k in state if k.startswith("choices.0."))  # other ops
    b.load_path_state_dict(state)
    b.eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and b.active_path() == arch
    with pytest.raises(ValueError, match="keys differ"):
        b.load_path_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    with pytest.raises(ValueError, match="no path is set"):
        SuperNet(10, 1).path_state_dict()


def test_a_path_s_batch_norm_statistics_are_recomputed_from_its_own_batches():
    torch.manual_seed(0)
    net = SuperNet(num_classes=10, in_channels=1)
    arch = Arch.sample(random.Random(1))
    batches = [torch.randn(8, 1, 16, 16) * 3 + 1 for _ in range(3)]
    net.train()
    for _ in range(5):  # other paths move the shared batch norms' statistics
        net(torch.randn(8, 1, 16, 16))
    weights = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith(("running_mean", "running_var"))}
    assert net.recalibrate(arch, iter(batches)) == 3
    stem = net.stem[0](torch.cat(batches))
    # the stem's statistics are the plain average over the three batches
    per_batch = torch.stack([stem[i * 8:(i + 1) * 8].mean((0, 2, 3)) for i in range(3)])
    assert torch.allclose(net.stem[1].running_mean, per_batch.mean(0), atol=1e-5)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items() if "num_batches" not in k)
    assert net.stem[1].momentum == 0.1 and net.training
    net.eval()
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(net.extract(arch).eval()(x), net(x, arch))


def _all_archs(per_op):
    """``per_op(op, slot)`` summed over the blocks of every architecture (7 million, in the
    order of numpy's unravel_index over the blocks' choices), by brute force."""
    total = np.zeros(1)
    for s in slots():
        c = np.array([per_op(op, s) for op in s.choices], dtype=float)
        total = (total[:, None] + c[None, :]).reshape(-1)
    return total


@pytest.mark.parametrize("budget, zeros", [(None, None), (15_000, None), (40_000, None), (60_000, 2), (None, 0)])
def test_draws_keep_the_constraints_and_the_result_is_the_most_probable_within_them(budget, zeros):
    agent = ArchAgent(NasConfig(max_block_params=budget, max_zero_blocks=zeros), seed=3)
    with torch.no_grad():
        for g in agent.logits:
            g.copy_(torch.randn(len(g), generator=torch.Generator().manual_seed(len(g) + 7), dtype=torch.float64) * 2)
    draws = agent.ask(300)
    if budget is not None:
        assert max(a.block_params for a in draws) <= budget
    if zeros is not None:
        assert max(a.ops.count("zero") for a in draws) <= zeros
    assert len({a.ops for a in draws}) > (1 if budget == 15_000 else 100)  # 15,000: few fit (the least is 13,584)
    params = _all_archs(op_params)
    n_zero = _all_archs(lambda op, s: op == "zero")
    if budget == 15_000:
        # few architectures fit: the constrained sampler's exact probabilities (_log_q) sum to
        # 1 over them, and the draws come at those frequencies
        where = np.unravel_index(np.flatnonzero(params <= budget), [len(s.choices) for s in slots()])
        fits = [Arch(tuple(s.choices[k] for s, k in zip(slots(), idx, strict=True)))
                for idx in zip(*where, strict=True)]
        with torch.no_grad():
            q = {a.ops: math.exp(float(agent._log_q(a))) for a in fits}
        assert sum(q.values()) == pytest.approx(1.0, abs=1e-9)
        for ops, p in q.items():
            seen = sum(a.ops == ops for a in draws) / len(draws)
            assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / len(draws)) + 1e-9
    # the result: the most probable architecture within the budget, by brute force over the space
    logp = [torch.log_softmax(g.detach(), 0).numpy() for g in agent.logits]
    total_lp = np.zeros(1)
    for lp in logp:
        total_lp = (total_lp[:, None] + lp[None, :]).reshape(-1)
    cap = math.inf if zeros is None else zeros
    ok = (params <= (budget or math.inf)) & (n_zero <= cap)
    best = agent.best()
    assert best.block_params <= (budget or math.inf) and best.ops.count("zero") <= cap
    lp_best = sum(lp[s.choices.index(op)] for lp, s, op in zip(logp, slots(), best.ops, strict=True))
    assert lp_best == pytest.approx(total_lp[ok].max(), abs=1e-9)


def test_a_latency_table_times_every_op_and_says_how_far_its_sums_are_from_whole_networks(tmp_path, capsys):
    from awsaa.errors import AWSAAError
    from awsaa.latency import LatencyTable, measure

    t = measure("cpu", batch_size=2, image_size=8, channels=1, num_classes=10, check=2, min_run_time=0.005)
    assert [set(b) for b in t.blocks] == [set(s.choices) for s in slots()]
    assert all(v > 0 for b in t.blocks for op, v in b.items() if op != "zero") and t.ends_ms > 0
    assert len(t.check) == 2 and all(c["measured_ms"] > 0 for c in t.check)
    assert all(c["predicted_ms"] == pytest.approx(t.predict(Arch(tuple(c["ops"]))), abs=1e-5) for c in t.check)
    assert t.error is not None and 0 <= t.error < math.inf
    t.save(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json") == t
    from awsaa.cli.latency import main as latency_main  # the tool: the same table, and what it says of it

    assert latency_main(["-o", str(tmp_path / "cli.json"), "--device", "cpu", "--image-size", "8", "--channels", "1",
                         "--batch-size", "2", "--check", "1", "--min-run-time", "0.005"]) == 0
    said = capsys.readouterr().out
    made = LatencyTable.load(tmp_path / "cli.json")
    assert (made.image_size, made.channels, made.batch_size, len(made.check)) == (8, 1, 2, 1)
    assert f"mean relative error {made.error:.1%}" in said and said.rstrip().endswith("cli.json")
    good = t.to_dict()
    for breakage, complaint in [
        (lambda d: d["blocks"][0].pop("wrn"), "block 0 must time exactly its ops"),
        (lambda d: d["blocks"][4].update(mb3_e3=-1.0), "must be a number of milliseconds from 0"),
        (lambda d: d["blocks"][4].update(mb3_e3=1e308), "must be a number of milliseconds from 0"),
        (lambda d: d.update(format="awsaa.arch"), "not an awsaa latency table"),
        (lambda d: d["check"][0].update(measured_ms=0), "must be above 0"),
        (lambda d: d.pop("ends_ms"), "lacks ['ends_ms']"),
        (lambda d: d.update(image_size=0), "'image_size' must be an integer >= 1"),
    ]:
        d = json.loads(json.dumps(good))
        breakage(d)
        (tmp_path / "bad.json").write_text(json.dumps(d))
        with pytest.raises(AWSAAError, match=re.escape(complaint)):
            LatencyTable.load(tmp_path / "bad.json")


@pytest.mark.parametrize("budget_ms, zeros", [(2.0, None), (6.0, 2)])
def test_a_latency_budget_is_hard_and_the_result_the_most_probable_within_it(budget_ms, zeros):
    table = synthetic_latency()
    cfg = NasConfig(latency_table="t.json", max_latency_ms=budget_ms, max_zero_blocks=zeros)
    agent = ArchAgent(cfg, seed=1, latency=table)
    with torch.no_grad():
        for g in agent.logits:
            g.copy_(torch.randn(len(g), generator=torch.Generator().manual_seed(len(g) + 3), dtype=torch.float64) * 2)
    draws = agent.ask(300)
    assert max(table.predict(a) for a in draws) <= budget_ms + 1e-9 and len({a.ops for a in draws}) > 1
    assert max(a.block_params for a in draws) > 0 and agent.latency is table
    us = _all_archs(lambda op, s: math.ceil(round((op_params(op, s) / 10_000 if op != "zero" else 0.001) * 1000, 6)))
    n_zero = _all_archs(lambda op, s: op == "zero")
    ok = (us <= math.floor(round((budget_ms - 0.25) * 1000, 6))) & (n_zero <= (math.inf if zeros is None else zeros))
    logp = [torch.log_softmax(g.detach(), 0).numpy() for g in agent.logits]
    total_lp = np.zeros(1)
    for lp in logp:
        total_lp = (total_lp[:, None] + lp[None, :]).reshape(-1)
    best = agent.best()
    assert table.predict(best) <= budget_ms + 1e-9
    assert sum(lp[s.choices.index(op)] for lp, s, op in zip(logp, slots(), best.ops, strict=True)) == \
        pytest.approx(total_lp[ok].max(), abs=1e-9)
    with pytest.raises(Exception, match=r"admits no architecture: the fastest takes 1\.6"):
        ArchAgent(NasConfig(latency_table="t.json", max_latency_ms=1.0), latency=table)


def test_reinforce_moves_the_distribution_toward_rewarded_ops_and_resumes_exactly():
    agent = ArchAgent(NasConfig(lr=0.2), seed=0)
    first = slots()[0].choices.index("wrn")
    p0 = agent.probs()[0][first]
    for _ in range(15):
        archs = agent.ask(4)
        agent.tell([1.0 if a.ops[0] == "wrn" else 0.0 for a in archs], archs)
    assert agent.probs()[0][first] > p0 + 0.2
    copy = ArchAgent(NasConfig(lr=0.2), seed=0)
    copy.load_state_dict(agent.state_dict())
    assert copy.ask(6) == agent.ask(6)
    archs = agent.ask(2)
    copy.tell([1.0, 0.0], archs)
    agent.tell([1.0, 0.0], archs)
    assert copy.probs() == agent.probs() and copy.best() == agent.best()
    with pytest.raises(Exception, match="non-finite"):
        agent.tell([float("nan"), 1.0], archs)


def test_by_default_only_the_differences_within_a_loop_move_the_distribution():
    """The default baseline is the loop's own mean: what every architecture of a loop shares
    (its policies, its data) moves nothing, however large; a moving baseline (momentum 0.9)
    lets the same shared shift move the distribution."""
    own, moving = ArchAgent(NasConfig(), seed=0), ArchAgent(NasConfig(baseline_momentum=0.9), seed=0)
    before = own.probs()
    for shift in (0.0, 0.5, -0.3, 0.8):  # both architectures of each loop equally good, the level shifting
        for agent in (own, moving):
            archs = agent.ask(2)
            agent.tell([shift, shift], archs)
    assert own.probs() == before
    assert moving.probs() != before
    archs = own.ask(2)
    own.tell([0.9, 0.1], archs)  # a difference within the loop does
    assert own.probs() != before


def test_a_joint_search_in_process_its_grid_its_files_and_its_resume(tmp_path):
    cfg = from_dict(SearchConfig, {**TINY_NAS, "finetune": {**TINY_NAS["finetune"], "epochs": 1, "reward_top_k": 1}})
    lines: list[str] = []
    whole = run(cfg, storage=tmp_path, name="whole", log=lines.append)
    assert any(x.startswith("stage 1 trained each op") for x in lines)
    h = history(whole.run_dir)
    assert [e["loop"] for e in h] == [1, 2, 3]
    for e in h:
        nas = e["nas"]
        assert len(nas["archs"]) == 2 and len(nas["policy_rewards"]) == 2 and nas["effects"] is not None
        assert max(nas["block_params"]) <= 60_000
        by_cell = {(d["traj"] // 2, d["traj"] % 2): d for d in e["details"]}
        assert len(by_cell) == 4
        # the policy agent hears each policy's mean over the architectures, the architecture
        # agent each architecture's mean over the policies
        for p in range(2):
            assert nas["policy_rewards"][p] == pytest.approx((by_cell[0, p]["reward"] + by_cell[1, p]["reward"]) / 2)
        for a in range(2):
            assert nas["arch_rewards"][a] == pytest.approx((by_cell[a, 0]["reward"] + by_cell[a, 1]["reward"]) / 2)
            assert by_cell[a, 0]["arch"] == by_cell[a, 1]["arch"] and Arch(tuple(by_cell[a, 0]["arch"])).describe() \
                == nas["archs"][a]
        assert by_cell[0, 0]["sampling_hash"] == by_cell[1, 0]["sampling_hash"] != by_cell[0, 1]["sampling_hash"]
    assert "its 3 steps" in whole.verdict  # the sign-flip test hears the grid's policies: a pair a loop
    arch = Arch.load(whole.run_dir / "arch.json")
    assert arch.block_params <= 60_000 and arch.meta["after_loop"] == 3
    assert arch.meta["params"] == sum(p.numel() for p in ChoiceNet(arch, 10, 1).parameters())
    assert arch.describe() == h[-1]["nas"]["result_arch"]

    # stopped after its first loop, then resumed: the same rewards, architecture and policy
    def stop_after_first(line: str) -> None:
        if line.startswith("loop   1/3"):
            raise Interrupted(signal.SIGINT)

    with pytest.raises(Interrupted, match="saved after loop 1 of 3"):
        run(cfg, storage=tmp_path, name="stopped", log=stop_after_first)
    assert len(history(tmp_path / "stopped")) == 1
    assert Arch.load(tmp_path / "stopped" / "arch.json").meta["after_loop"] == 1
    resumed = run(resume=tmp_path / "stopped", log=lines.append)
    assert [r.rewards for r in resumed.loops] == [r.rewards for r in whole.loops]
    assert Arch.load(resumed.run_dir / "arch.json") == arch == whole.arch and resumed.policy == whole.policy
    (resumed.run_dir / "arch.json").unlink()  # an export lost is rebuilt from state.pt
    from awsaa.search.state import SearchState

    assert SearchState.load(resumed.run_dir).restore_exports() == ["arch.json"]
    assert Arch.load(resumed.run_dir / "arch.json") == arch


def test_learning_one_side_only_keeps_the_other_as_it_was(tmp_path, tiny_nas_pretrained):
    arch_only = from_dict(SearchConfig, {**TINY_NAS, "loops": 1, "nas": {**TINY_NAS["nas"], "learn": "arch"}})
    r = run(arch_only, storage=tmp_path, name="arch", pretrained=tiny_nas_pretrained, log=lambda x: None)
    h = history(r.run_dir)
    assert all(len({d["sampling_hash"] for d in e["details"]}) == 1 for e in h)  # one unperturbed policy
    k = r.policy.space.num_ops
    assert torch.allclose(r.policy.probs(), torch.full((k, k), 1 / k**2, dtype=r.policy.probs().dtype))
    assert (r.run_dir / "arch.json").exists()
    policy_only = from_dict(SearchConfig, {**TINY_NAS, "loops": 2, "nas": {**TINY_NAS["nas"], "learn": "policy"}})
    lines: list[str] = []
    r = run(policy_only, storage=tmp_path, name="policy", pretrained=tiny_nas_pretrained, log=lines.append)
    loop_lines = [x for x in lines if x.startswith("loop ")]
    assert len(loop_lines) == 2 and all("architectures drawn uniformly" in x and "arch entropy" not in x
                                        for x in loop_lines)  # no mode of a distribution that does not learn
    assert not (r.run_dir / "arch.json").exists()  # the distribution stayed uniform: no architecture found
    uniform = sum(math.log(len(s.choices)) for s in slots())
    assert all("arch_kl" not in e["nas"] and e["nas"]["arch_entropy"] == pytest.approx(uniform)
               for e in history(r.run_dir))
    assert r.policy is not None and r.policy.entropy() < 2 * math.log(r.policy.space.num_ops)  # the policy moved


@pytest.fixture(scope="module")
def tiny_nas_pretrained(tmp_path_factory):
    """Stage 1 of the tiny joint search, as a file."""
    from awsaa.search.stages import pretrain
    from awsaa.train.checkpoint import save_checkpoint

    shared = pretrain(from_dict(SearchConfig, TINY_NAS))
    assert sum(shared["op_counts"]["wrn"]) > 0 and set(shared["op_counts"]) == {
        "wrn", "mb3_e3", "mb3_e6", "mb5_e3", "mb5_e6", "zero"}
    path = tmp_path_factory.mktemp("nas") / "supernet.pt"
    save_checkpoint(path, shared)
    return path


def test_a_search_under_a_latency_budget_keeps_its_table_and_never_leaves_the_budget(tmp_path, tiny_nas_pretrained):
    from awsaa.errors import AWSAAError
    from awsaa.latency import LatencyTable
    from awsaa.search.state import SearchState

    table = synthetic_latency()  # digits: 16x16 images, 1 channel, 10 classes
    table.save(tmp_path / "lat.json")
    nas = {**TINY_NAS["nas"], "max_block_params": None, "latency_table": "lat.json", "max_latency_ms": 6.0}
    cfg = from_dict(SearchConfig, {**TINY_NAS, "loops": 2, "nas": nas})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)  # a relative path, as a user writes it in a config: the run records it absolute
        r = run(cfg, storage=tmp_path / "runs", name="lat", pretrained=tiny_nas_pretrained, log=lambda x: None)
    assert SearchState.read_run(r.run_dir)[1].nas.latency_table == str(tmp_path / "lat.json")
    assert LatencyTable.load(r.run_dir / "latency.json") == table  # the run's own copy
    for e in history(r.run_dir):
        for d in e["details"]:
            assert table.predict(Arch(tuple(d["arch"]))) <= 6.0
        assert e["nas"]["result_latency_ms"] <= 6.0
    arch = Arch.load(r.run_dir / "arch.json")
    assert arch.meta["latency_ms"] == pytest.approx(table.predict(arch), abs=1e-4) and table.predict(arch) <= 6.0
    assert arch.meta["latency_table"]["device"] == "synthetic"
    (tmp_path / "lat.json").unlink()  # the run reads its own copy from now on
    assert SearchState.load(r.run_dir).arch_agent.latency == table
    bumped = table.to_dict()
    bumped["blocks"][0]["wrn"] += 1.0
    (r.run_dir / "latency.json").write_text(json.dumps(bumped))  # a table edited under the run
    with pytest.raises(AWSAAError, match="costs differ from those the run started with"):
        SearchState.load(r.run_dir)


def test_policy_then_architecture_fixes_the_given_policy_in_every_fine_tune(tmp_path, tiny_nas_pretrained):
    from awsaa.augment.space import SearchSpace
    from awsaa.errors import AWSAAError
    from awsaa.policy import Policy
    from awsaa.search.state import SearchState, policy_hash

    space = SearchSpace.default()
    given = Policy.from_params(space, torch.linspace(-2, 2, space.num_ops), torch.zeros(space.num_ops, space.num_ops),
                               "softmax", {"run": "a policy-only search"})
    given.save(tmp_path / "first.json")
    nas = {**TINY_NAS["nas"], "learn": "arch", "policy": "first.json"}
    cfg = from_dict(SearchConfig, {**TINY_NAS, "loops": 2, "nas": nas})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)  # a relative path, recorded absolute
        r = run(cfg, storage=tmp_path / "runs", name="pa", pretrained=tiny_nas_pretrained, log=lambda x: None)
    assert SearchState.read_run(r.run_dir)[1].nas.policy == str(tmp_path / "first.json")
    assert Policy.load(r.run_dir / "fixed_policy.json") == given  # the run's own copy
    hashes = {d["sampling_hash"] for e in history(r.run_dir) for d in e["details"]}
    assert hashes == {policy_hash(given)}  # every fine-tune ran under it, no perturbation
    assert len({tuple(d["arch"]) for e in history(r.run_dir) for d in e["details"]}) > 1  # the architectures vary
    assert all(e["entropy"] == pytest.approx(given.entropy()) for e in history(r.run_dir))
    for name in ("policy.json", "policy_last.json"):
        assert torch.allclose(Policy.load(r.run_dir / name).probs(), given.probs())
    assert Arch.load(r.run_dir / "arch.json")
    assert r.verdict.startswith("verdict: none for the policy, which was not searched")  # not "did NOT move"
    (tmp_path / "first.json").unlink()  # the run reads its own copy from now on
    assert SearchState.load(r.run_dir).fixed_policy == given
    Policy.uniform().save(r.run_dir / "fixed_policy.json")  # a policy swapped under the run
    with pytest.raises(AWSAAError, match="is not the policy the run started with"):
        SearchState.load(r.run_dir)


def test_the_supernet_s_stage1_counts_each_trained_batch_once_per_block(tiny_nas_pretrained):
    from awsaa.train.checkpoint import load_checkpoint

    counts = load_checkpoint(tiny_nas_pretrained, kind="shared")["op_counts"]
    batches = 2 * 2  # 2 epochs of 100 images in batches of 50 (the validation passes count nothing)
    for i, slot in enumerate(slots()):
        assert sum(counts[op][i] for op in slot.choices) == batches
        assert all(counts[op][i] == 0 for op in counts if op not in slot.choices)
    assert sum(counts["zero"]) > 0  # blocks were skipped too


# ----------------------------------------------------------------------------- gradient-based NAS + AWS

def test_the_zero_cap_holds_against_logits_that_favour_the_parameter_free_op():
    """The collapse guard: logits that put zero first everywhere (what a gradient search drifts
    to: the parameter-free op lowers the loss first) still give at most max_zero_blocks."""
    def favour_zero(agent):
        with torch.no_grad():
            for g, s in zip(agent.logits, slots(), strict=True):
                g.zero_()
                if "zero" in s.choices:
                    g[s.choices.index("zero")] = 5.0
        return agent

    free = favour_zero(ArchAgent(NasConfig(), seed=0))
    assert free.best().ops.count("zero") == 7  # every block that can be zero is
    capped = favour_zero(ArchAgent(NasConfig(max_zero_blocks=2), seed=0))
    assert capped.best().ops.count("zero") == 2
    assert max(a.ops.count("zero") for a in capped.ask(200)) == 2


def test_a_gradient_search_learns_the_logits_in_stage1_after_its_warm_up_and_starts_stage2_there(tmp_path):
    grad = {**TINY_NAS["nas"], "method": "gradient", "grad_lr": 0.05, "warmup_fraction": 0.5, "max_zero_blocks": 1,
            "max_block_params": 100_000}
    cfg = from_dict(SearchConfig, {**TINY_NAS, "loops": 2, "nas": grad,
                                   "pretrain": {**TINY_NAS["pretrain"], "epochs": 6, "stop_epoch": 4}})
    assert cfg.stage1_key() != from_dict(SearchConfig, {**TINY_NAS, "loops": 2}).stage1_key()  # its own stage 1
    lines: list[str] = []
    r = run(cfg, storage=tmp_path, name="g", log=lines.append)
    learned = [x for x in lines if x.startswith("stage 1 learned the architecture logits")]
    # 4 epochs of 2 batches, the logits learning in the last 2: 4 steps on validation batches
    assert len(learned) == 1 and "(4 steps on validation batches)" in learned[0]
    from awsaa.train.checkpoint import load_checkpoint

    shared = load_checkpoint(next((tmp_path / "pretrained").glob("*.pt")), kind="shared")
    assert all(g.abs().max() > 0 for g in shared["arch_logits"])
    h = history(r.run_dir)
    assert all(Arch(tuple(d["arch"])).ops.count("zero") <= 1 for e in h for d in e["details"])
    assert r.arch is not None and r.arch.ops.count("zero") <= 1
    # the warm-up: with all of stage 1 warm-up, the logits never move
    still = from_dict(SearchConfig, {**TINY_NAS, "nas": {**grad, "warmup_fraction": 0.999}})
    from awsaa.search.stages import pretrain

    s = pretrain(still)
    assert s["arch_steps"] == 0 and all(torch.equal(g, torch.zeros_like(g)) for g in s["arch_logits"])


def test_a_policy_search_on_an_architecture_file_records_the_file_by_its_absolute_path(tmp_path, monkeypatch):
    """Architecture first, then its policy (the sequential baseline): a search config naming
    an architecture file by a relative path runs, and its run records the absolute path, so
    workers elsewhere and a --resume from another directory find the same file."""
    import yaml

    Arch.uniform_op("mb3_e3").save(tmp_path / "a.json")
    monkeypatch.chdir(tmp_path)
    cfg = from_dict(SearchConfig, tiny_search(model="a.json", dataset="digits", train_size=None, val_size=100,
                                              loops=1, eval_batch_size=500,
                                              pretrain={"epochs": 2, "stop_epoch": 1, "batch_size": 50},
                                              finetune={"epochs": 1, "reward_top_k": 1, "batch_size": 50}))
    r = run(cfg, storage=tmp_path / "runs", name="seq", log=lambda x: None)
    saved = yaml.safe_load((r.run_dir / "config.yaml").read_text())
    assert saved["model"] == str(tmp_path / "a.json") and len(r.loops) == 1 and r.arch is None


@pytest.fixture
def nas_fidelity(monkeypatch):
    """experiments/nas_fidelity.py, imported as the experiments import it (their folder on the
    path, for this test only)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "experiments"))
    import nas_fidelity

    return nas_fidelity


def test_the_fidelity_experiment_draws_stratified_architectures_and_ranks_with_intervals(tmp_path, capsys,
                                                                                         nas_fidelity):
    """experiments/nas_fidelity.py's own path, tiny: 20 architectures in 4 size bins, and its
    table on made-up scores where one proxy ranks perfectly and one backwards, and on part of
    them (a run in progress)."""
    import shutil

    files = nas_fidelity.archs(tmp_path)
    assert nas_fidelity.archs(tmp_path) == files and len(files) == 20  # drawn once
    archs = [Arch.load(f) for f in files]
    bins = [[a.block_params for a in archs if a.meta["bin"] == b] for b in range(4)]
    assert [len(b) for b in bins] == [5] * 4 and all(max(b) <= min(c) for b, c in itertools.pairwise(bins))
    scores = {}
    for i, f in enumerate(files):
        err = 5.0 - 0.1 * i  # the truth: later files train better
        (tmp_path / "train" / f.stem).mkdir(parents=True)
        (tmp_path / "train" / f.stem / "summary.json").write_text(json.dumps(
            [{"status": "done", "final_test_error": err, "label": f"d-{f.stem}-uniform-seed{k}"} for k in (0, 1)]))
        # a third seed, trained later: it counts, and disagrees with the first two (the
        # ranking reversed)
        (tmp_path / "train" / f"{f.stem}-seeds-2").mkdir(parents=True)
        (tmp_path / "train" / f"{f.stem}-seeds-2" / "summary.json").write_text(json.dumps(
            [{"status": "done", "final_test_error": 3.0 + 0.1 * i, "label": f"d-{f.stem}-uniform-seed2"}]))
        scores[f.stem] = {"aws": float(i), "one_shot": float(-i)}  # aws ranks perfectly, one-shot backwards
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    nas_fidelity.table(tmp_path, resamples=100)
    out = capsys.readouterr().out
    assert "| AWS fine-tune score | +1.00 [+1.00, +1.00] | +1.00 [+1.00, +1.00] |" in out
    assert "| one-shot score | -1.00 [-1.00, -1.00] | -1.00 [-1.00, -1.00] |" in out
    assert "AWS minus one_shot: all +2.00 [+2.00, +2.00]" in out
    assert "seeds 0/1 +1.00, seeds 0/2 -1.00, seeds 1/2 -1.00; mean -0.33" in out
    assert "test error % (3 seeds)" in out
    # a run in progress: the table over the networks with scores and seeds 0, 1 trained so far
    del scores[files[0].stem]
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    shutil.rmtree(tmp_path / "train" / files[1].stem)  # its seeds 0, 1; seed 2 is left
    nas_fidelity.table(tmp_path, resamples=100)
    out = capsys.readouterr().out
    assert (f"partial: 18 of 20 networks scored and trained with seeds 0, 1 (not yet: {files[0].stem}, "
            f"{files[1].stem})") in out
    assert "| AWS fine-tune score | +1.00 [+1.00, +1.00] | +1.00 [" in out  # bin 0's 3 resampled: some ties
    assert "Kendall tau, all 18 (95% CI) | tau within size bins, mean of 4" in out
    for f in files[2:]:
        shutil.rmtree(tmp_path / "train" / f.stem)
    with pytest.raises(SystemExit, match="no size bin has 2 networks"):
        nas_fidelity.table(tmp_path, resamples=10)


def test_the_fidelity_draw_is_the_same_in_every_process(tmp_path, nas_fidelity):
    """The 20 architectures drawn here and in a process with another hash seed are the same
    files. Many architectures share a size, and the draw once ordered them by a set's hash
    order, which Python seeds anew in each process: a storage drawn again held other networks
    of the same sizes (RESULTS.md 7.10)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    experiments = Path(nas_fidelity.__file__).parent
    here, there = tmp_path / "here", tmp_path / "there"
    nas_fidelity.archs(here)
    other = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"  # this process's is random or set
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(experiments)!r}); "
                    f"import nas_fidelity; nas_fidelity.archs(__import__('pathlib').Path({str(there)!r}))"],
                   check=True, env={**os.environ, "PYTHONHASHSEED": other})
    drawn = [{f.name: f.read_text() for f in sorted(d.glob("arch-*.json"))} for d in (here, there)]
    assert len(drawn[0]) == 20 and drawn[0] == drawn[1]


def test_the_fidelity_record_carries_a_run_to_a_new_machine(tmp_path, monkeypatch, capsys, nas_fidelity):
    """nas_fidelity.py record: the small files only; a new storage made from the record trains
    and scores nothing it holds, and the seeds trained later count beside the first."""
    import shutil
    import subprocess

    import awsaa.search.stages

    a = tmp_path / "a"
    stems = [f.stem for f in nas_fidelity.archs(a)]
    (a / "train" / "arch-00" / "trial").mkdir(parents=True)
    (a / "train" / "arch-00" / "trial" / "model.pt").write_bytes(b"weights")  # not recorded
    (a / "train" / "arch-00" / "summary.json").write_text(json.dumps(
        [{"status": "done", "final_test_error": 5.0 + k, "label": f"x-arch-00-uniform-seed{k}"} for k in (0, 1)]))
    for i, s in enumerate(stems[1:]):
        for k in (0, 1):  # trained a seed at a time (train --seeds K)
            (a / "train" / f"{s}-seeds-{k}").mkdir(parents=True)
            (a / "train" / f"{s}-seeds-{k}" / "summary.json").write_text(json.dumps(
                [{"status": "done", "final_test_error": 9.0 + i + k / 2, "label": f"x-{s}-uniform-seed{k}"}]))
    (a / "scores.json").write_text(json.dumps({s: {"aws": float(i), "one_shot": 0.0} for i, s in enumerate(stems)}))
    nas_fidelity.record(a, tmp_path / "rec")
    kept = sorted(str(f.relative_to(tmp_path / "rec")) for f in (tmp_path / "rec").rglob("*") if f.is_file())
    assert kept == sorted([f"{s}.json" for s in stems] + ["scores.json", "train/arch-00/summary.json"]
                          + [f"train/{s}-seeds-{k}/summary.json" for s in stems[1:] for k in (0, 1)])
    b = tmp_path / "b"
    shutil.copytree(tmp_path / "rec", b)
    assert nas_fidelity.seed_errors(b, "arch-00") == {0: 5.0, 1: 6.0}
    assert nas_fidelity.seed_errors(b, stems[1]) == {0: 9.0, 1: 9.5}
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    nas_fidelity.train(b)
    nas_fidelity.train(b, seeds=(2,))  # a seed nobody trained: every architecture
    assert [c[c.index("--name") + 1] for c in calls] == [f"{s}-seeds-2" for s in stems]
    monkeypatch.setattr(awsaa.search.stages, "pretrain", lambda *a, **k: pytest.fail("stage 1 trained again"))
    nas_fidelity.scores(b)
    nas_fidelity.table(b, resamples=10)
    out = capsys.readouterr().out
    assert "every architecture is scored" in out
    assert "| arch-01 | 0 | " in out and "9.25 (9.00, 9.50)" in out and "| arch-00 | 0 |" in out


def test_a_campaign_made_from_its_record_runs_only_what_was_not_finished(tmp_path, nas_fidelity):
    """experiments/nas_campaign.sh on a storage made from a record: every recorded search and
    training of the seed is skipped, and the one search that had not finished is resumed from
    its recorded state, on its recorded stage-1 checkpoint; awsaa-search and awsaa-train are
    stand-ins that log their arguments and fail, so the script stops at the first thing it
    would run. Trainings' checkpoints are not recorded. With SEARCHES_ONLY=1 the script passes
    over a training it would otherwise run first."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(nas_fidelity.__file__).resolve().parents[1]
    a = tmp_path / "a"
    finished = ["joint", "null", "archonly", "polfirst", "seqarch", "seqpolicy"]
    for name in [*finished, "grad"]:
        d = a / "search" / f"{name}-s0"
        d.mkdir(parents=True)
        for f in ("run.json", "state.pt", "arch.json", "policy.json"):
            (d / f).write_text("{}")
        (a / f"{name}-s0.log").write_text("loop 30/30\n" + ("train with it: awsaa-train ...\n" if name != "grad"
                                                                                          else ""))
    for name in ["seqpa", "seqarch", "joint", "null", "grad", "archonly", "seq"]:
        (a / "train" / f"{name}-s0" / "trial").mkdir(parents=True)
        (a / "train" / f"{name}-s0" / "trial" / "trainer.pt").write_text("weights")
        (a / "train" / f"{name}-s0" / "summary.json").write_text(json.dumps([{"status": "done"}] * 3))
    (a / "search" / "pretrained").mkdir()
    for stage1 in ("joint.pt", "grad.pt"):
        (a / "search" / "pretrained" / stage1).write_text("weights")
    (a / "search" / "grad-s0" / "run.json").write_text(json.dumps({"pretrained": "/elsewhere/pretrained/grad.pt"}))
    (a / "search" / "crashed-s0").mkdir()  # created, never saved a state: nothing to resume
    (a / "search" / "crashed-s0" / "run.json").write_text("{}")
    nas_fidelity.record(a, tmp_path / "rec")
    kept = {str(f.relative_to(tmp_path / "rec")) for f in (tmp_path / "rec").rglob("*") if f.is_file()}
    assert "search/joint-s0/arch.json" in kept and "joint-s0.log" in kept
    assert {"search/grad-s0/state.pt", "search/grad-s0/run.json", "grad-s0.log", "search/pretrained/grad.pt"} <= kept
    assert "search/joint-s0/state.pt" in kept  # a finished search's state too: its exports agree with it
    left = ("search/pretrained/joint.pt",)  # joint's stage 1: every search on it is finished
    assert not any("trainer.pt" in k or "crashed" in k or k in left for k in kept), kept
    b = tmp_path / "b"
    shutil.copytree(tmp_path / "rec", b)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "python").symlink_to(sys.executable)  # awsaa-train is looked up beside it
    for tool in ("awsaa-search", "awsaa-train"):
        (bin_ / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {tmp_path}/calls\nexit 1\n")
        (bin_ / tool).chmod(0o755)
    shutil.rmtree(b / "train" / "seqpa-s0")  # a training the script would run before grad-s0's search
    for only, first in (("1", f"awsaa-search --resume {b}/search/grad-s0"), ("0", "awsaa-train -c ")):
        (tmp_path / "calls").unlink(missing_ok=True)
        r = subprocess.run(["bash", str(root / "experiments/nas_campaign.sh"), str(b)], capture_output=True,
                           text=True, env={**os.environ, "BIN": str(bin_), "SEEDS": "0", "SEARCHES_ONLY": only},
                           timeout=120)
        calls = (tmp_path / "calls").read_text().splitlines()
        assert r.returncode != 0 and len(calls) == 1, (r.stderr, calls)
        assert calls[0].startswith(first), calls
    assert "--name seqpa-s0" in calls[0]


def test_the_experiments_training_continues_a_killed_run_instead_of_starting_over(tmp_path, monkeypatch,
                                                                                   nas_fidelity):
    """nas_fidelity.awsaa_train (the fidelity truth and the interaction check): a finished
    experiment is skipped, an interrupted one resumed, a new one started."""
    import subprocess

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    done, cut, half = (tmp_path / "train" / n for n in ("done", "cut", "half"))
    for d in (done, cut, half):
        d.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps([{"status": "done"}, {"status": "done"}]))
    (half / "summary.json").write_text(json.dumps([{"status": "done"}, {"status": "error"}]))
    for name in ("done", "cut", "half", "new"):
        nas_fidelity.awsaa_train(tmp_path, name, ["-c", "x.yaml"])
    assert [c[c.index("--name") + 1] for c in calls] == ["cut", "half", "new"]
    assert ["--resume" in c for c in calls] == [True, True, False]
    # the campaign's shell script, through the command line: the same rule, awsaa-train's own
    # options passed through untouched
    for name in ("done", "half"):
        monkeypatch.setattr("sys.argv", ["nas_fidelity.py", "awsaa-train", str(tmp_path), name,
                                         "-c", "x.yaml", "--set", "eval_every=1000"])
        nas_fidelity.main()
    assert len(calls) == 4 and calls[-1][1:] == ["-c", "x.yaml", "--set", "eval_every=1000", "--storage",
                                                 str(tmp_path / "train"), "--name", "half", "--resume"]


def test_the_interaction_check_reads_rows_with_two_seeds_one_seed_or_none_and_trains_what_is_missing(
        tmp_path, capsys, monkeypatch, nas_fidelity):
    """experiments/arch_policy_interaction.py on a storage that holds a row with 2 seeds, a row
    with only seed 0 (a row trained a seed per session) and rows not started: ``table`` judges
    the first in standard errors, ranks the second with no spread claimed and says the rest are
    not trained; ``run`` trains only the seeds missing from the rows it is asked for."""
    import arch_policy_interaction as interaction

    augs = ["none", "cutout", "uniform", "trivialaugment"]
    errors = {"zero": {0: [12.0, 14.0, 19.0, 18.0], 1: [12.2, 14.4, 19.2, 17.8]},
              "mb5_e6": {0: [9.9, 10.5, 13.0, 11.2]}}
    for op, by_seed in errors.items():
        Arch.uniform_op(op).save(tmp_path / f"arch-{op}.json")
        for seed, errs in by_seed.items():
            d = tmp_path / "train" / f"{op}-seeds{seed}"
            d.mkdir(parents=True)
            d.joinpath("summary.json").write_text(json.dumps(
                [{"label": f"quick_fmnist-fashion_mnist-{a}-seed{seed}", "status": "done", "final_test_error": e}
                 for a, e in zip(augs, errs, strict=True)]))
    interaction.table(tmp_path, augs)
    rows = {line.split(" | ")[0].split()[-1]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "12.10 ± 0.14 (n=2)" in rows["zero"] and "none; cutout 2.10 behind (" in rows["zero"]
    assert "SE) |" in rows["zero"]
    assert "9.90 (n=1)" in rows["mb5_e6"] and rows["mb5_e6"].endswith("none; cutout 0.60 behind (one seed: no SE) |")
    assert rows["wrn"].endswith("not trained yet |") and rows["zero"].count("(n=2)") == 4
    # run: a seed at a time, the seeds the storage holds skipped, only the rows asked for
    calls = []
    monkeypatch.setattr(interaction, "awsaa_train", lambda storage, name, args: calls.append((name, args)))
    interaction.run(tmp_path, ["0", "1"], tmp_path / "x.yaml", augs, ["eval_every=1000"], ["mb5_e6", "zero"])
    assert [name for name, _ in calls] == ["mb5_e6-seeds1"]
    assert calls[0][1][calls[0][1].index("--seeds") + 1:][:2] == ["1", "--cpus-per-trial"]


def test_the_logits_steps_on_validation_batches_count_no_op_as_trained():
    from awsaa.search.stages import pretrain

    grad = {**TINY_NAS["nas"], "method": "gradient", "warmup_fraction": 0.5}
    s = pretrain(from_dict(SearchConfig, {**TINY_NAS, "nas": grad}))
    assert s["arch_steps"] == 2  # the second of 2 epochs, 2 batches
    for i, slot in enumerate(slots()):
        assert sum(s["op_counts"][op][i] for op in slot.choices) == 4  # the 4 training batches only


def test_an_architecture_out_of_bounds_is_refused_and_leaves_the_distribution_as_it_was():
    agent = ArchAgent(NasConfig(max_block_params=40_000), seed=0)
    before = agent.state_dict()
    big = Arch.uniform_op("wrn")
    with pytest.raises(Exception, match="breaks the constraints"):
        agent.tell([1.0], [big])
    after = agent.state_dict()
    assert after["baseline"] == before["baseline"] and after["loops_done"] == before["loops_done"]
    assert all(torch.equal(a, b) for a, b in zip(after["logits"], before["logits"], strict=True))


def test_a_ppo_joint_search_s_verdict_simulates_what_its_agent_heard(tmp_path, tiny_nas_pretrained):
    """PPO's null comparison simulates the agent's own budget: one reward per policy of the
    grid (2 a loop here), at the spread of those rewards, not of the 4 trajectories'."""
    cfg = from_dict(SearchConfig, {**TINY_NAS, "loops": 2, "agent": "ppo"})
    r = run(cfg, storage=tmp_path, name="ppo", pretrained=tiny_nas_pretrained, log=lambda x: None)
    assert "2 loops x 2, pure-noise rewards" in r.verdict
