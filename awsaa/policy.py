"""A policy: a probability distribution over the ordered op pairs of a search space.

The AWS controller parameterizes it as ``p(i, j) = n(first)_i * n(second_i)_j`` with
``n(x) = sigmoid(x) / sum(sigmoid(x))`` (the official release's choice; ``softmax`` is
available). All-zero parameters give the uniform *shared* policy.

Policy file format (JSON, version 1)::

    {
      "format": "awsaa.policy",          # required, identifies the file
      "version": 1,                       # required, this reader accepts 1
      "ops": ["AutoContrast", ...],       # required, op names (see awsaa.augment.space), K of them
      "probs": [[...K floats...], ...K],  # required, p(op1 = i, op2 = j); >= 0, finite, sums to 1
      "params": {                         # optional, the controller's parameters that gave probs
        "normalization": "sigmoid",       #   "sigmoid" or "softmax"
        "first": [...K floats...],
        "second": [[...K floats...], ...K]
      },
      "meta": {...}                       # optional, free-form provenance (run, loop, reward)
    }

Sub-policy ``(i, j)`` applies op ``ops[i]`` then op ``ops[j]``, each with a random sign
where the op has one. Loading validates everything above and raises
:class:`~awsaa.errors.AWSAAError` with a one-line message naming the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from awsaa.augment.space import SearchSpace
from awsaa.errors import GENERATOR_SEED_END, AWSAAError, check_int
from awsaa.fileio import atomic_write_text, check_header, parse_json, read_text

FORMAT = "awsaa.policy"
VERSION = 1
SUM_TOLERANCE = 1e-4
NORMALIZATIONS = ("sigmoid", "softmax")


def normalize(x: Tensor, normalization: str = "sigmoid") -> Tensor:
    """``sigmoid(x) / sum(sigmoid(x))`` (official) or ``softmax(x)`` over the last dim."""
    if normalization == "sigmoid":
        s = torch.sigmoid(x)
        return s / s.sum(dim=-1, keepdim=True)
    if normalization == "softmax":
        return torch.softmax(x, dim=-1)
    raise AWSAAError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def pair_probs(first: Tensor, second: Tensor, normalization: str = "sigmoid") -> Tensor:
    """``p(i, j) = n(first)_i * n(second_i)_j``; differentiable, shape (K, K)."""
    return normalize(first, normalization).unsqueeze(1) * normalize(second, normalization)


def _generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(check_int(seed, "generator seed", 0, GENERATOR_SEED_END))
    return g


class Policy:
    """A distribution over the ``K x K`` ordered op pairs of ``space``."""

    def __init__(self, space: SearchSpace, probs: Tensor, params: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        probs = torch.as_tensor(probs, dtype=torch.float64).detach().cpu()
        k = space.num_ops
        if probs.shape != (k, k):
            raise AWSAAError(f"probs has shape {tuple(probs.shape)}, expected ({k}, {k}) for {k} ops")
        _check_finite(probs, "probs")
        if (probs < 0).any():
            i, j = (probs < 0).nonzero()[0].tolist()
            raise AWSAAError(f"probs holds a negative value {probs[i, j].item():g} at [{i}][{j}]")
        total = probs.sum().item()
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise AWSAAError(f"probs sum to {total:.6g}, not 1 (tolerance {SUM_TOLERANCE:g})")
        self.space = space
        self._probs = probs / total
        self.params = params
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, space: SearchSpace | None = None) -> Policy:
        """The shared policy: every pair equally likely."""
        space = space or SearchSpace.default()
        k = space.num_ops
        return cls.from_params(space, torch.zeros(k), torch.zeros(k, k))

    @classmethod
    def from_params(cls, space: SearchSpace, first: Tensor, second: Tensor,
                    normalization: str = "sigmoid", meta: dict[str, Any] | None = None) -> Policy:
        k = space.num_ops
        # copies: a policy is a snapshot, never a view of an agent's live parameters
        first = torch.as_tensor(first, dtype=torch.float64).detach().cpu().clone()
        second = torch.as_tensor(second, dtype=torch.float64).detach().cpu().clone()
        if first.shape != (k,):
            raise AWSAAError(f"params.first has shape {tuple(first.shape)}, expected ({k},)")
        if second.shape != (k, k):
            raise AWSAAError(f"params.second has shape {tuple(second.shape)}, expected ({k}, {k})")
        _check_finite(first, "params.first")
        _check_finite(second, "params.second")
        params = {"normalization": normalization, "first": first, "second": second}
        return cls(space, pair_probs(first, second, normalization), params, meta)

    # ------------------------------------------------------------------ queries
    def probs(self) -> Tensor:
        """(K, K) float64 tensor, ``probs()[i, j] = p(op1 = i, op2 = j)``; sums to 1."""
        return self._probs.clone()

    def entropy(self) -> float:
        """Entropy over the pairs, in nats (``log(K*K)`` for the uniform policy)."""
        p = self._probs[self._probs > 0]
        return float(-(p * p.log()).sum())

    def top(self, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` most likely pairs as ``(op1, op2, probability)``, most likely first."""
        flat = self._probs.flatten()
        vals, idx = flat.topk(min(check_int(k, "k"), flat.numel()))
        return [(*self.space.pair(i), float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)]

    def sample(self, n: int, generator: int | torch.Generator | None = None,
               replacement: bool = True) -> Tensor:
        """Draw ``n`` pairs; (n, 2) long tensor of op indices. ``generator`` may be a seed."""
        check_int(n, "n")
        flat = self._probs.flatten().float()
        if n == 0:
            return torch.zeros(0, 2, dtype=torch.long)
        idx = torch.multinomial(flat, n, replacement=replacement, generator=_generator(generator))
        k = self.space.num_ops
        return torch.stack([idx // k, idx % k], dim=1)

    def kl_from(self, other: Policy) -> float:
        """KL(other || self) in nats."""
        if not isinstance(other, Policy):
            raise TypeError(f"other must be a Policy, got {type(other).__name__}")
        if other.space != self.space:
            raise ValueError(f"other is a policy over another op space ({other.space.num_ops} ops: "
                             f"{', '.join(other.space.names[:3])}, ...) than this one's ({self.space.num_ops} ops)")
        p, q = other._probs, self._probs
        mask = p > 0
        return float((p[mask] * (p[mask].log() - q[mask].clamp_min(1e-300).log())).sum())

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Policy) and self.space == other.space
                and torch.allclose(self._probs, other._probs, rtol=0, atol=1e-12))

    __hash__ = None  # type: ignore[assignment]  # mutable meta: not hashable (the standard idiom)

    def __repr__(self) -> str:
        return f"Policy({self.space!r}, entropy={self.entropy():.4f})"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "ops": list(self.space.names),
            "probs": self._probs.tolist(),
        }
        if self.params is not None:
            d["params"] = {
                "normalization": self.params["normalization"],
                "first": self.params["first"].tolist(),
                "second": self.params["second"].tolist(),
            }
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Policy:
        d = check_header(d, FORMAT, VERSION, {"format", "version", "ops", "probs", "params", "meta"}, "policy")
        for key in ("ops", "probs"):
            if key not in d:
                raise AWSAAError(f"policy is missing the key {key!r}")
        ops = d["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise AWSAAError("policy 'ops' must be a list of op names")
        if ops != sorted(ops):
            raise AWSAAError("policy 'ops' must be in sorted name order")
        space = SearchSpace(ops)
        probs = _matrix(d["probs"], "probs")
        meta = d.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise AWSAAError("policy 'meta' must be a JSON object")
        params = d.get("params")
        if params is None:
            return cls(space, probs, None, meta)
        if not isinstance(params, dict) or set(params) != {"normalization", "first", "second"}:
            raise AWSAAError("policy 'params' must hold exactly 'normalization', 'first' and 'second'")
        if params["normalization"] not in NORMALIZATIONS:
            raise AWSAAError(f"params.normalization must be one of {NORMALIZATIONS}, "
                             f"got {params['normalization']!r}")
        pol = cls.from_params(space, _matrix(params["first"], "params.first"),
                              _matrix(params["second"], "params.second"), params["normalization"], meta)
        checked = cls(space, probs)  # validates probs on its own
        worst = (checked._probs - pol._probs).abs().max().item()
        if worst > 1e-6:
            raise AWSAAError(f"policy 'probs' disagree with its 'params' (max difference {worst:.3g})")
        return pol

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy as JSON, atomically."""
        atomic_write_text(path, _dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        """Read and validate a policy file; errors name the file and the problem."""
        path = Path(path)
        d = parse_json(read_text(path, "policy file"), f"policy file {path}", parse_constant=_reject_constant)
        try:
            return cls.from_dict(d)
        except AWSAAError as e:
            raise AWSAAError(f"policy file {path}: {e}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _check_finite(t: Tensor, what: str) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        where = "".join(f"[{i}]" for i in bad.nonzero()[0].tolist())
        raise AWSAAError(f"{what} holds a non-finite value at {where}")


def _matrix(x: Any, what: str) -> Tensor:
    """Nested JSON lists of numbers -> float64 tensor, with a clear error otherwise."""

    def ok(v: Any) -> bool:
        if isinstance(v, list):
            return all(ok(u) for u in v)
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(x, list) or not ok(x):
        raise AWSAAError(f"{what} must be a list (of lists) of numbers")
    try:
        t = torch.tensor(x, dtype=torch.float64)
    except (ValueError, TypeError, OverflowError, RuntimeError):
        lengths = sorted({len(r) for r in x if isinstance(r, list)})
        raise AWSAAError(f"{what} is ragged (row lengths {lengths})") from None
    return t


def _dumps(d: dict[str, Any]) -> str:
    """JSON with one matrix row per line: readable and diff-friendly."""

    def value(v: Any, indent: str) -> str:
        if isinstance(v, list) and v and isinstance(v[0], list):
            rows = [json.dumps(r, allow_nan=False) for r in v]
            return "[\n" + ",\n".join(indent + "  " + r for r in rows) + "\n" + indent + "]"
        if isinstance(v, dict) and any(isinstance(u, list) for u in v.values()):
            items = [f'{indent}  {json.dumps(k)}: {value(u, indent + "  ")}' for k, u in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + indent + "}"
        return json.dumps(v, allow_nan=False)

    return value(d, "") + "\n"


def as_policy(policy: Policy | str | os.PathLike, space: SearchSpace | None = None) -> Policy:
    """A :class:`Policy`, or the path of a policy file."""
    if isinstance(policy, Policy):
        return policy
    pol = Policy.load(policy)
    if space is not None and pol.space != space:
        raise AWSAAError(f"policy {policy} is over {pol.space.num_ops} ops, expected {space.num_ops}")
    return pol
