import json
import math

import pytest
import torch

from awsaa import AWSAAError, Policy, SearchSpace
from awsaa.policy import pair_probs

SPACE = SearchSpace.default()


def test_uniform_policy():
    p = Policy.uniform(SPACE).probs()
    assert p.shape == (36, 36)
    assert torch.allclose(p, torch.full((36, 36), 1 / 1296, dtype=torch.float64))
    assert math.isclose(Policy.uniform(SPACE).entropy(), math.log(1296), rel_tol=1e-12)


def test_official_parameterization_by_hand():
    g = torch.Generator().manual_seed(0)
    first, second = torch.randn(36, generator=g), torch.randn(36, 36, generator=g)
    p = Policy.from_params(SPACE, first, second).probs()
    s1 = torch.sigmoid(first.double())
    s2 = torch.sigmoid(second.double())
    i, j = 5, 17
    expected = (s1[i] / s1.sum()) * (s2[i, j] / s2[i].sum())
    assert math.isclose(p[i, j].item(), expected.item(), rel_tol=1e-9)
    assert math.isclose(p.sum().item(), 1.0, rel_tol=1e-12)
    # not softmax: sigmoid-normalization differs from softmax for the same parameters
    q = Policy.from_params(SPACE, first, second, normalization="softmax").probs()
    assert not torch.allclose(p, q)
    assert torch.allclose(q, torch.softmax(first.double(), 0)[:, None] * torch.softmax(second.double(), 1))


def test_pair_probs_is_differentiable():
    first = torch.zeros(36, requires_grad=True)
    second = torch.zeros(36, 36, requires_grad=True)
    pair_probs(first, second)[3, 4].backward()
    assert first.grad[3] > 0 and second.grad[3, 4] > 0 and second.grad[5, 4] == 0


def test_seeded_sampling_is_reproducible_and_follows_the_probs():
    probs = torch.zeros(36, 36, dtype=torch.float64)
    probs[2, 3], probs[10, 10], probs[35, 0] = 0.5, 0.3, 0.2
    pol = Policy(SPACE, probs)
    a, b = pol.sample(20000, generator=7), pol.sample(20000, generator=7)
    assert torch.equal(a, b) and a.shape == (20000, 2)
    assert not torch.equal(a, pol.sample(20000, generator=8))
    counts = torch.zeros(36, 36)
    counts.index_put_((a[:, 0], a[:, 1]), torch.ones(20000), accumulate=True)
    assert counts.sum() == counts[2, 3] + counts[10, 10] + counts[35, 0]
    assert abs(counts[2, 3] / 20000 - 0.5) < 0.02 and abs(counts[35, 0] / 20000 - 0.2) < 0.02


def test_top_and_entropy():
    probs = torch.full((36, 36), 0.5 / 1295, dtype=torch.float64)
    probs[7, 8] = 0.5
    pol = Policy(SPACE, probs)
    (i, j, p), *_ = pol.top(3)
    assert (i, j) == (7, 8) and math.isclose(p, 0.5)
    assert 0 < pol.entropy() < math.log(1296)


def test_save_load_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(1)
    pol = Policy.from_params(SPACE, torch.randn(36, generator=g), torch.randn(36, 36, generator=g),
                             meta={"run": "x", "loop": 3})
    pol.save(tmp_path / "p.json")
    back = Policy.load(tmp_path / "p.json")
    assert back == pol and back.meta == {"run": "x", "loop": 3}
    assert torch.equal(back.params["first"], pol.params["first"])
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_probs_only_file_and_subset_space(tmp_path):
    space = SearchSpace(["Invert", "Rotate_9"])
    doc = {"format": "awsaa.policy", "version": 1, "ops": ["Invert", "Rotate_9"],
           "probs": [[0.1, 0.2], [0.3, 0.4]]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    pol = Policy.load(tmp_path / "p.json")
    assert pol.space == space and pol.probs()[1, 1].item() == pytest.approx(0.4)


def _doc(**changes):
    d = Policy.uniform(SPACE).to_dict()
    d.update(changes)
    return d


BAD = {
    "wrong shape": (lambda: _doc(probs=[[1 / 1260] * 36] * 35), "shape"),
    "ragged": (lambda: _doc(probs=[[1 / 1296] * 36] * 35 + [[0.1]]), "ragged"),
    "nan": (lambda: json.dumps(_doc()).replace("0.0007716049382716049", "NaN", 1), "NaN|non-finite"),
    "infinity": (lambda: json.dumps(_doc()).replace("0.0007716049382716049", "1e999", 1), "non-finite"),
    "negative": (lambda: _neg(), "negative"),
    "sum": (lambda: _doc(probs=[[1 / 1000] * 36] * 36, params=None), "sum to"),
    "unknown op": (lambda: _doc(ops=["Bogus", *SPACE.names[1:]]), "unknown op"),
    "unsorted ops": (lambda: _doc(ops=list(reversed(SPACE.names))), "sorted"),
    "version": (lambda: _doc(version=2), "version"),
    "format": (lambda: _doc(format="something"), "format"),
    "missing probs": (lambda: {k: v for k, v in _doc().items() if k != "probs"}, "missing"),
    "unknown key": (lambda: _doc(extra=1), "unknown key"),
    "strings": (lambda: _doc(probs=[["a"] * 36] * 36), "numbers"),
    "params mismatch": (lambda: _doc(params={"normalization": "sigmoid", "first": [1.0] + [0.0] * 35,
                                             "second": [[0.0] * 36] * 36}), "disagree"),
    "truncated": (lambda: json.dumps(_doc())[:500], "not valid JSON"),
    "not an object": (lambda: [1, 2], "JSON object"),
}


def _neg():
    d = _doc(params=None)
    d["probs"][0][0] = -d["probs"][0][1]
    d["probs"][0][2] += 2 * d["probs"][0][1]
    return d


@pytest.mark.parametrize("case", list(BAD))
def test_bad_policy_files_give_one_line_errors(tmp_path, case):
    make, pattern = BAD[case]
    doc = make()
    if isinstance(doc, dict) and doc.get("params", 0) is None:
        del doc["params"]
    text = doc if isinstance(doc, str) else json.dumps(doc)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AWSAAError, match=pattern) as e:
        Policy.load(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert path.read_text() == text  # loading never touches the file


def test_missing_file():
    with pytest.raises(AWSAAError, match="does not exist"):
        Policy.load("/nonexistent/p.json")


def test_a_policy_is_a_snapshot_of_the_parameters():
    first, second = torch.zeros(36), torch.zeros(36, 36)
    pol = Policy.from_params(SPACE, first, second)
    first += 5.0
    assert pol == Policy.uniform(SPACE)
    assert Policy.from_dict(pol.to_dict()) == pol
